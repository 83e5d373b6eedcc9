/**
 * Row "envoy + extproc + quotas + PII": the core gateway plus a limit rule that applies to every request
 * (counters in extproc's memory) and PII scanning with every built-in detector, requests and responses.
 */
import { BUILTIN_ENTITIES } from "../../extproc/pii/detectors.js";
import { DEMO_POOL_B_KEY } from "../../test/harness/index.js";
import type { PolicyDoc } from "../../test/harness/policy.js";
import { startExtprocRow } from "../lib/extproc-row.js";
import { BENCH_KEY, MODEL } from "../lib/request.js";
import type { Scenario } from "../lib/scenario.js";

/** The id of the benchmark's key (sk-demo-research) in deploy/policy.yaml. */
const BENCH_KEY_ID = "research-notebooks";

/**
 * The row's one limit rule (docs/quotas.md). It applies to every benchmark request and sets a
 * requests and a tokens bucket, a calendar-day token window, a concurrency lease and a monthly budget, all
 * far beyond what a run can use: every request is token-counted, reserved against five counters and
 * settled with its usage, and none is ever rejected.
 */
const QUOTA_LIMIT = {
  id: "benchmark",
  scope: { key: BENCH_KEY_ID },
  requestsPerMinute: 1_000_000_000,
  tokensPerMinute: 1_000_000_000_000,
  tokensPerDay: 1_000_000_000_000_000,
  concurrentRequests: 1_000_000,
  budgetPerMonth: 1_000_000_000,
} as const;

/** Price given to any model the sample policy leaves unpriced (a budget needs every model it counts priced). */
const FALLBACK_PRICE = { input: 0.1, output: 0.3 } as const;

/** The actions the row allows: both let the request through, so every benchmark request succeeds. */
const PII_ROW_ACTIONS = new Set(["log", "redact"]);

/** {@link QUOTA_LIMIT} as the policy's only limit, counters in extproc's memory. */
function addQuotaLimit(doc: PolicyDoc): void {
  doc.limits = [QUOTA_LIMIT];
  // A budget scoped to a key counts every model, so every model needs a price (the sample has them).
  for (const model of Object.values(doc.models as Record<string, { price?: unknown }>))
    model.price ??= { ...FALLBACK_PRICE };
  doc.quota = { store: "memory" };
}

/**
 * The sample's `pii` and `guardrails` sections as they are, except that every built-in detector ends up
 * on with `log` or `redact` for every request: in each rule, `block`, `mask` and `hash` become `redact`
 * and `off` becomes `log` (the sample's research rule switches IPv4/IPv6 off for the benchmark's key);
 * built-ins no unscoped rule names get `log` in a rule put first; and every rule scans responses.
 */
function addAllDetectorsPii(doc: PolicyDoc, sample: PolicyDoc): void {
  type Rule = { scope?: unknown; actions?: Record<string, string>; responses?: boolean };
  const pii = sample.pii as { rules?: Rule[] } | undefined;
  if (!pii) throw new Error("deploy/policy.yaml has no pii section for the PII row to keep");
  const rules = (pii.rules ??= []);
  for (const rule of rules) {
    const actions = (rule.actions ??= {});
    for (const [entity, action] of Object.entries(actions))
      if ((BUILTIN_ENTITIES as readonly string[]).includes(entity) && !PII_ROW_ACTIONS.has(action))
        actions[entity] = action === "off" ? "log" : "redact";
    rule.responses = true;
  }
  const unnamed = BUILTIN_ENTITIES.filter(
    (entity) => !rules.some((rule) => rule.scope === undefined && rule.actions![entity] !== undefined),
  );
  if (unnamed.length > 0)
    rules.unshift({ actions: Object.fromEntries(unnamed.map((e) => [e, "log"])), responses: true });
  doc.pii = pii;
  doc.guardrails = sample.guardrails;
}

/**
 * What keeps the row's policy from scanning with every built-in detector for the benchmark's key, by
 * extproc's own resolution.
 */
async function piiPolicyProblems(file: string): Promise<string[]> {
  const { loadPolicy, sha256Hex } = await import("../../extproc/policy/index.js");
  const { resolvePii } = await import("../../extproc/pii/index.js");
  const policy = loadPolicy(file, { env: { POOL_B_API_KEY: DEMO_POOL_B_KEY } });
  const key = policy.keysBySha256.get(sha256Hex(BENCH_KEY));
  if (!key) return [`${file}: no key for ${BENCH_KEY}`];
  const resolved = resolvePii(policy.pii, { keyId: key.id, team: key.team }, MODEL);
  const problems = BUILTIN_ENTITIES.flatMap((entity) => {
    const action = resolved?.actions.get(entity) ?? "off";
    return PII_ROW_ACTIONS.has(action) ? [] : [`${entity} resolves to ${action}`];
  });
  if (!resolved?.responses) problems.push("responses are not scanned");
  return problems.map((x) => `policy: ${x}`);
}

export const envoyExtprocQuotasPii: Scenario = {
  id: "envoy+extproc+quotas+pii",
  label: "envoy + extproc + quotas + PII",
  description:
    `the core gateway plus limit "${QUOTA_LIMIT.id}" on key ${BENCH_KEY_ID} (requests/min, tokens/min, tokens/day, concurrency, budget/month; never reached; counters in extproc's memory)` +
    ` and the sample's pii and guardrails sections with all ${BUILTIN_ENTITIES.length} built-in detectors on (log or redact, none block), responses scanned`,
  unavailable: () => undefined,
  start: (env) =>
    startExtprocRow(env, {
      edit: (doc, sample) => {
        addQuotaLimit(doc);
        addAllDetectorsPii(doc, sample);
      },
      expect: { rateLimitRequests: String(QUOTA_LIMIT.requestsPerMinute), pii: true },
      policyProblems: piiPolicyProblems,
    }),
};
