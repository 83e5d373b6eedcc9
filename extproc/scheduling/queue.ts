/**
 * Admission to pools with a queue (docs/scheduling.md, "Priority and fair share"): a request goes on when
 * its pool has a free slot and nothing ahead of it waits, or waits its turn (higher class first, fair
 * between teams) up to its class's longest wait. Refused, it gets 429 and Retry-After when its class is
 * sheddable, 503 (the pool is saturated) otherwise. With quotas in Redis the slots and the order are
 * shared by every replica; the failure policy is the quotas' (`quota.onStoreFailure`).
 */
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import { GatewayError } from "../errors/index.js";
import type { PriorityClass } from "./classes.js";
import type { QueueSettings } from "./compile.js";
import {
  MemoryQueueStore,
  type QueueBounds,
  type QueueStore,
  type Ticket,
  type TicketState,
} from "./queue-store.js";

/** A request asking to enter a queued pool. */
export interface QueueRequest {
  readonly pool: string;
  readonly queue: QueueSettings;
  readonly cls: PriorityClass;
  readonly team: string;
  /** The team's fair-share weight. */
  readonly weight: number;
  /** Estimated tokens (prompt and output cap): the request's fair-share cost. */
  readonly tokens: number;
  /** The policy's quota settings, which the shared queues follow. */
  readonly quota: SharedStoreSettings;
  /** Aborts the wait (the client went away). */
  readonly signal: AbortSignal;
  /** Called once, when the request starts waiting (extproc asks Envoy for more time). */
  readonly waiting: () => void;
}

/** A slot of a pool, held until the request ends. */
export interface Slot {
  readonly className: string;
  /** Milliseconds spent waiting for it. */
  readonly queuedMs: number;
  /** Frees the slot (idempotent). */
  release(): void;
}

/** What the queues take from the policy's `quota` section. */
export interface SharedStoreSettings {
  /** A slot whose request vanished (its replica died) is freed after this long. */
  readonly leaseSeconds: number;
  /** When Redis is unreachable: refuse (503), or queue locally with a share of each pool. */
  readonly onStoreFailure: "fail-closed" | "local";
  /** Replicas sharing the pools (each one's share while Redis is unreachable). */
  readonly replicas: number;
}

/** Why a queue refused a request (the `reason` label of llm_gateway_queue_shed_total). */
export type ShedReason = "queue_full" | "displaced" | "timeout" | "store_unavailable";

/** What the queues report (extproc's metrics, docs/metrics.md). */
export interface QueueEvents {
  /** Requests this replica holds waiting in `pool`'s queue changed by `delta`. */
  readonly waiting: (pool: string, cls: string, delta: 1 | -1) => void;
  /** A request got a slot after waiting `seconds` (0: at once). */
  readonly admitted: (pool: string, cls: string, seconds: number) => void;
  /** This replica's requests holding a slot of `pool` changed by `delta`. */
  readonly inFlight: (pool: string, delta: 1 | -1) => void;
  readonly shed: (pool: string, cls: string, reason: ShedReason) => void;
}

/** One of this replica's waiting requests. */
interface Waiter {
  readonly ticket: Ticket;
  readonly store: QueueStore;
  readonly bounds: QueueBounds;
  readonly settle: (state: "admitted" | "gone") => void;
}

/** Options for {@link PoolQueues}. */
export interface PoolQueuesOptions {
  /** The queues shared by all replicas (Redis), or undefined for this replica's own. */
  readonly shared: QueueStore | undefined;
  readonly events: QueueEvents;
  readonly logger: Logger;
  /** Epoch milliseconds (the shared store's clock: replicas' clocks must agree, as for quotas). */
  readonly now: () => number;
  /** How often a replica asks a shared store whether its waiting requests' turn came. */
  readonly pollMs?: number;
}

/** Thrown by {@link PoolQueues.enter} when the request's signal aborted its wait (its client left). */
export class QueueAbandoned extends Error {
  constructor(pool: string) {
    super(`the client left while queued for pool '${pool}'`);
  }
}

/** The longest Retry-After the queues suggest, in seconds. */
const MAX_RETRY_AFTER_S = 60;

