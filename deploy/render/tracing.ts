/**
 * Envoy's half of the gateway's traces, off in envoy/envoy.yaml (the product calls out nowhere unless told
 * to): {@link withEnvoyTracing} turns it on in a copy of the bootstrap, with the OpenTelemetry tracer exporting
 * OTLP/HTTP protobuf to one collector. Envoy then starts (or continues, from a client's `traceparent`) a trace
 * per request, passes its context to extproc in the ext_proc stream's gRPC metadata and to the model server
 * in the forwarded request's `traceparent`. docs/operations.md#tracing shows the result.
 */

type Node = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The cluster Envoy's tracer sends its spans to. */
export const TRACES_CLUSTER = "opentelemetry_collector";

/** Where traces go, and how many requests are traced. */
export interface EnvoyTracing {
  /** The collector's OTLP/HTTP receiver (usually port 4318). */
  readonly collector: { readonly address: string; readonly port: number };
  /** Percentage of requests traced (Envoy's random_sampling); 100 by default. */
  readonly samplingPercent?: number;
  /** The resource's `service.name` on Envoy's spans. */
  readonly serviceName?: string;
  /** How often Envoy sends what it collected (default 5000 ms; tests shorten it). */
  readonly flushIntervalMs?: number;
}

/** Envoy's `service.name` by default; extproc's is `llm-gateway-extproc`. */
export const ENVOY_SERVICE_NAME = "llm-gateway-envoy";

/** The HTTP connection manager `tracing` block for `tracing`. */
export function tracingBlock(tracing: EnvoyTracing): Node {
  return {
    random_sampling: { value: tracing.samplingPercent ?? 100 },
    // The router's own span for the upstream request: the model server's `traceparent` names it.
    spawn_upstream_span: true,
    provider: {
      name: "envoy.tracers.opentelemetry",
      typed_config: {
        "@type": "type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig",
        http_service: {
          http_uri: {
            uri: `http://${tracing.collector.address}:${tracing.collector.port}/v1/traces`,
            cluster: TRACES_CLUSTER,
            timeout: "2s",
          },
        },
        service_name: tracing.serviceName ?? ENVOY_SERVICE_NAME,
      },
    },
  };
}

/** Every HTTP connection manager's config in `doc` (each listener's, once even when shared by anchors). */
function* connectionManagers(doc: Node): Generator<Node> {
  const seen = new Set<Node>();
  for (const listener of doc.static_resources.listeners as Node[]) {
    for (const chain of listener.filter_chains as Node[]) {
      for (const filter of chain.filters as Node[]) {
        if (filter.name !== "envoy.filters.network.http_connection_manager" || seen.has(filter.typed_config))
          continue;
        seen.add(filter.typed_config);
        yield filter.typed_config as Node;
      }
    }
  }
}

/**
 * `doc` (a parsed bootstrap, changed in place and returned) with tracing on: the `tracing` block in every
 * HTTP connection manager, the collector's cluster, and the flush interval in the static runtime layer.
 */
export function withEnvoyTracing(doc: Node, tracing: EnvoyTracing): Node {
  for (const hcm of connectionManagers(doc)) hcm.tracing = tracingBlock(tracing);
  const { address, port } = tracing.collector;
  const isIp = /^[\d.]+$|:/.test(address);
  (doc.static_resources.clusters as Node[]).push({
    name: TRACES_CLUSTER,
    type: isIp ? "STATIC" : "STRICT_DNS",
    connect_timeout: "1s",
    load_assignment: {
      cluster_name: TRACES_CLUSTER,
      endpoints: [
        { lb_endpoints: [{ endpoint: { address: { socket_address: { address, port_value: port } } } }] },
      ],
    },
  });
  if (tracing.flushIntervalMs !== undefined) {
    const layer = (doc.layered_runtime.layers as Node[]).find((l) => l.static_layer);
    layer!.static_layer["tracing.opentelemetry.flush_interval_ms"] = tracing.flushIntervalMs;
  }
  return doc;
}
