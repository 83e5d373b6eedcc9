import path from "node:path";
import { fileURLToPath } from "node:url";
import { OPS_FILES } from "./ops.js";

/** Repository root (this file is dist/deploy/render/files.js once built). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** The Helm chart's folder, repository-relative. */
export const CHART = "deploy/helm/llm-gateway";

/** The generated files and their sources, repository-relative. */
export const FILES = {
  envoySource: "envoy/envoy.yaml",
  envoyK8s: "deploy/kubernetes/base/envoy.yaml",
  envoyCompose: "deploy/compose/envoy.yaml",
  drainScript: "deploy/kubernetes/base/drain.sh",
  policySource: "deploy/policy.yaml",
  policyK8s: "deploy/kubernetes/base/policy.yaml",
  policyRedis: "deploy/kubernetes/overlays/redis/policy.yaml",
  policyIstio: "deploy/istio/policy.yaml",
  /** deploy/policy.yaml with the sample stack's scheduled pool on (./policy.ts), for docker-compose.yml. */
  policyCompose: "deploy/compose/policy.yaml",
  envoyFilter: "deploy/istio/envoyfilter.yaml",
  istioRouting: "deploy/istio/routing.yaml",
  /** The pod's bootstrap with tracing on, collector and sampling left as tokens Helm fills in (./index.ts). */
  envoyChartTracing: `${CHART}/files/envoy-tracing.yaml`,
  /** The pod's bootstrap with tracing on to the tracing overlay's example collector (./index.ts). */
  envoyTracing: "deploy/kubernetes/overlays/tracing/envoy.yaml",
} as const;

/**
 * The chart's copies (Helm reads files only inside its chart): generated file → what it copies byte for
 * byte. The chart's pod runs the same bootstrap, script and sample policy as deploy/kubernetes, and its Istio
 * mode the same EnvoyFilter and example routing as deploy/istio; its PrometheusRule the same rules as
 * deploy/kubernetes/monitoring.
 */
export const CHART_COPIES: Readonly<Record<string, string>> = {
  [`${CHART}/files/envoy.yaml`]: FILES.envoyK8s,
  [`${CHART}/files/drain.sh`]: FILES.drainScript,
  [`${CHART}/files/policy.yaml`]: FILES.policyK8s,
  [`${CHART}/files/istio/envoyfilter.yaml`]: FILES.envoyFilter,
  [`${CHART}/files/istio/routing.yaml`]: FILES.istioRouting,
  [`${CHART}/files/alerts.yaml`]: OPS_FILES.alerts,
};
