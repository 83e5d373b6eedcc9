/**
 * The demo model server's Responses (`/v1/responses`) and Anthropic Messages (`/v1/messages`,
 * `/v1/messages/count_tokens`) answers, streamed and not, in the byte shapes of vLLM 0.32's
 * (test/vllm-recordings/responses*.txt, messages*.txt): the same fields in the same order, the same events.
 * A tool call (`x-demo-tool-call`) comes as a `function_call` item or a `tool_use` block.
 */
import { randomBytes } from "node:crypto";

/** What the server decided to answer, whatever the API. */
export interface AgentAnswer {
  readonly model: string;
  /** Generated text, in the pieces it streams in. */
  readonly tokens: readonly string[];
  readonly toolCall: { readonly name: string; readonly arguments: string } | undefined;
  /** Pieces the tool call's arguments stream in. */
  readonly argumentPieces: readonly string[];
  readonly promptTokens: number;
  readonly completionTokens: number;
  /** The cap was reached (vLLM: `incomplete` / `max_tokens`). */
  readonly truncated: boolean;
  readonly maxTokens: number;
  /** Leave usage out (a server that reports none). */
  readonly omitUsage: boolean;
  /** Reasoning before the answer (`x-demo-reasoning`), in the pieces it streams in: a reasoning item / thinking block. */
  readonly reasoning: readonly string[] | undefined;
}

/** One SSE event to write: its name and data. */
export interface AgentEvent {
  readonly name: string;
  readonly data: unknown;
}

const hex = () => randomBytes(8).toString("hex");

/** The text of a Responses `input` (a string, or items with content) or of Messages `messages` and `system`. */
export function agentPromptText(body: Record<string, unknown>): string {
  const texts: string[] = [];
  const collect = (value: unknown): void => {
    if (typeof value === "string") texts.push(value);
    else if (Array.isArray(value)) value.forEach(collect);
    else if (value && typeof value === "object") {
      const o = value as Record<string, unknown>;
      for (const key of ["text", "content", "output", "arguments"]) collect(o[key]);
      if (o.type === "tool_use" || o.type === "function_call") collect(JSON.stringify(o.input ?? ""));
    }
  };
  collect(body.instructions);
  collect(body.system);
  collect(body.input);
  collect(body.messages);
  return texts.join(" ");
}

/** A Responses API response object, in vLLM's field order. */
function responseObject(
  id: string,
  created: number,
  body: Record<string, unknown>,
  answer: AgentAnswer,
  status: "in_progress" | "completed" | "incomplete",
  output: unknown[],
): Record<string, unknown> {
  const done = status !== "in_progress";
  const usage = {
    input_tokens: answer.promptTokens,
    input_tokens_details: {
      cached_tokens: 0,
      cache_write_tokens: 0,
      input_tokens_per_turn: [],
      cached_tokens_per_turn: [],
    },
    output_tokens: answer.completionTokens,
    output_tokens_details: {
      reasoning_tokens: 0,
      tool_output_tokens: 0,
      output_tokens_per_turn: [],
      tool_output_tokens_per_turn: [],
    },
    total_tokens: answer.promptTokens + answer.completionTokens,
  };
  return {
    id,
    created_at: created,
    incomplete_details: status === "incomplete" ? { reason: "max_output_tokens" } : null,
    instructions: body.instructions ?? null,
    metadata: body.metadata ?? null,
    model: answer.model,
    object: "response",
    output,
    parallel_tool_calls: true,
    temperature: body.temperature ?? 1.0,
    tool_choice: body.tool_choice ?? (Array.isArray(body.tools) && body.tools.length > 0 ? "auto" : "none"),
    tools: body.tools ?? [],
    top_p: body.top_p ?? 1.0,
    background: false,
    max_output_tokens: answer.maxTokens,
    max_tool_calls: null,
    previous_response_id: null,
    prompt: null,
    reasoning: null,
    service_tier: "auto",
    status,
    text: null,
    top_logprobs: null,
    truncation: "disabled",
    usage: done && !answer.omitUsage ? usage : null,
    user: null,
    presence_penalty: 0.0,
    frequency_penalty: 0.0,
    kv_transfer_params: null,
    ec_transfer_params: null,
    input_messages: null,
    output_messages: null,
  };
}

