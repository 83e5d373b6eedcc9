/**
 * Scheduling arm "Envoy least-request alone": pool-a without `scheduling` and no `priority`; Envoy's
 * balancer decides, and the two classes of traffic are alike to it.
 */
import type { SchedulingArm } from "../lib/scheduling.js";

export const leastRequest: SchedulingArm = {
  id: "least-request",
  label: "Envoy least-request alone",
  scheduling: undefined,
  priority: undefined,
};
