/**
 * Model-server-aware endpoint choice (docs/scheduling.md): each scheduled pool's endpoints are read at a
 * short interval ({@link PoolStateReader}); per request the picker chooses one by queue, KV usage and prefix
 * affinity, and extproc hands it to Envoy's override-host load balancer as a hint. No hint (nothing known)
 * leaves the choice to Envoy's least-request balancing.
 */
import { pickEndpoint, stringHash, type Pick } from "./picker.js";
import { PoolStateReader, type EndpointReport, type ReaderEvents } from "./reader.js";
import type { PoolScheduling } from "./compile.js";

export { compileScheduling, METRIC_PRESETS, MODEL_SERVERS } from "./compile.js";
export type { MetricNames, PoolScheduling, SchedulingSection } from "./compile.js";
export { pickEndpoint, type EndpointState, type Pick, type PickReason } from "./picker.js";
export type { EndpointReport } from "./reader.js";
export { compilePriorities, type Priorities, type PriorityClass } from "./classes.js";
export { PoolQueues, QueueAbandoned, type QueueEvents, type QueueRequest, type Slot } from "./queue.js";
export { MemoryQueueStore, type QueueStore } from "./queue-store.js";

/** The pools' schedulers, reconfigured with each policy. */
export class Scheduler {
  private readonly readers = new Map<string, { readonly key: string; readonly reader: PoolStateReader }>();

  /** `envoyAddresses(pool)`: the static endpoints of the pool's cluster in Envoy's bootstrap (none if unknown). */
  constructor(
    private readonly envoyAddresses: (pool: string) => readonly string[],
    private readonly events: ReaderEvents = {},
  ) {}

  /** Starts reading the pools in `pools`, stops reading the others; a pool whose settings did not change keeps its reader. */
  configure(pools: Iterable<PoolScheduling>): void {
    const wanted = new Map<string, PoolScheduling>();
    for (const p of pools) wanted.set(p.pool, p);
    for (const [pool, { key, reader }] of this.readers) {
      const next = wanted.get(pool);
      if (!next || JSON.stringify(next) !== key) {
        reader.stop();
        this.readers.delete(pool);
      }
    }
    for (const [pool, settings] of wanted) {
      if (this.readers.has(pool)) continue;
      const reader = new PoolStateReader(settings, this.envoyAddresses(pool), this.events);
      reader.start();
      this.readers.set(pool, { key: JSON.stringify(settings), reader });
    }
  }

  /**
   * The endpoint for a request to `pool`, or undefined when the pool is not scheduled. `prompt` gives the
   * text the model reads, in order (read only when the pool has prefix affinity).
   */
  pick(pool: string, prompt: () => string): Pick | undefined {
    const entry = this.readers.get(pool);
    if (!entry) return undefined;
    const { reader } = entry;
    const { affinity } = reader.settings;
    let key: number | undefined;
    if (affinity) {
      const text = prompt();
      // A prompt shorter than the prefix shares no long prefix worth a server's cache.
      if (text.length >= affinity.prefixChars) key = stringHash(text.slice(0, affinity.prefixChars));
    }
    const pick = pickEndpoint(reader.states(), key, {
      queueMargin: affinity?.queueMargin ?? 0,
      maxSequences: reader.settings.maxSequences,
    });
    if (pick.endpoint !== undefined) reader.assigned(pick.endpoint);
    return pick;
  }

  /** A request this replica sent to `endpoint` of `pool` (a pick of {@link pick}) has ended. */
  finished(pool: string, endpoint: string): void {
    this.readers.get(pool)?.reader.finished(endpoint);
  }

  /** Every scheduled endpoint's last read. */
  report(): EndpointReport[] {
    return [...this.readers.values()].flatMap(({ reader }) => reader.report());
  }

  close(): void {
    for (const { reader } of this.readers.values()) reader.stop();
    this.readers.clear();
  }
}
