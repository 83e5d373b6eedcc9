/**
 * The quota store contract, shared by the in-memory and Redis stores (which implement the same arithmetic,
 * one in TypeScript, one in Lua; quota/store.test.ts runs the same cases against both).
 *
 * Three kinds of counters:
 * - `bucket`: a token bucket of capacity `limit` refilled continuously at `limit` per `periodMs` (per-minute
 *   limits). Smooth: no burst at a window edge, and a refund is simply poured back in.
 * - `window`: a counter per calendar window (UTC day or month) that resets when the window changes; the
 *   window id is part of the key, so an old window simply expires.
 * - `concurrency`: a set of in-flight request ids with a lease each; an id whose lease ran out (its
 *   extproc replica died) no longer counts.
 *
 * `reserve` checks every charge and applies all of them or none (atomic), so concurrent requests on any
 * number of replicas can never overshoot a limit. `settle` replaces each reserved amount with the actual one.
 */

/** One counter a request is charged against. */
export interface Charge {
  /** Storage key (without the store's prefix). */
  readonly key: string;
  readonly kind: "bucket" | "window" | "concurrency";
  /** Bucket capacity, window cap, or maximum in flight. */
  readonly limit: number;
  /** Amount to reserve (concurrency: ignored, always one slot). */
  readonly amount: number;
  /** Bucket: refill period. Window: epoch ms at which the window ends. Concurrency: lease length. */
  readonly periodMs: number;
}

/** What remains on a counter after an admission, for the x-ratelimit-* headers. */
export interface ChargeState {
  readonly remaining: number;
  /** Milliseconds until the counter is back to its full limit. */
  readonly resetMs: number;
}

/** Outcome of {@link QuotaStore.reserve}. */
export type ReserveResult =
  | { readonly admitted: true; readonly states: readonly ChargeState[] }
  | {
      readonly admitted: false;
      /** Index of the first charge that did not fit. */
      readonly rejected: number;
      readonly retryAfterMs: number;
      readonly states: readonly ChargeState[];
    };

/** Where quota counters live. */
export interface QuotaStore {
  /** Atomically reserves every charge for `requestId`, or none. */
  reserve(requestId: string, charges: readonly Charge[], now: number): Promise<ReserveResult>;
  /** Whether every charge would fit now, reserving nothing (states are as before any charge). */
  check(charges: readonly Charge[], now: number): Promise<ReserveResult>;
  /** Replaces the reserved amounts with `actual` (same order as the charges) and frees concurrency slots. */
  settle(
    requestId: string,
    charges: readonly Charge[],
    actual: readonly number[],
    now: number,
  ): Promise<void>;
  close(): Promise<void>;
}

/** A whole, finite, non-negative number: the only amounts a counter may ever be charged. */
const isCount = (n: number): boolean => Number.isSafeInteger(n) && n >= 0;

/**
 * Refuses charges (and settled amounts) that are not whole, finite and non-negative, and limits that are
 * not positive: a NaN would switch a bucket off and a negative amount would turn a reservation into a
 * refund. Both stores call it before touching a counter.
 */
export function assertValidCharges(charges: readonly Charge[], actual?: readonly number[]): void {
  charges.forEach((charge, i) => {
    const ok =
      isCount(charge.amount) &&
      isCount(charge.limit) &&
      charge.limit > 0 &&
      isCount(charge.periodMs) &&
      charge.periodMs > 0 &&
      (actual === undefined || isCount(actual[i]!));
    if (!ok) {
      throw new RangeError(
        `invalid quota charge ${charge.key}: amount ${charge.amount}, limit ${charge.limit}, period ${charge.periodMs}` +
          (actual ? `, actual ${actual[i]}` : ""),
      );
    }
  });
}

/** A window's counter is kept this long past its end, so a request that straddled the end still settles. */
export const WINDOW_GRACE_MS = 3_600_000;

/** The state a counter is in once `charge` has been reserved on it (`before`: the state checked against). */
export function afterCharge(charge: Charge, before: ChargeState): ChargeState {
  if (charge.kind === "concurrency") return { remaining: Math.max(0, before.remaining - 1), resetMs: 0 };
  const remaining = Math.max(0, before.remaining - charge.amount);
  if (charge.kind === "window") return { remaining, resetMs: before.resetMs };
  return { remaining, resetMs: Math.ceil(((charge.limit - remaining) * charge.periodMs) / charge.limit) };
}
