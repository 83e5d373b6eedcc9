/**
 * Renders the deployment copies of the gateway's configuration from the files everything else runs with, so
 * they cannot drift apart (test/deploy/manifests.test.ts fails when a committed copy differs from a fresh
 * render; `npm run render:deploy` rewrites them):
 *
 * - deploy/kubernetes/base/envoy.yaml from envoy/envoy.yaml: the same filters, routes, timeouts, local replies and
 *   runtime flags, with structural edits for a pod (listeners on 0.0.0.0, extproc over a Unix socket, pools
 *   by Service DNS name, TLS from a mounted Secret, an ops listener for probes and metrics; admin stays on
 *   127.0.0.1).
 * - deploy/compose/envoy.yaml: the same bootstrap for docker-compose.yml, which runs the pod's topology; only
 *   the pools differ (the demo model servers' compose service names).
 * - deploy/kubernetes/base/policy.yaml: deploy/policy.yaml as is (kustomize reads files only below its own folder).
 * - deploy/kubernetes/overlays/redis/policy.yaml: the same with its `quota` section switched to Redis.
 * - deploy/istio/policy.yaml: deploy/policy.yaml as is, for the Istio install's extproc.
 * - deploy/grafana/*.json and deploy/kubernetes/monitoring/prometheusrule.yaml (render-ops.ts).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { isDeepStrictEqual } from "node:util";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as yaml from "js-yaml";
import * as prettier from "prettier";

import { ROOT } from "../harness/root.js";
import { OPS_FILES, renderDashboards, renderPrometheusRule } from "./render-ops.js";

export { ROOT };

/** Model-server pools by Envoy cluster name: the DNS name and port each one's endpoints are found at. */
export type Pools = Readonly<Record<string, { readonly address: string; readonly port: number }>>;

/** Facts about the pod that the manifests and the rendered bootstrap share (the tests check both). */
export const POD = {
  /** emptyDir shared by both containers; extproc listens on the socket, Envoy's extproc cluster dials it. */
  socketDir: "/var/run/extproc",
  socketPath: "/var/run/extproc/extproc.sock",
  /** Where the TLS Secret (kubernetes.io/tls: tls.crt, tls.key) is mounted in the Envoy container. */
  certDir: "/etc/envoy/certs",
  /** Where the JWKS ConfigMap (jwks.json: the IdP's public keys) is mounted in the Envoy container. */
  jwksDir: "/etc/llm-gateway/jwks",
  listeners: { listener_http: 8080, listener_https: 8443 } as Record<string, number>,
  /** Envoy's own listener for probes (/ready, /live) and Prometheus (/stats/prometheus); not the admin. */
  ops: { name: "listener_ops", port: 9902, ready: "/ready", live: "/live", metrics: "/stats/prometheus" },
  adminCluster: "envoy_admin",
  /**
   * Model-server pools by Envoy cluster name. EXAMPLES: point them at your own Services. Headless Services
   * (clusterIP: None) let Envoy see every pod, so least-request balancing, health checks and outlier
   * detection work per server rather than per Service IP.
   */
  pools: {
    "pool-a": { address: "vllm-a.models.svc.cluster.local", port: 8000 },
    "pool-b": { address: "vllm-b.models.svc.cluster.local", port: 8000 },
  } as Pools,
} as const;

/**
 * docker-compose.yml's own facts; everything else (socket, files, listeners, ops) is the pod's. The pools are
 * the demo model servers' services on the compose network, on the ports envoy/envoy.yaml gives them.
 */
export const COMPOSE = {
  pools: {
    "pool-a": { address: "pool-a", port: 8000 },
    "pool-b": { address: "pool-b", port: 8001 },
  } as Pools,
} as const;

/**
 * Every file envoy/envoy.yaml names (relative to the repository), and where the pod has it. A file the
 * bootstrap names that is not listed here stops the render: the pod would not have it.
 */
