/**
 * Scheduling arm "gateway scheduler": pool-a with `scheduling` (50 ms reads, prefix affinity) and a queue
 * admitting as many requests as the servers run sequences, so the rest wait in the gateway, in class order,
 * instead of in the servers' first-come queues; classes: the critical team first, batch sheddable.
 */
import {
  BATCH_TEAM,
  CRITICAL_TEAM,
  POOL_SEQUENCES,
  SERVER_CAPACITY,
  type SchedulingArm,
} from "../lib/scheduling.js";

export const scheduler: SchedulingArm = {
  id: "scheduler",
  label: "gateway scheduler",
  scheduling: {
    intervalMs: 50,
    staleAfterIntervals: 3,
    // The servers' sequences: a full one gets no request while the other has a free sequence.
    maxSequences: SERVER_CAPACITY.maxSequences,
    affinity: { prefixChars: 1024, queueMargin: 2 },
    queue: { maxInFlight: POOL_SEQUENCES, maxDepth: 256, maxWaitMs: 10_000 },
  },
  priority: {
    classes: [
      { name: "critical", sheddable: false, maxShare: 1 },
      // Batch is admitted while the pool's requests in flight (every class's) are under 75 % of the slots:
      // two sequences stay free for critical requests arriving. (0.5 left the servers a third idle in a
      // 3 s run: 17 completions/s against 28 for least-request, since critical traffic fills part of the
      // half batch may not exceed.) It waits at most 500 ms: with the benchmark's 1 s time-to-first-token
      // SLO, a batch request queued longer would be served too late to count, and a prompt 429 lets its
      // client back off instead.
      { name: "batch", sheddable: true, maxShare: 0.75, maxWaitMs: 500 },
    ],
    default: "batch",
    rules: [
      { scope: { team: CRITICAL_TEAM }, class: "critical" },
      { scope: { team: BATCH_TEAM }, class: "batch" },
    ],
  },
};