const textPart = (text: string, logprobs: unknown[] | null) => ({
  annotations: [],
  text,
  type: "output_text",
  logprobs,
});

const messageItem = (id: string, text: string, status: string) => ({
  id,
  content: text === "" && status === "in_progress" ? [] : [textPart(text, null)],
  role: "assistant",
  status,
  type: "message",
  phase: null,
});

const reasoningItem = (id: string, text: string) => ({
  id,
  summary: [],
  type: "reasoning",
  content: text === "" ? [] : [{ text, type: "reasoning_text" }],
  encrypted_content: null,
  status: null,
});

const functionCallItem = (id: string, callId: string, name: string, args: string, status: string) => ({
  arguments: args,
  call_id: callId,
  name,
  type: "function_call",
  id,
  status,
});

const sortedFields = (data: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(data).sort(([a], [b]) => (a < b ? -1 : 1)));

/** A whole Responses answer. */
export function responsesAnswer(
  body: Record<string, unknown>,
  answer: AgentAnswer,
  created: number,
): Record<string, unknown> {
  const status = answer.truncated ? "incomplete" : "completed";
  const output = [
    ...(answer.reasoning ? [reasoningItem(`rs_${hex()}`, answer.reasoning.join(""))] : []),
    answer.toolCall
      ? functionCallItem(
          `fc_${hex()}`,
          `call_${hex()}`,
          answer.toolCall.name,
          answer.toolCall.arguments,
          "completed",
        )
      : messageItem(`msg_${hex()}`, answer.tokens.join(""), "completed"),
  ];
  return responseObject(`resp_${hex()}`, created, body, answer, status, output);
}

/** A Responses stream's events, in vLLM's order. */
export function responsesEvents(
  body: Record<string, unknown>,
  answer: AgentAnswer,
  created: number,
): AgentEvent[] {
  const id = `resp_${hex()}`;
  const events: AgentEvent[] = [];
  let sequence = 0;
  // vLLM sorts each event's own fields by name.
  const add = (type: string, data: Record<string, unknown>) =>
    events.push({ name: type, data: sortedFields({ ...data, sequence_number: sequence++, type }) });
  const inProgress = responseObject(id, created, body, answer, "in_progress", []);
  add("response.created", { response: inProgress });
  add("response.in_progress", { response: inProgress });
  const items: unknown[] = [];
  let at = 0;
  if (answer.reasoning) {
    const itemId = `rs_${hex()}`;
    const text = answer.reasoning.join("");
    add("response.output_item.added", { item: reasoningItem(itemId, ""), output_index: at });
    for (const piece of answer.reasoning)
      add("response.reasoning_text.delta", {
        content_index: 0,
        delta: piece,
        item_id: itemId,
        output_index: at,
      });
    add("response.reasoning_text.done", { content_index: 0, item_id: itemId, output_index: at, text });
    add("response.output_item.done", { item: reasoningItem(itemId, text), output_index: at });
    items.push(reasoningItem(itemId, text));
    at++;
  }
  let item: unknown;
  if (answer.toolCall) {
    const { name, arguments: args } = answer.toolCall;
    const itemId = `fc_${hex()}`;
    const callId = `call_${hex()}`;
    add("response.output_item.added", {
      item: functionCallItem(itemId, callId, name, "", "in_progress"),
      output_index: at,
    });
    for (const piece of answer.argumentPieces)
      add("response.function_call_arguments.delta", { delta: piece, item_id: itemId, output_index: at });
    add("response.function_call_arguments.done", {
      arguments: args,
      item_id: itemId,
      name,
      output_index: at,
    });
    item = functionCallItem(itemId, callId, name, args, "completed");
  } else {
    const itemId = `msg_${hex()}`;
    const text = answer.tokens.join("");
    add("response.output_item.added", { item: messageItem(itemId, "", "in_progress"), output_index: at });
    add("response.content_part.added", {
      content_index: 0,
      item_id: itemId,
      output_index: at,
      part: textPart("", []),
    });
    for (const token of answer.tokens)
      add("response.output_text.delta", {
        content_index: 0,
        delta: token,
        item_id: itemId,
        logprobs: [],
        output_index: at,
      });
    add("response.output_text.done", {
      content_index: 0,
      item_id: itemId,
      logprobs: [],
      output_index: at,
      text,
    });
    add("response.content_part.done", {
      content_index: 0,
      item_id: itemId,
      output_index: at,
      part: textPart(text, null),
    });
    item = messageItem(itemId, text, "completed");
  }
  add("response.output_item.done", { item, output_index: at });
  items.push(item);
  const status = answer.truncated ? "incomplete" : "completed";
  add("response.completed", { response: responseObject(id, created, body, answer, status, items) });
  return events;
}

