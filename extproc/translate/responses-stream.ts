/**
 * A chat-completions stream as the Responses API's typed event stream, event for event what a native vLLM
 * sends: response.created, response.in_progress, then per output item output_item.added, content_part.added,
 * deltas, the matching .done events, output_item.done; finally response.completed with usage. Every event
 * carries a sequence_number counting from 0.
 */
import type { BlockOp } from "./blocks.js";
import type { ChatOutcome } from "./chat.js";
import { errorMessageOf } from "./errors.js";
import type { ResponsesRequest } from "./responses-request.js";
import { itemId, outputItem, outputText, responseObject, type ResponseContext } from "./responses-answer.js";
import { sseEvent } from "./sse.js";
import { ChatStreamTranslator } from "./stream.js";

type Json = Record<string, unknown>;

/** Converts one chat stream to Responses events. */
export class ResponsesStreamConverter extends ChatStreamTranslator {
  private sequence = 0;
  private context: ResponseContext | undefined;
  private readonly itemIds: string[] = [];

  protected closing(outcome: ChatOutcome): string {
    const context = this.context!;
    const output = this.chat.finished.map((block, i) => outputItem(context.head, block, i, "completed"));
    const response = responseObject(context, { outcome, output });
    return this.emit("response.completed", { response });
  }

  /**
   * response.failed for an upstream error mid-stream: the terminal event of the response's lifecycle (as
   * response.completed is otherwise), with the output so far (an unfinished item as incomplete) and the
   * error. The chat error's own code is the server's, not one of Responses' error codes: it rides in the
   * message.
   */
  protected failed(error: Json): string {
    const opening = this.start();
    const context = this.context!;
    const open = this.chat.openIndex;
    const output = this.chat.finished.map((block, i) =>
      outputItem(context.head, block, i, i === open ? "incomplete" : "completed"),
    );
    const outcome = { finishReason: null, stopSequence: null, usage: this.chat.usage };
    const response = {
      ...responseObject(context, { outcome, output }),
      status: "failed",
      error: { code: "server_error", message: errorMessageOf(error) },
    };
    return opening + this.emit("response.failed", { response });
  }

  /** response.created and response.in_progress, once, when the first chat event gave the head. */
  protected start(): string {
    if (this.context !== undefined) return "";
    const head = this.chat.head ?? {
      id: "",
      model: "",
      created: Math.floor((this.options.now ?? Date.now)() / 1000),
    };
    this.context = {
      head,
      request: (this.options.request ?? {}) as Partial<ResponsesRequest>,
      model: this.options.model ?? head.model,
    };
    const response = responseObject(this.context, undefined);
    return this.emit("response.created", { response }) + this.emit("response.in_progress", { response });
  }

  protected render(op: BlockOp): string {
    const head = this.context!.head;
    const block = op.op === "delta" ? this.chat.block(op.index) : op.block;
    // Each item's id is hashed once (when it opens), not once per delta.
    if (op.op === "open") this.itemIds[op.index] = itemId(head, block, op.index);
    const at = { item_id: this.itemIds[op.index]!, output_index: op.index };
    const text = block.kind === "text";
    const reasoning = block.kind === "reasoning";
    switch (op.op) {
      case "open": {
        const item = outputItem(head, { block, text: "" }, op.index, "in_progress");
        let events = this.emit("response.output_item.added", { item, output_index: op.index });
        if (text)
          events += this.emit("response.content_part.added", {
            content_index: 0,
            ...at,
            part: outputText("", []),
          });
        if (reasoning)
          events += this.emit("response.content_part.added", {
            content_index: 0,
            ...at,
            part: { text: "", type: "reasoning_text" },
          });
        return events;
      }
      case "delta":
        if (text)
          return this.emit("response.output_text.delta", {
            content_index: 0,
            delta: op.text,
            ...at,
            logprobs: [],
          });
        if (reasoning)
          return this.emit("response.reasoning_text.delta", { content_index: 0, delta: op.text, ...at });
        return this.emit("response.function_call_arguments.delta", { delta: op.text, ...at });
      case "close": {
        const item = outputItem(head, { block, text: op.text }, op.index, "completed");
        let events = "";
        if (text)
          events +=
            this.emit("response.output_text.done", { content_index: 0, ...at, logprobs: [], text: op.text }) +
            this.emit("response.content_part.done", {
              content_index: 0,
              ...at,
              part: outputText(op.text, null),
            });
        else if (reasoning)
          events +=
            this.emit("response.reasoning_text.done", { content_index: 0, ...at, text: op.text }) +
            this.emit("response.content_part.done", {
              content_index: 0,
              ...at,
              part: { text: op.text, type: "reasoning_text" },
            });
        else
          events += this.emit("response.function_call_arguments.done", {
            arguments: op.text,
            ...at,
            name: (block as { name: string }).name,
          });
        return events + this.emit("response.output_item.done", { item, output_index: op.index });
      }
    }
  }

  /** One event, numbered; `type` is both the SSE event name and the payload's `type`. */
  private emit(type: string, fields: Json): string {
    // `fields` is always a fresh literal: completing it in place saves a copy per delta.
    fields.sequence_number = this.sequence++;
    fields.type = type;
    return sseEvent(type, fields);
  }
}
