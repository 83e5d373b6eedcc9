/**
 * The request side of PII handling: whether policy scans a request, the findings applied to its texts, and
 * the refusal when a blocked entity is found.
 */
import type { ScopeSubject } from "../scope/index.js";
import { GatewayError } from "../errors/index.js";
import type { Finding } from "./detectors.js";
import { PiiSession, resolvePii, type PiiConfig } from "./index.js";
import type { Scanner } from "./scanner.js";

/** Detection of the `enabled` entity types in each text (one entry per text): inline or on a worker thread. */
export type FindPii = (
  scanner: Scanner,
  texts: readonly string[],
  enabled: ReadonlySet<string>,
) => Promise<Finding[][]>;

/** Who sends what to which model: what decides whether and how a request is scanned. */
export interface PiiRequest {
  readonly identity: ScopeSubject;
  /** The served model's policy name. */
  readonly model: string;
  /** Every text of the request the model reads, in the order the request is rewritten in. */
  readonly texts: readonly string[];
}

/**
 * Scans a request's texts when policy looks for PII in it, and returns them with the actions applied
 * (placeholders, masks, hashes), or undefined when nothing is looked for. Refuses (400 `pii_blocked`) a
 * request carrying an entity whose action is `block`. The session (audit counts, the restore map for the
 * response) is handed to `keep` before any refusal, so a refused request's record shows what was found.
 */
export async function protectRequest(
  config: PiiConfig | undefined,
  request: PiiRequest,
  findPii: FindPii,
  keep: (session: PiiSession) => void,
): Promise<string[] | undefined> {
  const resolved = config && resolvePii(config, request.identity, request.model);
  if (!config || !resolved) return undefined;
  const session = new PiiSession(config, resolved);
  keep(session);
  // Detection may run on a worker; the actions (placeholders, hashes, restore map) stay in the session.
  const findings = await findPii(config.scanner, request.texts, resolved.enabled);
  const texts = request.texts.map((text, i) => session.apply(text, findings[i]!, "request"));
  if (session.blocked.size > 0) {
    throw new GatewayError(
      "pii_blocked",
      `The request contains data the policy does not allow to send: ${[...session.blocked].sort().join(", ")}.`,
    );
  }
  return texts;
}
