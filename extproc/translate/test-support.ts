/**
 * Test support (imported by tests only): the vLLM recordings in testdata/, chat streams in vLLM's chunk
 * shape, running a converter over them, parsing the translated SSE bytes, and a `fetch` that answers an
 * official SDK with given bytes (no network: the SDKs parse exactly what a server would have sent).
 */
import { readFileSync } from "node:fs";
import type { StreamConverter } from "./stream.js";

/** A recorded HTTP answer: its status and body. */
export function recording(name: string): { status: number; body: string } {
  const raw = readFileSync(
    new URL(`../../../extproc/translate/testdata/${name}.txt`, import.meta.url),
    "utf8",
  );
  const split = raw.indexOf("\r\n\r\n") === -1 ? raw.indexOf("\n\n") : raw.indexOf("\r\n\r\n");
  const head = raw.slice(0, split);
  return {
    status: Number(/^HTTP\/[\d.]+ (\d{3})/.exec(head)?.[1]),
    body: raw.slice(split).replace(/^(\r?\n){2}/, ""),
  };
}

/** The parsed `data:` payloads of a chat SSE body, without the final [DONE]. */
export function chatEvents(body: string): unknown[] {
  return body
    .split(/\r?\n/)
    .filter((line) => line.startsWith("data: ") && line !== "data: [DONE]")
    .map((line) => JSON.parse(line.slice(6)) as unknown);
}

/** Runs a converter over chat events and [DONE]; the concatenated bytes. */
export function convert(converter: StreamConverter, events: readonly unknown[]): Buffer {
  return Buffer.concat([...events.map((event) => converter.event(event)), converter.done()]);
}

/** One event of a translated stream. */
export interface ParsedEvent {
  readonly event: string;
  readonly data: Record<string, unknown>;
}

/** Parses `event:`/`data:` SSE text (each event's data one JSON line, as both APIs send). */
export function parseSse(text: string): ParsedEvent[] {
  return text
    .split("\n\n")
    .filter((chunk) => chunk.trim() !== "")
    .map((chunk) => {
      const lines = chunk.split("\n");
      const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "";
      const data = lines.find((l) => l.startsWith("data: "))?.slice(6) ?? "{}";
      return { event, data: JSON.parse(data) as Record<string, unknown> };
    });
}

/** A `fetch` that answers every request with `body` (JSON, or SSE when `stream`). */
export function answering(body: string | Buffer, status = 200, stream = false): typeof fetch {
  return async () =>
    new Response(new Uint8Array(Buffer.from(body)), {
      status,
      headers: { "content-type": stream ? "text/event-stream" : "application/json" },
    });
}

/** A chat answer's output, as a chat stream would be generated from it. */
export interface ChatScript {
  readonly id?: string;
  readonly reasoning?: readonly string[];
  readonly text?: readonly string[];
  readonly tools?: ReadonlyArray<{
    readonly id: string;
    readonly name: string;
    readonly fragments: readonly string[];
  }>;
  readonly finish?: string;
  readonly usage?: { readonly prompt_tokens: number; readonly completion_tokens: number };
  /** Where vLLM's reasoning parser puts reasoning: `reasoning` (current) or `reasoning_content`. */
  readonly reasoningField?: "reasoning" | "reasoning_content";
}

const CREATED = 1796150741;

/** The chunks vLLM streams for a script: role chunk, reasoning, text, tool calls (name first), finish, usage. */
export function chatStream(script: ChatScript): Array<Record<string, unknown>> {
  const id = script.id ?? "chatcmpl-95875924b265435d";
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
    id,
    object: "chat.completion.chunk",
    created: CREATED,
    model: "tiny-llama",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
  });
  const chunks = [chunk({ role: "assistant", content: "" })];
  for (const part of script.reasoning ?? [])
    chunks.push(chunk({ [script.reasoningField ?? "reasoning"]: part }));
  for (const part of script.text ?? []) chunks.push(chunk({ content: part }));
  (script.tools ?? []).forEach((tool, index) => {
    chunks.push(
      chunk({
        tool_calls: [{ id: tool.id, type: "function", index, function: { name: tool.name, arguments: "" } }],
      }),
    );
    for (const part of tool.fragments)
      chunks.push(chunk({ tool_calls: [{ index, function: { arguments: part } }] }));
  });
  chunks.push(chunk({}, script.finish ?? (script.tools?.length ? "tool_calls" : "stop")));
  if (script.usage)
    chunks.push({
      id,
      object: "chat.completion.chunk",
      created: CREATED,
      model: "tiny-llama",
      choices: [],
      usage: { ...script.usage, total_tokens: script.usage.prompt_tokens + script.usage.completion_tokens },
    } as never);
  return chunks;
}

/** The whole chat answer for the same script (what the server answers without `stream`). */
export function chatAnswer(script: ChatScript): Record<string, unknown> {
  const tools = script.tools ?? [];
  const message: Record<string, unknown> = {
    role: "assistant",
    content: script.text?.length ? script.text.join("") : null,
    tool_calls: tools.map((tool) => ({
      id: tool.id,
      type: "function",
      function: { name: tool.name, arguments: tool.fragments.join("") },
    })),
  };
  if (script.reasoning?.length) message[script.reasoningField ?? "reasoning"] = script.reasoning.join("");
  const usage = script.usage ?? { prompt_tokens: 0, completion_tokens: 0 };
  return {
    id: script.id ?? "chatcmpl-95875924b265435d",
    object: "chat.completion",
    created: CREATED,
    model: "tiny-llama",
    choices: [
      {
        index: 0,
        message,
        logprobs: null,
        finish_reason: script.finish ?? (tools.length ? "tool_calls" : "stop"),
      },
    ],
    usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens },
  };
}
