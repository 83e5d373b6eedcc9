/*
 * The gateway asks every stream for its usage chunk (`stream_options.include_usage`), so quotas are settled
 * on real counts. A client that did not ask must get the stream the model server would have sent it
 * without that option, byte for byte. Against vLLM (see the recordings) that option changes three things:
 *
 * - a final usage-only chunk (`"choices":[]`) is added;
 * - `system_fingerprint` moves from each choice's finishing chunk to that usage chunk;
 * - some servers (OpenAI) add `"usage":null` to every other chunk.
 *
 * {@link UsageChunkRemover} undoes all three.
 */

/**
 * `"usage":null` as a field of the event's object. The pattern cannot match inside a JSON string, where
 * the quotes would be escaped.
 */
const NULL_USAGE_FIELD = /,\s*"usage"\s*:\s*null(?=\s*[,}])|"usage"\s*:\s*null\s*,/;
const NULL_USAGE_PROBE = Buffer.from('"usage"');
/** A choice whose `finish_reason` is set (a string; `null` while it runs). Same argument about strings. */
const FINISHED = /"finish_reason"\s*:\s*"/;
const FINGERPRINT = /"system_fingerprint"\s*:/;
const CLOSING_BRACE = 0x7d;

/** The raw SSE event without a `"usage":null` field (the same buffer when it has none). */
export function withoutNullUsage(raw: Buffer): Buffer {
  if (raw.indexOf(NULL_USAGE_PROBE) === -1) return raw;
  const text = raw.toString("utf8");
  const stripped = text.replace(NULL_USAGE_FIELD, "");
  return stripped === text ? raw : Buffer.from(stripped, "utf8");
}

/**
 * Removes the usage chunk the gateway asked for from a stream the client wanted without it. Events from the
 * first finishing chunk on are held until the usage chunk arrives (for one choice: the finishing chunk
 * alone, which the usage chunk follows at once), so its `system_fingerprint` can be put back on the
 * finishing chunks, as the server would have sent them.
 */
export class UsageChunkRemover {
  /** Events held since the first finishing chunk, and whether each one is a finishing chunk. */
  private held: Array<{ raw: Buffer; finishing: boolean }> | undefined;

  /** An event to pass on: returns the events to send now (none while holding). */
  keep(event: Buffer): Buffer[] {
    const raw = withoutNullUsage(event);
    // latin1 maps bytes one to one: an ASCII pattern matches exactly where it is in the UTF-8 bytes.
    const finishing = FINISHED.test(raw.toString("latin1"));
    if (!this.held && !finishing) return [raw];
    (this.held ??= []).push({ raw, finishing });
    return [];
  }

  /** The (parsed) usage chunk, dropped: returns the held events, with its fingerprint on the finishing ones. */
  usageChunk(chunk: unknown): Buffer[] {
    const fingerprint = (chunk as { system_fingerprint?: unknown }).system_fingerprint;
    const held = this.held ?? [];
    this.held = undefined;
    if (typeof fingerprint !== "string") return held.map((e) => e.raw);
    const field = Buffer.from(`,"system_fingerprint":${JSON.stringify(fingerprint)}`, "utf8");
    return held.map(({ raw, finishing }) =>
      finishing && !FINGERPRINT.test(raw.toString("latin1")) ? withField(raw, field) : raw,
    );
  }

  /** The stream ended without a usage chunk: the held events as they are. */
  release(): Buffer[] {
    const held = this.held ?? [];
    this.held = undefined;
    return held.map((e) => e.raw);
  }
}

/** Appends `field` (`,"name":value`) as the last member of the event's JSON object. */
function withField(raw: Buffer, field: Buffer): Buffer {
  const end = raw.lastIndexOf(CLOSING_BRACE);
  if (end === -1) return raw;
  return Buffer.concat([raw.subarray(0, end), field, raw.subarray(end)]);
}
