/**
 * The gateway end to end through a real Envoy with the openai SDK: model listing, chat/completions/embeddings
 * (plain and streamed) identical to the model server's answers, alias rewriting with a weighted canary, and
 * credentials never reaching the model servers.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { request as httpsRequest } from "node:https";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { DEMO_KEYS, DEMO_POOL_B_KEY, ROOT, startStack, type Stack } from "../harness/index.js";
import { writePolicy } from "../harness/policy.js";
import { client, forwarded, markForwarded } from "./helpers.js";

let stack: Stack;
let research: OpenAI;
let support: OpenAI;

before(async () => {
  // The core gateway: PII response scanning holds streamed text back, which would change the stream's framing.
  const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-core-"));
  const policyFile = writePolicy(dir, (doc) => {
    delete doc.pii;
    doc.guardrails = [];
  });
  stack = await startStack({ policyFile, workDir: dir });
  research = client(stack, DEMO_KEYS.research);
  support = client(stack, DEMO_KEYS.support);
});
after(() => stack?.stop());

/** POSTs `body` straight to a demo pool (no gateway) and returns the raw response text. */
async function direct(pool: string, apiPath: string, body: unknown): Promise<string> {
  const server = stack.pools[pool]!;
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (pool === "pool-b") headers.authorization = `Bearer ${DEMO_POOL_B_KEY}`;
  const res = await fetch(`${server.url}${apiPath}`, { method: "POST", headers, body: JSON.stringify(body) });
  assert.equal(res.status, 200);
  return res.text();
}

/** Responses differ only in id and timestamp between two calls. */
const normalize = (text: string): string =>
  text.replace(/"id":"pool-[ab]-\d+"/g, '"id":"X"').replace(/"created":\d+/g, '"created":0');

describe("models", () => {
  it("lists exactly the models each key may use, answered by the gateway", async () => {
    const mark = markForwarded(stack);
    const all = await research.models.list();
    assert.deepEqual(
      all.data.map((m) => m.id),
      ["bge-small-en-v1.5", "chat-default", "llama-3.1-8b-instruct", "llama-3.1-8b-instruct-v2"],
    );
    assert.ok(all.data.every((m) => m.object === "model" && typeof m.created === "number"));
    const limited = await support.models.list();
    assert.deepEqual(
      limited.data.map((m) => m.id),
      ["chat-default"],
    );
    const one = await support.models.retrieve("chat-default");
    assert.equal(one.id, "chat-default");
    await assert.rejects(support.models.retrieve("llama-3.1-8b-instruct"), OpenAI.NotFoundError);
    assert.deepEqual(mark.all(), [], "a model listing reached a model server");
  });
});

describe("inference", () => {
  const chatBody: OpenAI.ChatCompletionCreateParamsNonStreaming = {
    model: "llama-3.1-8b-instruct",
    messages: [
      { role: "system", content: "You are terse." },
      { role: "user", content: "Name three rivers in Europe." },
    ],
    max_tokens: 12,
  };

  it("answers a chat completion exactly as the model server does", async () => {
    const { data, response } = await research.chat.completions.create(chatBody).withResponse();
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("x-demo-server"), "pool-a");
    assert.match(response.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/);
    const expected = JSON.parse(normalize(await direct("pool-a", "/v1/chat/completions", chatBody)));
    assert.deepEqual(JSON.parse(normalize(JSON.stringify(data))), expected);
    assert.equal(data.usage?.total_tokens, data.usage!.prompt_tokens + data.usage!.completion_tokens);
  });

  it("streams a chat completion byte for byte as the model server does, without an unrequested usage chunk", async () => {
    const res = await fetch(`${stack.baseURL}/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${DEMO_KEYS.research}`, "content-type": "application/json" },
      body: JSON.stringify({ ...chatBody, stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const viaGateway = await res.text();
    const viaServer = await direct("pool-a", "/v1/chat/completions", { ...chatBody, stream: true });
    assert.equal(normalize(viaGateway), normalize(viaServer));
    assert.doesNotMatch(viaGateway, /"usage"/);
    assert.ok(viaGateway.endsWith("data: [DONE]\n\n"));

    // The same through the SDK's stream parser.
    const stream = await research.chat.completions.create({ ...chatBody, stream: true });
    let text = "";
    for await (const chunk of stream) {
      assert.equal(chunk.usage, undefined);
      text += chunk.choices[0]?.delta.content ?? "";
    }
    const plain = await research.chat.completions.create(chatBody);
    assert.equal(text, plain.choices[0]!.message.content);
  });

  it("keeps the usage chunk when the client asks for it", async () => {
    const stream = await research.chat.completions.create({
      ...chatBody,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const last = chunks.at(-1)!;
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage?.completion_tokens, 12);
    // vLLM's shape: no "usage":null on the other chunks, the fingerprint on the usage chunk alone.
    assert.ok(chunks.slice(0, -1).every((c) => c.usage === undefined && c.system_fingerprint === undefined));
    assert.equal(last.system_fingerprint, "demo-pool-a");
  });

  it("serves completions, plain and streamed", async () => {
    const body = { model: "llama-3.1-8b-instruct", prompt: "Once upon a time", max_tokens: 6 };
    const plain = await research.completions.create(body);
    assert.deepEqual(
      JSON.parse(normalize(JSON.stringify(plain))),
      JSON.parse(normalize(await direct("pool-a", "/v1/completions", body))),
    );
    const stream = await research.completions.create({ ...body, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    assert.equal(text, plain.choices[0]!.text);
  });

  it("serves embeddings from the pool that hosts the model, with the pool's own credential", async () => {
    const body = { model: "bge-small-en-v1.5", input: ["first document", "second document"] };
    const { data, response } = await research.embeddings
      .create({ ...body, encoding_format: "float" })
      .withResponse();
    assert.equal(response.headers.get("x-demo-server"), "pool-b");
    const expected = JSON.parse(
      await direct("pool-b", "/v1/embeddings", { ...body, encoding_format: "float" }),
    );
    assert.deepEqual(JSON.parse(JSON.stringify(data)), expected);
    assert.equal(data.usage.prompt_tokens, 4);
  });

  it("accepts TLS on the second listener with the dev certificate", async () => {
    const ca = readFileSync(path.join(ROOT, "envoy/certs/dev.crt"));
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: "127.0.0.1",
          servername: "localhost",
          port: stack.ports.https,
          path: "/v1/models",
          headers: { authorization: `Bearer ${DEMO_KEYS.support}` },
          ca,
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.end();
    });
    assert.equal(status, 200);
  });
});

describe("ext_proc streams", () => {
  it("closes every ext_proc stream cleanly over thousands of requests: no reset, no failure", async () => {
    // nghttp2 drops a connection after ~1000 stream resets in a burst; 1500 requests cross that line.
    const body = JSON.stringify({
      model: "llama-3.1-8b-instruct",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 1,
    });
    const statuses: Record<number, number> = {};
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < 1500) {
          next++;
          const res = await fetch(`${stack.baseURL}/chat/completions`, {
            method: "POST",
            headers: { authorization: `Bearer ${DEMO_KEYS.research}`, "content-type": "application/json" },
            body,
          });
          await res.arrayBuffer();
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
        }
      }),
    );
    assert.deepEqual(statuses, { 200: 1500 });
    const stats = await (
      await fetch(`http://127.0.0.1:${stack.ports.admin}/stats?filter=^cluster\\.extproc\\.`)
    ).text();
    const stat = (name: string) =>
      Number(new RegExp(`^cluster\\.extproc\\.${name}: (\\d+)$`, "m").exec(stats)?.[1]);
    assert.ok(stat("upstream_rq_total") >= 1500);
    assert.equal(stat("upstream_rq_tx_reset"), 0);
    assert.equal(stat("upstream_cx_destroy_remote"), 0);
  });
});