export const POD_FILES: Readonly<Record<string, string>> = {
  "envoy/certs/dev.crt": `${POD.certDir}/tls.crt`,
  "envoy/certs/dev.key": `${POD.certDir}/tls.key`,
  "envoy/certs/jwks.json": `${POD.jwksDir}/jwks.json`,
};

/**
 * Calls `visit` once with every `filename` field of an Envoy config (DataSource and the like) and stores what
 * it returns; objects shared through YAML aliases are visited once.
 */
export function mapFilenames(
  node: unknown,
  visit: (filename: string) => string,
  seen = new WeakSet<object>(),
): void {
  if (typeof node !== "object" || node === null || seen.has(node)) return;
  seen.add(node);
  if (Array.isArray(node)) node.forEach((item) => mapFilenames(item, visit, seen));
  else {
    const record = node as Record<string, unknown>;
    for (const [key, value] of Object.entries(record)) {
      if (key === "filename" && typeof value === "string") record[key] = visit(value);
      else mapFilenames(value, visit, seen);
    }
  }
}

/** The quota section the Redis overlay's policy gets (deploy/kubernetes/overlays/redis). */
export const REDIS_QUOTA = {
  store: "redis",
  redis: { url: "redis://llm-gateway-redis:6379" },
  onStoreFailure: "fail-closed",
  replicas: 3,
} as const;

/** The generated files and their sources, repository-relative. */
export const FILES = {
  envoySource: "envoy/envoy.yaml",
  envoyK8s: "deploy/kubernetes/base/envoy.yaml",
  envoyCompose: "deploy/compose/envoy.yaml",
  policySource: "deploy/policy.yaml",
  policyK8s: "deploy/kubernetes/base/policy.yaml",
  policyRedis: "deploy/kubernetes/overlays/redis/policy.yaml",
  policyIstio: "deploy/istio/policy.yaml",
} as const;

type Node = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The generated bootstrap's header: what it is for, and where its pools and files come from. */
const envoyHeader = (what: string, pools: string, files: string) =>
  `# GENERATED from envoy/envoy.yaml by \`npm run render:deploy\` (test/deploy/render-envoy.ts): do not edit.
# ${what}
# It is envoy/envoy.yaml (read it for the reasoning behind every setting) with structural edits only:
# listeners on 0.0.0.0 (the network namespace is the boundary), extproc over the Unix socket
# ${POD.socketPath}, ${POD.ops.name} on :${POD.ops.port} for probes (${POD.ops.ready}, ${POD.ops.live}) and metrics
# (${POD.ops.metrics}), the admin kept on 127.0.0.1, pools by ${pools},
# and the files it names ${files} (POD_FILES there).
`;

const policyHeader = (
  what: string,
) => `# GENERATED from deploy/policy.yaml by \`npm run render:deploy\`: do not edit.${what ? ` ${what}` : ""}
# For your own deployment, replace this file through a kustomize overlay (see deploy/README.md).
`;

async function format(text: string, file: string): Promise<string> {
  const config = (await prettier.resolveConfig(file)) ?? {};
  return prettier.format(text, { ...config, filepath: file });
}

const socketAddress = (address: string, port: number) => ({
  socket_address: { address, port_value: port },
});

/**
 * Structural edits of envoy/envoy.yaml for the pod's topology, with the pools at `pools` (by DNS name);
 * throws on a listener or cluster it does not know.
 */
