/**
 * The admission queue's contract, shared by the in-memory and Redis stores (the same arithmetic, once in
 * TypeScript and once in Lua; queue-store.test.ts runs the same cases against both).
 *
 * Per pool: a set of admitted tickets, each with a lease (a ticket whose replica died stops counting when
 * its lease ends), and the waiting tickets in service order. The order is by class rank first, then by a
 * fair-share finish tag (start-time fair queueing): a ticket's tag is its start tag (the class's virtual
 * time, or the end of the team's previous ticket if later) plus its cost over its team's weight. A team
 * that sends much queues behind its own earlier requests; a team that sent little starts at the current
 * virtual time, so no team starves another by volume.
 *
 * A ticket is admitted when the pool's admitted count plus the tickets ahead of it is below its class's
 * slot count: so the order holds across replicas, each of which only ever asks about its own tickets.
 */

/** A request asking for a slot of a pool. */
export interface Ticket {
  /** Unique across replicas (the request id and a random part). */
  readonly id: string;
  /** Class rank: 0 is served first. */
  readonly rank: number;
  /** Fair-share flow: the team. */
  readonly team: string;
  /** Cost in the team's virtual time: estimated tokens over the team's weight. */
  readonly cost: number;
  /**
   * Admitted only while the pool's admitted count is below this (its class's share of maxInFlight).
   * Never larger for a lower class than for a higher one (the policy checks maxShare's order).
   */
  readonly slots: number;
  /** May be pushed out of a full queue by a higher class. */
  readonly sheddable: boolean;
  /** Epoch ms after which the store forgets it (its owner gives up before; this covers a dead owner). */
  readonly expiresAt: number;
}

/** A pool's bounds, as the store applies them. */
export interface QueueBounds {
  /** Waiting tickets at most. */
  readonly maxDepth: number;
  /** An admitted ticket's lease: released by then, or it stops counting. */
  readonly leaseMs: number;
}

/**
 * What became of a ticket: `admitted`; `queued` (waiting); `full` (not queued: the queue is at its depth
 * and holds nothing it may push out); `gone` (no longer waiting: pushed out by a higher class, or expired).
 */
export type TicketState = "admitted" | "queued" | "full" | "gone";

/** Where the queues live. */
export interface QueueStore {
  /** Admits `ticket` at once if it may go ahead, or queues it (pushing out a lower sheddable ticket if full). */
  arrive(pool: string, ticket: Ticket, bounds: QueueBounds, now: number): Promise<TicketState>;
  /** Admits, in order, those of the waiting tickets `ids` whose turn it is; one state per id. */
  poll(pool: string, ids: readonly string[], bounds: QueueBounds, now: number): Promise<TicketState[]>;
  /** A waiting ticket gives up (its client left, or its wait ran out). */
  leave(pool: string, id: string): Promise<void>;
  /** An admitted ticket's request ended: its slot is free. */
  release(pool: string, id: string): Promise<void>;
}

/** Fields of a waiting ticket the stores keep. */
interface Waiting {
  readonly id: string;
  /** Service order: class rank, then finish tag. */
  readonly rank: number;
  readonly finish: number;
  readonly start: number;
  readonly slots: number;
  readonly sheddable: boolean;
  readonly expiresAt: number;
}

/** One pool's state in memory. */
interface PoolState {
  /** Admitted ticket id → lease end (epoch ms). */
  readonly admitted: Map<string, number>;
  /** Waiting tickets in service order. */
  readonly waiting: Waiting[];
  /** Per class rank: virtual time (the start tag of the last ticket admitted). */
  readonly virtualTime: Map<number, number>;
  /** Per class rank and team: the finish tag of the team's last ticket. */
  readonly lastFinish: Map<string, number>;
}

/** Whether `a` is served before `b`. */
const before = (a: Waiting, b: Waiting): boolean =>
  a.rank !== b.rank ? a.rank < b.rank : a.finish !== b.finish ? a.finish < b.finish : a.id < b.id;

