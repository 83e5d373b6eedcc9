/**
 * The Envoy bootstrap of the gateway pod (deploy/kubernetes, the Helm chart) and of docker-compose.yml, which
 * runs the pod's topology: envoy/envoy.yaml with structural edits only (listeners on 0.0.0.0, extproc over a
 * Unix socket, pools by DNS name, TLS and JWKS from mounted Secrets and ConfigMaps, an ops listener for probes
 * and metrics; the admin stays on 127.0.0.1).
 */
import * as yaml from "js-yaml";
import { placeEnvoyConfig, socketAddress, type ClusterPlacement } from "./placement.js";

type Node = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

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

/** Envoy's ops listener: /ready (fails once draining), /live, and the admin's Prometheus page only. */
function opsListener(): Node {
  return {
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
  };
}

/**
 * Structural edits of envoy/envoy.yaml (the text `source`) for the pod's topology, with the pools at `pools`
 * (by DNS name); throws on a listener, cluster or file it does not know.
 */
export function gatewayEnvoyConfig(source: string, pools: Pools): Node {
  const parsed = yaml.load(source) as Node;
  const admin = parsed.admin.address.socket_address as { address: string; port_value: number };
  if (admin.address !== "127.0.0.1") throw new Error("envoy/envoy.yaml: admin must stay on 127.0.0.1");
  const clusterNames = (parsed.static_resources.clusters as Node[]).map((c) => c.name as string);
  for (const name of ["extproc", ...Object.keys(pools)]) {
    if (!clusterNames.includes(name)) throw new Error(`envoy/envoy.yaml has no cluster ${name}`);
  }
  const clusters: Record<string, ClusterPlacement> = {
    extproc: { type: "STATIC", addresses: [{ pipe: { path: POD.socketPath } }] },
  };
  for (const [name, pool] of Object.entries(pools)) {
    clusters[name] = { type: "STRICT_DNS", addresses: [socketAddress(pool.address, pool.port)] };
  }
  const doc = placeEnvoyConfig(parsed, {
    listeners: Object.fromEntries(
      (parsed.static_resources.listeners as Node[]).map((l) => {
        const port = POD.listeners[l.name];
        if (port === undefined) throw new Error(`unexpected listener ${l.name}: add it to POD.listeners`);
        return [l.name, socketAddress("0.0.0.0", port)];
      }),
    ),
    // A cluster not named here stops the render: add it to POD.pools and COMPOSE.pools.
    clusters,
    filename: (filename) => {
      const inPod = POD_FILES[filename];
      if (inPod === undefined) throw new Error(`envoy/envoy.yaml names ${filename}: add it to POD_FILES`);
      return inPod;
    },
  });
  doc.static_resources.listeners.push(opsListener());
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
