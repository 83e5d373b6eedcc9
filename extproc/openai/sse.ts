/** One complete server-sent event: its bytes as received (terminator included) and its joined `data:` lines. */
export interface SseEvent {
  readonly raw: Buffer;
  readonly data: string;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits a text/event-stream body into complete events as chunks arrive. Bytes of an event that has not
 * ended yet are held back until a later chunk completes it (or {@link flush} at end of stream), so callers
 * only ever see whole events: a usage chunk or a value split across network chunks is still seen whole.
 */
export class SseSplitter {
  private pending: Buffer = Buffer.alloc(0);

  /** Adds a chunk and returns the events it completed. */
  push(chunk: Buffer): SseEvent[] {
    const buffer = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const events: SseEvent[] = [];
    let start = 0;
    let lineStart = 0;
    for (let i = 0; i < buffer.length; i++) {
      const byte = buffer[i];
      if (byte !== LF && byte !== CR) continue;
      // A CR LF pair is one line terminator.
      const end = byte === CR && buffer[i + 1] === LF ? i + 1 : i;
      if (byte === CR && end === i && i + 1 === buffer.length) break; // CR at chunk end: LF may follow
      if (i === lineStart) {
        // Blank line: the event that began at `start` is complete.
        const raw = buffer.subarray(start, end + 1);
        events.push({ raw, data: dataOf(raw) });
        start = end + 1;
      }
      i = end;
      lineStart = end + 1;
    }
    this.pending = Buffer.from(buffer.subarray(start));
    return events;
  }

  /** Returns (and forgets) whatever bytes are held back: an unterminated last event. */
  flush(): Buffer {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest;
  }

  /** Bytes currently held back. */
  get heldBytes(): number {
    return this.pending.length;
  }
}

/** Joins the `data:` field lines of one raw event (SSE spec: one optional space after the colon). */
function dataOf(raw: Buffer): string {
  const lines = raw.toString("utf8").split(/\r\n|\r|\n/);
  const data: string[] = [];
  for (const line of lines) {
    if (line.startsWith("data:")) data.push(line.charCodeAt(5) === 0x20 ? line.slice(6) : line.slice(5));
  }
  return data.join("\n");
}
