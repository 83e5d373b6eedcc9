/**
 * The admission queue's arithmetic, run identically against the in-memory store and the Redis store (a
 * real redis-server on loopback), and a property: on any sequence of arrivals, polls, departures and
 * releases both stores give the same answers, and none ever admits more than a ticket's slots allow.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { startRedis, type RedisServer } from "../../test/harness/redis.js";
import { connectRedis } from "../quota/redis.js";
import { RedisQueueStore } from "./queue-redis.js";
import { MemoryQueueStore, type QueueBounds, type QueueStore, type Ticket } from "./queue-store.js";

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
const BOUNDS: QueueBounds = { maxDepth: 8, leaseMs: 60_000 };
let unique = 0;
const poolName = () => `pool-${process.pid}-${++unique}`;

const ticket = (id: string, fields: Partial<Ticket> = {}): Ticket => ({
  id,
  rank: 0,
  team: "a",
  cost: 10,
  slots: 2,
  sheddable: false,
  expiresAt: T0 + 10_000,
  ...fields,
});

function contract(name: string, makeStore: () => QueueStore) {
  describe(`${name} queue store`, () => {
    it("admits up to the slots, queues the rest, and admits the next once a slot is free", async () => {
      const store = makeStore();
      const pool = poolName();
      assert.equal(await store.arrive(pool, ticket("r1"), BOUNDS, T0), "admitted");
      assert.equal(await store.arrive(pool, ticket("r2"), BOUNDS, T0), "admitted");
      assert.equal(await store.arrive(pool, ticket("r3"), BOUNDS, T0), "queued");
      assert.deepEqual(await store.poll(pool, ["r3"], BOUNDS, T0), ["queued"]);
      await store.release(pool, "r1");
      assert.deepEqual(await store.poll(pool, ["r3"], BOUNDS, T0), ["admitted"]);
      // Admitted tickets are no longer waiting.
      assert.deepEqual(await store.poll(pool, ["r3"], BOUNDS, T0), ["gone"]);
    });

    it("serves a higher class first, whatever the arrival order", async () => {
      const store = makeStore();
      const pool = poolName();
      await store.arrive(pool, ticket("busy", { slots: 1 }), BOUNDS, T0);
      assert.equal(await store.arrive(pool, ticket("batch", { rank: 2, slots: 1 }), BOUNDS, T0), "queued");
      assert.equal(await store.arrive(pool, ticket("critical", { rank: 0, slots: 1 }), BOUNDS, T0), "queued");
      await store.release(pool, "busy");
      // The batch ticket is asked about first, and still waits: the critical one is ahead of it.
      assert.deepEqual(await store.poll(pool, ["batch", "critical"], BOUNDS, T0), ["queued", "admitted"]);
    });

    it("keeps a class's share: a lower class waits where a higher one goes on", async () => {
      const store = makeStore();
      const pool = poolName();
      // maxInFlight 4; batch may fill half of it.
      await store.arrive(pool, ticket("b1", { rank: 1, slots: 2 }), BOUNDS, T0);
      await store.arrive(pool, ticket("b2", { rank: 1, slots: 2 }), BOUNDS, T0);
      assert.equal(await store.arrive(pool, ticket("b3", { rank: 1, slots: 2 }), BOUNDS, T0), "queued");
      assert.equal(await store.arrive(pool, ticket("c1", { rank: 0, slots: 4 }), BOUNDS, T0), "admitted");
    });

    it("shares slots fairly between teams: a team that sent much waits behind one that sent little", async () => {
      const store = makeStore();
      const pool = poolName();
      await store.arrive(pool, ticket("busy", { slots: 1 }), BOUNDS, T0);
      for (let i = 0; i < 5; i++)
        await store.arrive(pool, ticket(`heavy${i}`, { team: "heavy", slots: 1 }), BOUNDS, T0);
      await store.arrive(pool, ticket("light0", { team: "light", slots: 1 }), BOUNDS, T0);
      await store.release(pool, "busy");
      const ids = ["heavy0", "heavy1", "heavy2", "heavy3", "heavy4", "light0"];
      // One slot: the first heavy ticket (finish tag 10) and the light one (10) tie, heavy0 < light0 by id.
      const first = await store.poll(pool, ids, BOUNDS, T0);
      assert.deepEqual(first, ["admitted", "queued", "queued", "queued", "queued", "queued"]);
      await store.release(pool, "heavy0");
      // Next: light0 (tag 10), not heavy1 (tag 20).
      assert.deepEqual(await store.poll(pool, ids.slice(1), BOUNDS, T0), [
        "queued",
        "queued",
        "queued",
        "queued",
        "admitted",
      ]);
    });

    it("weights a team's share by its cost: half the cost, twice the turns", async () => {
      const store = makeStore();
      const pool = poolName();
      await store.arrive(pool, ticket("busy", { slots: 1, team: "z" }), BOUNDS, T0);
      for (let i = 0; i < 3; i++) {
        await store.arrive(pool, ticket(`a${i}`, { team: "a", cost: 10, slots: 1 }), BOUNDS, T0);
        await store.arrive(pool, ticket(`b${i}`, { team: "b", cost: 5, slots: 1 }), BOUNDS, T0);
      }
      const order: string[] = [];
      let last = "busy";
      const waiting = ["a0", "a1", "a2", "b0", "b1", "b2"];
      while (waiting.length > 0) {
        await store.release(pool, last);
        const states = await store.poll(pool, waiting, BOUNDS, T0);
        const at = states.indexOf("admitted");
        last = waiting.splice(at, 1)[0]!;
        order.push(last);
      }
      // Finish tags: b 5, 10, 15; a 10, 20, 30 (ties by id).
      assert.deepEqual(order, ["b0", "a0", "b1", "b2", "a1", "a2"]);
    });

    it("refuses when full, unless a lower sheddable ticket can be pushed out", async () => {
      const store = makeStore();
      const pool = poolName();
      const bounds = { ...BOUNDS, maxDepth: 2 };
      await store.arrive(pool, ticket("busy", { slots: 1 }), bounds, T0);
      await store.arrive(pool, ticket("s1", { rank: 1, slots: 1 }), bounds, T0);
      await store.arrive(pool, ticket("batch", { rank: 2, slots: 1, sheddable: true }), bounds, T0);
      assert.equal(
        await store.arrive(pool, ticket("late-batch", { rank: 2, slots: 1, sheddable: true }), bounds, T0),
        "full",
      );
      assert.equal(await store.arrive(pool, ticket("c1", { rank: 0, slots: 1 }), bounds, T0), "queued");
      assert.deepEqual(await store.poll(pool, ["batch", "s1", "c1"], bounds, T0), [
        "gone",
        "queued",
        "queued",
      ]);
      // Nothing sheddable left below a standard ticket: full.
      assert.equal(await store.arrive(pool, ticket("s2", { rank: 1, slots: 1 }), bounds, T0), "full");
    });

    it("forgets expired tickets and slots whose lease ran out", async () => {
      const store = makeStore();
      const pool = poolName();
      await store.arrive(pool, ticket("held", { slots: 1 }), BOUNDS, T0);
      await store.arrive(pool, ticket("short", { slots: 1, expiresAt: T0 + 100 }), BOUNDS, T0);
      await store.arrive(pool, ticket("long", { slots: 1, expiresAt: T0 + 120_000 }), BOUNDS, T0);
      assert.deepEqual(await store.poll(pool, ["short", "long"], BOUNDS, T0 + 200), ["gone", "queued"]);
      // The holder's replica died: its lease ends and the slot goes to the next.
      assert.deepEqual(await store.poll(pool, ["long"], BOUNDS, T0 + BOUNDS.leaseMs), ["admitted"]);
    });

    it("lets a waiting ticket leave: those behind it move up", async () => {
      const store = makeStore();
      const pool = poolName();
      await store.arrive(pool, ticket("held", { slots: 2 }), BOUNDS, T0);
      await store.arrive(pool, ticket("held2", { slots: 2 }), BOUNDS, T0);
      await store.arrive(pool, ticket("first", { slots: 2, cost: 1 }), BOUNDS, T0);
      await store.arrive(pool, ticket("second", { slots: 2, team: "b", cost: 2 }), BOUNDS, T0);
      await store.release(pool, "held");
      await store.leave(pool, "first");
      assert.deepEqual(await store.poll(pool, ["second"], BOUNDS, T0), ["admitted"]);
    });
  });
}

contract("memory", () => new MemoryQueueStore());

describe("redis", () => {
  let redis: RedisServer;
  const clients: Array<ReturnType<typeof connectRedis>> = [];
  const redisStore = (classes: number): QueueStore => {
    const client = connectRedis({ url: redis.url, keyPrefix: "test", commandTimeoutMs: 2000 }, () => {});
    clients.push(client);
    return new RedisQueueStore(client, "test", () => classes);
  };
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const c of clients) c.disconnect();
    await redis?.stop();
  });

  // The client connects before its first command (fail fast while offline): wait for it.
  const ready = (store: QueueStore): QueueStore => {
    const client = clients[clients.length - 1]!;
    const connected = new Promise<void>((resolve) =>
      client.status === "ready" ? resolve() : client.once("ready", () => resolve()),
    );
    const wrap =
      <A extends unknown[], R>(f: (...args: A) => Promise<R>) =>
      async (...args: A) => {
        await connected;
        return f(...args);
      };
    return {
      arrive: wrap(store.arrive.bind(store)),
      poll: wrap(store.poll.bind(store)),
      leave: wrap(store.leave.bind(store)),
      release: wrap(store.release.bind(store)),
    };
  };
  contract("redis", () => ready(redisStore(3)));

  it("gives the memory store's answers on any sequence of operations, and never admits beyond the slots", async () => {
    const store = ready(redisStore(3));
    type Op =
      | {
          kind: "arrive";
          rank: number;
          team: string;
          cost: number;
          share: number;
          sheddable: boolean;
          ttl: number;
        }
      | { kind: "poll" }
      | { kind: "release"; pick: number }
      | { kind: "leave"; pick: number }
      | { kind: "tick"; ms: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        kind: fc.constant("arrive" as const),
        rank: fc.integer({ min: 0, max: 2 }),
        team: fc.constantFrom("a", "b", "c"),
        cost: fc.integer({ min: 1, max: 50 }),
        share: fc.constantFrom(1, 0.5),
        sheddable: fc.boolean(),
        ttl: fc.integer({ min: 50, max: 5000 }),
      }),
      fc.record({ kind: fc.constant("poll" as const) }),
      fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant("leave" as const), pick: fc.nat() }),
      fc.record({ kind: fc.constant("tick" as const), ms: fc.integer({ min: 1, max: 2000 }) }),
    );
    const maxInFlight = 3;
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        const memory = new MemoryQueueStore();
        const pool = poolName();
        const bounds = { maxDepth: 4, leaseMs: 3000 };
        let now = T0;
        let n = 0;
        const waiting: Ticket[] = [];
        const admitted = new Map<string, number>(); // id → lease end
        const settle = (t: Ticket, state: string) => {
          if (state === "admitted") admitted.set(t.id, now + bounds.leaseMs);
          if (state !== "queued") waiting.splice(waiting.indexOf(t), 1);
        };
        for (const o of ops) {
          if (o.kind === "arrive") {
            const t: Ticket = {
              id: `t${++n}`,
              rank: o.rank,
              team: o.team,
              cost: o.cost,
              // Shares never grow down the classes (the policy checks it).
              slots: Math.max(1, Math.floor((o.rank === 2 ? 0.5 : o.rank === 1 ? o.share : 1) * maxInFlight)),
              sheddable: o.sheddable,
              expiresAt: now + o.ttl,
            };
            const [m, r] = [
              await memory.arrive(pool, t, bounds, now),
              await store.arrive(pool, t, bounds, now),
            ];
            assert.equal(r, m, `arrive ${t.id}`);
            if (m !== "full") waiting.push(t);
            settle(t, m === "full" ? "gone" : m);
          } else if (o.kind === "poll" && waiting.length > 0) {
            const list = [...waiting];
            const ids = list.map((t) => t.id);
            const [m, r] = [
              await memory.poll(pool, ids, bounds, now),
              await store.poll(pool, ids, bounds, now),
            ];
            assert.deepEqual(r, m, "poll");
            m.forEach((s, i) => settle(list[i]!, s));
          } else if (o.kind === "release" && admitted.size > 0) {
            const id = [...admitted.keys()][o.pick % admitted.size]!;
            admitted.delete(id);
            await memory.release(pool, id);
            await store.release(pool, id);
          } else if (o.kind === "leave" && waiting.length > 0) {
            const t = waiting[o.pick % waiting.length]!;
            waiting.splice(waiting.indexOf(t), 1);
            await memory.leave(pool, t.id);
            await store.leave(pool, t.id);
          } else if (o.kind === "tick") {
            now += o.ms;
          }
          for (const [id, end] of admitted) if (end <= now) admitted.delete(id);
          assert.ok(admitted.size <= maxInFlight, `at most ${maxInFlight} admitted, not ${admitted.size}`);
        }
      }),
      { numRuns: 150 },
    );
  });
});
