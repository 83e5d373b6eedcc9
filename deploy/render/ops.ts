/**
 * The SRE side of deploy/, rendered by `npm run render:deploy` with the rest (./index.ts, renderAll):
 *
 * - deploy/grafana/*.json: the Grafana dashboards, defined here panel by panel so every one is laid out and
 *   wired to the data source the same way;
 * - deploy/kubernetes/monitoring/prometheusrule.yaml: deploy/prometheus/alerts.yaml (the one source of the
 *   alert rules) as a prometheus-operator PrometheusRule.
 *
 * test/ops/prometheus.test.ts evaluates every query of the committed dashboards and rules in a real
 * Prometheus scraping a running gateway.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import * as yaml from "js-yaml";

/** The rule source and the files rendered from it and from the dashboard definitions below. */
export const OPS_FILES = {
  alerts: "deploy/prometheus/alerts.yaml",
  prometheusRule: "deploy/kubernetes/monitoring/prometheusrule.yaml",
  grafana: "deploy/grafana",
} as const;

/** Scrape job names the rules and dashboards select on (deploy/prometheus/README.md). */
export const JOBS = { extproc: "llm-gateway-extproc", envoy: "llm-gateway-envoy" } as const;

/** One query of a panel: PromQL with Grafana variables, and how its series are named. */
interface Query {
  readonly expr: string;
  readonly legend?: string;
  /** Evaluated once over the dashboard's time range (tables, bar gauges) instead of as a range. */
  readonly instant?: boolean;
}

/** A panel: its kind, title, unit and queries; placed by {@link layout}. */
interface Panel {
  readonly type: "timeseries" | "stat" | "table" | "bargauge";
  readonly title: string;
  readonly description: string;
  readonly unit: string;
  readonly queries: readonly Query[];
  /** Width in grid columns (of 24); stats are narrow, charts half the width. */
  readonly width?: number;
}

/** A dashboard: rows of panels, and the label variables it filters on. */
interface Dashboard {
  readonly file: string;
  readonly uid: string;
  readonly title: string;
  readonly description: string;
  /** Variables by name: the metric and label their values are read from (label_values). */
  readonly variables: ReadonlyArray<{
    readonly name: string;
    readonly metric: string;
    readonly label: string;
  }>;
  readonly panels: readonly Panel[];
}

const R = "$__rate_interval";
/** Envoy's listener counters for client traffic (its HTTP connection manager's stat_prefix). */
const HCM = `envoy_http_conn_manager_prefix="llm_gateway"`;
const TEAM = `team=~"$team"`;
const MODEL = `model=~"$model"`;
const POOL = `envoy_cluster_name=~"$pool"`;

const quantiles = (metric: string, by: string, filter = ""): Query[] =>
  [0.5, 0.99].map((q) => ({
    expr: `histogram_quantile(${q}, sum by (le, ${by}) (rate(${metric}_bucket${filter}[${R}])))`,
    legend: `p${q * 100} {{${by}}}`,
  }));

/** The price in force per model and token type, once per replica set (every replica exports the same). */
const PRICE = "max by (model, type, currency) (llm_gateway_model_price)";

/**
 * Spend by `by` in the policy's currency: tokens of each type times the price in force for that model and
 * type (prices are per million tokens). `hourly`: spend per hour (a rate); otherwise over the time range.
 */
const spend = (by: string, hourly: boolean): Query => ({
  expr: `sum by (${by}) (${hourly ? `3600 * rate(llm_gateway_tokens_total{${TEAM},${MODEL}}[${R}])` : `increase(llm_gateway_tokens_total{${TEAM},${MODEL}}[$__range])`} * on (model, type) group_left (currency) ${PRICE}) / 1e6`,
  legend: by
    .split(", ")
    .map((label) => `{{${label}}}`)
    .join(" "),
  instant: !hourly,
});