/** The queues of one extproc replica (no Redis, or Redis unreachable and policy says `local`). */
export class MemoryQueueStore implements QueueStore {
  private readonly pools = new Map<string, PoolState>();

  arrive(pool: string, ticket: Ticket, bounds: QueueBounds, now: number): Promise<TicketState> {
    const state = this.pool(pool, now);
    const flow = `${ticket.rank}:${ticket.team}`;
    const start = Math.max(state.virtualTime.get(ticket.rank) ?? 0, state.lastFinish.get(flow) ?? 0);
    const waiting: Waiting = {
      id: ticket.id,
      rank: ticket.rank,
      start,
      finish: start + ticket.cost,
      slots: ticket.slots,
      sheddable: ticket.sheddable,
      expiresAt: ticket.expiresAt,
    };
    const at = this.position(state, waiting);
    if (state.admitted.size + at < ticket.slots) {
      state.lastFinish.set(flow, waiting.finish);
      this.admit(state, waiting, bounds, now);
      return Promise.resolve("admitted");
    }
    if (state.waiting.length >= bounds.maxDepth) {
      const last = state.waiting[state.waiting.length - 1];
      if (!last || !last.sheddable || last.rank <= ticket.rank) return Promise.resolve("full");
      state.waiting.pop();
    }
    state.lastFinish.set(flow, waiting.finish);
    state.waiting.splice(this.position(state, waiting), 0, waiting);
    return Promise.resolve("queued");
  }

  poll(pool: string, ids: readonly string[], bounds: QueueBounds, now: number): Promise<TicketState[]> {
    const state = this.pool(pool, now);
    const index = new Map(state.waiting.map((w, i) => [w.id, i]));
    // Positions admitted by this poll: those behind them move up (as each Redis step sees it).
    const taken: number[] = [];
    const states = ids.map((id): TicketState => {
      const i = index.get(id);
      if (i === undefined || taken.includes(i)) return "gone";
      const ticket = state.waiting[i]!;
      const at = i - taken.filter((t) => t < i).length;
      if (state.admitted.size + at >= ticket.slots) return "queued";
      taken.push(i);
      this.admit(state, ticket, bounds, now);
      return "admitted";
    });
    if (taken.length > 0) {
      const live = state.waiting.filter((_, i) => !taken.includes(i));
      state.waiting.length = 0;
      state.waiting.push(...live);
    }
    return Promise.resolve(states);
  }

  leave(pool: string, id: string): Promise<void> {
    const state = this.pools.get(pool);
    const at = state ? state.waiting.findIndex((w) => w.id === id) : -1;
    if (at !== -1) state!.waiting.splice(at, 1);
    return Promise.resolve();
  }

  release(pool: string, id: string): Promise<void> {
    this.pools.get(pool)?.admitted.delete(id);
    return Promise.resolve();
  }

  /** Where `ticket` goes in the waiting order (binary search). */
  private position(state: PoolState, ticket: Waiting): number {
    let lo = 0;
    let hi = state.waiting.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (before(state.waiting[mid]!, ticket)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private admit(state: PoolState, ticket: Waiting, bounds: QueueBounds, now: number): void {
    state.admitted.set(ticket.id, now + bounds.leaseMs);
    if (ticket.start > (state.virtualTime.get(ticket.rank) ?? 0))
      state.virtualTime.set(ticket.rank, ticket.start);
  }

  /** The pool's state, without leases that ran out and tickets that expired. */
  private pool(pool: string, now: number): PoolState {
    let state = this.pools.get(pool);
    if (!state) {
      state = { admitted: new Map(), waiting: [], virtualTime: new Map(), lastFinish: new Map() };
      this.pools.set(pool, state);
    }
    for (const [id, leaseEnd] of state.admitted) if (leaseEnd <= now) state.admitted.delete(id);
    if (state.waiting.some((w) => w.expiresAt <= now)) {
      const live = state.waiting.filter((w) => w.expiresAt > now);
      state.waiting.length = 0;
      state.waiting.push(...live);
    }
    return state;
  }
}
