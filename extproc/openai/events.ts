/*
 * Typed server-sent event streams (the Responses API's `event: response.output_text.delta`, Anthropic's
 * `event: content_block_delta`): how each API's events carry text and usage, declared once per API, so the
 * processor and the streaming PII redactor handle every such API with one mechanism.
 */
import type { Usage } from "./usage.js";

/** A parsed event of a typed stream: its `event:` name and its JSON `data:`. */
export interface TypedEvent {
  readonly name: string | undefined;
  readonly data: Record<string, unknown>;
}

/** Where a text a client reads sits in an event. */
export type EventText =
  /** Complete in this event (a `.done` text, a whole item): redacted on its own. */
  | { readonly kind: "whole" }
  /**
   * One fragment of a stream of text (a text or tool-input JSON delta), named by `stream`. `carry` makes
   * an event of this stream's kind that carries `text` instead: held-back text is sent in one.
   */
  | { readonly kind: "delta"; readonly stream: string; readonly carry: (text: string) => TypedEvent };

/** Visits one client-read text of an event; returning the same string leaves it untouched. */
export type EventTextMapper = (text: string, at: EventText) => string;

/** How one API's stream events carry what the gateway reads and rewrites. */
export interface EventStreamShape {
  /** Visits every text a client reads in `event`, in place. */
  mapTexts(event: TypedEvent, map: EventTextMapper): void;
  /** The text streams `event` ends (held-back text must reach the client before it), by name. */
  ends(event: TypedEvent): (stream: string) => boolean;
  /** A reader of one stream's usage: fed each event, it answers the usage once the stream has reported it. */
  usageReader(): (event: TypedEvent) => Usage | undefined;
  /** The generated text `event` adds (what is counted when the server reports no usage). */
  generatedText(event: TypedEvent): string;
  /**
   * Empties the fields of `event` that spell generated text token by token (logprobs), in place; true if
   * any held something. With output scanning on they would spell what was redacted.
   */
  dropSpelledOutput?(event: TypedEvent): boolean;
}

/** How one API's whole (non-streamed) JSON answer carries its texts and usage. */
export interface AnswerShape {
  usageOf(answer: unknown): Usage | undefined;
  generatedText(answer: unknown): string;
  /** Visits every text a client reads in the answer, in place. */
  mapTexts(answer: unknown, map: (text: string) => string): void;
  /** As {@link EventStreamShape.dropSpelledOutput}, for a whole answer. */
  dropSpelledOutput?(answer: unknown): boolean;
}

/** The SSE bytes of `event`: its `event:` line (if it has a name) and its data on one line. */
export function serializeEvent(event: TypedEvent): Buffer {
  const name = event.name === undefined ? "" : `event: ${event.name}\n`;
  return Buffer.from(`${name}data: ${JSON.stringify(event.data)}\n\n`, "utf8");
}

/** The `event:` field of one raw SSE event, if it has one. */
export function eventName(raw: Buffer): string | undefined {
  // The field comes first in every server's framing; a linear look at the event's lines all the same.
  for (const line of raw.toString("utf8").split(/\r\n|\r|\n/)) {
    if (line.startsWith("event:")) return line.charCodeAt(6) === 0x20 ? line.slice(7) : line.slice(6);
  }
  return undefined;
}

/** A token count as a quota may be charged it. */
export const isCount = (n: unknown): n is number => Number.isSafeInteger(n) && (n as number) >= 0;

/**
 * Applies `map` to every string and property name in a JSON value (a tool call's input object, which the
 * client reads whole, as it would read the same call's arguments text); returns the value, changed in place
 * where it can be (an object whose property names change is rebuilt).
 */
export function mapJsonStrings(value: unknown, map: (text: string) => string): unknown {
  if (typeof value === "string") return map(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = mapJsonStrings(value[i], map);
    return value;
  }
  if (!value || typeof value !== "object") return value;
  const object = value as Record<string, unknown>;
  const names = Object.keys(object);
  const entries = names.map((key) => [map(key), mapJsonStrings(object[key], map)] as const);
  if (entries.every(([key], i) => key === names[i])) {
    for (const [key, v] of entries) object[key] = v;
    return object;
  }
  // Two names that become equal once redacted keep the later value: nothing unredacted is kept.
  const renamed: Record<string, unknown> = {};
  for (const [key, v] of entries)
    Object.defineProperty(renamed, key, { value: v, writable: true, enumerable: true, configurable: true });
  return renamed;
}
