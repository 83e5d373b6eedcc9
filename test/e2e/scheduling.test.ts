/**
 * Model-server-aware endpoint choice through real Envoy (docs/scheduling.md): pool A is two capacity-modelled
 * demo servers of different speeds; extproc reads their vLLM /metrics and hints an endpoint to the cluster's
 * override-host load balancer. Picks follow queue depth; a long shared prefix stays on one server; metrics
 * that fail leave the choice to Envoy's least-request; a server that disappears costs no request; a
 * client's own routing or endpoint header reaches neither Envoy's balancer nor the model server.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { DEMO_KEYS, startStack, waitFor, type Stack } from "../harness/index.js";
import { writePolicy } from "../harness/policy.js";
import { auditRecordOf, client, extprocMetrics, markForwarded, sampleValue } from "./helpers.js";

const MODEL = "llama-3.1-8b-instruct";
const SLOW = "pool-a";
const FAST = "pool-a-fast";
/** Two sequences at a time; 20 ms per output token at speed 1 (the fast server: speed 3). */
const CAPACITY = { maxSequences: 2, decodeMsPerToken: 20, prefillMsPerToken: 0.5 };
const SYSTEM_PROMPT = `You are the support assistant of an on-premise gateway. ${"Answer briefly and cite the runbook. ".repeat(12)}`;

