import { isIP } from "node:net";
import { ENDPOINT_HEADER, SERVED_POOL_FORMAT, SERVED_POOL_HEADER } from "../envoy/headers.js";
import { readEnvoyRouting, type EnvoyRouting } from "./envoy-routing.js";
import type { PolicyProblem } from "./error.js";
import type { PolicyDocument } from "./schema.js";

/**
 * Every pool needs a route on the routing header to a defined cluster. A pool with fallbacks needs that route
 * to go to an aggregate cluster of [its own cluster, each fallback's cluster] in policy order, to retry on
 * the next pool (previous_priorities), and to report the answering pool from endpoint metadata; a pool
 * without fallbacks must not be routed to an aggregate cluster (the audit would name the wrong pool).
 */
export function checkAgainstEnvoy(
  doc: PolicyDocument,
  envoyConfigFile: string,
  problems: PolicyProblem[],
): void {
  let routing: EnvoyRouting;
  try {
    routing = readEnvoyRouting(envoyConfigFile);
  } catch (err) {
    problems.push({
      path: "",
      message: `cannot check pools against Envoy config ${envoyConfigFile}: ${(err as Error).message}`,
    });
    return;
  }
  for (const [poolName, spec] of Object.entries(doc.pools)) {
    const path = `pools.${poolName}`;
    const problem = (message: string) => problems.push({ path, message: `${envoyConfigFile}: ${message}` });
    const route = routing.routes.get(poolName);
    const cluster = route && routing.clusters.get(route.cluster);
    if (!route) {
      problem(`no route matches ${routing.header}: ${poolName}`);
      continue;
    }
    if (!cluster) {
      problem(`the route for ${poolName} goes to cluster "${route.cluster}", which is not defined`);
      continue;
    }
    // A scheduled pool's hint is read by its own cluster: the route's, or an aggregate's first member.
    const own = cluster.aggregate ? routing.clusters.get(cluster.aggregate[0]!) : cluster;
    if (spec.scheduling && own) {
      if (own.overrideHostHeader !== ENDPOINT_HEADER)
        problem(
          `${poolName} has scheduling: its cluster needs load_balancing_policy envoy.load_balancing_policies.override_host reading the header ${ENDPOINT_HEADER} (with a least-request fallback_policy), or the endpoint hint is ignored`,
        );
      const fromEnvoy = (spec.scheduling.endpoints ?? "envoy") === "envoy";
      if (fromEnvoy && own.addresses.length === 0)
        problem(
          `${poolName} reads its endpoints from Envoy (scheduling.endpoints: envoy) but its cluster has no static socket_address endpoints; list them (static) or name a DNS Service (dns)`,
        );
      // Override-host matches a hint against the hosts' resolved IPs: a host name never matches.
      const named = fromEnvoy ? own.addresses.filter((a) => isIP(a.replace(/^\[|\]?:\d+$/g, "")) === 0) : [];
      if (named.length > 0)
        problem(
          `${poolName} reads its endpoints from Envoy (scheduling.endpoints: envoy) but its cluster names hosts, not IP addresses (${named.join(", ")}): Envoy would ignore every hint; use scheduling.endpoints: { dns: <name>, port: <port> }`,
        );
    }
    const fallback = spec.fallback ?? [];
    if (fallback.length === 0) {
      if (cluster.aggregate)
        problem(
          `${poolName} is routed to aggregate cluster "${route.cluster}" but has no fallback in the policy`,
        );
      continue;
    }
    const fallbackClusters = fallback.map((name) => routing.routes.get(name)?.cluster);
    const ownName = cluster.aggregate?.[0];
    if (
      !cluster.aggregate ||
      cluster.aggregate.length !== fallback.length + 1 ||
      fallbackClusters.some((c, i) => c !== cluster.aggregate![i + 1]) ||
      routing.clusters.get(ownName!)?.aggregate
    ) {
      problem(
        `${poolName} falls back to ${fallback.join(", ")}: its route must go to an aggregate cluster of [<its own cluster>, ${fallbackClusters.map((c) => c ?? "?").join(", ")}], not "${route.cluster}"`,
      );
      continue;
    }
    if (!route.retriesOtherPools)
      problem(
        `the route for ${poolName} needs retry_priority envoy.retry_priorities.previous_priorities, or requests fail until health checks mark the pool down`,
      );
    if (!route.reportsServedPool)
      problem(
        `the route for ${poolName} must set the response header ${SERVED_POOL_HEADER}: "${SERVED_POOL_FORMAT}" (append_action: OVERWRITE_IF_EXISTS_OR_ADD) so the audit names the pool that answered`,
      );
    for (const [member, pool] of [
      [ownName!, poolName],
      ...fallback.map((name, i) => [fallbackClusters[i]!, name] as const),
    ] as const) {
      const pools = routing.clusters.get(member)?.endpointPools ?? [];
      if (pools.some((p) => p !== pool))
        problem(
          `every endpoint of cluster "${member}" needs metadata filter_metadata.llm_gateway.pool: ${pool}`,
        );
    }
  }
}
