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
  /**
   * Requests it finishes per running-request second (speed.ts), or undefined while unknown: a new server, one
   * that finished nothing yet, or one without a completions counter.
   */
  readonly speed: number | undefined;
}

/** How the picker weighs queue against prefix affinity. */
export interface PickSettings {
  /**
   * Affinity holds while the affine endpoint's queue ({@link queueOf}: waiting, not running) exceeds the
   * least-loaded endpoint's by at most this many requests; beyond it the request goes to the least-loaded.
   */
  readonly queueMargin: number;
  /** Sequences a server runs at once: an endpoint with that {@link loadOf} is full (undefined: never). */
  readonly maxSequences?: number | undefined;
}

/** Why an endpoint was chosen (the `reason` label of the picks metric). */
export type PickReason = "queue" | "affinity" | "no_state";

/** The picker's answer: an endpoint, or none (Envoy's own balancing decides). */
export interface Pick {
  readonly endpoint: string | undefined;
  readonly reason: PickReason;
}

/**
 * An endpoint's load, which {@link expectedWait} divides by its speed: what the server reported (waiting +
 * running, every client's) plus what this replica sent since, or this replica's own requests in flight when
 * those are more (the read is up to an interval old; the in-flight count is exact now, but blind to other
 * replicas and clients).
 */
export const loadOf = (e: EndpointState): number => Math.max(e.waiting + e.running + e.assigned, e.inFlight);

/** An endpoint's queue: requests waiting on the server, plus what this replica sent since the read. */
export const queueOf = (e: EndpointState): number => e.waiting + e.assigned;

/** A speed the picker can divide by: positive and finite. */
const usable = (speed: number | undefined): speed is number =>
  speed !== undefined && speed > 0 && Number.isFinite(speed);

/**
 * The speed an endpoint of unknown speed is taken to have: the mean of the known endpoints' known speeds
 * (a new server gets work as if it were average), or 1 when none is known (every endpoint then counts
 * alike, and the choice is by {@link loadOf} alone).
 */
export function poolSpeed(endpoints: readonly EndpointState[]): number {
  let sum = 0;
  let count = 0;
  for (const e of endpoints)
    if (e.known && usable(e.speed)) {
      sum += e.speed;
      count++;
    }
  return count === 0 ? 1 : sum / count;
}

/**
 * What the least-loaded choice minimizes: the time the endpoint needs for its load and one more request,
 * `(load + 1) / speed`, with `fallback` (see {@link poolSpeed}) for an unknown speed. Of equally fast
 * endpoints, the one with the lower {@link loadOf}.
 */
export const expectedWait = (e: EndpointState, fallback: number): number =>
  (loadOf(e) + 1) / (usable(e.speed) ? e.speed : fallback);

/**
 * Chooses an endpoint. Without `affinityKey` (or when affinity would overload its endpoint): the known
 * endpoint with the lowest {@link expectedWait}, then the lowest KV usage, then the lowest address
 * (deterministic). With a key: the known endpoint rendezvous hashing assigns it, so the same prefix
 * keeps going to the same server while the set of known endpoints stays the same.
 */
export function pickEndpoint(
  endpoints: readonly EndpointState[],
  affinityKey: number | undefined,
  settings: PickSettings,
): Pick {
  const fallback = poolSpeed(endpoints);
  const { maxSequences } = settings;
  // A full endpoint would make the request wait on the server, first come first served whatever its class,
  // however fast the server: one with a free sequence goes first while any has one.
  const full = (e: EndpointState) => maxSequences !== undefined && loadOf(e) >= maxSequences;
  const anyFree = endpoints.some((e) => e.known && !full(e));
  let least: EndpointState | undefined;
  let leastWait = Infinity;
  let affine: EndpointState | undefined;
  let affineWeight = -1;
  for (const e of endpoints) {
    if (!e.known || (anyFree && full(e))) continue;
    const wait = expectedWait(e, fallback);
    if (!least || sooner(e, wait, least, leastWait)) {
      least = e;
      leastWait = wait;
    }
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

/**
 * Whether `a` (expected wait `aWait`) goes before `b`: sooner done, then one whose speed is not known yet
 * (taken as the pool's mean, it would otherwise lose every tie to a known one of that speed, and never get
 * measured), then an emptier cache, then a lower address.
 */
function sooner(a: EndpointState, aWait: number, b: EndpointState, bWait: number): boolean {
  if (aWait !== bWait) return aWait < bWait;
  if (usable(a.speed) !== usable(b.speed)) return !usable(a.speed);
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