describe("scheduling: endpoint choice by model-server state", () => {
  let stack: Stack;
  const address = (server: string) => `127.0.0.1:${stack.pools[server]!.port}`;
  const metric = async (name: string, labels: Record<string, string>) =>
    sampleValue(await extprocMetrics(stack), name, labels);
  const bothKnown = () =>
    waitFor("both endpoints read", async () => {
      const text = await extprocMetrics(stack);
      return [SLOW, FAST].every(
        (s) => sampleValue(text, "llm_gateway_endpoint_known", { endpoint: address(s) }) === 1,
      );
    });

  /** One chat request through the gateway: the server that answered, and the audit's endpoint. */
  const ask = async (content: string, headers: Record<string, string> = {}, system?: string) => {
    const sdk = client(stack, DEMO_KEYS.research, headers);
    const messages = [
      ...(system === undefined ? [] : [{ role: "system" as const, content: system }]),
      { role: "user" as const, content },
    ];
    const { response } = await sdk.chat.completions
      .create({ model: MODEL, messages, max_tokens: 2 })
      .withResponse();
    const record = await auditRecordOf(stack, response.headers.get("x-request-id"));
    return { server: response.headers.get("x-demo-server"), endpoint: record.endpoint };
  };

  /** `count` requests straight to `server` (not through the gateway), each running ~0.6 s at speed 1: 16 keep the slow server busy ~5 s. */
  const loadDirectly = (server: string, count: number) =>
    Promise.all(
      Array.from({ length: count }, (_, i) =>
        fetch(`${stack.pools[server]!.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: MODEL,
            messages: [{ role: "user", content: `load ${i} ${"word ".repeat(30)}` }],
            max_tokens: 28,
          }),
        }).then((r) => r.text()),
      ),
    );

  before(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-scheduling-"));
    const policyFile = writePolicy(dir, (doc) => {
      doc.pools["pool-a"].scheduling = {
        intervalMs: 50,
        // Half a second: on a busy test machine a read can take longer than a few intervals.
        staleAfterIntervals: 10,
        affinity: { prefixChars: 256, queueMargin: 2 },
      };
    });
    stack = await startStack({
      policyFile,
      workDir: dir,
      capacity: { "pool-a": { ...CAPACITY, speed: 1 } },
      extraEndpoints: [{ pool: "pool-a", name: FAST, capacity: { ...CAPACITY, speed: 3 } }],
    });
    await bothKnown();
  });
  after(() => stack?.stop());

  it("publishes each endpoint's vLLM state as last read", async () => {
    const text = await extprocMetrics(stack);
    for (const server of [SLOW, FAST]) {
      const labels = { pool: "pool-a", endpoint: address(server) };
      assert.equal(sampleValue(text, "llm_gateway_endpoint_waiting", labels), 0);
      assert.equal(sampleValue(text, "llm_gateway_endpoint_kv_usage", labels), 0);
      assert.ok(sampleValue(text, "llm_gateway_endpoint_state_age_seconds", labels) < 1);
    }
  });

  it("sends requests away from a server with a queue", async () => {
    const load = loadDirectly(SLOW, 16);
    await waitFor("the slow server's queue read", async () => {
      return (
        (await metric("llm_gateway_endpoint_waiting", { endpoint: address(SLOW) })) >= 4 &&
        (await metric("llm_gateway_endpoint_known", { endpoint: address(SLOW) })) === 1
      );
    });
    const picksBefore = await metric("llm_gateway_endpoint_picks_total", {
      endpoint: address(FAST),
      reason: "queue",
    });
    for (let i = 0; i < 5; i++) {
      const answer = await ask(`short question ${i}`);
      assert.equal(answer.server, FAST, `request ${i} avoided the queue`);
      assert.equal(answer.endpoint, address(FAST));
    }
    assert.equal(
      (await metric("llm_gateway_endpoint_picks_total", { endpoint: address(FAST), reason: "queue" })) -
        picksBefore,
      5,
    );
    await load;
  });

  it("keeps a repeated long prefix on one server, whose prefix cache then answers it", async () => {
    await waitFor("both idle", async () => {
      const text = await extprocMetrics(stack);
      return [SLOW, FAST].every(
        (s) => sampleValue(text, "llm_gateway_endpoint_running", { endpoint: address(s) }) === 0,
      );
    });
    const hitsBefore = Object.fromEntries(
      [SLOW, FAST].map((s) => [s, stack.pools[s]!.capacity!.snapshot().prefixHits]),
    );
    const picks = () =>
      Promise.all(
        ["affinity", "queue", "no_state"].map((reason) =>
          metric("llm_gateway_endpoint_picks_total", { reason }),
        ),
      );
    const picksBefore = await picks();
    const servers = new Set<string | null>();
    for (let i = 0; i < 6; i++) servers.add((await ask(`question number ${i}`, {}, SYSTEM_PROMPT)).server);
    const [affinity, queue, noState] = (await picks()).map((n, i) => n - picksBefore[i]!);
    assert.deepEqual({ affinity, queue, noState }, { affinity: 6, queue: 0, noState: 0 });
    assert.equal(servers.size, 1, `one server answered every request: ${[...servers].join(", ")}`);
    const server = [...servers][0]!;
    // The first request filled its cache; the other five found the system prompt's blocks there.
    assert.ok(stack.pools[server]!.capacity!.snapshot().prefixHits - hitsBefore[server]! >= 5 * 16);
  });

  it("ignores a client's own endpoint and routing headers: neither reaches Envoy's balancer or the server", async () => {
    const load = loadDirectly(SLOW, 16);
    await waitFor("the slow server's queue read", async () => {
      return (await metric("llm_gateway_endpoint_waiting", { endpoint: address(SLOW) })) >= 4;
    });
    const since = markForwarded(stack);
    const forged = { "x-gateway-endpoint": address(SLOW), "x-gateway-pool": "pool-b" };
    for (let i = 0; i < 3; i++) assert.equal((await ask(`forged ${i}`, forged)).server, FAST);
    for (const { req } of since.all().filter((f) => f.req.path === "/v1/chat/completions")) {
      assert.equal(req.headers["x-gateway-endpoint"], address(FAST), "extproc's hint, not the client's");
      assert.equal(req.headers["x-gateway-pool"], undefined);
    }
    await load;
  });

  it("falls back to Envoy's balancing when metrics fail, and a client's header still steers nothing", async () => {
    for (const s of [SLOW, FAST]) stack.pools[s]!.setMetricsAvailable(false);
    try {
      await waitFor("both endpoints unknown", async () => {
        const text = await extprocMetrics(stack);
        return [SLOW, FAST].every(
          (s) => sampleValue(text, "llm_gateway_endpoint_known", { endpoint: address(s) }) === 0,
        );
      });
      const since = markForwarded(stack);
      const servers = new Set<string | null>();
      // Pinned by a forged header, 20 requests would all go to the slow server; Envoy's least-request
      // spreads them (all 20 on one server by chance: 2^-19).
      for (let i = 0; i < 20; i++) {
        const answer = await ask(`no state ${i}`, { "x-gateway-endpoint": address(SLOW) });
        assert.equal(answer.endpoint, undefined, "no hint without state");
        servers.add(answer.server);
      }
      assert.deepEqual([...servers].sort(), [SLOW, FAST].sort());
      for (const { req } of since.all().filter((f) => f.req.path === "/v1/chat/completions"))
        assert.equal(req.headers["x-gateway-endpoint"], undefined, "Envoy removed the client's header");
      assert.ok((await metric("llm_gateway_endpoint_picks_total", { reason: "no_state" })) >= 20);

      // One server's metrics back: it is the only one known, so every pick goes to it.
      stack.pools[SLOW]!.setMetricsAvailable(true);
      await waitFor("slow server known", async () => {
        return (await metric("llm_gateway_endpoint_known", { endpoint: address(SLOW) })) === 1;
      });
      for (let i = 0; i < 3; i++) assert.equal((await ask(`one known ${i}`)).server, SLOW);
    } finally {
      for (const s of [SLOW, FAST]) stack.pools[s]!.setMetricsAvailable(true);
    }
  });

  it("loses no request when a server disappears mid-run", async () => {
    await bothKnown();
    const sdk = client(stack, DEMO_KEYS.research);
    const request = (i: number) =>
      sdk.chat.completions.create({
        model: MODEL,
        messages: [{ role: "user", content: `run ${i}` }],
        max_tokens: 2,
      });
    await Promise.all(Array.from({ length: 6 }, (_, i) => request(i)));
    // Gone before the scheduler or Envoy's health checks can know: a hint to it fails to connect, Envoy's
    // retry goes to another host (previous_hosts), outlier detection ejects it, and its reads go stale.
    await stack.pools[SLOW]!.close();
    // One after another: each is placed on what the scheduler and Envoy know by then.
    for (let i = 0; i < 12; i++) await request(100 + i);
    await waitFor("the gone server unknown", async () => {
      return (await metric("llm_gateway_endpoint_known", { endpoint: address(SLOW) })) === 0;
    });
    for (let i = 0; i < 3; i++) assert.equal((await ask(`after ${i}`)).server, FAST);
  });
});