describe("routing", () => {
  it("rewrites the alias and splits chat-default 90/10 between the pools", async () => {
    const total = 600;
    const mark = markForwarded(stack);
    const served: Record<string, number> = { "pool-a": 0, "pool-b": 0 };
    let next = 0;
    const worker = async () => {
      while (next < total) {
        next++;
        const { data, response } = await research.chat.completions
          .create({ model: "chat-default", messages: [{ role: "user", content: "hi" }], max_tokens: 1 })
          .withResponse();
        const pool = response.headers.get("x-demo-server")!;
        served[pool]!++;
        assert.equal(data.model, pool === "pool-a" ? "llama-3.1-8b-instruct" : "llama-3.1-8b-instruct-v2");
      }
    };
    await Promise.all(Array.from({ length: 12 }, worker));
    assert.equal(served["pool-a"]! + served["pool-b"]!, total);
    // Binomial(600, 0.1): mean 60, sd 7.3; ±4 sd keeps a false failure below 1 in 10,000 runs.
    assert.ok(
      served["pool-b"]! >= 31 && served["pool-b"]! <= 89,
      `pool-b served ${served["pool-b"]} of ${total}`,
    );
    // Each pool received exactly the requests it answered, every one with the alias resolved to its model.
    const sent = mark.all();
    for (const [pool, model] of [
      ["pool-a", "llama-3.1-8b-instruct"],
      ["pool-b", "llama-3.1-8b-instruct-v2"],
    ] as const) {
      const mine = sent.filter((f) => f.pool === pool);
      assert.equal(mine.length, served[pool]);
      for (const { req } of mine) assert.equal(JSON.parse(req.body).model, model);
    }
  });

  it("ignores a routing header forged by the client", async () => {
    const forging = client(stack, DEMO_KEYS.research, { "x-gateway-pool": "pool-b" });
    const mark = markForwarded(stack);
    const { response } = await forging.chat.completions
      .create({ model: "llama-3.1-8b-instruct", messages: [{ role: "user", content: "hi" }] })
      .withResponse();
    assert.equal(response.headers.get("x-demo-server"), "pool-a");
    const { pool, req } = mark.one();
    assert.equal(pool, "pool-a");
    assert.equal(req.headers["x-gateway-pool"], undefined);
  });

  it("never forwards the client's credential; pool B gets its own from policy", async () => {
    const keyed = client(stack, DEMO_KEYS.research, {
      "x-api-key": DEMO_KEYS.research,
      "api-key": DEMO_KEYS.research,
    });
    const mark = markForwarded(stack);
    await keyed.chat.completions.create({
      model: "llama-3.1-8b-instruct",
      messages: [{ role: "user", content: "a" }],
    });
    await keyed.chat.completions.create({
      model: "llama-3.1-8b-instruct-v2",
      messages: [{ role: "user", content: "b" }],
    });
    const [a, b, ...more] = mark.all();
    assert.equal(more.length, 0);
    assert.equal(a!.pool, "pool-a");
    assert.equal(a!.req.headers.authorization, undefined);
    assert.equal(b!.pool, "pool-b");
    assert.equal(b!.req.headers.authorization, `Bearer ${DEMO_POOL_B_KEY}`);
    for (const { req } of forwarded(stack)) {
      assert.doesNotMatch(JSON.stringify(req.headers) + req.body, /sk-demo/);
    }
  });
});