/** Anthropic's stop_reason for the answer. */
const stopReason = (answer: AgentAnswer) =>
  answer.toolCall ? "tool_use" : answer.truncated ? "max_tokens" : "end_turn";

/** A whole Messages answer, in vLLM's field order. */
export function messagesAnswer(answer: AgentAnswer): Record<string, unknown> {
  const thinking = answer.reasoning
    ? [{ type: "thinking", thinking: answer.reasoning.join(""), signature: "demo-signature" }]
    : [];
  const content = answer.toolCall
    ? [
        ...thinking,
        {
          type: "tool_use",
          id: `toolu_${hex()}`,
          name: answer.toolCall.name,
          input: JSON.parse(answer.toolCall.arguments) as unknown,
        },
      ]
    : [...thinking, { type: "text", text: answer.tokens.join("") }];
  return {
    id: `chatcmpl-${hex()}`,
    type: "message",
    role: "assistant",
    content,
    model: answer.model,
    stop_reason: stopReason(answer),
    ...(!answer.omitUsage && {
      usage: { input_tokens: answer.promptTokens, output_tokens: answer.completionTokens },
    }),
  };
}

/** A Messages stream's events, in vLLM's order (no `[DONE]`: the stream ends after `message_stop`). */
export function messagesEvents(answer: AgentAnswer): AgentEvent[] {
  const events: AgentEvent[] = [];
  const add = (data: Record<string, unknown>) => events.push({ name: data.type as string, data });
  add({
    type: "message_start",
    message: {
      id: `chatcmpl-${hex()}`,
      type: "message",
      role: "assistant",
      content: [],
      model: answer.model,
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: answer.promptTokens, output_tokens: 0 },
    },
  });
  let at = 0;
  if (answer.reasoning) {
    add({
      type: "content_block_start",
      content_block: { type: "thinking", thinking: "", signature: "" },
      index: at,
    });
    for (const piece of answer.reasoning)
      add({ type: "content_block_delta", delta: { type: "thinking_delta", thinking: piece }, index: at });
    add({
      type: "content_block_delta",
      delta: { type: "signature_delta", signature: "demo-signature" },
      index: at,
    });
    add({ type: "content_block_stop", index: at });
    at++;
  }
  if (answer.toolCall) {
    add({
      type: "content_block_start",
      content_block: { type: "tool_use", id: `toolu_${hex()}`, name: answer.toolCall.name, input: {} },
      index: at,
    });
    for (const piece of answer.argumentPieces)
      add({
        type: "content_block_delta",
        delta: { type: "input_json_delta", partial_json: piece },
        index: at,
      });
  } else {
    add({ type: "content_block_start", content_block: { type: "text", text: "" }, index: at });
    for (const token of answer.tokens)
      add({ type: "content_block_delta", delta: { type: "text_delta", text: token }, index: at });
  }
  add({ type: "content_block_stop", index: at });
  // Without usage, an empty object: Anthropic's clients read `usage.output_tokens` from every message_delta.
  add({
    type: "message_delta",
    delta: { stop_reason: stopReason(answer), stop_sequence: null },
    usage: answer.omitUsage
      ? {}
      : { input_tokens: answer.promptTokens, output_tokens: answer.completionTokens },
  });
  add({ type: "message_stop" });
  return events;
}

/** The count_tokens answer, as vLLM's. */
export const countTokensAnswer = (promptTokens: number) => ({
  input_tokens: promptTokens,
  context_management: { original_input_tokens: promptTokens },
});

/** vLLM's Anthropic-shaped error body. */
export const anthropicError = (type: string, message: string) => ({
  type: "error",
  error: { type, message },
});
