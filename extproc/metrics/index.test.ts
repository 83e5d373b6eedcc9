/** extproc's metric set, as scraped, and what one finished exchange adds to it. */
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import type { AuditRecord } from "../audit/index.js";
import { countExchange } from "./exchange.js";
import {
  createMetrics,
  registerAuditDurabilityLag,
  registerEndpointState,
  startMetricsServer,
} from "./index.js";

/** The documented metrics (docs/metrics.md): name → type and labels. */
const DOCUMENTED: Record<string, { type: string; labels: string[] }> = {
  llm_gateway_requests_total: { type: "counter", labels: ["api", "model", "team", "status", "decision"] },
  llm_gateway_tokens_total: { type: "counter", labels: ["model", "team", "type"] },
  llm_gateway_processing_duration_seconds: { type: "histogram", labels: ["phase"] },
  llm_gateway_upstream_latency_seconds: { type: "histogram", labels: ["model"] },
  llm_gateway_active_streams: { type: "gauge", labels: [] },
  llm_gateway_audit_durable_seq: { type: "gauge", labels: [] },
  llm_gateway_quota_rejections_total: { type: "counter", labels: ["limit", "measure"] },
  llm_gateway_quota_store_errors_total: { type: "counter", labels: [] },
  llm_gateway_quota_store_degraded: { type: "gauge", labels: [] },
  llm_gateway_pii_detections_total: { type: "counter", labels: ["entity", "direction", "action"] },
  llm_gateway_guardrail_triggers_total: { type: "counter", labels: ["guardrail", "action"] },
  llm_gateway_policy_reloads_total: { type: "counter", labels: ["result"] },
  llm_gateway_policy_last_success_timestamp_seconds: { type: "gauge", labels: [] },
  llm_gateway_policy_info: { type: "gauge", labels: ["digest"] },
  llm_gateway_model_price: { type: "gauge", labels: ["model", "type", "currency"] },
  llm_gateway_trace_spans_exported_total: { type: "counter", labels: [] },
  llm_gateway_trace_spans_dropped_total: { type: "counter", labels: ["reason"] },
  llm_gateway_endpoint_picks_total: { type: "counter", labels: ["pool", "endpoint", "reason"] },
  llm_gateway_queue_waiting: { type: "gauge", labels: ["pool", "class"] },
  llm_gateway_queue_in_flight: { type: "gauge", labels: ["pool"] },
  llm_gateway_queue_wait_seconds: { type: "histogram", labels: ["pool", "class"] },
  llm_gateway_queue_shed_total: { type: "counter", labels: ["pool", "class", "reason"] },
};

const RECORD: AuditRecord = {
  request_id: "r1",
  key_id: "k1",
  team: "t",
  environment: null,
  api: "chat.completions",
  method: "POST",
  path: "/v1/chat/completions",
  requested_model: "m1",
  served_model: "m1",
  pool: "pool-a",
  status: 200,
  decision: "allow",
  reason: "ok",
  stream: false,
  usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 },
  usage_source: "server",
  latency_ms: { total: 1, gateway: 0.5, upstream: 0.4 },
  policy_digest: "0123456789abcdef",
  pii: { request: { EMAIL: { count: 2, action: "redact" } }, response: {} },
};

