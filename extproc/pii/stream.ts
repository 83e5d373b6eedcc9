import {
  appendText,
  choiceIndex,
  choicesOf,
  dropSpelledOutput,
  fieldKey,
  isIdentifier,
  mapResponseTexts,
  type OutputField,
} from "../openai/response-fields.js";
import type { PiiSession } from "./index.js";

/** Longest a value may be held back while it looks unfinished (a PEM key, a long token): bounded delay. */
const MAX_HOLD_CHARS = 16_384;

/**
 * A placeholder (`<EMAIL_1>`, `<PHONE_3f9a…>`) must not be cut in two: this finds one opened right before
 * the cut, down to a bare `<`.
 */
const OPEN_PLACEHOLDER = /<[A-Za-z0-9_]{0,48}$/;
const PEM_BEGIN = /-----BEGIN [A-Z ]{0,30}PRIVATE KEY-----/g;
const PEM_END = "PRIVATE KEY-----";

/**
 * Redacts streamed model output as it flows. Text is scanned with everything not yet sent; the last
 * `holdBack` characters, and any value that reaches into them, are held until the next chunk completes
 * them (or the stream ends), so a value split across chunks is still caught. Emits redacted, restored text.
 */
export class StreamRedactor {
  private pending = "";

  constructor(
    private readonly session: PiiSession,
    private readonly holdBack: number,
  ) {}

  /** Adds streamed text; returns what can be sent now. */
  push(text: string): string {
    const buffer = this.pending + text;
    const findings = this.session.scanResponse(buffer);
    let cut = Math.max(0, buffer.length - this.holdBack);
    for (const f of findings) if (f.start < cut && f.end > cut) cut = f.start;
    const beforeCut = buffer.slice(Math.max(0, cut - 48), cut);
    const placeholder = OPEN_PLACEHOLDER.exec(beforeCut);
    if (placeholder) cut -= beforeCut.length - placeholder.index;
    const pem = openPem(buffer);
    if (pem !== -1 && pem < cut) cut = pem;
    if (buffer.length - cut > MAX_HOLD_CHARS) cut = buffer.length - MAX_HOLD_CHARS;
    this.pending = buffer.slice(cut);
    return this.emit(
      buffer.slice(0, cut),
      findings.filter((f) => f.end <= cut),
    );
  }

  /** Everything still held, redacted: call at the end of the choice or stream. */
  flush(): string {
    const rest = this.pending;
    this.pending = "";
    return rest ? this.emit(rest, this.session.scanResponse(rest)) : "";
  }

  private emit(text: string, findings: Parameters<PiiSession["apply"]>[1]): string {
    const redacted = this.session.apply(text, findings, "response");
    return this.session.resolved.restore ? this.session.restore(redacted) : redacted;
  }
}

/** Start of the last PEM private key block that has no END line after it, or -1 (one linear pass). */
function openPem(text: string): number {
  let last = -1;
  PEM_BEGIN.lastIndex = 0;
  for (let m = PEM_BEGIN.exec(text); m !== null; m = PEM_BEGIN.exec(text)) last = m.index;
  if (last === -1) return -1;
  const end = text.indexOf("-----END ", last);
  return end !== -1 && text.indexOf(PEM_END, end) !== -1 ? -1 : last;
}

/** One stream of text of one choice, with its redactor. */
interface HeldStream {
  readonly choice: number;
  readonly field: OutputField;
  readonly redactor: StreamRedactor;
}

/**
 * PII handling for a whole SSE stream: one {@link StreamRedactor} per stream of text, that is per choice and
 * output field (content, reasoning, each tool call's arguments…), so a value split across fragments is seen
 * whole. A choice's held text is released into the event that carries its finish_reason, the rest by
 * {@link flushEvent} at the end of the stream. Identifiers (tool call ids, function names) are not held:
 * each reaches the client in one piece, its first. With output scanning on, token-spelling fields
 * (logprobs, token ids) are dropped: they would spell what was redacted.
 */
export class StreamingPii {
  private readonly streams = new Map<string, HeldStream>();
  /** Identifiers (by choice and field) whose one piece has been sent. */
  private readonly identifiersSent = new Set<string>();

  constructor(
    private readonly session: PiiSession,
    private readonly holdBack: number,
  ) {}

  /** Rewrites a parsed stream event in place; true if anything in it changed. */
  apply(event: unknown): boolean {
    let changed = this.session.resolved.responses && dropSpelledOutput(event);
    mapResponseTexts(event, (text, choice, field) => {
      const key = `${choice}\u0000${fieldKey(field)}`;
      const out = isIdentifier(field)
        ? this.identifier(key, text)
        : this.stream(key, choice, field).push(text);
      if (out !== text) changed = true;
      return out;
    });
    for (const [choice, position] of choicesOf(event)) {
      if (choice.finish_reason == null) continue;
      const index = choiceIndex(choice, position);
      for (const [key, held] of this.streams) {
        if (held.choice !== index) continue;
        const rest = held.redactor.flush();
        if (rest) {
          appendText(choice, held.field, rest);
          changed = true;
        }
        this.streams.delete(key);
      }
    }
    return changed;
  }

  /**
   * Everything still held, redacted, as one extra event shaped like the stream's `template` event (id,
   * object, created, model), each text in its own field and tool call; undefined if nothing is held.
   */
  flushEvent(template: unknown): Record<string, unknown> | undefined {
    const base = (template ?? {}) as Record<string, unknown>;
    const chat = base.object === "chat.completion.chunk";
    const choices = new Map<number, Record<string, unknown>>();
    for (const { choice, field, redactor } of this.streams.values()) {
      const rest = redactor.flush();
      if (!rest) continue;
      let out = choices.get(choice);
      if (!out) {
        out = chat
          ? { index: choice, delta: {}, finish_reason: null }
          : { index: choice, text: "", finish_reason: null };
        choices.set(choice, out);
      }
      appendText(out, field, rest);
    }
    this.streams.clear();
    if (choices.size === 0) return undefined;
    const { id, object, created, model } = base;
    return { id, object, created, model, choices: [...choices.values()] };
  }

  /**
   * An identifier's first non-empty piece, scanned whole; later pieces are dropped. Clients replace (the
   * OpenAI SDK) or append (others) a name sent in pieces, and appending could assemble a value no piece
   * shows; servers send names whole, in a call's first delta, where clients need them.
   */
  private identifier(key: string, text: string): string {
    if (text === "") return text;
    if (this.identifiersSent.has(key)) return "";
    this.identifiersSent.add(key);
    return this.session.processResponse(text);
  }

  private stream(key: string, choice: number, field: OutputField): StreamRedactor {
    let held = this.streams.get(key);
    if (!held) {
      held = { choice, field, redactor: new StreamRedactor(this.session, this.holdBack) };
      this.streams.set(key, held);
    }
    return held.redactor;
  }
}
