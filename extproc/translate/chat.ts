/**
 * What the translations read from a chat-completions answer: its head (id, model, created), its output as
 * blocks (reasoning, text, tool calls — the units both the Responses and the Messages API answer in), how it
 * finished and its usage. One reader for whole answers and one (in blocks.ts) for streams, so both APIs
 * and both modes see the same blocks.
 */
import { arrayOf, numberOf, objectOf, stringOf } from "./json.js";

/** The fields every translated answer echoes from the chat answer. */
export interface ChatHead {
  readonly id: string;
  readonly model: string;
  /** Unix seconds. */
  readonly created: number;
}

/** One unit of output: the model's reasoning, its text, or one tool call. */
export type Block =
  | { readonly kind: "reasoning" }
  | { readonly kind: "text" }
  /** `callId` is the chat tool call's id when the server gave one (kept: the client sends it back). */
  | { readonly kind: "tool"; readonly callId: string | undefined; readonly name: string };

/** A block with all its text: the reasoning, the text, or a tool call's arguments (JSON text). */
export interface FinishedBlock {
  readonly block: Block;
  readonly text: string;
}

/** Token counts of a chat answer. */
export interface ChatUsage {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly cachedTokens: number;
  readonly reasoningTokens: number;
}

/** How a chat answer ended. */
export interface ChatOutcome {
  /** `finish_reason`: stop, length, tool_calls, content_filter, …; null when the server sent none. */
  readonly finishReason: string | null;
  /** The stop string that ended generation (vLLM's `stop_reason`), when it was one. */
  readonly stopSequence: string | null;
  readonly usage: ChatUsage | undefined;
}

/** A whole chat answer as blocks. */
export interface ChatAnswer extends ChatOutcome {
  readonly head: ChatHead;
  readonly blocks: FinishedBlock[];
}

/** The head of a chat answer or chunk; `now` stands in for a missing `created`. */
export function readHead(chat: Record<string, unknown> | undefined, now: () => number): ChatHead {
  return {
    id: stringOf(chat?.id) ?? "",
    model: stringOf(chat?.model) ?? "",
    created: numberOf(chat?.created) ?? Math.floor(now() / 1000),
  };
}

/** The usage object of a chat answer or chunk, if it has one. */
export function readUsage(value: unknown): ChatUsage | undefined {
  const usage = objectOf(value);
  if (usage === undefined) return undefined;
  return {
    promptTokens: numberOf(usage.prompt_tokens) ?? 0,
    completionTokens: numberOf(usage.completion_tokens) ?? 0,
    cachedTokens: numberOf(objectOf(usage.prompt_tokens_details)?.cached_tokens) ?? 0,
    reasoningTokens: numberOf(objectOf(usage.completion_tokens_details)?.reasoning_tokens) ?? 0,
  };
}

/**
 * The reasoning text of a message or delta: vLLM's reasoning parsers put it in `reasoning` (current) or
 * `reasoning_content` (older versions, and other servers); one of them, never both, so nothing doubles.
 */
export function reasoningOf(message: Record<string, unknown>): string | undefined {
  return stringOf(message.reasoning_content) ?? stringOf(message.reasoning);
}

/**
 * The visible text of a message or delta. A refusal (`refusal`) is text too: neither client API has a
 * separate slot the SDKs accumulate for it in both modes.
 */
export function textOf(message: Record<string, unknown>): string {
  return (stringOf(message.content) ?? "") + (stringOf(message.refusal) ?? "");
}

/** The first choice (index 0): the translations never ask for `n` > 1. */
export function firstChoice(chat: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  return arrayOf(chat?.choices)
    .map(objectOf)
    .find((choice) => choice !== undefined && (numberOf(choice.index) ?? 0) === 0);
}

/** The outcome fields of a choice. */
export function readFinish(choice: Record<string, unknown> | undefined): {
  finishReason: string | null;
  stopSequence: string | null;
} {
  return {
    finishReason: stringOf(choice?.finish_reason) ?? null,
    stopSequence: stringOf(choice?.stop_reason) ?? null,
  };
}

/** Reads a whole chat-completion answer; fields it lacks read as empty. */
export function readAnswer(value: unknown, now: () => number = Date.now): ChatAnswer {
  const chat = objectOf(value);
  const choice = firstChoice(chat);
  const message = objectOf(choice?.message) ?? {};
  const blocks: FinishedBlock[] = [];
  const reasoning = reasoningOf(message);
  if (reasoning) blocks.push({ block: { kind: "reasoning" }, text: reasoning });
  const text = textOf(message);
  if (text) blocks.push({ block: { kind: "text" }, text });
  for (const call of arrayOf(message.tool_calls).map(objectOf)) {
    if (call === undefined) continue;
    const fn = objectOf(call.function);
    blocks.push({
      block: { kind: "tool", callId: stringOf(call.id) || undefined, name: stringOf(fn?.name) ?? "" },
      text: stringOf(fn?.arguments) ?? "",
    });
  }
  return { head: readHead(chat, now), blocks, ...readFinish(choice), usage: readUsage(chat?.usage) };
}
