/** Row "envoy + extproc": our gateway with the core policy (authenticate, route, account usage, audit). */
import { startExtprocRow } from "../lib/extproc-row.js";
import type { Scenario } from "../lib/scenario.js";

export const envoyExtproc: Scenario = {
  id: "envoy+extproc",
  label: "envoy + extproc",
  description:
    "the core gateway: deploy/policy.yaml with no limits, no pii section and no guardrails (extproc authenticates, routes, accounts usage and audits)",
  unavailable: () => undefined,
  start: (env) => startExtprocRow(env, { expect: { rateLimitRequests: null, pii: false } }),
};
