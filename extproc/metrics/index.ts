import { createServer, type Server } from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { PolicyMetrics } from "../policy/store.js";
import type { EndpointReport, QueueEvents } from "../scheduling/index.js";

/** extproc's Prometheus metrics (documented in docs/metrics.md). */
export interface GatewayMetrics {
  readonly registry: Registry;
  readonly requests: Counter<"api" | "model" | "team" | "status" | "decision">;
  readonly tokens: Counter<"model" | "team" | "type">;
  readonly phaseDuration: Histogram<"phase">;
  readonly upstreamLatency: Histogram<"model">;
  readonly activeStreams: Gauge;
  readonly quotaRejections: Counter<"limit" | "measure">;
  readonly quotaStoreErrors: Counter;
  readonly quotaStoreDegraded: Gauge;
  readonly piiDetections: Counter<"entity" | "direction" | "action">;
  readonly guardrailTriggers: Counter<"guardrail" | "action">;
  readonly auditDurableSeq: Gauge;
  readonly policy: PolicyMetrics;
  readonly traceSpansExported: Counter;
  readonly traceSpansDropped: Counter<"reason">;
  readonly endpointPicks: Counter<"pool" | "endpoint" | "reason">;
  readonly queueWaiting: Gauge<"pool" | "class">;
  readonly queueInFlight: Gauge<"pool">;
  readonly queueWait: Histogram<"pool" | "class">;
  readonly queueShed: Counter<"pool" | "class" | "reason">;
}

