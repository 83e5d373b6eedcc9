/*
 * The fields of an OpenAI chat or completion answer that a client reads, declared once. Whole answers and
 * stream events are visited through the same list, so a field added here is covered on both paths.
 */

type Json = Record<string, unknown>;

/** Free-text fields of a chat `message` or stream `delta` (vLLM names its reasoning either way). */
const MESSAGE_TEXT_FIELDS = ["content", "reasoning_content", "reasoning", "refusal"] as const;

/** Text fields of a function call (a tool call's `function`, or the legacy `function_call`). */
const FUNCTION_TEXT_FIELDS = ["name", "arguments"] as const;

/**
 * Fields that spell generated or prompt text token by token (`logprobs` tokens and bytes, token ids): a
 * value redacted in the text would still be readable there.
 */
const CHOICE_SPELLING_FIELDS = ["logprobs", "token_ids"] as const;
const BODY_SPELLING_FIELDS = ["prompt_logprobs", "prompt_token_ids", "prompt_text"] as const;

/** One stream of text within a choice: where it lives in a whole answer and in stream deltas. */
export type OutputField =
  | { readonly kind: "text" }
  | { readonly kind: "stop_reason" }
  | { readonly kind: "message"; readonly name: (typeof MESSAGE_TEXT_FIELDS)[number] }
  | { readonly kind: "tool_call"; readonly call: number; readonly name: "id" | FunctionTextField }
  | { readonly kind: "function_call"; readonly name: FunctionTextField };

type FunctionTextField = (typeof FUNCTION_TEXT_FIELDS)[number];

/** Visits the text of one output field; returning the same string leaves it untouched. */
export type OutputMapper = (text: string, choice: number, field: OutputField) => string;

/** Names the field uniquely within its choice (`content`, `tool_calls.1.arguments`, `function_call.name`). */
export function fieldKey(field: OutputField): string {
  switch (field.kind) {
    case "text":
    case "stop_reason":
      return field.kind;
    case "message":
      return field.name;
    case "tool_call":
      return `tool_calls.${field.call}.${field.name}`;
    case "function_call":
      return `function_call.${field.name}`;
  }
}

/**
 * Identifiers (a tool call's `id`, a function `name`, vLLM's `stop_reason`) are replaced, not appended, by
 * clients such as the OpenAI SDK when they arrive in several deltas: they must reach the client in one piece.
 */
export function isIdentifier(field: OutputField): boolean {
  if (field.kind === "stop_reason") return true;
  return (field.kind === "tool_call" || field.kind === "function_call") && field.name !== "arguments";
}

/** A choice's `index`, or its position in `choices` when it has none. */
export function choiceIndex(choice: Json, position: number): number {
  return typeof choice.index === "number" ? choice.index : position;
}

/** The choices of a response or stream event that are objects, with their positions. */
export function choicesOf(body: unknown): Array<[Json, number]> {
  const choices = (body as { choices?: unknown } | null)?.choices;
  if (!Array.isArray(choices)) return [];
  const out: Array<[Json, number]> = [];
  choices.forEach((choice: unknown, position) => {
    if (choice && typeof choice === "object") out.push([choice as Json, position]);
  });
  return out;
}

/** Applies `map` to a function call's `name` and `arguments`, in place. */
function mapFunction(fn: unknown, map: (text: string, name: FunctionTextField) => string): void {
  if (!fn || typeof fn !== "object") return;
  const holder = fn as Json;
  for (const name of FUNCTION_TEXT_FIELDS) {
    if (typeof holder[name] === "string") holder[name] = map(holder[name], name);
  }
}

/** Applies `map` to every text field of a chat `message` or `delta`, in place. */
function mapMessage(holder: Json, choice: number, map: OutputMapper): void {
  for (const name of MESSAGE_TEXT_FIELDS) {
    const value = holder[name];
    const field = { kind: "message", name } as const;
    if (typeof value === "string") holder[name] = map(value, choice, field);
    else if (Array.isArray(value)) {
      for (const part of value as Array<Json | null>)
        if (part && typeof part.text === "string") part.text = map(part.text, choice, field);
    }
  }
  if (Array.isArray(holder.tool_calls)) {
    (holder.tool_calls as unknown[]).forEach((entry, position) => {
      if (!entry || typeof entry !== "object") return;
      const tool = entry as Json;
      // Streamed tool calls name their index; a whole message's are in order.
      const call = typeof tool.index === "number" ? tool.index : position;
      if (typeof tool.id === "string")
        tool.id = map(tool.id, choice, { kind: "tool_call", call, name: "id" });
      mapFunction(tool.function, (text, name) => map(text, choice, { kind: "tool_call", call, name }));
    });
  }
  mapFunction(holder.function_call, (text, name) => map(text, choice, { kind: "function_call", name }));
}

/**
 * Visits every text a client reads in a chat or completion answer or stream event, in place:
 * `choices[].text`, vLLM's `choices[].stop_reason` (the stop string that matched); and in `choices[].message` / `choices[].delta`: content (string or text parts),
 * `reasoning_content`, `reasoning`, `refusal`, tool calls' `id`, `function.name` and `function.arguments`,
 * and the legacy `function_call`'s `name` and `arguments`.
 */
export function mapResponseTexts(body: unknown, map: OutputMapper): void {
  for (const [choice, position] of choicesOf(body)) {
    const index = choiceIndex(choice, position);
    if (typeof choice.text === "string") choice.text = map(choice.text, index, { kind: "text" });
    if (typeof choice.stop_reason === "string")
      choice.stop_reason = map(choice.stop_reason, index, { kind: "stop_reason" });
    for (const holder of [choice.message, choice.delta]) {
      if (holder && typeof holder === "object") mapMessage(holder as Json, index, map);
    }
  }
}

/** Appends `text` to `holder[name]` (a string, or text parts), creating it if absent. */
function appendTo(holder: Json, name: string, text: string): void {
  const value = holder[name];
  if (Array.isArray(value)) value.push({ type: "text", text });
  else holder[name] = (typeof value === "string" ? value : "") + text;
}

/**
 * Appends held-back `text` to `field` of a stream event's choice, creating the delta, tool call entry (by
 * `index`) or function call it needs, where the client expects it. Identifiers are never held back.
 */
export function appendText(choice: Json, field: OutputField, text: string): void {
  if (field.kind === "text" || field.kind === "stop_reason") return appendTo(choice, field.kind, text);
  const holder = (choice.delta ?? choice.message ?? (choice.delta = {})) as Json;
  if (field.kind === "message") return appendTo(holder, field.name, text);
  if (field.kind === "function_call") {
    return appendTo((holder.function_call ??= {}) as Json, field.name, text);
  }
  const calls = (holder.tool_calls ??= []) as Json[];
  let tool = calls.find((c) => c.index === field.call);
  if (!tool) calls.push((tool = { index: field.call }));
  appendTo((tool.function ??= {}) as Json, field.name, text);
}

/** Sets every non-null token-spelling field of a body or event to null; true if any was. */
export function dropSpelledOutput(body: unknown): boolean {
  if (!body || typeof body !== "object") return false;
  let dropped = false;
  const clear = (holder: Json, names: readonly string[]) => {
    for (const name of names) {
      if (holder[name] != null) {
        holder[name] = null;
        dropped = true;
      }
    }
  };
  clear(body as Json, BODY_SPELLING_FIELDS);
  for (const [choice] of choicesOf(body)) clear(choice, CHOICE_SPELLING_FIELDS);
  return dropped;
}