/** The queues of every pool that has one. */
export class PoolQueues {
  private readonly local = new MemoryQueueStore();
  /** Per pool: this replica's waiters, in arrival order. */
  private readonly waiters = new Map<string, Map<string, Waiter>>();
  /** Pools being polled now, and those to poll again once that ends. */
  private readonly polling = new Set<string>();
  private readonly pollAgain = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** Per pool: mean time a slot is held, ms (exponentially weighted), for Retry-After. */
  private readonly holdMs = new Map<string, number>();
  private readonly pollMs: number;

  constructor(private readonly options: PoolQueuesOptions) {
    this.pollMs = options.pollMs ?? 10;
  }

  /** Waits for a slot of the request's pool; throws the refusal (429 or 503) when none comes in time. */
  async enter(request: QueueRequest): Promise<Slot> {
    const { pool, queue, cls, quota } = request;
    const now = this.options.now();
    const maxWaitMs = cls.maxWaitMs ?? queue.maxWaitMs;
    const slots = Math.max(1, Math.floor(cls.maxShare * queue.maxInFlight));
    const ticket: Ticket = {
      // Not the request id: a client may choose that (Envoy keeps a client's x-request-id).
      id: randomUUID(),
      rank: cls.rank,
      team: request.team,
      cost: Math.max(1, request.tokens) / request.weight,
      slots,
      sheddable: cls.sheddable,
      // The store forgets a ticket a little after its owner would have given up.
      expiresAt: now + maxWaitMs + 1000,
    };
    const bounds: QueueBounds = { maxDepth: queue.maxDepth, leaseMs: quota.leaseSeconds * 1000 };
    let store = this.options.shared ?? this.local;
    let state: TicketState;
    try {
      state = await store.arrive(pool, ticket, bounds, now);
    } catch (err) {
      if (!this.options.shared || quota.onStoreFailure === "fail-closed") {
        this.options.logger.warn({ err: (err as Error).message, pool }, "queue store unavailable");
        this.shed(request, "store_unavailable");
        throw new GatewayError(
          "quota_store_unavailable",
          "The shared queue store is unavailable; the request was not admitted.",
        );
      }
      // Each replica gets its share of the pool, so together they stay within it.
      store = this.local;
      const share = { ...ticket, slots: Math.max(1, Math.floor(slots / quota.replicas)) };
      state = await store.arrive(pool, share, bounds, now);
    }
    if (state === "admitted") {
      if (!request.signal.aborted) return this.slot(request, store, ticket.id, now);
      // The client left while the store answered: its slot goes straight back.
      void this.free(store, pool, ticket.id);
      throw new QueueAbandoned(pool);
    }
    if (state !== "queued") throw this.refusal(request, "queue_full");

    request.waiting();
    const { events } = this.options;
    events.waiting(pool, cls.name, 1);
    const outcome = await new Promise<"admitted" | "gone" | "timeout" | "abandoned">((resolve) => {
      let done = false;
      const finish = (result: "admitted" | "gone" | "timeout" | "abandoned") => {
        if (done) return;
        done = true;
        clearTimeout(deadline);
        request.signal.removeEventListener("abort", abandon);
        this.waiters.get(pool)?.delete(ticket.id);
        if (result === "timeout" || result === "abandoned") void this.leave(store, pool, ticket.id);
        resolve(result);
      };
      const deadline = setTimeout(() => finish("timeout"), maxWaitMs);
      const abandon = () => finish("abandoned");
      request.signal.addEventListener("abort", abandon);
      let waiting = this.waiters.get(pool);
      if (!waiting) this.waiters.set(pool, (waiting = new Map()));
      waiting.set(ticket.id, {
        ticket,
        store,
        bounds,
        settle: (s) => {
          // Admitted after giving up: the slot goes straight back.
          if (done && s === "admitted") void this.free(store, pool, ticket.id);
          finish(s);
        },
      });
      if (request.signal.aborted) abandon();
      this.startPolling();
    });
    events.waiting(pool, cls.name, -1);
    if (outcome === "admitted" && request.signal.aborted) void this.free(store, pool, ticket.id);
    // The client left: nobody to answer, and no refusal to count.
    if (outcome === "abandoned" || request.signal.aborted) throw new QueueAbandoned(pool);
    if (outcome === "admitted") return this.slot(request, store, ticket.id, now);
    if (outcome === "gone") {
      // Pushed out by a higher class, or forgotten by the store (expired): either way, not served.
      throw this.refusal(request, this.options.now() < ticket.expiresAt - 1000 ? "displaced" : "timeout");
    }
    throw this.refusal(request, "timeout");
  }