/** Creates the metric set on a fresh registry, with Node process metrics included. */
export function createMetrics(): GatewayMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const metrics = {
    registry,
    requests: new Counter({
      name: "llm_gateway_requests_total",
      help: "Requests handled, by API, requested model, team, HTTP status and policy decision.",
      labelNames: ["api", "model", "team", "status", "decision"],
      registers: [registry],
    }),
    tokens: new Counter({
      name: "llm_gateway_tokens_total",
      help: "Tokens reported by model servers, by served model, team and type (prompt or completion).",
      labelNames: ["model", "team", "type"],
      registers: [registry],
    }),
    phaseDuration: new Histogram({
      name: "llm_gateway_processing_duration_seconds",
      help: "Time extproc spends on one ext_proc message, by phase.",
      labelNames: ["phase"],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
      registers: [registry],
    }),
    upstreamLatency: new Histogram({
      name: "llm_gateway_upstream_latency_seconds",
      help: "Request forwarded to response headers received (time to first byte), by served model.",
      labelNames: ["model"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    activeStreams: new Gauge({
      name: "llm_gateway_active_streams",
      help: "ext_proc streams currently open (one per in-flight HTTP request).",
      registers: [registry],
    }),
    quotaRejections: new Counter({
      name: "llm_gateway_quota_rejections_total",
      help: "Requests refused with 429, by limit id and measure (requests, tokens, spend, concurrency).",
      labelNames: ["limit", "measure"],
      registers: [registry],
    }),
    quotaStoreErrors: new Counter({
      name: "llm_gateway_quota_store_errors_total",
      help: "Quota store (Redis) calls that failed.",
      registers: [registry],
    }),
    piiDetections: new Counter({
      name: "llm_gateway_pii_detections_total",
      help: "Sensitive values found, by entity type, direction (request or response) and action taken.",
      labelNames: ["entity", "direction", "action"],
      registers: [registry],
    }),
    guardrailTriggers: new Counter({
      name: "llm_gateway_guardrail_triggers_total",
      help: "Guardrails that fired, by guardrail (input_too_long, content_blocked:<name>, prompt_injection) and action.",
      labelNames: ["guardrail", "action"],
      registers: [registry],
    }),
    policy: {
      reloads: new Counter({
        name: "llm_gateway_policy_reloads_total",
        help: "Policy loads (start-up and reloads), by result (success or failure: the last good policy stays).",
        labelNames: ["result"],
        registers: [registry],
      }),
      lastSuccess: new Gauge({
        name: "llm_gateway_policy_last_success_timestamp_seconds",
        help: "When the policy in force was loaded.",
        registers: [registry],
      }),
      info: new Gauge({
        name: "llm_gateway_policy_info",
        help: "The policy in force (value 1), by the first 16 hex digits of its SHA-256.",
        labelNames: ["digest"],
        registers: [registry],
      }),
      price: new Gauge({
        name: "llm_gateway_model_price",
        help: "Price per million tokens in the policy in force, by model, token type (as llm_gateway_tokens_total's) and currency.",
        labelNames: ["model", "type", "currency"],
        registers: [registry],
      }),
    },
    auditDurableSeq: new Gauge({
      name: "llm_gateway_audit_durable_seq",
      help: "seq of the newest audit record fsynced to disk: kept off the host, it shows a cut audit tail.",
      registers: [registry],
    }),
    traceSpansExported: new Counter({
      name: "llm_gateway_trace_spans_exported_total",
      help: "Spans the collector accepted (tracing on only).",
      registers: [registry],
    }),
    traceSpansDropped: new Counter({
      name: "llm_gateway_trace_spans_dropped_total",
      help: "Spans never delivered, by reason: queue_full (the collector too slow or down), export_failed (it refused or did not answer).",
      labelNames: ["reason"],
      registers: [registry],
    }),
    endpointPicks: new Counter({
      name: "llm_gateway_endpoint_picks_total",
      help: "Scheduler choices for pools with scheduling, by pool, endpoint and reason (queue, affinity; no_state: no endpoint known, Envoy balanced alone, endpoint empty).",
      labelNames: ["pool", "endpoint", "reason"],
      registers: [registry],
    }),
    queueWaiting: new Gauge({
      name: "llm_gateway_queue_waiting",
      help: "Requests this replica holds in a pool's queue, by pool and priority class.",
      labelNames: ["pool", "class"],
      registers: [registry],
    }),
    queueInFlight: new Gauge({
      name: "llm_gateway_queue_in_flight",
      help: "Requests this replica admitted to a queued pool that have not ended, by pool.",
      labelNames: ["pool"],
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: "llm_gateway_queue_wait_seconds",
      help: "Time admitted requests waited in a pool's queue (0 when admitted at once), by pool and priority class.",
      labelNames: ["pool", "class"],
      buckets: [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20],
      registers: [registry],
    }),
    queueShed: new Counter({
      name: "llm_gateway_queue_shed_total",
      help: "Requests refused by a pool's queue, by pool, priority class and reason (queue_full, displaced, timeout, store_unavailable).",
      labelNames: ["pool", "class", "reason"],
      registers: [registry],
    }),
    quotaStoreDegraded: new Gauge({
      name: "llm_gateway_quota_store_degraded",
      help: "1 while the shared quota store is unreachable (requests fail closed or use local limits).",
      registers: [registry],
    }),
  };
  // Both results exist from the start: Prometheus' increase() cannot see a series' first value, so a
  // failure series born at 1 would never alert.
  for (const result of ["success", "failure"]) metrics.policy.reloads.inc({ result }, 0);
  for (const reason of ["queue_full", "export_failed"]) metrics.traceSpansDropped.inc({ reason }, 0);
  return metrics;
}

/**
 * Publishes how far the audit log's durable point trails (the sink's `durabilityLagSeconds`, read at each
 * scrape) as `llm_gateway_audit_durability_lag_seconds`. Registered once the sink exists.
 */
export function registerAuditDurabilityLag(registry: Registry, lagSeconds: () => number): Gauge {
  return new Gauge({
    name: "llm_gateway_audit_durability_lag_seconds",
    help: "0 when every audit record is fsynced; else seconds since the last fsync that succeeded began (records written since would be lost by a crash).",
    registers: [registry],
    collect() {
      this.set(lagSeconds());
    },
  });
}

/** Gauges of each scheduled endpoint's last read (the scheduler's report), read at scrape time. */
export function registerEndpointState(registry: Registry, rows: () => readonly EndpointReport[]): void {
  const labelNames = ["pool", "endpoint"] as const;
  // A row whose value is undefined (an unknown speed) has no series rather than a made-up one.
  const gauge = (name: string, help: string, value: (row: EndpointReport) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const row of rows()) {
          const v = value(row);
          if (v !== undefined) this.set({ pool: row.pool, endpoint: row.address }, v);
        }
      },
    });
  gauge(
    "llm_gateway_endpoint_waiting",
    "Requests waiting on the endpoint's model server, as last read.",
    (r) => r.waiting,
  );
  gauge(
    "llm_gateway_endpoint_running",
    "Requests running on the endpoint's model server, as last read.",
    (r) => r.running,
  );
  gauge(
    "llm_gateway_endpoint_kv_usage",
    "KV-cache usage (0..1) of the endpoint's model server, as last read.",
    (r) => r.kvUsage,
  );
  gauge(
    "llm_gateway_endpoint_speed",
    "Requests the endpoint's model server finishes per running-request second (absent while unknown).",
    (r) => r.speed,
  );
  gauge(
    "llm_gateway_endpoint_state_age_seconds",
    "Seconds since the endpoint's metrics were last read successfully (+Inf: never).",
    (r) => r.ageSeconds,
  );
  gauge(
    "llm_gateway_endpoint_known",
    "1 while the endpoint's last read is fresh and succeeded (the picker may choose it), else 0.",
    (r) => (r.known ? 1 : 0),
  );
}

/** Serves `GET /metrics` (Prometheus text) and `GET /healthz` on `host:port`. Resolves once listening. */
export async function startMetricsServer(registry: Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/metrics") {
      registry.metrics().then(
        (text) => res.writeHead(200, { "content-type": registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { "content-type": "text/plain" }).end(err.message),
      );
    } else if (req.method === "GET" && req.url === "/healthz") {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** The pool queues' events, counted in `metrics` (llm_gateway_queue_*). */
export function queueEvents(metrics: GatewayMetrics): QueueEvents {
  return {
    waiting: (pool, cls, delta) => metrics.queueWaiting.inc({ pool, class: cls }, delta),
    admitted: (pool, cls, seconds) => metrics.queueWait.observe({ pool, class: cls }, seconds),
    inFlight: (pool, delta) => metrics.queueInFlight.inc({ pool }, delta),
    shed: (pool, cls, reason) => metrics.queueShed.inc({ pool, class: cls, reason }),
  };
}
