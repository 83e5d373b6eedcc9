/**
 * A chat-completions stream as the Messages API's event stream, as a native vLLM sends it: message_start
 * (with input usage), per block content_block_start, content_block_delta (text_delta, thinking_delta,
 * input_json_delta), content_block_stop, then message_delta (stop_reason, output usage) and message_stop.
 */
import type { BlockOp } from "./blocks.js";
import type { ChatHead, ChatOutcome } from "./chat.js";
import { anthropicErrorType } from "../errors/index.js";
import { errorMessageOf } from "./errors.js";
import { numberOf } from "./json.js";
import { contentBlock, messageId, messagesUsage, stopOf } from "./messages-answer.js";
import { sseEvent } from "./sse.js";
import { ChatStreamTranslator } from "./stream.js";

type Json = Record<string, unknown>;

/** Converts one chat stream to Messages events. */
export class MessagesStreamConverter extends ChatStreamTranslator {
  private head: ChatHead | undefined;

  protected failed(error: Json): string {
    const status = numberOf(error.code) ?? 500;
    return sseEvent("error", {
      type: "error",
      error: { type: anthropicErrorType(status), message: errorMessageOf(error) },
    });
  }

  protected closing(outcome: ChatOutcome): string {
    const usedTools = this.chat.finished.some(({ block }) => block.kind === "tool");
    return (
      sseEvent("message_delta", {
        type: "message_delta",
        delta: stopOf(outcome, usedTools),
        usage: messagesUsage(outcome, this.options.promptTokens),
      }) + sseEvent("message_stop", { type: "message_stop" })
    );
  }

  /** message_start, once, when the first chat event gave the head. */
  protected start(): string {
    if (this.head !== undefined) return "";
    const head = this.chat.head ?? { id: "", model: "", created: 0 };
    this.head = head;
    return sseEvent("message_start", {
      type: "message_start",
      message: {
        id: messageId(head),
        type: "message",
        role: "assistant",
        content: [],
        model: this.options.model ?? head.model,
        stop_reason: null,
        stop_sequence: null,
        usage: {
          input_tokens: this.chat.usage?.promptTokens ?? this.options.promptTokens ?? 0,
          output_tokens: 0,
        },
      },
    });
  }

  protected render(op: BlockOp): string {
    switch (op.op) {
      case "open":
        return sseEvent("content_block_start", {
          type: "content_block_start",
          content_block: contentBlock(this.head!, { block: op.block, text: "" }, op.index, false),
          index: op.index,
        });
      case "delta":
        return sseEvent("content_block_delta", {
          type: "content_block_delta",
          delta: this.delta(op.index, op.text),
          index: op.index,
        });
      case "close":
        return sseEvent("content_block_stop", { type: "content_block_stop", index: op.index });
    }
  }

  private delta(index: number, text: string): Json {
    switch (this.chat.block(index).kind) {
      case "text":
        return { type: "text_delta", text };
      case "reasoning":
        return { type: "thinking_delta", thinking: text };
      case "tool":
        return { type: "input_json_delta", partial_json: text };
    }
  }
}