describe("createMetrics", () => {
  it("registers every documented metric with its type and labels, and Node's process metrics", async () => {
    const { registry } = createMetrics();
    const metrics = await registry.getMetricsAsJSON();
    for (const [name, { type, labels }] of Object.entries(DOCUMENTED)) {
      const metric = registry.getSingleMetric(name) as unknown as { labelNames: string[] } | undefined;
      assert.ok(metric, `${name} is registered`);
      assert.equal(metrics.find((m) => m.name === name)?.type, type, `${name} is a ${type}`);
      assert.deepEqual(metric.labelNames, labels, `${name} labels`);
    }
    const own = metrics.filter((m) => m.name.startsWith("llm_gateway_")).map((m) => m.name);
    assert.deepEqual(own.sort(), Object.keys(DOCUMENTED).sort(), "no undocumented llm_gateway_* metric");
    assert.ok(metrics.some((m) => m.name.startsWith("process_")));
    assert.ok(metrics.some((m) => m.name.startsWith("nodejs_")));
  });

  it("gives each call a registry of its own", () => {
    assert.notEqual(createMetrics().registry, createMetrics().registry);
  });

  it("publishes the scheduler's last read of each endpoint at each scrape, and forgets endpoints gone", async () => {
    const { registry } = createMetrics();
    let rows = [
      {
        pool: "p",
        address: "10.0.0.1:8000",
        known: true,
        waiting: 3,
        running: 4,
        kvUsage: 0.5,
        speed: 2.5,
        ageSeconds: 0.05,
      },
      {
        pool: "p",
        address: "10.0.0.2:8000",
        known: false,
        waiting: 0,
        running: 0,
        kvUsage: 0,
        speed: undefined,
        ageSeconds: Infinity,
      },
    ];
    registerEndpointState(registry, () => rows);
    const text = await registry.metrics();
    for (const line of [
      'llm_gateway_endpoint_waiting{pool="p",endpoint="10.0.0.1:8000"} 3',
      'llm_gateway_endpoint_running{pool="p",endpoint="10.0.0.1:8000"} 4',
      'llm_gateway_endpoint_kv_usage{pool="p",endpoint="10.0.0.1:8000"} 0.5',
      'llm_gateway_endpoint_speed{pool="p",endpoint="10.0.0.1:8000"} 2.5',
      'llm_gateway_endpoint_state_age_seconds{pool="p",endpoint="10.0.0.1:8000"} 0.05',
      'llm_gateway_endpoint_known{pool="p",endpoint="10.0.0.1:8000"} 1',
      'llm_gateway_endpoint_known{pool="p",endpoint="10.0.0.2:8000"} 0',
      'llm_gateway_endpoint_state_age_seconds{pool="p",endpoint="10.0.0.2:8000"} +Inf',
    ])
      assert.ok(text.includes(`${line}\n`), line);
    assert.ok(
      !text.includes('llm_gateway_endpoint_speed{pool="p",endpoint="10.0.0.2:8000"}'),
      "unknown: no series",
    );
    rows = rows.slice(0, 1);
    assert.ok(!(await registry.metrics()).includes("10.0.0.2"));
  });

  it("reads the audit durability lag at each scrape", async () => {
    const { registry } = createMetrics();
    let lag = 0;
    registerAuditDurabilityLag(registry, () => lag);
    const scraped = async () =>
      (await registry.metrics())
        .split("\n")
        .find((l) => l.startsWith("llm_gateway_audit_durability_lag_seconds "));
    assert.equal(await scraped(), "llm_gateway_audit_durability_lag_seconds 0");
    lag = 2.5;
    assert.equal(await scraped(), "llm_gateway_audit_durability_lag_seconds 2.5");
  });

  it("exports both policy reload results from the start, so the first failure is an increase", async () => {
    const { registry } = createMetrics();
    const text = await registry.getSingleMetricAsString("llm_gateway_policy_reloads_total");
    assert.match(text, /^llm_gateway_policy_reloads_total\{result="success"\} 0$/m);
    assert.match(text, /^llm_gateway_policy_reloads_total\{result="failure"\} 0$/m);
  });
});

describe("countExchange", () => {
  it("counts the request, its PII, its guardrail triggers and the server-reported tokens", async () => {
    const metrics = createMetrics();
    countExchange(metrics, {
      record: RECORD,
      modelLabel: "m1",
      guardrailTriggers: [
        { guardrail: "content_blocked:CODENAME", action: "redact" },
        { guardrail: "prompt_injection", action: "log" },
      ],
    });
    const text = await metrics.registry.metrics();
    for (const line of [
      'llm_gateway_requests_total{api="chat.completions",model="m1",team="t",status="200",decision="allow"} 1',
      'llm_gateway_pii_detections_total{entity="EMAIL",direction="request",action="redact"} 2',
      'llm_gateway_guardrail_triggers_total{guardrail="content_blocked:CODENAME",action="redact"} 1',
      'llm_gateway_guardrail_triggers_total{guardrail="prompt_injection",action="log"} 1',
      'llm_gateway_tokens_total{model="m1",team="t",type="prompt"} 12',
      'llm_gateway_tokens_total{model="m1",team="t",type="completion"} 5',
    ]) {
      assert.ok(text.includes(`${line}\n`), `missing: ${line}`);
    }
  });

  it("counts a refusal with status and decision, and no tokens", async () => {
    const metrics = createMetrics();
    const refused: AuditRecord = {
      ...RECORD,
      key_id: null,
      team: null,
      api: null,
      status: 401,
      decision: "deny",
      reason: "invalid_api_key",
      usage: null,
      pii: undefined,
    };
    countExchange(metrics, { record: refused, modelLabel: "", guardrailTriggers: [] });
    const text = await metrics.registry.metrics();
    assert.ok(
      text.includes('llm_gateway_requests_total{api="",model="",team="",status="401",decision="deny"} 1\n'),
    );
    assert.equal((await metrics.tokens.get()).values.length, 0);
  });
});

describe("startMetricsServer", () => {
  it("serves the registry at /metrics and ok at /healthz on 127.0.0.1, 404 elsewhere", async () => {
    const metrics = createMetrics();
    metrics.activeStreams.set(3);
    const server = await startMetricsServer(metrics.registry, "127.0.0.1", 0);
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const scrape = await fetch(`${base}/metrics`);
      assert.equal(scrape.status, 200);
      assert.match(scrape.headers.get("content-type") ?? "", /^text\/plain/);
      assert.match(await scrape.text(), /^llm_gateway_active_streams 3$/m);
      const health = await fetch(`${base}/healthz`);
      assert.equal(await health.text(), "ok\n");
      assert.equal((await fetch(`${base}/other`)).status, 404);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
