import { readFileSync } from "node:fs";
import * as yaml from "js-yaml";
import { ROUTING_HEADER, SERVED_POOL_FORMAT, SERVED_POOL_HEADER } from "../envoy/headers.js";

/** What an Envoy bootstrap says about one cluster, as far as pool routing cares. */
export interface EnvoyCluster {
  /** Member clusters, in failover order, when this is an aggregate cluster (`envoy.clusters.aggregate`). */
  readonly aggregate: readonly string[] | undefined;
  /**
   * `llm_gateway.pool` metadata of each static endpoint (undefined where an endpoint has none); empty when
   * the endpoints come from elsewhere (EDS), which cannot be checked here.
   */
  readonly endpointPools: ReadonlyArray<string | undefined>;
  /** Each static endpoint's socket address as `ip:port` (`[ipv6]:port`), as override-host reads it. */
  readonly addresses: readonly string[];
  /**
   * The request header the cluster's override-host load balancing policy reads the endpoint from, or
   * undefined when the cluster balances without one.
   */
  readonly overrideHostHeader: string | undefined;
}

/** A route that matches one routing-header value exactly. */
export interface EnvoyRoute {
  readonly cluster: string;
  /** The route sets {@link SERVED_POOL_HEADER} to the endpoint's pool metadata on responses (overwriting). */
  readonly reportsServedPool: boolean;
  /** Retries avoid priorities (pools of an aggregate) already tried: the first retry goes to the fallback. */
  readonly retriesOtherPools: boolean;
}

/** What an Envoy bootstrap says about pool routing. */
export interface EnvoyRouting {
  readonly header: string;
  /** Clusters under static_resources.clusters, by name. */
  readonly clusters: ReadonlyMap<string, EnvoyCluster>;
  /** Routing-header value → route, from routes that match the header exactly. */
  readonly routes: ReadonlyMap<string, EnvoyRoute>;
}

type Node = Record<string, unknown>;
const isNode = (v: unknown): v is Node => typeof v === "object" && v !== null && !Array.isArray(v);
const node = (v: unknown): Node => (isNode(v) ? v : {});
const list = (v: unknown): Node[] => (Array.isArray(v) ? v.filter(isNode) : []);

const AGGREGATE_CLUSTER = "envoy.clusters.aggregate";
const PREVIOUS_PRIORITIES = "envoy.retry_priorities.previous_priorities";
const OVERRIDE_HOST = "envoy.load_balancing_policies.override_host";

function readCluster(cluster: Node): EnvoyCluster {
  const type = node(cluster.cluster_type);
  const members = node(type.typed_config).clusters;
  const aggregate =
    type.name === AGGREGATE_CLUSTER && Array.isArray(members) ? members.map((m) => String(m)) : undefined;
  const lbEndpoints = list(node(cluster.load_assignment).endpoints).flatMap((group) =>
    list(group.lb_endpoints),
  );
  const endpointPools = lbEndpoints.map((endpoint) => {
    const pool = node(node(node(endpoint.metadata).filter_metadata).llm_gateway).pool;
    return typeof pool === "string" ? pool : undefined;
  });
  const addresses = lbEndpoints.flatMap((endpoint) => {
    const socket = node(node(node(endpoint.endpoint).address).socket_address);
    if (typeof socket.address !== "string" || socket.port_value === undefined) return [];
    const host = socket.address.includes(":") ? `[${socket.address}]` : socket.address;
    return [`${host}:${String(socket.port_value)}`];
  });
  return { aggregate, endpointPools, addresses, overrideHostHeader: overrideHostHeader(cluster) };
}

/** The header source of the cluster's `envoy.load_balancing_policies.override_host` policy, if it has one. */
function overrideHostHeader(cluster: Node): string | undefined {
  for (const policy of list(node(cluster.load_balancing_policy).policies)) {
    const extension = node(policy.typed_extension_config);
    if (extension.name !== OVERRIDE_HOST) continue;
    for (const source of list(node(extension.typed_config).override_host_sources))
      if (typeof source.header === "string") return source.header;
  }
  return undefined;
}

function readRoute(route: Node, action: Node): EnvoyRoute {
  // Overwrite, not append: a model server cannot add a value of its own and name another pool.
  const reportsServedPool = list(route.response_headers_to_add).some((option) => {
    const header = node(option.header);
    return (
      header.key === SERVED_POOL_HEADER &&
      header.value === SERVED_POOL_FORMAT &&
      option.append_action === "OVERWRITE_IF_EXISTS_OR_ADD"
    );
  });
  const retriesOtherPools = node(node(action.retry_policy).retry_priority).name === PREVIOUS_PRIORITIES;
  return { cluster: String(action.cluster), reportsServedPool, retriesOtherPools };
}

/**
 * Every listener (plain, TLS) has its own route for a pool; the check must hold for each. Routes to different
 * clusters are refused outright; otherwise a requirement counts as met only if every listener meets it.
 */
function sameOnEveryListener(value: string, seen: EnvoyRoute | undefined, route: EnvoyRoute): EnvoyRoute {
  if (!seen) return route;
  if (seen.cluster !== route.cluster)
    throw new Error(
      `listeners route ${ROUTING_HEADER}: ${value} to different clusters (${seen.cluster}, ${route.cluster})`,
    );
  return {
    cluster: route.cluster,
    reportsServedPool: seen.reportsServedPool && route.reportsServedPool,
    retriesOtherPools: seen.retriesOtherPools && route.retriesOtherPools,
  };
}

/**
 * Every virtual host's `routes` list in a parsed bootstrap (listeners → filter chains → HTTP connection
 * managers), as the arrays themselves, so a caller may also edit them. A list shared through a YAML anchor
 * (both listeners use one connection manager) comes once per listener.
 */
export function* routeLists(doc: unknown): Generator<unknown[]> {
  for (const listener of list(node(node(doc).static_resources).listeners)) {
    for (const chain of list(listener.filter_chains)) {
      for (const filter of list(chain.filters)) {
        for (const vhost of list(node(node(filter.typed_config).route_config).virtual_hosts)) {
          if (Array.isArray(vhost.routes)) yield vhost.routes;
        }
      }
    }
  }
}

/** Reads the clusters and the routing-header routes of an Envoy YAML bootstrap. */
export function readEnvoyRouting(file: string): EnvoyRouting {
  const doc = yaml.load(readFileSync(file, "utf8"), { filename: file });
  if (!isNode(doc)) throw new Error("not a YAML mapping");
  const clusters = new Map(
    list(node(doc.static_resources).clusters).map((c) => [String(c.name), readCluster(c)]),
  );
  const routes = new Map<string, EnvoyRoute>();
  for (const routeList of routeLists(doc)) {
    for (const route of list(routeList)) {
      const action = node(route.route);
      for (const header of list(node(route.match).headers)) {
        const exact = node(header.string_match).exact;
        if (
          header.name === ROUTING_HEADER &&
          typeof exact === "string" &&
          typeof action.cluster === "string"
        ) {
          routes.set(exact, sameOnEveryListener(exact, routes.get(exact), readRoute(route, action)));
        }
      }
    }
  }
  return { header: ROUTING_HEADER, clusters, routes };
}