export function gatewayEnvoyConfig(source: string, pools: Pools): Node {
  // A plain tree: the YAML anchors' shared objects become copies, so edits stay where they are made.
  const doc = JSON.parse(JSON.stringify(yaml.load(source))) as Node;
  const admin = doc.admin.address.socket_address as { address: string; port_value: number };
  if (admin.address !== "127.0.0.1") throw new Error("envoy/envoy.yaml: admin must stay on 127.0.0.1");

  for (const listener of doc.static_resources.listeners as Node[]) {
    const port = POD.listeners[listener.name];
    if (port === undefined) throw new Error(`unexpected listener ${listener.name}: add it to POD.listeners`);
    listener.address = socketAddress("0.0.0.0", port);
  }
  mapFilenames(doc, (filename) => {
    const inPod = POD_FILES[filename];
    if (inPod === undefined) throw new Error(`envoy/envoy.yaml names ${filename}: add it to POD_FILES`);
    return inPod;
  });
  doc.static_resources.listeners.push({
    name: POD.ops.name,
    address: socketAddress("0.0.0.0", POD.ops.port),
    filter_chains: [
      {
        filters: [
          {
            name: "envoy.filters.network.http_connection_manager",
            typed_config: {
              "@type":
                "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
              stat_prefix: "ops",
              codec_type: "AUTO",
              http_filters: [
                {
                  // 200 while healthy, 503 once the preStop hook has called /healthcheck/fail (draining).
                  name: "envoy.filters.http.health_check",
                  typed_config: {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck",
                    pass_through_mode: false,
                    headers: [{ name: ":path", string_match: { exact: POD.ops.ready } }],
                  },
                },
                {
                  name: "envoy.filters.http.router",
                  typed_config: {
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
                  },
                },
              ],
              route_config: {
                name: "ops",
                virtual_hosts: [
                  {
                    name: "ops",
                    domains: ["*"],
                    routes: [
                      {
                        match: { path: POD.ops.live },
                        direct_response: { status: 200, body: { inline_string: "LIVE\n" } },
                      },
                      // Only the Prometheus page of the admin: the admin itself stays on loopback.
                      { match: { path: POD.ops.metrics }, route: { cluster: POD.adminCluster } },
                    ],
                  },
                ],
              },
            },
          },
        ],
      },
    ],
  });

  const seen = new Set<string>();
  for (const cluster of doc.static_resources.clusters as Node[]) {
    seen.add(cluster.name);
    if (cluster.cluster_type) continue; // an aggregate cluster (fallback pools) has no endpoints of its own
    const endpoints = cluster.load_assignment.endpoints as Node[];
    if (cluster.name === "extproc") {
      cluster.type = "STATIC";
      for (const group of endpoints)
        group.lb_endpoints = [{ endpoint: { address: { pipe: { path: POD.socketPath } } } }];
      continue;
    }
    const pool = pools[cluster.name];
    if (pool === undefined)
      throw new Error(`unexpected cluster ${cluster.name}: add it to POD.pools and COMPOSE.pools`);
    cluster.type = "STRICT_DNS";
    // Endpoint metadata stays: fallback pools tag every endpoint with its pool (llm_gateway.pool).
    for (const group of endpoints) {
      const { metadata } = (group.lb_endpoints as Node[])[0]!;
      group.lb_endpoints = [
        { ...(metadata && { metadata }), endpoint: { address: socketAddress(pool.address, pool.port) } },
      ];
    }
  }
  for (const name of ["extproc", ...Object.keys(pools)]) {
    if (!seen.has(name)) throw new Error(`envoy/envoy.yaml has no cluster ${name}`);
  }
  doc.static_resources.clusters.push({
    name: POD.adminCluster,
    type: "STATIC",
    connect_timeout: "1s",
    load_assignment: {
      cluster_name: POD.adminCluster,
      endpoints: [
        { lb_endpoints: [{ endpoint: { address: socketAddress(admin.address, admin.port_value) } }] },
      ],
    },
  });
  return doc;
}

