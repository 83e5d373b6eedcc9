/*
 * The OpenAI Responses API (POST /v1/responses) as the gateway governs it: its output cap, its usage, the
 * texts a client reads in an answer and in each stream event, and the stateful features it refuses.
 */
import { GatewayError } from "../errors/index.js";
import {
  isCount,
  mapJsonStrings,
  type AnswerShape,
  type EventStreamShape,
  type TypedEvent,
} from "./events.js";
import type { InferenceRequest } from "./schemas.js";
import type { Usage } from "./usage.js";

type Json = Record<string, unknown>;

/**
 * The gateway keeps no responses, so the stateful features are refused with what to do instead, and every
 * forwarded request says `store: false` (the API's default is true: a model server would keep what the
 * gateway cannot govern, and answer its GET to any caller).
 */
export function refuseStatefulResponses(request: InferenceRequest): void {
  const refuse = (param: string, what: string) => {
    throw new GatewayError(
      "stateful_request",
      `${what} is not supported by this gateway, which keeps no responses: send the whole conversation as 'input' (earlier output items included) with 'store': false.`,
      param,
    );
  };
  if (request.previous_response_id != null) refuse("previous_response_id", "'previous_response_id'");
  if (request.conversation != null) refuse("conversation", "'conversation'");
  if (request.store === true) refuse("store", "'store': true");
  if (request.background === true) refuse("background", "'background': true");
  request.store = false;
}

/** Usage of a Responses answer (`input_tokens`, `output_tokens`) as the gateway counts it. */
export function responsesUsage(response: unknown): Usage | undefined {
  const usage = (response as { usage?: unknown } | null)?.usage;
  if (typeof usage !== "object" || usage === null) return undefined;
  const { input_tokens, output_tokens } = usage as Json;
  if (!isCount(input_tokens) || !isCount(output_tokens)) return undefined;
  return {
    prompt_tokens: input_tokens,
    completion_tokens: output_tokens,
    total_tokens: input_tokens + output_tokens,
  };
}

/**
 * Applies `map` to every text a client reads in one output item, in place: message content (`text`,
 * `refusal`), a function call's `name` and `arguments`, a custom tool call's `input`, a code interpreter
 * call's `code` and output `logs`, reasoning `summary` and `content` texts, and any tool output.
 */
function mapItem(item: unknown, map: (text: string) => string): void {
  if (!item || typeof item !== "object") return;
  const holder = item as Json;
  // `input`: a custom tool call's input text; `code`: a code interpreter call's.
  for (const name of ["name", "arguments", "output", "text", "input", "code"] as const)
    if (typeof holder[name] === "string") holder[name] = map(holder[name]);
  // A code interpreter call's outputs: its logs.
  if (Array.isArray(holder.outputs))
    for (const out of holder.outputs as Array<Json | null>)
      if (out && typeof out.logs === "string") out.logs = map(out.logs);
  for (const list of ["content", "summary"] as const) {
    const parts = holder[list];
    if (!Array.isArray(parts)) continue;
    for (const part of parts as Array<Json | null>) mapPart(part, map);
  }
  if (holder.action && typeof holder.action === "object") holder.action = mapJsonStrings(holder.action, map);
}

function mapPart(part: Json | null, map: (text: string) => string): void {
  if (!part || typeof part !== "object") return;
  for (const name of ["text", "refusal"] as const)
    if (typeof part[name] === "string") part[name] = map(part[name]);
}

function mapResponse(response: unknown, map: (text: string) => string): void {
  const output = (response as { output?: unknown } | null)?.output;
  if (Array.isArray(output)) for (const item of output) mapItem(item, map);
  const text = (response as { output_text?: unknown } | null)?.output_text;
  if (typeof text === "string") (response as Json).output_text = map(text);
}

/** Concatenated output text of a whole answer (for the audit's completion when prompts are logged). */
function responseText(response: unknown): string {
  let out = "";
  mapResponse(structuredClone(response), (text) => ((out += text), text));
  return out;
}

/**
 * Empties a `logprobs` list (output text parts and their events carry one, `include:
 * ["message.output_text.logprobs"]`): its tokens spell the text. True if it held any entry.
 */
