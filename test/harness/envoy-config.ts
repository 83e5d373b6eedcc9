import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as yaml from "js-yaml";
import { SERVED_POOL_FORMAT, SERVED_POOL_HEADER } from "../../extproc/envoy/headers.js";
import { routeLists } from "../../extproc/policy/envoy-routing.js";
import { placeEnvoyConfig, socketAddress } from "../../deploy/render/placement.js";
import { withEnvoyTracing, type EnvoyTracing } from "../../deploy/render/tracing.js";

/** Every port the gateway stack listens on. */
export interface StackPorts {
  readonly http: number;
  readonly https: number;
  readonly admin: number;
  readonly metrics: number;
  readonly poolA: number;
  readonly poolB: number;
}

/** The defaults documented in README.md. */
export const DEFAULT_PORTS: StackPorts = {
  http: 8080,
  https: 8443,
  admin: 9901,
  metrics: 9464,
  poolA: 8000,
  poolB: 8001,
};

type Node = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Options for {@link renderEnvoyConfig}. */
export interface RenderOptions {
  readonly ports: StackPorts;
  /** Repository root: relative certificate paths are made absolute against it. */
  readonly root: string;
  /**
   * Drop the ext_proc filter (benchmark baseline: Envoy alone), and the early removal of the routing header
   * `x-gateway-pool`: without extproc to set it, the caller's header is what picks the pool's route.
   */
  readonly withoutExtProc?: boolean;
  /** extproc's Unix sockets: one endpoint each in the extproc cluster (several replicas: several sockets). */
  readonly extprocSockets: readonly string[];
  /** Ports of clusters beyond pool-a and pool-b (e.g. a fallback pool), by cluster name. */
  readonly extraPoolPorts?: Readonly<Record<string, number>>;
  /** Turn Envoy's tracing on, exporting to this collector. */
  readonly tracing?: EnvoyTracing;
  /** Ports of further endpoints of a pool's cluster, after its own, by cluster name. */
  readonly extraEndpointPorts?: Readonly<Record<string, readonly number[]>>;
}

/**
 * Renders envoy/envoy.yaml for a run: the same file users run, placed on this run's ports and extproc's
 * sockets (deploy/render/placement.ts: by listener and cluster name, never by text) with its files made
 * absolute against the repository.
 */
export function renderEnvoyConfig(file: string, options: RenderOptions): string {
  const { ports } = options;
  const loopback = (port: number) => socketAddress("127.0.0.1", port);
  const pools: Record<string, number> = {
    "pool-a": ports.poolA,
    "pool-b": ports.poolB,
    ...options.extraPoolPorts,
  };
  const doc = placeEnvoyConfig(yaml.load(readFileSync(file, "utf8")), {
    listeners: { listener_http: loopback(ports.http), listener_https: loopback(ports.https) },
    adminPort: ports.admin,
    clusters: {
      extproc: { addresses: options.extprocSockets.map((socket) => ({ pipe: { path: socket } })) },
      ...Object.fromEntries(
        Object.entries(pools).map(([name, port]) => [
          name,
          { addresses: [port, ...(options.extraEndpointPorts?.[name] ?? [])].map(loopback) },
        ]),
      ),
    },
    filename: (filename) => path.resolve(options.root, filename),
  });
  if (options.tracing) withEnvoyTracing(doc, options.tracing);
  if (options.withoutExtProc) {
    for (const listener of doc.static_resources.listeners as Node[]) {
      for (const chain of listener.filter_chains as Node[]) {
        for (const filter of chain.filters as Node[]) {
          const hcm = filter.typed_config;
          hcm.http_filters = (hcm.http_filters as Node[]).filter(
            (f) => f.name !== "envoy.filters.http.ext_proc",
          );
          for (const extension of (hcm.early_header_mutation_extensions ?? []) as Node[]) {
            const config = extension.typed_config;
            config.mutations = (config.mutations as Node[]).filter((m) => m.remove !== "x-gateway-pool");
          }
        }
      }
    }
  }
  // Envoy's YAML parser has no merge keys; write plain YAML without anchors.
  return yaml.dump(doc, { noRefs: true });
}

/**
 * Writes a copy of the Envoy bootstrap `file` in which `pool` fails over to a new cluster `fallback` (a copy
 * of the pool's cluster), wired the way docs/fallback-pools.md says: an aggregate cluster of both behind
 * the pool's route, retries on the next pool, endpoints tagged with their pool, the answering pool reported.
 */
export function writeFallbackEnvoyConfig(file: string, out: string, pool: string, fallback: string): void {
  const doc = yaml.load(readFileSync(file, "utf8")) as Node;
  const clusters = doc.static_resources.clusters as Node[];
  const own = clusters.find((c) => c.name === pool)!;
  const copy: Node = { ...structuredClone(own), name: fallback };
  copy.load_assignment.cluster_name = fallback;
  for (const [cluster, name] of [
    [own, pool],
    [copy, fallback],
  ] as const) {
    for (const group of cluster.load_assignment.endpoints as Node[]) {
      for (const endpoint of group.lb_endpoints as Node[]) {
        endpoint.metadata = { filter_metadata: { llm_gateway: { pool: name } } };
      }
    }
  }
  const aggregate = {
    name: `${pool}-failover`,
    connect_timeout: own.connect_timeout,
    lb_policy: "CLUSTER_PROVIDED",
    cluster_type: {
      name: "envoy.clusters.aggregate",
      typed_config: {
        "@type": "type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig",
        clusters: [pool, fallback],
      },
    },
  };
  clusters.push(copy, aggregate);
  for (const routes of routeLists(doc) as Generator<Node[]>) {
    // A list shared by both listeners comes twice; the second time its pool route already points elsewhere.
    const index = routes.findIndex((r) => r.route?.cluster === pool);
    if (index < 0) continue;
    const fallbackRoute = structuredClone(routes[index]!);
    fallbackRoute.name = fallback;
    fallbackRoute.match.headers[0].string_match.exact = fallback;
    fallbackRoute.route.cluster = fallback;
    const route = routes[index]!;
    route.route.cluster = aggregate.name;
    route.route.retry_policy.retry_priority = {
      name: "envoy.retry_priorities.previous_priorities",
      typed_config: {
        "@type":
          "type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig",
        update_frequency: 1,
      },
    };
    route.response_headers_to_add = [
      {
        header: { key: SERVED_POOL_HEADER, value: SERVED_POOL_FORMAT },
        append_action: "OVERWRITE_IF_EXISTS_OR_ADD",
      },
    ];
    routes.splice(index + 1, 0, fallbackRoute);
  }
  writeFileSync(out, yaml.dump(doc, { noRefs: true }));
}
