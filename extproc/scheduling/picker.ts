/**
 * The endpoint picker: a pure function of the pool's endpoint states and the request's prefix key. It never
 * names an endpoint outside the list, never one whose state is unknown, and names none when no state is
 * known (Envoy then balances by itself).
 */

/** What the scheduler last read of one endpoint. */
export interface EndpointState {
  /** `ip:port`, as Envoy's override-host policy reads it. */
  readonly address: string;
  /** False when the last successful read is older than the staleness bound: its figures mean nothing. */
  readonly known: boolean;
  /** Requests waiting in the model server's queue. */
  readonly waiting: number;
  /** Requests running on it. */
  readonly running: number;
  /** KV-cache usage, 0..1 (0 where the server reports none). */
  readonly kvUsage: number;
  /** Requests this replica sent it since that read (they are not in the figures yet). */
  readonly assigned: number;
  /** Requests this replica sent it that have not ended (Envoy's least-request count, seen from here). */
  readonly inFlight: number;
}

/** How the picker weighs queue against prefix affinity. */
export interface PickSettings {
  /**
   * Affinity holds while the affine endpoint's queue ({@link queueOf}: waiting, not running) exceeds the
   * least-loaded endpoint's by at most this many requests; beyond it the request goes to the least-loaded.
   */
  readonly queueMargin: number;
}

/** Why an endpoint was chosen (the `reason` label of the picks metric). */
export type PickReason = "queue" | "affinity" | "no_state";

/** The picker's answer: an endpoint, or none (Envoy's own balancing decides). */
export interface Pick {
  readonly endpoint: string | undefined;
  readonly reason: PickReason;
}

/**
 * An endpoint's load, which the least-loaded choice minimizes: what the server reported (waiting + running, every client's)
 * plus what this replica sent since, or this replica's own requests in flight when those are more (the read
 * is up to an interval old; the in-flight count is exact now, but blind to other replicas and clients).
 */
export const loadOf = (e: EndpointState): number => Math.max(e.waiting + e.running + e.assigned, e.inFlight);

/** An endpoint's queue: requests waiting on the server, plus what this replica sent since the read. */
export const queueOf = (e: EndpointState): number => e.waiting + e.assigned;

/**
 * Chooses an endpoint. Without `affinityKey` (or when affinity would overload its endpoint): the known
 * endpoint with the lowest {@link loadOf}, then the lowest KV usage, then the lowest address
 * (deterministic). With a key: the known endpoint rendezvous hashing assigns it, so the same prefix
 * keeps going to the same server while the set of known endpoints stays the same.
 */
export function pickEndpoint(
  endpoints: readonly EndpointState[],
  affinityKey: number | undefined,
  settings: PickSettings,
): Pick {
  let least: EndpointState | undefined;
  let affine: EndpointState | undefined;
  let affineWeight = -1;
  for (const e of endpoints) {
    if (!e.known) continue;
    if (!least || lessLoaded(e, least)) least = e;
    if (affinityKey !== undefined) {
      const weight = mix(affinityKey ^ addressHash(e.address));
      if (weight > affineWeight || (weight === affineWeight && e.address < affine!.address)) {
        affine = e;
        affineWeight = weight;
      }
    }
  }
  if (!least) return { endpoint: undefined, reason: "no_state" };
  if (affine && queueOf(affine) - queueOf(least) <= settings.queueMargin)
    return { endpoint: affine.address, reason: "affinity" };
  return { endpoint: least.address, reason: "queue" };
}

function lessLoaded(a: EndpointState, b: EndpointState): boolean {
  if (loadOf(a) !== loadOf(b)) return loadOf(a) < loadOf(b);
  if (a.kvUsage !== b.kvUsage) return a.kvUsage < b.kvUsage;
  return a.address < b.address;
}

/** FNV-1a over a string's UTF-16 code units: a 32-bit key for a prompt prefix or an address. */
export function stringHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const addressHashes = new Map<string, number>();
/** An address's hash, memoized (a pool has a handful of endpoints; the map is bounded by them). */
function addressHash(address: string): number {
  let h = addressHashes.get(address);
  if (h === undefined) {
    if (addressHashes.size >= 4096) addressHashes.clear();
    h = stringHash(address);
    addressHashes.set(address, h);
  }
  return h;
}

/** murmur3's 32-bit finalizer: spreads key ^ address so rendezvous weights are independent per endpoint. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
