/** Scheduling arm "gateway scheduler": pool-a with `scheduling` (50 ms reads, prefix affinity). */
import type { SchedulingArm } from "../lib/scheduling.js";

export const scheduler: SchedulingArm = {
  id: "scheduler",
  label: "gateway scheduler",
  scheduling: { intervalMs: 50, staleAfterIntervals: 3, affinity: { prefixChars: 1024, queueMargin: 2 } },
};
