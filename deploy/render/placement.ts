/**
 * Where an Envoy bootstrap runs: the one edit every copy of envoy/envoy.yaml gets, for a test run on loopback
 * (test/harness), for the pod (deploy/kubernetes, the Helm chart, docker-compose) and for the pod run locally
 * (test/deploy). Listeners, cluster endpoints and named files are moved by name, never by text, so every
 * other setting stays what envoy/envoy.yaml says.
 */

type Node = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** An Envoy address: a TCP socket or a Unix socket. */
export type EnvoyAddress =
  | { readonly socket_address: { readonly address: string; readonly port_value: number } }
  | { readonly pipe: { readonly path: string } };

/** Where a cluster's endpoints are: one endpoint per address (with the first one's metadata), and its type. */
export interface ClusterPlacement {
  readonly addresses: readonly EnvoyAddress[];
  /** The cluster's discovery type (STATIC, STRICT_DNS); unset keeps the bootstrap's. */
  readonly type?: string;
}

/** Where everything a bootstrap binds, dials and reads is. */
export interface EnvoyPlacement {
  /** Every listener, by name. */
  readonly listeners: Readonly<Record<string, EnvoyAddress>>;
  /** The admin's port (its address stays, loopback). */
  readonly adminPort?: number;
  /** Every cluster with endpoints of its own (an aggregate cluster has none), by name. */
  readonly clusters: Readonly<Record<string, ClusterPlacement>>;
  /** Where a file the bootstrap names is (TLS certificates, the JWKS). */
  readonly filename: (filename: string) => string;
}

/** A TCP address. */
export const socketAddress = (address: string, port: number): EnvoyAddress => ({
  socket_address: { address, port_value: port },
});

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

/**
 * A copy of the bootstrap `source` (a parsed envoy/envoy.yaml or a copy of it) placed at `placement`;
 * throws on a listener or cluster the placement does not name, which would otherwise keep its old address.
 */
export function placeEnvoyConfig(source: unknown, placement: EnvoyPlacement): Node {
  // A plain tree: the YAML anchors' shared objects become copies, so edits stay where they are made.
  const doc = JSON.parse(JSON.stringify(source)) as Node;
  if (placement.adminPort !== undefined) doc.admin.address.socket_address.port_value = placement.adminPort;
  for (const listener of doc.static_resources.listeners as Node[]) {
    const address = placement.listeners[listener.name];
    if (address === undefined) throw new Error(`no address for listener ${listener.name}`);
    listener.address = structuredClone(address);
  }
  for (const cluster of doc.static_resources.clusters as Node[]) {
    if (cluster.cluster_type) continue; // an aggregate cluster (fallback pools) has no endpoints of its own
    const where = placement.clusters[cluster.name];
    if (where === undefined) throw new Error(`no address for cluster ${cluster.name}`);
    if (where.type !== undefined) cluster.type = where.type;
    for (const group of cluster.load_assignment.endpoints as Node[]) {
      // Endpoint metadata stays: fallback pools tag every endpoint with its pool (llm_gateway.pool).
      const template = (group.lb_endpoints as Node[])[0]!;
      group.lb_endpoints = where.addresses.map((address) => {
        const endpoint = structuredClone(template);
        endpoint.endpoint.address = structuredClone(address);
        return endpoint;
      });
    }
  }
  mapFilenames(doc, placement.filename);
  return doc;
}
