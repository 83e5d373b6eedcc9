/**
 * Renders the deployment copies of the gateway's configuration from the files everything else runs with, so
 * they cannot drift apart (test/deploy fails when a committed copy differs from a fresh render;
 * `npm run render:deploy` rewrites them):
 *
 * - deploy/kubernetes/base/envoy.yaml from envoy/envoy.yaml, for the pod (./pod.ts says what changes);
 * - deploy/compose/envoy.yaml: the same bootstrap for docker-compose.yml; only the pools differ;
 * - deploy/kubernetes/base/policy.yaml and deploy/istio/policy.yaml: deploy/policy.yaml as is;
 * - deploy/kubernetes/overlays/redis/policy.yaml: the same with its `quota` section switched to Redis;
 * - deploy/compose/policy.yaml: the same with pool A scheduled, its two servers found by DNS name;
 * - the Helm chart's files/ (./files.ts, CHART_COPIES): byte copies of the pod's bootstrap, drain script and
 *   policy, and of the Istio install's EnvoyFilter and routing;
 * - the chart's files/envoy-tracing.yaml and deploy/kubernetes/overlays/tracing/envoy.yaml: the pod's
 *   bootstrap through withEnvoyTracing (./tracing.ts), the chart's with its collector and sampling as
 *   {@link CHART_TRACING_TOKENS} that its `llm-gateway.envoyConfig` replaces, the overlay's to
 *   {@link OVERLAY_TRACING};
 * - deploy/grafana/*.json and deploy/kubernetes/monitoring/prometheusrule.yaml (./ops.ts).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import * as yaml from "js-yaml";
import * as prettier from "prettier";
import { CHART_COPIES, FILES, ROOT } from "./files.js";
import { OPS_FILES, renderDashboards, renderPrometheusRule } from "./ops.js";
import { COMPOSE, gatewayEnvoyConfig, POD, type Pools } from "./pod.js";
import { composePolicy, kubernetesPolicy, redisPolicy } from "./policy.js";
import { withEnvoyTracing, type EnvoyTracing } from "./tracing.js";

export { CHART, CHART_COPIES, FILES, ROOT } from "./files.js";
export { JOBS, OPS_FILES } from "./ops.js";
export { COMPOSE, gatewayEnvoyConfig, POD, POD_FILES, type Pools } from "./pod.js";
export { REDIS_QUOTA, SAMPLE_SCHEDULING, scheduledPolicy, type SampleEndpoints } from "./policy.js";
export {
  mapFilenames,
  placeEnvoyConfig,
  socketAddress,
  type ClusterPlacement,
  type EnvoyPlacement,
} from "./placement.js";

/** The generated bootstrap's header: what it is for, and where its pools and files come from. */
const envoyHeader = (what: string, pools: string, files: string) =>
  `# GENERATED from envoy/envoy.yaml by \`npm run render:deploy\` (deploy/render/): do not edit.
# ${what}
# It is envoy/envoy.yaml (read it for the reasoning behind every setting) with structural edits only:
# listeners on 0.0.0.0 (the network namespace is the boundary), extproc over the Unix socket
# ${POD.socketPath}, ${POD.ops.name} on :${POD.ops.port} for probes (${POD.ops.ready}, ${POD.ops.live}) and metrics
# (${POD.ops.metrics}), the admin kept on 127.0.0.1, pools by ${pools},
# and the files it names ${files} (POD_FILES in deploy/render/pod.ts).
`;

/** The generated Envoy bootstraps: each one's file, header and pools. */
export const ENVOY_TARGETS: readonly { file: string; pools: Pools; header: string }[] = [
  {
    file: FILES.envoyK8s,
    pools: POD.pools,
    header: envoyHeader(
      "The Envoy bootstrap for the Kubernetes pod (deploy/kubernetes/base/deployment.yaml, the Helm chart).",
      "Service DNS name\n# (EXAMPLES: set yours in POD.pools there)",
      "from mounted Secrets and ConfigMaps",
    ),
  },
  {
    file: FILES.envoyCompose,
    pools: COMPOSE.pools,
    header: envoyHeader(
      "The Envoy bootstrap for docker-compose.yml (the pod's topology on one host): the same as\n# deploy/kubernetes/base/envoy.yaml but for its pools.",
      "compose service name (COMPOSE.pools there)",
      "bind-mounted from envoy/certs/",
    ),
  },
];

/**
 * The tokens in the chart's traced bootstrap that templates/_helpers.tpl replaces with `tracing.*` values
 * (plain YAML scalars, so a number replaces a number's place): one rendering through withEnvoyTracing
 * serves every collector and sampling rate, and the tracer block has one source.
 */