const DASHBOARDS: readonly Dashboard[] = [
  {
    file: "gateway-overview.json",
    uid: "llm-gateway-overview",
    title: "LLM gateway: overview",
    description: "Requests, refusals, added latency, active streams and tokens, from extproc and Envoy.",
    variables: [
      { name: "team", metric: "llm_gateway_requests_total", label: "team" },
      { name: "model", metric: "llm_gateway_tokens_total", label: "model" },
    ],
    panels: [
      {
        type: "stat",
        title: "Requests per second",
        description: "Requests extproc handled (every decision).",
        unit: "reqps",
        width: 6,
        queries: [{ expr: `sum(rate(llm_gateway_requests_total{${TEAM}}[${R}]))` }],
      },
      {
        type: "stat",
        title: "Refused",
        description:
          "Share of requests the policy refused: keys, model access, unknown models, quotas, PII blocks, guardrails.",
        unit: "percentunit",
        width: 6,
        queries: [
          {
            expr: `sum(rate(llm_gateway_requests_total{decision="deny",${TEAM}}[${R}])) / sum(rate(llm_gateway_requests_total{${TEAM}}[${R}]))`,
          },
        ],
      },
      {
        type: "stat",
        title: "Server errors (Envoy)",
        description:
          "Share of client requests Envoy answered with 5xx (extproc unreachable, pools down, timeouts).",
        unit: "percentunit",
        width: 6,
        queries: [
          {
            expr: `sum(rate(envoy_http_downstream_rq_xx{${HCM},envoy_response_code_class="5"}[${R}])) / sum(rate(envoy_http_downstream_rq_xx{${HCM}}[${R}]))`,
          },
        ],
      },
      {
        type: "stat",
        title: "Active streams",
        description: "ext_proc streams open now: one per request in flight.",
        unit: "short",
        width: 6,
        queries: [{ expr: "sum(llm_gateway_active_streams)" }],
      },
      {
        type: "timeseries",
        title: "Requests by API and status",
        description: "What clients ask for and what they get.",
        unit: "reqps",
        queries: [
          {
            expr: `sum by (api, status) (rate(llm_gateway_requests_total{${TEAM}}[${R}]))`,
            legend: "{{api}} {{status}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Refusals by status",
        description: "Requests the policy refused, by the HTTP status the client got.",
        unit: "reqps",
        queries: [
          {
            expr: `sum by (status) (rate(llm_gateway_requests_total{decision="deny",${TEAM}}[${R}]))`,
            legend: "{{status}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Envoy responses by class",
        description:
          "Every response Envoy's gateway listeners sent, extproc's refusals and Envoy's own included.",
        unit: "reqps",
        queries: [
          {
            expr: `sum by (envoy_response_code_class) (rate(envoy_http_downstream_rq_xx{${HCM}}[${R}]))`,
            legend: "{{envoy_response_code_class}}xx",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Added latency: extproc time per message",
        description:
          "Time extproc takes to answer one ext_proc message, by phase (the latency SLO: 99% within 25 ms).",
        unit: "s",
        queries: quantiles("llm_gateway_processing_duration_seconds", "phase"),
      },
      {
        type: "timeseries",
        title: "Added latency: extproc time per request",
        description: "Mean time extproc spent on a request, all of its messages together.",
        unit: "s",
        queries: [
          {
            expr: `sum(rate(llm_gateway_processing_duration_seconds_sum[${R}])) / sum(rate(llm_gateway_requests_total[${R}]))`,
            legend: "mean",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Model time to first byte",
        description: "Request forwarded to response headers from the model server, by served model.",
        unit: "s",
        queries: quantiles("llm_gateway_upstream_latency_seconds", "model", `{${MODEL}}`),
      },
      {
        type: "timeseries",
        title: "Active streams",
        description: "Requests in flight: extproc's ext_proc streams and Envoy's active client requests.",
        unit: "short",
        queries: [
          { expr: "sum by (instance) (llm_gateway_active_streams)", legend: "extproc {{instance}}" },
          {
            expr: `sum by (instance) (envoy_http_downstream_rq_active{${HCM}})`,
            legend: "envoy {{instance}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Tokens per second by team and model",
        description: "Tokens the model servers reported (or the gateway counted), prompt and completion.",
        unit: "short",
        queries: [
          {
            expr: `sum by (team, model, type) (rate(llm_gateway_tokens_total{${TEAM},${MODEL}}[${R}]))`,
            legend: "{{team}} {{model}} {{type}}",
          },
        ],
      },
      {
        type: "table",
        title: "Tokens in the time range by team and model",
        description: "Prompt and completion tokens over the dashboard's time range.",
        unit: "short",
        width: 24,
        queries: [
          {
            expr: `sum by (team, model, type) (increase(llm_gateway_tokens_total{${TEAM},${MODEL}}[$__range]))`,
            instant: true,
          },
        ],
      },
    ],
  },
  {
    file: "quotas-spend.json",
    uid: "llm-gateway-quotas",
    title: "LLM gateway: quotas and spend",
    description:
      "Quota rejections by limit, the quota store's health, and spend by team and model at the prices in force.",
    variables: [
      { name: "team", metric: "llm_gateway_requests_total", label: "team" },
      { name: "model", metric: "llm_gateway_tokens_total", label: "model" },
    ],
    panels: [
      {
        type: "stat",
        title: "Quota store degraded",
        description: "1 while an extproc replica cannot reach the shared quota store (Redis).",
        unit: "short",
        width: 8,
        queries: [{ expr: "max(llm_gateway_quota_store_degraded)" }],
      },
      {
        type: "stat",
        title: "Quota store errors per second",
        description: "Failed calls to the quota store.",
        unit: "short",
        width: 8,
        queries: [{ expr: `sum(rate(llm_gateway_quota_store_errors_total[${R}]))` }],
      },
      {
        type: "stat",
        title: "Spend in the time range",
        description:
          "Tokens times the prices in force now (a price change re-values the past: `llm-gateway report` uses the prices of the day).",
        unit: "short",
        width: 8,
        queries: [spend("currency", false)],
      },
      {
        type: "timeseries",
        title: "Quota rejections by limit and measure",
        description:
          "429s, by the policy's limit id and what ran out (requests, tokens, spend, concurrency).",
        unit: "reqps",
        queries: [
          {
            expr: `sum by (limit, measure) (rate(llm_gateway_quota_rejections_total[${R}]))`,
            legend: "{{limit}} {{measure}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "429s by team",
        description: "Requests refused for a quota, by team.",
        unit: "reqps",
        queries: [
          {
            expr: `sum by (team) (rate(llm_gateway_requests_total{status="429",${TEAM}}[${R}]))`,
            legend: "{{team}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Spend per hour by team",
        description: "In the policy's currency, at the prices in force.",
        unit: "short",
        queries: [spend("team, currency", true)],
      },
      {
        type: "timeseries",
        title: "Spend per hour by model",
        description: "In the policy's currency, at the prices in force.",
        unit: "short",
        queries: [spend("model, currency", true)],
      },
      {
        type: "table",
        title: "Spend in the time range by team and model",
        description: "In the policy's currency, at the prices in force.",
        unit: "short",
        width: 12,
        queries: [spend("team, model, currency", false)],
      },
      {
        type: "table",
        title: "Prices in force",
        description: "Per million tokens, from the policy.",
        unit: "short",
        width: 12,
        queries: [
          { expr: `max by (model, type, currency) (llm_gateway_model_price{${MODEL}})`, instant: true },
        ],
      },
    ],
  },
  {
    file: "pii-guardrails.json",
    uid: "llm-gateway-pii",
    title: "LLM gateway: PII and guardrails",
    description: "Sensitive values found in prompts and answers, and the guardrails that fired.",
    variables: [],
    panels: [
      {
        type: "timeseries",
        title: "PII detections by entity and action",
        description: "Values found (never the values themselves), by entity type and the action taken.",
        unit: "short",
        queries: [
          {
            expr: `sum by (entity, action) (rate(llm_gateway_pii_detections_total[${R}]))`,
            legend: "{{entity}} {{action}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "PII detections by direction",
        description: "In requests (prompts) and in responses (model output, streams included).",
        unit: "short",
        queries: [
          {
            expr: `sum by (direction) (rate(llm_gateway_pii_detections_total[${R}]))`,
            legend: "{{direction}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Guardrails fired",
        description: "By guardrail (prompt injection, deny patterns, input length) and action.",
        unit: "short",
        queries: [
          {
            expr: `sum by (guardrail, action) (rate(llm_gateway_guardrail_triggers_total[${R}]))`,
            legend: "{{guardrail}} {{action}}",
          },
        ],
      },
      {
        type: "table",
        title: "Detections in the time range",
        description: "Every entity, direction and action over the dashboard's time range.",
        unit: "short",
        queries: [
          {
            expr: "sum by (entity, direction, action) (increase(llm_gateway_pii_detections_total[$__range]))",
            instant: true,
          },
        ],
      },
    ],
  },
  {
    file: "upstream-health.json",
    uid: "llm-gateway-upstreams",
    title: "LLM gateway: pools, model servers and Envoy upstreams",
    description:
      "Envoy's view of the model-server pools and of extproc: membership, health checks, responses, latency.",
    variables: [{ name: "pool", metric: "envoy_cluster_membership_total", label: "envoy_cluster_name" }],
    panels: [
      {
        type: "timeseries",
        title: "Healthy endpoints per cluster",
        description: "Endpoints Envoy sends traffic to (health checks passed, not ejected).",
        unit: "short",
        queries: [
          {
            expr: `sum by (envoy_cluster_name) (envoy_cluster_membership_healthy{${POOL}})`,
            legend: "{{envoy_cluster_name}} healthy",
          },
          {
            expr: `sum by (envoy_cluster_name) (envoy_cluster_membership_total{${POOL}})`,
            legend: "{{envoy_cluster_name}} total",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Health check failures",
        description: "Active health checks of the model servers that failed.",
        unit: "short",
        queries: [
          {
            expr: `sum by (envoy_cluster_name) (rate(envoy_cluster_health_check_failure{${POOL}}[${R}]))`,
            legend: "{{envoy_cluster_name}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Upstream responses by cluster and class",
        description: "Responses from model servers (and extproc's gRPC cluster), by status class.",
        unit: "reqps",
        queries: [
          {
            expr: `sum by (envoy_cluster_name, envoy_response_code_class) (rate(envoy_cluster_upstream_rq_xx{${POOL}}[${R}]))`,
            legend: "{{envoy_cluster_name}} {{envoy_response_code_class}}xx",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Upstream request time",
        description: "Forwarded to response complete (streams: the whole stream), by cluster.",
        unit: "ms",
        queries: quantiles("envoy_cluster_upstream_rq_time", "envoy_cluster_name", `{${POOL}}`),
      },
      {
        type: "timeseries",
        title: "Active upstream requests",
        description: "Requests in flight per cluster.",
        unit: "short",
        queries: [
          {
            expr: `sum by (envoy_cluster_name) (envoy_cluster_upstream_rq_active{${POOL}})`,
            legend: "{{envoy_cluster_name}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Connect failures, timeouts, retries, ejections",
        description: "Signs of a failing model server before its pool runs out of healthy endpoints.",
        unit: "short",
        queries: [
          ["envoy_cluster_upstream_cx_connect_fail", "connect failures"],
          ["envoy_cluster_upstream_rq_timeout", "timeouts"],
          ["envoy_cluster_upstream_rq_retry", "retries"],
          ["envoy_cluster_outlier_detection_ejections_enforced_total", "ejections"],
        ].map(([metric, what]) => ({
          expr: `sum by (envoy_cluster_name) (rate(${metric!}{${POOL}}[${R}]))`,
          legend: `{{envoy_cluster_name}} ${what!}`,
        })),
      },
      {
        type: "timeseries",
        title: "ext_proc streams",
        description:
          "Streams Envoy opened to extproc, and those that failed (each failed one is a 500 to the client).",
        unit: "short",
        queries: [
          ["envoy_http_ext_proc_streams_started", "started"],
          ["envoy_http_ext_proc_streams_failed", "failed"],
          ["envoy_http_ext_proc_message_timeouts", "message timeouts"],
        ].map(([metric, what]) => ({
          expr: `sum(rate(${metric!}{${HCM}}[${R}]))`,
          legend: what!,
        })),
      },
      {
        type: "stat",
        title: "Days until the first certificate expires",
        description: "Envoy's soonest-expiring certificate (listener or upstream TLS).",
        unit: "d",
        width: 12,
        queries: [{ expr: "min(envoy_server_days_until_first_cert_expiring)" }],
      },
      {
        type: "stat",
        title: "Envoy uptime",
        description: "Seconds since each Envoy started.",
        unit: "s",
        width: 12,
        queries: [{ expr: "min(envoy_server_uptime)" }],
      },
    ],
  },
  {
    file: "extproc-process.json",
    uid: "llm-gateway-extproc",
    title: "LLM gateway: extproc process health",
    description: "extproc's Node process: up, CPU, memory, event loop, garbage collection, policy and audit.",
    variables: [],
    panels: [
      {
        type: "stat",
        title: "Replicas up",
        description: "extproc replicas Prometheus can scrape.",
        unit: "short",
        width: 8,
        queries: [{ expr: `sum(up{job="${JOBS.extproc}"})` }],
      },
      {
        type: "stat",
        title: "Audit durability lag",
        description:
          "0 when every audit record is fsynced; else seconds since the last fsync that succeeded began.",
        unit: "s",
        width: 8,
        queries: [{ expr: "max(llm_gateway_audit_durability_lag_seconds)" }],
      },
      {
        type: "stat",
        title: "Policy reload failures in the time range",
        description: "Rejected policy files (the last good policy stays in force).",
        unit: "short",
        width: 8,
        queries: [
          {
            expr: `sum(increase(llm_gateway_policy_reloads_total{result="failure"}[$__range]))`,
          },
        ],
      },
      {
        type: "timeseries",
        title: "CPU",
        description: "CPU seconds per second (1 = one core).",
        unit: "short",
        queries: [
          {
            expr: `sum by (instance) (rate(process_cpu_seconds_total{job="${JOBS.extproc}"}[${R}]))`,
            legend: "{{instance}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Memory",
        description: "Resident set size and V8 heap in use.",
        unit: "bytes",
        queries: [
          {
            expr: `sum by (instance) (process_resident_memory_bytes{job="${JOBS.extproc}"})`,
            legend: "RSS {{instance}}",
          },
          {
            expr: `sum by (instance) (nodejs_heap_size_used_bytes{job="${JOBS.extproc}"})`,
            legend: "heap {{instance}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Event loop lag",
        description: "How late timers run: a busy or blocked event loop delays every request.",
        unit: "s",
        queries: [
          {
            expr: `max by (instance) (nodejs_eventloop_lag_p99_seconds{job="${JOBS.extproc}"})`,
            legend: "p99 {{instance}}",
          },
          {
            expr: `max by (instance) (nodejs_eventloop_lag_mean_seconds{job="${JOBS.extproc}"})`,
            legend: "mean {{instance}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Garbage collection",
        description: "Seconds per second spent in GC, by kind.",
        unit: "short",
        queries: [
          {
            expr: `sum by (instance, kind) (rate(nodejs_gc_duration_seconds_sum{job="${JOBS.extproc}"}[${R}]))`,
            legend: "{{kind}} {{instance}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Open file descriptors and active handles",
        description: "Sockets, files and timers the process holds.",
        unit: "short",
        queries: [
          { expr: `sum by (instance) (process_open_fds{job="${JOBS.extproc}"})`, legend: "fds {{instance}}" },
          {
            expr: `sum by (instance) (nodejs_active_handles_total{job="${JOBS.extproc}"})`,
            legend: "handles {{instance}}",
          },
        ],
      },
      {
        type: "timeseries",
        title: "Trace spans exported and dropped",
        description:
          "Spans per second the collector accepted, and those lost: queue_full (collector slow or down), export_failed (refused, no answer). 0 with tracing off.",
        unit: "short",
        queries: [
          {
            expr: `sum by (instance) (rate(llm_gateway_trace_spans_exported_total{job="${JOBS.extproc}"}[${R}]))`,
            legend: "exported {{instance}}",
          },
          {
            expr: `sum by (instance, reason) (rate(llm_gateway_trace_spans_dropped_total{job="${JOBS.extproc}"}[${R}]))`,
            legend: "dropped {{reason}} {{instance}}",
          },
        ],
      },
      {
        type: "table",
        title: "Policy in force",
        description: "Digest of each replica's policy and when it was loaded: replicas should agree.",
        unit: "short",
        width: 24,
        queries: [
          { expr: "max by (instance, digest) (llm_gateway_policy_info)", instant: true },
          { expr: "max by (instance) (llm_gateway_policy_last_success_timestamp_seconds)", instant: true },
        ],
      },
    ],
  },
];

/** Panel heights by kind; rows fill left to right, 24 columns wide. */
const HEIGHT = { stat: 4, timeseries: 8, table: 8, bargauge: 8 } as const;

/** Grid positions: panels in order, wrapping to a new row when the next one does not fit. */
function layout(panels: readonly Panel[]) {
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  return panels.map((p) => {
    const w = p.width ?? 12;
    const h = HEIGHT[p.type];
    if (x + w > 24) {
      x = 0;
      y += rowHeight;
      rowHeight = 0;
    }
    const pos = { x, y, w, h };
    x += w;
    rowHeight = Math.max(rowHeight, h);
    return pos;
  });
}

const DATASOURCE = { type: "prometheus", uid: "${datasource}" } as const;

/** A dashboard as Grafana's JSON model (import it, or provision it from a directory). */
function dashboardJson(d: Dashboard): object {
  const grid = layout(d.panels);
  return {
    uid: d.uid,
    title: d.title,
    description: d.description,
    tags: ["llm-gateway"],
    editable: true,
    schemaVersion: 39,
    time: { from: "now-6h", to: "now" },
    refresh: "30s",
    graphTooltip: 1,
    templating: {
      list: [
        { name: "datasource", label: "Prometheus", type: "datasource", query: "prometheus", current: {} },
        ...d.variables.map((v) => ({
          name: v.name,
          type: "query",
          datasource: DATASOURCE,
          definition: `label_values(${v.metric}, ${v.label})`,
          query: { query: `label_values(${v.metric}, ${v.label})`, refId: `${v.name}-values` },
          includeAll: true,
          multi: true,
          allValue: ".*",
          current: { text: "All", value: "$__all" },
          refresh: 2,
          sort: 1,
        })),
      ],
    },
    annotations: { list: [] },
    panels: d.panels.map((p, i) => ({
      id: i + 1,
      type: p.type,
      title: p.title,
      description: p.description,
      datasource: DATASOURCE,
      gridPos: grid[i],
      fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
      options: p.type === "timeseries" ? { legend: { displayMode: "list", placement: "bottom" } } : {},
      targets: p.queries.map((q, j) => ({
        refId: String.fromCharCode(65 + j),
        datasource: DATASOURCE,
        expr: q.expr,
        legendFormat: q.legend ?? "__auto",
        range: !q.instant,
        instant: q.instant ?? false,
        ...(p.type === "table" ? { format: "table" } : {}),
      })),
    })),
  };
}

/** Every dashboard file and its JSON, by repository-relative path. */
export function renderDashboards(): Record<string, string> {
  return Object.fromEntries(
    DASHBOARDS.map((d) => [
      path.posix.join(OPS_FILES.grafana, d.file),
      `${JSON.stringify(dashboardJson(d), null, 2)}\n`,
    ]),
  );
}

/** deploy/kubernetes/monitoring/prometheusrule.yaml: the rule groups of deploy/prometheus/alerts.yaml as is. */
export function renderPrometheusRule(root: string): string {
  const rules = yaml.load(readFileSync(path.join(root, OPS_FILES.alerts), "utf8")) as { groups: unknown[] };
  const rule = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: {
      name: "llm-gateway",
      labels: {
        "app.kubernetes.io/name": "llm-gateway",
        "app.kubernetes.io/component": "monitoring",
        "app.kubernetes.io/part-of": "llm-gateway",
      },
    },
    spec: { groups: rules.groups },
  };
  return `# GENERATED from ${OPS_FILES.alerts} by \`npm run render:deploy\` (deploy/render/ops.ts): do not edit.
# The gateway's alert rules for the Prometheus Operator; what each one means: deploy/prometheus/README.md.
${yaml.dump(rule, { noRefs: true, lineWidth: -1 })}`;
}
