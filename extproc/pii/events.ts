import type { EventStreamShape, TypedEvent } from "../openai/events.js";
import type { PiiSession } from "./index.js";
import { StreamRedactor } from "./stream.js";

/**
 * PII handling for a typed event stream (Responses, Messages): one {@link StreamRedactor} per stream of
 * text the API's shape names (each output's text, tool-input JSON, reasoning…), so a value split across
 * delta events is seen whole. A stream's held text goes out in an extra delta event of its own kind just
 * before the event that ends it (a `.done`, a `content_block_stop`), the rest by {@link flush} at the end.
 * Whole texts (`.done` texts, items, the final response) are redacted on their own.
 */
export class EventStreamPii {
  private readonly streams = new Map<
    string,
    { readonly redactor: StreamRedactor; carry: (text: string) => TypedEvent }
  >();

  constructor(
    private readonly session: PiiSession,
    private readonly holdBack: number,
    private readonly shape: EventStreamShape,
  ) {}

  /**
   * Rewrites a parsed event in place. Returns whether it changed, and the events carrying held-back text
   * that must be sent before it.
   */
  apply(event: TypedEvent): { changed: boolean; before: TypedEvent[] } {
    const before = this.release(this.shape.ends(event));
    let changed = (this.session.resolved.responses && this.shape.dropSpelledOutput?.(event)) || false;
    this.shape.mapTexts(event, (text, at) => {
      let out: string;
      if (at.kind === "whole") out = this.session.processResponse(text);
      else {
        let held = this.streams.get(at.stream);
        if (!held) this.streams.set(at.stream, (held = { redactor: this.redactor(), carry: at.carry }));
        held.carry = at.carry;
        out = held.redactor.push(text);
      }
      if (out !== text) changed = true;
      return out;
    });
    return { changed, before };
  }

  /** Everything still held, redacted, as delta events of its streams (end of stream). */
  flush(): TypedEvent[] {
    return this.release(() => true);
  }

  private release(ended: (stream: string) => boolean): TypedEvent[] {
    const out: TypedEvent[] = [];
    for (const [stream, held] of this.streams) {
      if (!ended(stream)) continue;
      const rest = held.redactor.flush();
      if (rest) out.push(held.carry(rest));
      this.streams.delete(stream);
    }
    return out;
  }

  private redactor(): StreamRedactor {
    return new StreamRedactor(this.session, this.holdBack);
  }
}
