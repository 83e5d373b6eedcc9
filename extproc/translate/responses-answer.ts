/**
 * Chat answers as Responses API objects, in the shapes (and field order) a native vLLM answers
 * `/v1/responses` with, so an SDK parses a translated answer exactly as a native one.
 */
import type { Block, ChatAnswer, ChatHead, ChatOutcome, ChatUsage, FinishedBlock } from "./chat.js";
import { derivedId } from "./ids.js";
import type { ResponsesRequest } from "./responses-request.js";

type Json = Record<string, unknown>;

/** The item id for the block at `index`, by kind: msg_, rs_ or fc_. */
export function itemId(head: ChatHead, block: Block, index: number): string {
  const prefix = block.kind === "text" ? "msg_" : block.kind === "reasoning" ? "rs_" : "fc_";
  return derivedId(prefix, head.id, index);
}

/** The call_id of a tool block: the chat server's own id (the client sends it back), else a derived one. */
export function callId(head: ChatHead, block: Block & { kind: "tool" }, index: number): string {
  return block.callId ?? derivedId("call_", head.id, index);
}

/**
 * The output item for a block: in progress (empty, as `response.output_item.added` shows it), or with its
 * text, completed (or incomplete, when the stream failed within it).
 */
export function outputItem(
  head: ChatHead,
  { block, text }: FinishedBlock,
  index: number,
  status: "in_progress" | "completed" | "incomplete",
): Json {
  const id = itemId(head, block, index);
  const done = status !== "in_progress";
  switch (block.kind) {
    case "text":
      return {
        id,
        content: done ? [outputText(text, null)] : [],
        role: "assistant",
        status,
        type: "message",
        phase: null,
      };
    case "reasoning":
      return {
        id,
        summary: [],
        type: "reasoning",
        content: done ? [{ text, type: "reasoning_text" }] : [],
        encrypted_content: null,
        status,
      };
    case "tool":
      return {
        arguments: done ? text : "",
        call_id: callId(head, block, index),
        name: block.name,
        type: "function_call",
        id,
        status,
      };
  }
}

/** An output_text content part; `logprobs` is [] while streaming and null when done, as vLLM sends. */
export function outputText(text: string, logprobs: [] | null): Json {
  return { annotations: [], text, type: "output_text", logprobs };
}

/** Responses usage from chat usage (absent counts as zero). */
export function responsesUsage(usage: ChatUsage | undefined): Json {
  const input = usage?.promptTokens ?? 0;
  const output = usage?.completionTokens ?? 0;
  return {
    input_tokens: input,
    input_tokens_details: {
      cached_tokens: usage?.cachedTokens ?? 0,
      cache_write_tokens: 0,
      input_tokens_per_turn: [],
      cached_tokens_per_turn: [],
    },
    output_tokens: output,
    output_tokens_details: {
      reasoning_tokens: usage?.reasoningTokens ?? 0,
      tool_output_tokens: 0,
      output_tokens_per_turn: [],
      tool_output_tokens_per_turn: [],
    },
    total_tokens: input + output,
  };
}

/** What a response object says beyond the chat answer: the request it answers and the model to echo. */
export interface ResponseContext {
  readonly head: ChatHead;
  readonly request: Partial<ResponsesRequest>;
  readonly model: string;
}

/** The response object: in progress (no output, no usage) or finished with its outcome. */
export function responseObject(
  { head, request, model }: ResponseContext,
  finished: { outcome: ChatOutcome; output: Json[] } | undefined,
): Json {
  const incomplete = finished === undefined ? null : incompleteReason(finished.outcome.finishReason);
  return {
    id: derivedId("resp_", head.id, "response"),
    created_at: head.created,
    incomplete_details: incomplete === null ? null : { reason: incomplete },
    instructions: request.instructions ?? null,
    metadata: (request as Json).metadata ?? null,
    model,
    object: "response",
    output: finished?.output ?? [],
    parallel_tool_calls: request.parallel_tool_calls ?? true,
    temperature: request.temperature ?? 1.0,
    // vLLM's default: "auto" with tools, "none" without.
    tool_choice: request.tool_choice ?? (request.tools?.length ? "auto" : "none"),
    tools: request.tools ?? [],
    top_p: request.top_p ?? 1.0,
    background: false,
    max_output_tokens: request.max_output_tokens ?? null,
    max_tool_calls: null,
    previous_response_id: null,
    prompt: null,
    reasoning: request.reasoning ?? null,
    service_tier: "auto",
    status: finished === undefined ? "in_progress" : incomplete === null ? "completed" : "incomplete",
    text: request.text ?? null,
    top_logprobs: null,
    truncation: "disabled",
    usage: finished === undefined ? null : responsesUsage(finished.outcome.usage),
    user: request.user ?? null,
    presence_penalty: request.presence_penalty ?? 0.0,
    frequency_penalty: request.frequency_penalty ?? 0.0,
    kv_transfer_params: null,
    ec_transfer_params: null,
    input_messages: null,
    output_messages: null,
  };
}

/** Why a response is incomplete (`incomplete_details.reason`), or null when it completed. */
function incompleteReason(finishReason: string | null): string | null {
  if (finishReason === "length") return "max_output_tokens";
  if (finishReason === "content_filter") return "content_filter";
  return null;
}

/** A whole chat answer as a Responses API response object. */
export function responseFromChat(
  answer: ChatAnswer,
  request: Partial<ResponsesRequest>,
  model?: string,
): Json {
  const context = { head: answer.head, request, model: model ?? answer.head.model };
  const output = answer.blocks.map((block, i) => outputItem(answer.head, block, i, "completed"));
  return responseObject(context, { outcome: answer, output });
}
