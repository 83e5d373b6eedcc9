/**
 * The limiter arithmetic, run identically against the in-memory store and the Redis store (a real
 * redis-server on loopback): both implement the same contract, so both must give the same answers.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { startRedis, type RedisServer } from "../../test/harness/redis.js";
import { MemoryQuotaStore } from "./memory.js";
import { connectRedis, RedisQuotaStore } from "./redis.js";
import type { Charge, QuotaStore } from "./store.js";

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
let unique = 0;
const key = (name: string) => `${name}-${process.pid}-${++unique}`;

function contract(name: string, makeStore: () => QuotaStore) {
  describe(`${name} quota store`, () => {
    it("admits a bucket up to its capacity, then says how long to wait", async () => {
      const store = makeStore();
      const rpm: Charge = { key: key("rpm"), kind: "bucket", limit: 3, amount: 1, periodMs: 60_000 };
      for (let i = 0; i < 3; i++) assert.equal((await store.reserve(`r${i}`, [rpm], T0)).admitted, true);
      const refused = await store.reserve("r3", [rpm], T0);
      assert.equal(refused.admitted, false);
      assert.ok(!refused.admitted && refused.rejected === 0 && refused.retryAfterMs === 20_000);
      // One request refills every 20 s.
      assert.equal((await store.reserve("r4", [rpm], T0 + 19_999)).admitted, false);
      const later = await store.reserve("r5", [rpm], T0 + 20_000);
      assert.equal(later.admitted, true);
      assert.deepEqual(later.states[0], { remaining: 0, resetMs: 60_000 });
    });

    it("reports remaining and time to full after each admission", async () => {
      const store = makeStore();
      const tpm: Charge = { key: key("tpm"), kind: "bucket", limit: 1000, amount: 250, periodMs: 60_000 };
      const result = await store.reserve("a", [tpm], T0);
      assert.deepEqual(result.states[0], { remaining: 750, resetMs: 15_000 });
    });

    it("refuses a request larger than the whole bucket for a full period", async () => {
      const store = makeStore();
      const tpm: Charge = { key: key("tpm"), kind: "bucket", limit: 100, amount: 101, periodMs: 60_000 };
      const result = await store.reserve("big", [tpm], T0);
      assert.ok(!result.admitted && result.retryAfterMs === 60_000);
    });

    it("is all or nothing across charges", async () => {
      const store = makeStore();
      const requests: Charge = { key: key("rpm"), kind: "bucket", limit: 10, amount: 1, periodMs: 60_000 };
      const tokens: Charge = {
        key: key("tpd"),
        kind: "window",
        limit: 100,
        amount: 60,
        periodMs: T0 + 3_600_000,
      };
      assert.equal((await store.reserve("a", [requests, tokens], T0)).admitted, true);
      const refused = await store.reserve("b", [requests, tokens], T0);
      assert.ok(!refused.admitted && refused.rejected === 1 && refused.retryAfterMs === 3_600_000);
      // The refused request took nothing from the request bucket: 9 left, not 8.
      const probe = await store.reserve("c", [requests], T0);
      assert.equal(probe.states[0]!.remaining, 8);
    });

    it("settles a reservation to actual usage: refunds and extra charges", async () => {
      const store = makeStore();
      const window: Charge = {
        key: key("tpd"),
        kind: "window",
        limit: 1000,
        amount: 600,
        periodMs: T0 + 3_600_000,
      };
      const bucket: Charge = { key: key("tpm"), kind: "bucket", limit: 1000, amount: 600, periodMs: 60_000 };
      await store.reserve("a", [window, bucket], T0);
      await store.settle("a", [window, bucket], [100, 100], T0);
      const after = await store.reserve(
        "b",
        [
          { ...window, amount: 900 },
          { ...bucket, amount: 900 },
        ],
        T0,
      );
      assert.equal(after.admitted, true);
      assert.deepEqual(
        after.states.map((s) => s.remaining),
        [0, 0],
      );
      // Using more than reserved puts a bucket into debt: nothing fits until it refills.
      await store.settle(
        "b",
        [
          { ...window, amount: 900 },
          { ...bucket, amount: 900 },
        ],
        [900, 1200],
        T0,
      );
      const refused = await store.reserve("c", [{ ...bucket, amount: 1 }], T0);
      assert.ok(!refused.admitted && refused.retryAfterMs === 18_060);
    });

    it("resets window counters with the window", async () => {
      const store = makeStore();
      const base = key("tpd");
      const day1: Charge = {
        key: `${base}:2026-11-22`,
        kind: "window",
        limit: 10,
        amount: 10,
        periodMs: T0 + 1000,
      };
      assert.equal((await store.reserve("a", [day1], T0)).admitted, true);
      assert.equal((await store.reserve("b", [day1], T0)).admitted, false);
      const day2: Charge = { ...day1, key: `${base}:2026-11-23`, periodMs: T0 + 86_401_000 };
      assert.equal((await store.reserve("c", [day2], T0 + 2000)).admitted, true);
    });

    it("frees concurrency slots on settle, and by lease expiry when a request vanished", async () => {
      const store = makeStore();
      const slots: Charge = { key: key("conc"), kind: "concurrency", limit: 2, amount: 1, periodMs: 5000 };
      assert.equal((await store.reserve("a", [slots], T0)).admitted, true);
      assert.equal((await store.reserve("b", [slots], T0)).admitted, true);
      assert.equal((await store.reserve("c", [slots], T0)).admitted, false);
      await store.settle("a", [slots], [1], T0);
      assert.equal((await store.reserve("d", [slots], T0)).admitted, true);
      // "b" and "d" never settle (their replica died): their leases end at T0 + 5 s.
      assert.equal((await store.reserve("e", [slots], T0 + 4999)).admitted, false);
      assert.equal((await store.reserve("f", [slots], T0 + 5000)).admitted, true);
    });

    it("refuses amounts that are not whole, finite and non-negative, and touches no counter", async () => {
      const store = makeStore();
      const tpm: Charge = { key: key("tpm"), kind: "bucket", limit: 100, amount: 10, periodMs: 60_000 };
      for (const amount of [NaN, -100_000_000, 1.5, Infinity, Number.MAX_SAFE_INTEGER + 2]) {
        await assert.rejects(store.reserve("bad", [{ ...tpm, amount }], T0), RangeError);
      }
      await assert.rejects(store.reserve("bad", [{ ...tpm, limit: NaN }], T0), RangeError);
      const ok = await store.reserve("a", [tpm], T0);
      assert.deepEqual(ok.states[0], { remaining: 90, resetMs: 6000 });
      await assert.rejects(store.settle("a", [tpm], [-5], T0), RangeError);
      await assert.rejects(store.settle("a", [tpm], [NaN], T0), RangeError);
      // The bucket is where the one valid reservation left it.
      const probe = await store.reserve("b", [{ ...tpm, amount: 90 }], T0);
      assert.equal(probe.admitted, true);
    });

    it("checks without reserving", async () => {
      const store = makeStore();
      const rpm: Charge = { key: key("rpm"), kind: "bucket", limit: 2, amount: 1, periodMs: 60_000 };
      const slots: Charge = { key: key("conc"), kind: "concurrency", limit: 1, amount: 1, periodMs: 5000 };
      for (let i = 0; i < 3; i++) {
        const checked = await store.check([rpm, slots], T0);
        assert.ok(checked.admitted);
        assert.deepEqual(checked.states, [
          { remaining: 2, resetMs: 0 },
          { remaining: 1, resetMs: 0 },
        ]);
      }
      assert.ok((await store.reserve("a", [rpm, slots], T0)).admitted);
      const full = await store.check([rpm, slots], T0);
      assert.ok(!full.admitted && full.rejected === 1);
    });

    it("keeps a window's counter until its end by the caller's clock, whatever the date today", async () => {
      const store = makeStore();
      // A clock ten years from the real one either way: expiry follows it, not the server's own clock.
      for (const at of [Date.UTC(2016, 0, 1), Date.UTC(2036, 0, 1)]) {
        const window: Charge = {
          key: key("tpd"),
          kind: "window",
          limit: 10,
          amount: 10,
          periodMs: at + 60_000,
        };
        assert.equal((await store.reserve("a", [window], at)).admitted, true);
        assert.equal((await store.reserve("b", [window], at + 59_000)).admitted, false);
      }
    });

    it("never admits more than the limit under concurrent reservations", async () => {
      const store = makeStore();
      const tokens: Charge = {
        key: key("tpd"),
        kind: "window",
        limit: 1000,
        amount: 7,
        periodMs: T0 + 3_600_000,
      };
      const results = await Promise.all(
        Array.from({ length: 300 }, (_, i) => store.reserve(`r${i}`, [tokens], T0)),
      );
      assert.equal(results.filter((r) => r.admitted).length, Math.floor(1000 / 7));
    });
  });
}

contract("memory", () => new MemoryQuotaStore());

/** Waits for the Redis connection before the first command. */
class ReadyStore implements QuotaStore {
  private readonly connected: Promise<void>;
  constructor(private readonly store: RedisQuotaStore) {
    this.connected = store.ready(5000);
  }
  async reserve(...args: Parameters<QuotaStore["reserve"]>) {
    await this.connected;
    return this.store.reserve(...args);
  }
  async check(...args: Parameters<QuotaStore["check"]>) {
    await this.connected;
    return this.store.check(...args);
  }
  async settle(...args: Parameters<QuotaStore["settle"]>) {
    await this.connected;
    return this.store.settle(...args);
  }
  close() {
    return this.store.close();
  }
}

describe("redis", () => {
  let redis: RedisServer;
  const stores: RedisQuotaStore[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await redis?.stop();
  });
  contract("redis", () => {
    const store = new RedisQuotaStore(
      connectRedis({ url: redis.url, keyPrefix: "test", commandTimeoutMs: 2000 }, () => {}),
      "test",
    );
    stores.push(store);
    return new ReadyStore(store);
  });
});
