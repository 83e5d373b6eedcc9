/**
 * The policy: its schema (schema.ts), loading (load.ts), compilation into lookups for the hot path
 * (compile.ts, composing pii/ and guardrails/ for their sections), secrets (secrets.ts) and the check of
 * pools against Envoy's config (envoy-check.ts). This module is the public surface.
 */
export type { Alias, ApiKey, Guardrail, LimitRule, Model, Policy, Pool } from "./types.js";
export { PolicyError, type PolicyProblem } from "./error.js";
export { loadPolicy, parsePolicy, type LoadPolicyOptions } from "./load.js";
export { sha256Hex } from "./secrets.js";
