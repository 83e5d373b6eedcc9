import {
  afterCharge,
  assertValidCharges,
  WINDOW_GRACE_MS,
  type Charge,
  type ChargeState,
  type QuotaStore,
  type ReserveResult,
} from "./store.js";

interface Bucket {
  level: number;
  updatedAt: number;
  /** Epoch ms at which the bucket is full again and can be forgotten. */
  fullAt: number;
}

interface Window {
  used: number;
  endsAt: number;
}

/**
 * Quota counters in this process's memory: exact for one extproc replica, no extra process needed.
 * Single-threaded JavaScript makes each reserve/settle atomic.
 */
export class MemoryQuotaStore implements QuotaStore {
  private readonly buckets = new Map<string, Bucket>();
  private readonly windows = new Map<string, Window>();
  private readonly inFlight = new Map<string, Map<string, number>>();
  private lastSweep = 0;

  async reserve(requestId: string, charges: readonly Charge[], now: number): Promise<ReserveResult> {
    // Checked and applied in one synchronous step: no other reservation can run in between.
    const result = this.evaluate(charges, now);
    if (!result.admitted) return result;
    const states = [...result.states];
    charges.forEach((charge, i) => {
      this.apply(requestId, charge, charge.amount, now);
      states[i] = afterCharge(charge, states[i]!);
    });
    return { admitted: true, states };
  }

  async check(charges: readonly Charge[], now: number): Promise<ReserveResult> {
    return this.evaluate(charges, now);
  }

  private evaluate(charges: readonly Charge[], now: number): ReserveResult {
    assertValidCharges(charges);
    this.sweep(now);
    const states: ChargeState[] = [];
    let rejected = -1;
    let retryAfterMs = 0;
    charges.forEach((charge, i) => {
      const { remaining, resetMs, wait } = this.counter(charge, now);
      states.push({ remaining, resetMs });
      if (wait > 0 && rejected === -1) {
        rejected = i;
        retryAfterMs = wait;
      }
    });
    if (rejected !== -1) return { admitted: false, rejected, retryAfterMs, states };
    return { admitted: true, states };
  }

  async settle(
    requestId: string,
    charges: readonly Charge[],
    actual: readonly number[],
    now: number,
  ): Promise<void> {
    assertValidCharges(charges, actual);
    charges.forEach((charge, i) => {
      if (charge.kind === "concurrency") this.inFlight.get(charge.key)?.delete(requestId);
      // A window that ended while the request ran is gone: there is nothing left to correct.
      else if (charge.kind === "window" && !this.windows.has(charge.key)) return;
      else this.apply(requestId, charge, (actual[i] ?? charge.amount) - charge.amount, now);
    });
  }

  async close(): Promise<void> {}

  /**
   * Adds amounts to calendar window counters without checking their limits: rebuilding what was charged
   * before a restart (see replay.ts), whether or not it fitted. Other kinds of charges are ignored.
   */
  add(charges: readonly Charge[]): void {
    for (const charge of charges) if (charge.kind === "window") this.apply("", charge, charge.amount, 0);
  }

  /** Current remaining/reset for a charge, and how long to wait before it would fit (0: fits now). */
  private counter(charge: Charge, now: number): { remaining: number; resetMs: number; wait: number } {
    if (charge.kind === "bucket") {
      const level = this.bucketLevel(charge, now);
      const rate = charge.limit / charge.periodMs;
      const resetMs = Math.ceil((charge.limit - level) / rate);
      if (charge.amount > charge.limit)
        return { remaining: Math.floor(level), resetMs, wait: charge.periodMs };
      const wait = level >= charge.amount ? 0 : Math.ceil((charge.amount - level) / rate);
      return { remaining: Math.floor(level), resetMs, wait };
    }
    if (charge.kind === "window") {
      const used = this.windows.get(charge.key)?.used ?? 0;
      const resetMs = Math.max(0, charge.periodMs - now);
      const wait = used + charge.amount <= charge.limit ? 0 : Math.max(1, resetMs);
      return { remaining: Math.max(0, charge.limit - used), resetMs, wait };
    }
    const holders = this.inFlight.get(charge.key);
    let count = 0;
    for (const expiresAt of holders?.values() ?? []) if (expiresAt > now) count++;
    return {
      remaining: Math.max(0, charge.limit - count),
      resetMs: 0,
      wait: count < charge.limit ? 0 : 1000,
    };
  }

  private apply(requestId: string, charge: Charge, amount: number, now: number): void {
    if (charge.kind === "bucket") {
      const level = Math.min(charge.limit, this.bucketLevel(charge, now) - amount);
      const fullAt = now + ((charge.limit - level) * charge.periodMs) / charge.limit;
      this.buckets.set(charge.key, { level, updatedAt: now, fullAt });
    } else if (charge.kind === "window") {
      const window = this.windows.get(charge.key) ?? { used: 0, endsAt: charge.periodMs };
      window.used += amount;
      this.windows.set(charge.key, window);
    } else {
      let holders = this.inFlight.get(charge.key);
      if (!holders) this.inFlight.set(charge.key, (holders = new Map()));
      holders.set(requestId, now + charge.periodMs);
    }
  }

  private bucketLevel(charge: Charge, now: number): number {
    const bucket = this.buckets.get(charge.key);
    if (!bucket) return charge.limit;
    const refill = (Math.max(0, now - bucket.updatedAt) * charge.limit) / charge.periodMs;
    return Math.min(charge.limit, bucket.level + refill);
  }

  /** Drops ended windows, full buckets and expired leases, at most once a second. */
  private sweep(now: number): void {
    if (now - this.lastSweep < 1000) return;
    this.lastSweep = now;
    for (const [key, window] of this.windows)
      if (window.endsAt + WINDOW_GRACE_MS <= now) this.windows.delete(key);
    for (const [key, bucket] of this.buckets) if (bucket.fullAt <= now) this.buckets.delete(key);
    for (const [key, holders] of this.inFlight) {
      for (const [id, expiresAt] of holders) if (expiresAt <= now) holders.delete(id);
      if (holders.size === 0) this.inFlight.delete(key);
    }
  }
}
