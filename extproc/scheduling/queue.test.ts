import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pino from "pino";
import { GatewayError } from "../errors/index.js";
import type { PriorityClass } from "./classes.js";
import { PoolQueues, QueueAbandoned, type QueueEvents, type QueueRequest, type ShedReason } from "./queue.js";
import { MemoryQueueStore, type QueueStore } from "./queue-store.js";

const critical: PriorityClass = {
  name: "critical",
  rank: 0,
  sheddable: false,
  maxShare: 1,
  maxWaitMs: undefined,
};
const batch: PriorityClass = { name: "batch", rank: 1, sheddable: true, maxShare: 0.5, maxWaitMs: undefined };

/** Queues whose events are recorded. */
function queues(shared?: QueueStore) {
  const sheds: Array<[string, ShedReason]> = [];
  const waits: number[] = [];
  let inFlight = 0;
  const events: QueueEvents = {
    waiting: () => {},
    admitted: (_pool, _cls, seconds) => waits.push(seconds),
    inFlight: (_pool, delta) => (inFlight += delta),
    shed: (_pool, cls, reason) => sheds.push([cls, reason]),
  };
  const q = new PoolQueues({ shared, events, logger: pino({ level: "silent" }), now: Date.now, pollMs: 5 });
  return { q, sheds, waits, inFlight: () => inFlight };
}

function request(
  fields: Partial<QueueRequest> & { maxInFlight?: number; maxDepth?: number; maxWaitMs?: number } = {},
) {
  let askedForTime = 0;
  const controller = new AbortController();
  const { maxInFlight = 2, maxDepth = 8, maxWaitMs = 2000, ...rest } = fields;
  const req: QueueRequest = {
    pool: "pool-a",
    queue: { maxInFlight, maxDepth, maxWaitMs },
    cls: critical,
    team: "a",
    weight: 1,
    tokens: 100,
    quota: { leaseSeconds: 900, onStoreFailure: "fail-closed", replicas: 2 },
    signal: controller.signal,
    waiting: () => askedForTime++,
    ...rest,
  };
  return { req, abort: () => controller.abort(), askedForTime: () => askedForTime };
}

/** The refusal `promise` rejects with. */
async function refusal(promise: Promise<unknown>): Promise<GatewayError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof GatewayError, String(err));
    return err;
  }
  assert.fail("expected a refusal");
}

describe("PoolQueues", () => {
  it("admits at once while slots are free, without asking Envoy for time; a freed slot lets the next in", async () => {
    const { q, waits, inFlight } = queues();
    const first = request();
    const a = await q.enter(first.req);
    const b = await q.enter(request().req);
    assert.equal(first.askedForTime(), 0);
    assert.equal(inFlight(), 2);
    const third = request();
    const waiting = q.enter(third.req);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(third.askedForTime(), 1, "a waiting request asks for more time, once");
    a.release();
    a.release(); // idempotent: frees one slot, not two
    const c = await waiting;
    assert.ok(c.queuedMs >= 15, `waited ${c.queuedMs} ms`);
    assert.equal(c.className, "critical");
    assert.equal(inFlight(), 2);
    assert.equal(waits.length, 3);
    b.release();
    c.release();
    assert.equal(inFlight(), 0);
    q.close();
  });

  it("refuses a sheddable class with 429 pool_busy and a non-sheddable one with 503 pool_saturated, both with Retry-After", async () => {
    const { q, sheds } = queues();
    const held = [await q.enter(request({ maxInFlight: 1 }).req)];
    const shed = await refusal(q.enter(request({ maxInFlight: 1, maxWaitMs: 30, cls: batch }).req));
    assert.equal(shed.status, 429);
    assert.equal(shed.code, "pool_busy");
    assert.match(shed.message, /no slot came free within 30 ms \(priority class batch\)/);
    const saturated = await refusal(q.enter(request({ maxInFlight: 1, maxWaitMs: 30 }).req));
    assert.equal(saturated.status, 503);
    assert.equal(saturated.code, "pool_saturated");
    for (const e of [shed, saturated]) {
      const retryAfter = Number(e.headers.find(([h]) => h === "retry-after")?.[1]);
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    }
    assert.deepEqual(sheds, [
      ["batch", "timeout"],
      ["critical", "timeout"],
    ]);
    held.forEach((s) => s.release());
    q.close();
  });

  it("refuses at once when the queue is full, and a higher class pushes a sheddable request out", async () => {
    const { q, sheds } = queues();
    const opts = { maxInFlight: 1, maxDepth: 1 };
    const held = await q.enter(request(opts).req);
    const pushed = q.enter(request({ ...opts, cls: batch }).req);
    const full = await refusal(q.enter(request({ ...opts, cls: batch }).req));
    assert.equal(full.code, "pool_busy");
    assert.match(full.message, /its queue is full \(1 waiting\)/);
    const vip = q.enter(request(opts).req);
    const out = await refusal(pushed);
    assert.equal(out.status, 429);
    assert.match(out.message, /a request of a higher priority class took its place/);
    held.release();
    (await vip).release();
    assert.deepEqual(sheds, [
      ["batch", "queue_full"],
      ["batch", "displaced"],
    ]);
    q.close();
  });

  it("forgets a request whose client left: it holds no place and no slot", async () => {
    const { q, inFlight, sheds } = queues();
    const held = await q.enter(request({ maxInFlight: 1 }).req);
    const leaving = request({ maxInFlight: 1 });
    const gone = q.enter(leaving.req).catch((err: unknown) => err);
    const next = q.enter(request({ maxInFlight: 1 }).req);
    leaving.abort();
    assert.ok((await gone) instanceof QueueAbandoned);
    held.release();
    const slot = await next;
    assert.equal(inFlight(), 1, "the request that left took no slot");
    assert.deepEqual(sheds, [], "a client that left is not a shed");
    slot.release();
    q.close();
  });

  it("fails closed when the shared store fails, or queues locally with the replica's share", async () => {
    const broken: QueueStore = {
      arrive: () => Promise.reject(new Error("connection lost")),
      poll: () => Promise.reject(new Error("connection lost")),
      leave: () => Promise.reject(new Error("connection lost")),
      release: () => Promise.reject(new Error("connection lost")),
    };
    const closed = queues(broken);
    const err = await refusal(closed.q.enter(request().req));
    assert.equal(err.code, "quota_store_unavailable");
    assert.deepEqual(closed.sheds, [["critical", "store_unavailable"]]);

    const local = queues(broken);
    const quota = { leaseSeconds: 900, onStoreFailure: "local" as const, replicas: 2 };
    // maxInFlight 4 over 2 replicas: this one runs 2.
    const slots = [await local.q.enter(request({ maxInFlight: 4, quota }).req)];
    slots.push(await local.q.enter(request({ maxInFlight: 4, quota }).req));
    const third = await refusal(local.q.enter(request({ maxInFlight: 4, maxWaitMs: 30, quota }).req));
    assert.equal(third.code, "pool_saturated");
    slots.forEach((s) => s.release());
    closed.q.close();
    local.q.close();
  });

  it("shares one store between replicas: a slot freed by one admits the other's waiting request", async () => {
    const store = new MemoryQueueStore();
    const one = queues(store);
    const two = queues(store);
    const held = await one.q.enter(request({ maxInFlight: 1 }).req);
    const waiting = two.q.enter(request({ maxInFlight: 1 }).req);
    await new Promise((r) => setTimeout(r, 20));
    held.release();
    const slot = await waiting;
    assert.ok(slot.queuedMs > 0);
    slot.release();
    one.q.close();
    two.q.close();
  });
});
