import { GatewayError } from "../errors/index.js";
import type { HeaderMapValues } from "../envoy/headers.js";
import { sha256Hex, type Policy } from "../policy/index.js";

/** Who is calling, as established from their API key. The key itself is never kept. */
export interface Identity {
  readonly keyId: string;
  readonly team: string;
  readonly allowedModels: ReadonlySet<string>;
  /** The environment the request arrived in (policy `environments`, by host); undefined if none. */
  readonly environment?: string | undefined;
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

/** Metadata namespace where Envoy's jwt_authn filter puts verified claims (under `jwt_payload`). */
export const JWT_METADATA_NAMESPACE = "envoy.filters.http.jwt_authn";

/**
 * The identity of a caller whose JWT Envoy verified: `jwt:<subject>`, in the first team the policy maps one
 * of its groups to. Throws 401 for a token from another issuer or without a subject, 403 when no group maps.
 */
export function identityFromJwt(policy: Policy, claims: Record<string, unknown>): Identity {
  const settings = policy.jwt!;
  if (claims.iss !== settings.issuer) {
    throw new GatewayError(
      "invalid_api_key",
      "The token was not issued by the identity provider this gateway trusts.",
    );
  }
  const subject = claims[settings.subjectClaim];
  if (typeof subject !== "string" || subject === "") {
    throw new GatewayError("invalid_api_key", `The token has no '${settings.subjectClaim}' claim.`);
  }
  const raw = claims[settings.teamClaim];
  const groups = new Set(
    typeof raw === "string" ? [raw] : Array.isArray(raw) ? raw.filter((g) => typeof g === "string") : [],
  );
  const team = Object.entries(settings.teams).find(([group]) => groups.has(group))?.[1];
  if (!team) {
    throw new GatewayError(
      "unmapped_identity",
      `No team is mapped to any '${settings.teamClaim}' of ${subject}.`,
    );
  }
  return { keyId: `jwt:${subject}`, team, allowedModels: policy.teamModels.get(team) ?? new Set() };
}

/**
 * Establishes the caller's identity or throws a 401 {@link GatewayError}: from verified JWT claims if
 * Envoy passed some, else from the API key. Keys are compared by SHA-256 only; errors never echo the key.
 */
export function authenticate(
  policy: Policy,
  headers: HeaderMapValues,
  now: number,
  jwtClaims?: Record<string, unknown>,
  revoked?: { has(id: string): boolean },
): Identity {
  const identity = identify(policy, headers, now, jwtClaims);
  if (revoked?.has(identity.keyId))
    throw new GatewayError("revoked_api_key", `${identity.keyId} has been revoked.`);
  return identity;
}

function identify(
  policy: Policy,
  headers: HeaderMapValues,
  now: number,
  jwtClaims?: Record<string, unknown>,
): Identity {
  // A JWT Envoy verified identifies the caller; policy decides whether JWTs are accepted at all.
  if (jwtClaims && policy.jwt) return identityFromJwt(policy, jwtClaims);
  const key = extractApiKey(headers);
  if (!key) {
    throw new GatewayError(
      "missing_api_key",
      "You didn't provide an API key. Send it as 'Authorization: Bearer <key>' (or 'x-api-key: <key>', as Anthropic's clients do).",
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