/** The generated Envoy bootstraps: each one's file, header and pools. */
export const ENVOY_TARGETS = [
  {
    file: FILES.envoyK8s,
    pools: POD.pools,
    header: envoyHeader(
      "The Envoy bootstrap for the Kubernetes pod (deploy/kubernetes/base/deployment.yaml).",
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
] as const;

/** An Envoy bootstrap (one of {@link ENVOY_TARGETS}) as it should be committed. */
export async function renderEnvoy(target: (typeof ENVOY_TARGETS)[number], root = ROOT): Promise<string> {
  const doc = gatewayEnvoyConfig(readFileSync(path.join(root, FILES.envoySource), "utf8"), target.pools);
  // Plain YAML without anchors or merge keys (Envoy's parser has neither), formatted like every YAML file.
  const text = target.header + yaml.dump(doc, { noRefs: true, lineWidth: -1 });
  return format(text, path.join(root, target.file));
}

/** deploy/kubernetes/base/policy.yaml (or deploy/istio/policy.yaml) as it should be committed. */
export async function renderKubernetesPolicy(root = ROOT, file: string = FILES.policyK8s): Promise<string> {
  const source = readFileSync(path.join(root, FILES.policySource), "utf8");
  return format(policyHeader("") + source, path.join(root, file));
}

/**
 * The Redis overlay's policy: deploy/policy.yaml with its top-level `quota` section (and the comment lines
 * right above it) replaced as text, so every other comment stays; the result is checked structurally.
 */
export async function renderRedisPolicy(root = ROOT): Promise<string> {
  const source = readFileSync(path.join(root, FILES.policySource), "utf8");
  const lines = source.split("\n");
  const start = lines.findIndex((line) => /^quota:/.test(line));
  if (start < 0) throw new Error(`${FILES.policySource} has no top-level quota section`);
  let end = start + 1;
  while (end < lines.length && /^\s+\S/.test(lines[end]!)) end++;
  let from = start;
  while (from > 0 && lines[from - 1]!.startsWith("#")) from--;
  const block = [
    "# Several extproc replicas share exact counts through Redis (the llm-gateway-redis Service of this",
    "# overlay). replicas only matters with onStoreFailure: local, where each replica admits against",
    "# limit / replicas while Redis is unreachable; fail-closed answers 503 instead.",
    `quota:`,
    `  store: ${REDIS_QUOTA.store}`,
    `  redis: { url: "${REDIS_QUOTA.redis.url}" }`,
    `  onStoreFailure: ${REDIS_QUOTA.onStoreFailure}`,
    `  replicas: ${REDIS_QUOTA.replicas}`,
  ];
  const text = [...lines.slice(0, from), ...block, ...lines.slice(end)].join("\n");
  const expected = { ...(yaml.load(source) as Node), quota: REDIS_QUOTA };
  if (!isDeepStrictEqual(yaml.load(text), expected)) {
    throw new Error(`rendering ${FILES.policyRedis}: replacing the quota section changed something else`);
  }
  return format(policyHeader("Only `quota` differs.") + text, path.join(root, FILES.policyRedis));
}

/** Every generated file and its fresh rendering, by repository-relative path. */
export async function renderAll(root = ROOT): Promise<Record<string, string>> {
  const envoy = await Promise.all(ENVOY_TARGETS.map(async (t) => [t.file, await renderEnvoy(t, root)]));
  return {
    ...Object.fromEntries(envoy),
    [FILES.policyK8s]: await renderKubernetesPolicy(root),
    [FILES.policyRedis]: await renderRedisPolicy(root),
    [FILES.policyIstio]: await renderKubernetesPolicy(root, FILES.policyIstio),
    [OPS_FILES.prometheusRule]: await format(
      renderPrometheusRule(root),
      path.join(root, OPS_FILES.prometheusRule),
    ),
    ...Object.fromEntries(
      await Promise.all(
        Object.entries(renderDashboards()).map(async ([file, text]) => [
          file,
          await format(text, path.join(root, file)),
        ]),
      ),
    ),
  };
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [file, text] of Object.entries(await renderAll())) {
    mkdirSync(path.dirname(path.join(ROOT, file)), { recursive: true });
    writeFileSync(path.join(ROOT, file), text);
    console.log(`wrote ${file}`);
  }
}
