import type { AnswerShape } from "../openai/events.js";
import { dropSpelledOutput, mapResponseTexts } from "../openai/response-fields.js";
import type { PiiSession } from "./index.js";

/**
 * PII handling for a whole (non-streamed) chat or completion answer, in place: every output text field is
 * redacted and has its placeholders restored; with output scanning on, token-spelling fields (logprobs,
 * token ids) are dropped, since they would spell what was redacted. True if anything changed.
 */
export function processResponseBody(session: PiiSession, body: unknown): boolean {
  let changed = session.resolved.responses && dropSpelledOutput(body);
  mapResponseTexts(body, (text) => {
    const out = session.processResponse(text);
    if (out !== text) changed = true;
    return out;
  });
  return changed;
}

/**
 * PII handling for a whole answer of an API with its own {@link AnswerShape} (Responses, Messages), in
 * place: every text a client reads is redacted and has its placeholders restored; with output scanning on,
 * token-spelling fields are emptied. True if anything changed.
 */
export function processAnswer(session: PiiSession, body: unknown, shape: AnswerShape): boolean {
  let changed = (session.resolved.responses && shape.dropSpelledOutput?.(body)) || false;
  shape.mapTexts(body, (text) => {
    const out = session.processResponse(text);
    if (out !== text) changed = true;
    return out;
  });
  return changed;
}
