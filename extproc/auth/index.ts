import { GatewayError } from "../errors/index.js";
import type { HeaderMapValues } from "../envoy/headers.js";
import { sha256Hex, type Policy } from "../policy/index.js";

/** Who is calling, as established from their API key. The key itself is never kept. */
export interface Identity {
  readonly keyId: string;
  readonly team: string;
  readonly allowedModels: ReadonlySet<string>;
}

/** Reads the client's API key: `Authorization: Bearer …` (OpenAI SDKs), or `x-api-key` / `api-key`. */
export function extractApiKey(headers: HeaderMapValues): string | undefined {
  const authorization = headers.get("authorization");
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    return match?.[1];
  }
  return headers.get("x-api-key") ?? headers.get("api-key") ?? undefined;
}

/**
 * Establishes the caller's identity or throws a 401 {@link GatewayError}. Keys are compared by SHA-256
 * only; error messages never echo the key.
 */
export function authenticate(policy: Policy, headers: HeaderMapValues, now: number): Identity {
  const key = extractApiKey(headers);
  if (!key) {
    throw new GatewayError(
      "missing_api_key",
      "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
    );
  }
  const entry = policy.keysBySha256.get(sha256Hex(key));
  if (!entry) throw new GatewayError("invalid_api_key", "Incorrect API key provided.");
  if (entry.revoked) throw new GatewayError("revoked_api_key", `API key ${entry.id} has been revoked.`);
  if (entry.notBefore !== undefined && now < entry.notBefore) {
    throw new GatewayError(
      "inactive_api_key",
      `API key ${entry.id} is not valid before ${new Date(entry.notBefore).toISOString()}.`,
    );
  }
  if (entry.expiresAt !== undefined && now >= entry.expiresAt) {
    throw new GatewayError(
      "expired_api_key",
      `API key ${entry.id} expired at ${new Date(entry.expiresAt).toISOString()}.`,
    );
  }
  return { keyId: entry.id, team: entry.team, allowedModels: entry.allowedModels };
}
