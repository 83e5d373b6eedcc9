/**
 * Rewrites `"model":"<upstream name>"` in a JSON answer or an SSE event to the policy's name for the model,
 * so a client never sees the name a model server uses internally (`upstreamModel`). Only the first such
 * field changes: the answer's own, which OpenAI-style servers put before `choices`. Bytes stay as they are
 * otherwise (no re-serialization); the pattern cannot match inside a JSON string, whose quotes would be
 * escaped. Returns the same buffer when there is nothing to rewrite.
 */
export function modelRenamer(upstream: string, name: string): (raw: Buffer) => Buffer {
  const quoted = Buffer.from(JSON.stringify(upstream), "utf8");
  // latin1 maps bytes one to one, so the round trip keeps every byte, valid UTF-8 or not.
  const field = new RegExp(`("model"\\s*:\\s*)${escapeRegExp(quoted.toString("latin1"))}`);
  const renamedValue = Buffer.from(JSON.stringify(name), "utf8").toString("latin1");
  return (raw) => {
    if (raw.indexOf(quoted) === -1) return raw;
    const text = raw.toString("latin1");
    const renamed = text.replace(field, (_match, key: string) => key + renamedValue);
    return renamed === text ? raw : Buffer.from(renamed, "latin1");
  };
}

const escapeRegExp = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&");