  /** Stops polling; waiting requests time out as they would. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private slot(request: QueueRequest, store: QueueStore, id: string, since: number): Slot {
    const { events } = this.options;
    const { pool, cls } = request;
    const admittedAt = this.options.now();
    const queuedMs = admittedAt - since;
    events.admitted(pool, cls.name, queuedMs / 1000);
    events.inFlight(pool, 1);
    let released = false;
    return {
      className: cls.name,
      queuedMs,
      release: () => {
        if (released) return;
        released = true;
        events.inFlight(pool, -1);
        const held = this.options.now() - admittedAt;
        this.holdMs.set(pool, 0.9 * (this.holdMs.get(pool) ?? held) + 0.1 * held);
        void this.free(store, pool, id);
      },
    };
  }

  /** The refusal for `reason`: 429 for a sheddable class, 503 (saturated) for any other. */
  private refusal(request: QueueRequest, reason: Exclude<ShedReason, "store_unavailable">): GatewayError {
    this.shed(request, reason);
    const { pool, cls, queue } = request;
    const waiting = this.waiters.get(pool)?.size ?? 0;
    const holdS = (this.holdMs.get(pool) ?? 1000) / 1000;
    // About the time for the requests waiting here to be served, at the pool's pace.
    const retryAfter = Math.min(
      MAX_RETRY_AFTER_S,
      Math.max(1, Math.ceil((holdS * (waiting + 1)) / queue.maxInFlight)),
    );
    const why =
      reason === "queue_full"
        ? `its queue is full (${queue.maxDepth} waiting)`
        : reason === "displaced"
          ? "a request of a higher priority class took its place in the queue"
          : `no slot came free within ${cls.maxWaitMs ?? queue.maxWaitMs} ms`;
    const message = `Pool '${pool}' is at capacity: ${why} (priority class ${cls.name}). Retry after ${retryAfter} s.`;
    return new GatewayError(cls.sheddable ? "pool_busy" : "pool_saturated", message, null, [
      ["retry-after", String(retryAfter)],
    ]);
  }

  private shed(request: QueueRequest, reason: ShedReason): void {
    this.options.events.shed(request.pool, request.cls.name, reason);
  }

  /** Frees a slot and gives the pool's waiters their turn. */
  private async free(store: QueueStore, pool: string, id: string): Promise<void> {
    try {
      await store.release(pool, id);
    } catch (err) {
      // The slot's lease ends it anyway; say so, since until then the pool has one slot fewer.
      this.options.logger.warn(
        { err: (err as Error).message, pool },
        "queue slot release failed; its lease will end it",
      );
    }
    this.poll(pool);
  }

  private async leave(store: QueueStore, pool: string, id: string): Promise<void> {
    try {
      await store.leave(pool, id);
    } catch {
      // The store forgets the ticket when it expires.
    }
    this.poll(pool);
  }

  /** While any request waits: poll every pollMs (other replicas free slots too; leases and tickets expire). */
  private startPolling(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      let any = false;
      for (const [pool, waiting] of this.waiters) {
        if (waiting.size === 0) continue;
        any = true;
        this.poll(pool);
      }
      if (!any) this.close();
    }, this.pollMs).unref();
  }

  /** Asks the stores whether the pool's waiters' turn came; one poll per pool at a time. */
  private poll(pool: string): void {
    if (this.polling.has(pool)) {
      this.pollAgain.add(pool);
      return;
    }
    const waiting = this.waiters.get(pool);
    if (!waiting || waiting.size === 0) return;
    this.polling.add(pool);
    const byStore = new Map<QueueStore, Waiter[]>();
    for (const w of waiting.values()) {
      const list = byStore.get(w.store) ?? [];
      list.push(w);
      byStore.set(w.store, list);
    }
    const now = this.options.now();
    void Promise.all(
      [...byStore].map(async ([store, list]) => {
        try {
          const ids = list.map((w) => w.ticket.id);
          const states = await store.poll(pool, ids, list[0]!.bounds, now);
          states.forEach((s, i) => {
            if (s === "admitted" || s === "gone") list[i]!.settle(s);
          });
        } catch (err) {
          this.options.logger.debug({ err: (err as Error).message, pool }, "queue poll failed; retrying");
        }
      }),
    ).finally(() => {
      this.polling.delete(pool);
      if (this.pollAgain.delete(pool)) this.poll(pool);
    });
  }
}
