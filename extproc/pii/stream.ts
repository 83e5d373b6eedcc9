import { mapResponseTexts } from "../openai/prompt.js";
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

/**
 * PII handling for a whole SSE stream: one {@link StreamRedactor} per choice for generated text (content or
 * text); tool call argument fragments are processed one by one. A choice's held text is released into the
 * event that carries its finish_reason, or by {@link flush} at the end of the stream.
 */
export class StreamingPii {
  private readonly redactors = new Map<number, StreamRedactor>();

  constructor(
    private readonly session: PiiSession,
    private readonly holdBack: number,
  ) {}

  /** Rewrites a parsed stream event in place; true if anything in it changed. */
  apply(event: unknown): boolean {
    let changed = false;
    mapResponseTexts(event, (text, choice, field) => {
      const out = field === "tool" ? this.session.processResponse(text) : this.redactor(choice).push(text);
      if (out !== text) changed = true;
      return out;
    });
    const choices = (event as { choices?: unknown } | null)?.choices;
    if (!Array.isArray(choices)) return changed;
    for (const choice of choices as Array<Record<string, unknown> | null>) {
      if (!choice || choice.finish_reason == null) continue;
      const index = typeof choice.index === "number" ? choice.index : 0;
      const rest = this.redactors.get(index)?.flush();
      if (!rest) continue;
      const holder = (choice.delta ?? choice) as Record<string, unknown>;
      const field = "delta" in choice ? "content" : "text";
      holder[field] = (typeof holder[field] === "string" ? holder[field] : "") + rest;
      changed = true;
    }
    return changed;
  }

  /** Text still held per choice index (non-empty only). */
  flush(): Map<number, string> {
    const out = new Map<number, string>();
    for (const [index, redactor] of this.redactors) {
      const rest = redactor.flush();
      if (rest) out.set(index, rest);
    }
    return out;
  }

  private redactor(choice: number): StreamRedactor {
    let redactor = this.redactors.get(choice);
    if (!redactor) this.redactors.set(choice, (redactor = new StreamRedactor(this.session, this.holdBack)));
    return redactor;
  }
}
