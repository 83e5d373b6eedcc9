/**
 * What security and SREs read: one audit record per request with the right contents (and never the key
 * or, by default, the prompt), extproc's Prometheus metrics moving, Envoy's own stats and its access log
 * carrying extproc's dynamic metadata.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { verifyAuditChain } from "../../extproc/audit/index.js";
import { DEMO_KEYS, startStack, waitFor, type Stack } from "../harness/index.js";
import { writePolicy } from "../harness/policy.js";
import {
  accessLogLine,
  auditRecordOf,
  auditRecords,
  client,
  extprocMetrics,
  openStream,
  rawRequest,
  sampleValue,
} from "./helpers.js";

const SECRET_PROMPT = "my card is 4111 1111 1111 1111 and my name is Ada";

describe("audit and metrics (default policy)", () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(() => stack?.stop());

  it("writes one complete audit record per request, without key or prompt", async () => {
    const research = client(stack, DEMO_KEYS.research);
    const { data, response } = await research.chat.completions
      .create({ model: "chat-default", messages: [{ role: "user", content: SECRET_PROMPT }], max_tokens: 5 })
      .withResponse();
    const record = await auditRecordOf(stack, response.headers.get("x-request-id"));
    assert.equal(record.key_id, "research-notebooks");
    assert.equal(record.team, "research");
    assert.equal(record.api, "chat.completions");
    assert.equal(record.requested_model, "chat-default");
    assert.equal(record.served_model, data.model);
    assert.equal(record.pool, response.headers.get("x-demo-server"));
    assert.equal(record.status, 200);
    assert.equal(record.decision, "allow");
    assert.equal(record.reason, "ok");
    assert.equal(record.stream, false);
    assert.deepEqual(record.usage, data.usage);
    assert.ok(record.latency_ms.total >= record.latency_ms.gateway && record.latency_ms.gateway > 0);
    assert.ok(record.latency_ms.upstream !== null && record.latency_ms.upstream >= 0);
    assert.ok(!Number.isNaN(Date.parse((record as { time: string }).time)));
    assert.equal(record.request_body, undefined);
    assert.equal(record.completion, undefined);

    const file = readFileSync(stack.auditLog, "utf8");
    assert.doesNotMatch(file, /sk-demo/);
    assert.ok(!file.includes("4111"), "the prompt reached the audit log");
    const ids = auditRecords(stack).map((r) => r.request_id);
    assert.equal(ids.filter((id) => id === record.request_id).length, 1);
    // The file is one intact hash chain.
    const verdict = verifyAuditChain(file.split("\n"));
    assert.ok(verdict.ok && verdict.records === ids.length, JSON.stringify(verdict));

    // Chain heads leave the host: the durable seq as a metric, seq:hash in an "audit checkpoint" log line.
    await waitFor(
      "the durable seq to reach the last record",
      async () => sampleValue(await extprocMetrics(stack), "llm_gateway_audit_durable_seq") >= ids.length,
    );
    const checkpoints = readFileSync(path.join(stack.workDir, "extproc.log"), "utf8")
      .split("\n")
      .filter((line) => line.includes('"audit checkpoint"'))
      .map((line) => (JSON.parse(line) as { audit_checkpoint: string }).audit_checkpoint);
    assert.ok(checkpoints.length > 0, "no audit checkpoint was logged");
    const anchors = checkpoints.map((c) => ({ seq: Number(c.split(":")[0]), hash: c.split(":")[1]! }));
    const anchored = verifyAuditChain(readFileSync(stack.auditLog, "utf8").split("\n"), anchors);
    assert.ok(anchored.ok && anchored.anchorsChecked === anchors.length, JSON.stringify(anchored));
  });

  it("takes stream usage from the final usage chunk", async () => {
    const research = client(stack, DEMO_KEYS.research);
    const { data: stream, response } = await research.chat.completions
      .create({
        model: "llama-3.1-8b-instruct",
        messages: [{ role: "user", content: "one two three" }],
        stream: true,
        max_tokens: 4,
      })
      .withResponse();
    let chunks = 0;
    for await (const _chunk of stream) chunks++;
    assert.ok(chunks > 4);
    const record = await auditRecordOf(stack, response.headers.get("x-request-id"));
    assert.equal(record.stream, true);
    assert.deepEqual(record.usage, { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
  });

  it("audits a client that disconnects mid-stream", async () => {
    const stream = await openStream(
      stack,
      DEMO_KEYS.research,
      { model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "go" }] },
      { "x-demo-token-delay-ms": "50" },
    );
    stream.abort();
    const record = await auditRecordOf(stack, stream.requestId);
    assert.equal(record.reason, "closed_during_response");
    assert.equal(record.status, 200);
    // Charged (a daily limit applies): the prompt as estimated and what was streamed, counted.
    assert.equal(record.usage_source, "counted");
    assert.ok(record.usage!.prompt_tokens > 0);
    await waitFor(
      "active streams back to 0",
      async () => sampleValue(await extprocMetrics(stack), "llm_gateway_active_streams") === 0,
    );
  });

  it("moves request, token and latency metrics", async () => {
    const labels = {
      api: "chat.completions",
      model: "llama-3.1-8b-instruct",
      team: "research",
      status: "200",
      decision: "allow",
    };
    const deny = {
      api: "chat.completions",
      model: "llama-3.1-8b-instruct",
      team: "support",
      status: "403",
      decision: "deny",
    };
    const tokens = { model: "llama-3.1-8b-instruct", team: "research", type: "completion" };
    const phase = { phase: "request_body" };
    const before = await extprocMetrics(stack);

    const result = await client(stack, DEMO_KEYS.research).chat.completions.create({
      model: "llama-3.1-8b-instruct",
      messages: [{ role: "user", content: "count my tokens" }],
      max_tokens: 3,
    });
    await assert.rejects(
      client(stack, DEMO_KEYS.support).chat.completions.create({
        model: "llama-3.1-8b-instruct",
        messages: [{ role: "user", content: "x" }],
      }),
    );
    const after = await extprocMetrics(stack);
    assert.equal(
      sampleValue(after, "llm_gateway_requests_total", labels) -
        sampleValue(before, "llm_gateway_requests_total", labels),
      1,
    );
    assert.equal(
      sampleValue(after, "llm_gateway_requests_total", deny) -
        sampleValue(before, "llm_gateway_requests_total", deny),
      1,
    );
    assert.equal(
      sampleValue(after, "llm_gateway_tokens_total", tokens) -
        sampleValue(before, "llm_gateway_tokens_total", tokens),
      result.usage!.completion_tokens,
    );
    const phaseCount = "llm_gateway_processing_duration_seconds_count";
    // Both requests reached the body phase (the 403 is decided there), in one or more messages each.
    assert.ok(sampleValue(after, phaseCount, phase) - sampleValue(before, phaseCount, phase) >= 2);
    const upstreamLatency = "llm_gateway_upstream_latency_seconds_count";
    const model = { model: "llama-3.1-8b-instruct" };
    // Only the allowed request reached a model server.
    assert.equal(sampleValue(after, upstreamLatency, model) - sampleValue(before, upstreamLatency, model), 1);
    assert.ok(sampleValue(after, "process_cpu_user_seconds_total") > 0);
    assert.match(after, /# HELP llm_gateway_requests_total /);
  });

  it("keeps Envoy's Prometheus stats and logs extproc's metadata in Envoy's access log", async () => {
    const envoyStats = async () =>
      (await fetch(`http://127.0.0.1:${stack.ports.admin}/stats/prometheus`)).text();
    const upstreamRequests = (stats: string, cluster: string) =>
      sampleValue(stats, "envoy_cluster_upstream_rq_total", { envoy_cluster_name: cluster });
    const before = await envoyStats();
    const { response } = await client(stack, DEMO_KEYS.research)
      .chat.completions.create({
        model: "llama-3.1-8b-instruct",
        messages: [{ role: "user", content: "log me" }],
      })
      .withResponse();
    const line = await accessLogLine(stack, response.headers.get("x-request-id"));
    assert.equal(line.key_id, "research-notebooks");
    assert.equal(line.served_model, "llama-3.1-8b-instruct");
    assert.equal(line.pool, "pool-a");
    assert.equal(line.upstream_cluster, "pool-a");
    assert.equal(line.completion_tokens, 6);
    // This request, in Envoy's own Prometheus stats: one request to the pool, one ext_proc stream.
    const after = await envoyStats();
    for (const cluster of ["pool-a", "extproc"]) {
      assert.equal(upstreamRequests(after, cluster) - upstreamRequests(before, cluster), 1, cluster);
    }
  });

  it("never records a query string: Envoy's access log, extproc's log and the audit log", async () => {
    const secret = "sk-query-secret-5f1d9a";
    const auth = { authorization: `Bearer ${DEMO_KEYS.research}`, "content-type": "application/json" };
    const chat = await rawRequest(stack, `/v1/chat/completions?api-key=${secret}`, {
      headers: auth,
      body: JSON.stringify({ model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(chat.status, 200);
    // Only a key in the query: refused (keys are read from headers), and still logged without it.
    const refused = await rawRequest(stack, `/v1/models?api-key=${secret}&x=1`, { method: "GET" });
    assert.equal(refused.status, 401);
    for (const [res, path] of [
      [chat, "/v1/chat/completions"],
      [refused, "/v1/models"],
    ] as const) {
      const requestId = res.headers.get("x-request-id");
      assert.equal((await accessLogLine(stack, requestId)).path, path);
      assert.equal((await auditRecordOf(stack, requestId)).path, path);
    }
    for (const file of [stack.envoyAccessLog, path.join(stack.workDir, "extproc.log"), stack.auditLog]) {
      assert.ok(!readFileSync(file, "utf8").includes(secret), `${file} holds the query's secret`);
    }
  });
});

describe("audit with audit.logPrompts on", () => {
  let stack: Stack;
  before(async () => {
    const workDir = mkdtempSync(path.join(tmpdir(), "llm-gateway-prompts-"));
    const policyFile = writePolicy(workDir, (doc) => {
      assert.equal(doc.audit.logPrompts, false, "the sample policy keeps prompts out of the audit log");
      doc.audit.logPrompts = true;
    });
    stack = await startStack({ policyFile, workDir });
  });
  after(() => stack?.stop());

  it("records prompt and completion, streamed or not", async () => {
    const research = client(stack, DEMO_KEYS.research);
    const messages = [{ role: "user" as const, content: "remember this sentence" }];
    const { data, response } = await research.chat.completions
      .create({ model: "llama-3.1-8b-instruct", messages })
      .withResponse();
    const plain = await auditRecordOf(stack, response.headers.get("x-request-id"));
    assert.deepEqual((plain.request_body as { messages: unknown }).messages, messages);
    assert.equal(plain.completion, data.choices[0]!.message.content);

    const { data: stream, response: streamed } = await research.chat.completions
      .create({ model: "llama-3.1-8b-instruct", messages, stream: true })
      .withResponse();
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    const record = await auditRecordOf(stack, streamed.headers.get("x-request-id"));
    assert.equal(record.completion, text);
  });
});
