/** Request header extproc sets to pick the model-server pool; Envoy's routes match on it. */
export const ROUTING_HEADER = "x-gateway-pool";

/**
 * Request header extproc sets to the endpoint (`ip:port`) its scheduler chose; the pool cluster's
 * override-host load balancing policy reads it (docs/scheduling.md). Envoy removes any client copy before
 * ext_proc sees the request, and extproc strips it again.
 */
export const ENDPOINT_HEADER = "x-gateway-endpoint";

/**
 * Response header the route of a pool with fallbacks adds: the pool of the host that answered, from the
 * endpoint's `llm_gateway.pool` metadata. extproc audits it and removes it before the client sees it.
 */
export const SERVED_POOL_HEADER = "x-gateway-served-pool";

/** Envoy formatter that {@link SERVED_POOL_HEADER} carries: the answering endpoint's pool metadata. */
export const SERVED_POOL_FORMAT = "%UPSTREAM_METADATA(llm_gateway:pool)%";

/** Headers that carry client credentials. They are removed before a request goes upstream. */
export const CLIENT_CREDENTIAL_HEADERS = ["authorization", "x-api-key", "api-key"] as const;

/** Lower-cased header name → value, as Envoy sent them (pseudo-headers such as `:path` included). */
export type HeaderMapValues = ReadonlyMap<string, string>;

interface WireHeader {
  key?: string;
  value?: string;
  rawValue?: Uint8Array;
}

/**
 * Flattens Envoy's header list. Current Envoy puts values in `raw_value` and leaves `value` empty; older
 * versions did the opposite, so both are read. Repeated headers are joined with ", " (RFC 9110 §5.3).
 */
export function readHeaders(headers: { headers?: WireHeader[] } | null | undefined): HeaderMapValues {
  const out = new Map<string, string>();
  for (const h of headers?.headers ?? []) {
    if (!h.key) continue;
    const value = h.rawValue && h.rawValue.length > 0 ? latin1(h.rawValue) : (h.value ?? "");
    const previous = out.get(h.key);
    out.set(h.key, previous === undefined ? value : `${previous}, ${value}`);
  }
  return out;
}

/** The bytes as latin1 text, read in place (protobufjs hands out views into the message; no copy). */
const latin1 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
