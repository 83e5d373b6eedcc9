/** Every row of the gateway benchmark, in the order the tables show them. */
import type { Scenario } from "../lib/scenario.js";
import { aiGateway } from "./ai-gateway.js";
import { direct } from "./direct.js";
import { envoyExtprocQuotasPii } from "./envoy-extproc-quotas-pii.js";
import { envoyExtprocTracing } from "./envoy-extproc-tracing.js";
import { envoyExtproc } from "./envoy-extproc.js";
import { envoy } from "./envoy.js";
import { litellm } from "./litellm.js";

export const SCENARIOS: readonly Scenario[] = [
  direct,
  envoy,
  envoyExtproc,
  envoyExtprocQuotasPii,
  envoyExtprocTracing,
  litellm,
  aiGateway,
];

/** The row every "added" figure is measured from. */
export const BASELINE = envoy.id;
/** Our gateway's core row: the bars are judged on it, and every row's ratios are to it. */
export const OURS = envoyExtproc.id;