function dropLogprobs(holder: unknown): boolean {
  if (!holder || typeof holder !== "object") return false;
  const list = (holder as Json).logprobs;
  if (!Array.isArray(list) || list.length === 0) return false;
  (holder as Json).logprobs = [];
  return true;
}

function dropItemLogprobs(item: unknown): boolean {
  const content = (item as { content?: unknown } | null)?.content;
  return Array.isArray(content) && content.map(dropLogprobs).includes(true);
}

function dropResponseLogprobs(response: unknown): boolean {
  const output = (response as { output?: unknown } | null)?.output;
  return Array.isArray(output) && output.map(dropItemLogprobs).includes(true);
}

/** A whole Responses answer. */
export const responsesAnswer: AnswerShape = {
  usageOf: responsesUsage,
  generatedText: responseText,
  mapTexts: mapResponse,
  dropSpelledOutput: dropResponseLogprobs,
};

/** The text streams of a response: `response.<stream>.delta` events carry fragments, `.done` the whole. */
const TEXT_STREAMS =
  "output_text|refusal|function_call_arguments|reasoning_text|reasoning_summary_text|custom_tool_call_input|mcp_call_arguments|code_interpreter_call_code";
const DELTA_EVENT = new RegExp(`^response\\.(${TEXT_STREAMS})\\.delta$`);
const DONE_EVENT = new RegExp(`^response\\.(${TEXT_STREAMS})\\.done$`);
/** Events whose `response` carries the whole response so far; the final ones carry usage. */
const FINAL_EVENTS = new Set(["response.completed", "response.incomplete", "response.failed"]);

/** One text stream of an output: its item, its part (content or summary index) and its kind. */
function streamOf(data: Json, kind: string): string {
  const part = data.content_index ?? data.summary_index ?? "";
  return `${String(data.output_index)}/${String(part)}/${kind}`;
}

/** A Responses stream: text deltas and their `.done` events, items, parts, and the response events. */
export const responsesEvents: EventStreamShape = {
  mapTexts({ name, data }, map) {
    const type = typeof data.type === "string" ? data.type : (name ?? "");
    const delta = DELTA_EVENT.exec(type);
    if (delta && typeof data.delta === "string") {
      const template = { ...data };
      data.delta = map(data.delta, {
        kind: "delta",
        stream: streamOf(data, delta[1]!),
        carry: (text): TypedEvent => ({ name, data: { ...template, delta: text } }),
      });
      return;
    }
    const whole = (text: string) => map(text, { kind: "whole" });
    for (const field of ["text", "arguments", "refusal", "input", "code"] as const)
      if (typeof data[field] === "string") data[field] = whole(data[field]);
    if (data.part && typeof data.part === "object") mapPart(data.part as Json, whole);
    if (data.item) mapItem(data.item, whole);
    if (data.response) mapResponse(data.response, whole);
  },
  ends({ name, data }) {
    const type = typeof data.type === "string" ? data.type : (name ?? "");
    const done = DONE_EVENT.exec(type);
    if (done) {
      const stream = streamOf(data, done[1]!);
      return (s) => s === stream;
    }
    // An item ends every stream in it; the response's end, all of them.
    if (type === "response.output_item.done") {
      const prefix = `${String(data.output_index)}/`;
      return (s) => s.startsWith(prefix);
    }
    if (FINAL_EVENTS.has(type)) return () => true;
    return () => false;
  },
  usageReader() {
    return ({ name, data }) => {
      const type = typeof data.type === "string" ? data.type : name;
      return type !== undefined && FINAL_EVENTS.has(type) ? responsesUsage(data.response) : undefined;
    };
  },
  generatedText({ name, data }) {
    const type = typeof data.type === "string" ? data.type : (name ?? "");
    return DELTA_EVENT.test(type) && typeof data.delta === "string" ? data.delta : "";
  },
  dropSpelledOutput({ data }) {
    // Text deltas and `.done` events, parts, items and the response so far: each may carry logprobs.
    return [
      dropLogprobs(data),
      dropLogprobs(data.part),
      dropItemLogprobs(data.item),
      dropResponseLogprobs(data.response),
    ].includes(true);
  },
};