export const CHART_TRACING_TOKENS = {
  host: "__TRACES_COLLECTOR_HOST__",
  port: "__TRACES_COLLECTOR_PORT__",
  samplingPercent: "__TRACES_SAMPLING_PERCENT__",
} as const;

/**
 * The collector of deploy/kubernetes/overlays/tracing (EXAMPLE: an OpenTelemetry Collector's OTLP/HTTP
 * receiver in the `observability` namespace); its kustomization points extproc at the same one.
 */
export const OVERLAY_TRACING: EnvoyTracing = {
  collector: { address: "otel-collector.observability.svc.cluster.local", port: 4318 },
  samplingPercent: 100,
};

/** The pod's bootstrap with `tracing` on, as the file `file` (what `what` says it is) is committed. */
async function renderTracingEnvoy(root: string, file: string, tracing: EnvoyTracing, what: string) {
  const target = ENVOY_TARGETS[0]!;
  const doc = gatewayEnvoyConfig(readFileSync(path.join(root, FILES.envoySource), "utf8"), target.pools);
  withEnvoyTracing(doc, tracing);
  const header = `${target.header.replace(
    /^# The Envoy bootstrap for the Kubernetes pod .*$/m,
    `# ${what}: ${FILES.envoyK8s} plus tracing (deploy/render/tracing.ts).`,
  )}`;
  return format(header + yaml.dump(doc, { noRefs: true, lineWidth: -1 }), path.join(root, file));
}

async function format(text: string, file: string): Promise<string> {
  const config = (await prettier.resolveConfig(file)) ?? {};
  return prettier.format(text, { ...config, filepath: file });
}

/** An Envoy bootstrap (one of {@link ENVOY_TARGETS}) as it should be committed. */
export async function renderEnvoy(target: (typeof ENVOY_TARGETS)[number], root = ROOT): Promise<string> {
  const doc = gatewayEnvoyConfig(readFileSync(path.join(root, FILES.envoySource), "utf8"), target.pools);
  // Plain YAML without anchors or merge keys (Envoy's parser has neither), formatted like every YAML file.
  const text = target.header + yaml.dump(doc, { noRefs: true, lineWidth: -1 });
  return format(text, path.join(root, target.file));
}

/** Every generated file and its fresh rendering, by repository-relative path. */
export async function renderAll(root = ROOT): Promise<Record<string, string>> {
  const rendered: Record<string, string> = {};
  for (const target of ENVOY_TARGETS) rendered[target.file] = await renderEnvoy(target, root);
  rendered[FILES.policyK8s] = await format(kubernetesPolicy(root), path.join(root, FILES.policyK8s));
  rendered[FILES.policyIstio] = await format(kubernetesPolicy(root), path.join(root, FILES.policyIstio));
  rendered[FILES.policyRedis] = await format(redisPolicy(root), path.join(root, FILES.policyRedis));
  rendered[FILES.policyCompose] = await format(composePolicy(root), path.join(root, FILES.policyCompose));
  rendered[FILES.envoyChartTracing] = await renderTracingEnvoy(
    root,
    FILES.envoyChartTracing,
    {
      // Tokens where numbers go: Helm puts the numbers in (the real Envoy checks what it renders).
      collector: { address: CHART_TRACING_TOKENS.host, port: CHART_TRACING_TOKENS.port as unknown as number },
      samplingPercent: CHART_TRACING_TOKENS.samplingPercent as unknown as number,
    },
    "The bootstrap of the Helm chart's pod with tracing.enabled, the __TRACES_*__ tokens replaced by\n# templates/_helpers.tpl",
  );
  rendered[FILES.envoyTracing] = await renderTracingEnvoy(
    root,
    FILES.envoyTracing,
    OVERLAY_TRACING,
    "The bootstrap of deploy/kubernetes/overlays/tracing (OVERLAY_TRACING in deploy/render/index.ts)",
  );
  for (const [copy, source] of Object.entries(CHART_COPIES)) {
    rendered[copy] = rendered[source] ?? readFileSync(path.join(root, source), "utf8");
  }
  const prometheusRule = path.join(root, OPS_FILES.prometheusRule);
  rendered[OPS_FILES.prometheusRule] = await format(renderPrometheusRule(root), prometheusRule);
  for (const [file, text] of Object.entries(renderDashboards()))
    rendered[file] = await format(text, path.join(root, file));
  return rendered;
}
