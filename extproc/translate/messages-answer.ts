/**
 * Chat answers as Anthropic Messages objects, in the shapes a native vLLM answers `/v1/messages` with (plus
 * `stop_sequence`, which Anthropic's own API always sends).
 */
import type { Block, ChatAnswer, ChatHead, ChatOutcome, FinishedBlock } from "./chat.js";
import { derivedId } from "./ids.js";
import { objectOf } from "./json.js";

type Json = Record<string, unknown>;

/** The message id derived from the chat id. */
export function messageId(head: ChatHead): string {
  return derivedId("msg_", head.id, "message");
}

/** A tool_use block's id: the chat server's own call id (the client sends it back), else a derived one. */
export function toolUseId(head: ChatHead, block: Block & { kind: "tool" }, index: number): string {
  return block.callId ?? derivedId("toolu_", head.id, index);
}

/**
 * A tool call's arguments as tool_use `input`. Anthropic requires an object; arguments that are not a JSON
 * object (a generation cut off by max_tokens mid-JSON) read as {} — stop_reason says it was cut.
 */
export function toolInput(argumentsText: string): Json {
  try {
    return objectOf(JSON.parse(argumentsText)) ?? {};
  } catch {
    return {};
  }
}

/** A content block: empty as content_block_start shows it, or whole. */
export function contentBlock(
  head: ChatHead,
  { block, text }: FinishedBlock,
  index: number,
  whole: boolean,
): Json {
  switch (block.kind) {
    case "text":
      return { type: "text", text: whole ? text : "" };
    case "reasoning":
      // Chat servers sign nothing: the signature stays empty (a client that verifies it cannot here).
      return { type: "thinking", thinking: whole ? text : "", signature: "" };
    case "tool":
      return {
        type: "tool_use",
        id: toolUseId(head, block, index),
        name: block.name,
        input: whole ? toolInput(text) : {},
      };
  }
}

/** stop_reason and stop_sequence for a chat outcome. */
export function stopOf(outcome: ChatOutcome, usedTools: boolean): Json {
  const stop = (reason: string, sequence: string | null = null) => ({
    stop_reason: reason,
    stop_sequence: sequence,
  });
  switch (outcome.finishReason) {
    case "length":
      return stop("max_tokens");
    case "tool_calls":
      return stop("tool_use");
    case "content_filter":
      return stop("refusal");
    default:
      // Some servers finish a tool call with "stop"; vLLM names the stop string that matched.
      if (usedTools) return stop("tool_use");
      return outcome.stopSequence === null ? stop("end_turn") : stop("stop_sequence", outcome.stopSequence);
  }
}

/** Messages usage from a chat outcome. */
export function messagesUsage(outcome: ChatOutcome, promptTokens = 0): Json {
  return {
    input_tokens: outcome.usage?.promptTokens ?? promptTokens,
    output_tokens: outcome.usage?.completionTokens ?? 0,
  };
}

/** A whole chat answer as a Messages API message. */
export function messageFromChat(answer: ChatAnswer, model?: string): Json {
  return {
    id: messageId(answer.head),
    type: "message",
    role: "assistant",
    content: answer.blocks.map((block, i) => contentBlock(answer.head, block, i, true)),
    model: model ?? answer.head.model,
    ...stopOf(
      answer,
      answer.blocks.some(({ block }) => block.kind === "tool"),
    ),
    usage: messagesUsage(answer),
  };
}
