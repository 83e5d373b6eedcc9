import { createHash } from "node:crypto";

/**
 * An id in the client API's style (`resp_…`, `msg_…`, `fc_…`, `toolu_…`) derived from the chat answer's id,
 * so the same upstream answer always translates to the same ids (stable across retries of the translation,
 * and testable), and ids of different items of one answer differ by `part`. Sixteen hex digits, as vLLM's
 * own native ids have.
 */
export function derivedId(prefix: string, chatId: string, part: string | number): string {
  return `${prefix}${createHash("sha256").update(`${chatId}\u0000${part}`).digest("hex").slice(0, 16)}`;
}
