/** Scheduling arm "Envoy least-request alone": pool-a without `scheduling`; Envoy's balancer decides. */
import type { SchedulingArm } from "../lib/scheduling.js";

export const leastRequest: SchedulingArm = {
  id: "least-request",
  label: "Envoy least-request alone",
  scheduling: undefined,
};
