/**
 * Streams through real Envoy are what a real vLLM would send the client for the client's own
 * `stream_options`, although the gateway always asks for the usage chunk: compared byte for byte with the
 * demo server answering the client's options directly, and field for field with vLLM's recordings
 * (test/vllm-recordings/). A model served under another name (`upstreamModel`) answers under the name
 * the client was routed to, in JSON answers and in every chunk.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { DEMO_KEYS, startStack, type Stack } from "../harness/index.js";
import { writePolicy } from "../harness/policy.js";
import { recordedBody } from "../vllm-recordings/index.js";
import { auditRecordOf, client, userChat } from "./helpers.js";

/** A public model the demo pool A serves as `llama-3.1-8b-instruct`. */
const RENAMED = "llama-latest";

let stack: Stack;

before(async () => {
  // No PII or guardrails: response scanning re-serializes events, which would change their bytes.
  const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-streams-"));
  const policyFile = writePolicy(dir, (doc) => {
    delete doc.pii;
    doc.guardrails = [];
    doc.models[RENAMED] = { ...doc.models["llama-3.1-8b-instruct"], upstreamModel: "llama-3.1-8b-instruct" };
  });
  stack = await startStack({ policyFile, workDir: dir });
});
after(() => stack?.stop());

const headers = { authorization: `Bearer ${DEMO_KEYS.research}`, "content-type": "application/json" };

/** POSTs `body` through the gateway; returns the response text and request id. */
async function viaGateway(
  apiPath: string,
  body: unknown,
): Promise<{ text: string; requestId: string | null }> {
  const res = await fetch(`${stack.baseURL}${apiPath}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
  return { text: await res.text(), requestId: res.headers.get("x-request-id") };
}

/** POSTs `body` straight to demo pool A (no gateway) and returns the raw response text. */
async function direct(apiPath: string, body: unknown): Promise<string> {
  const res = await fetch(`${stack.pools["pool-a"]!.url}${apiPath}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200);
  return res.text();
}

/** Two answers of the demo server differ only in id and timestamp. */
const normalize = (text: string): string =>
  text.replace(/"id":"pool-a-\d+"/g, '"id":"X"').replace(/"created":\d+/g, '"created":0');

/**
 * A stream's structure: every field, in order, with the values that differ between any two servers
 * (ids, times, model names, generated text, token counts, fingerprints) replaced by placeholders.
 */
const skeleton = (text: string): string =>
  normalize(text)
    .replace(/"id":"[^"]*"/g, '"id":"X"')
    .replace(/"model":"[^"]*"/g, '"model":"M"')
    .replace(/"(content|text)":"(?:[^"\\]|\\.)*"/g, '"$1":"T"')
    .replace(/"(prompt|completion|total)_tokens":\d+/g, '"$1_tokens":0')
    .replace(/"system_fingerprint":"[^"]*"/g, '"system_fingerprint":"F"');

// The demo answers "This is <model> answering:" and echoes the prompt: enough tokens to hit max_tokens.
const chat = (maxTokens: number, streamOptions?: Record<string, boolean>) =>
  userChat("llama-3.1-8b-instruct", "Hello there, my friend", {
    max_tokens: maxTokens,
    stream: true as const,
    ...(streamOptions && { stream_options: streamOptions }),
  });

describe("streams as vLLM sends them for the client's own stream_options", () => {
  const cases = [
    { recording: "chat_stream", body: chat(8) },
    { recording: "chat_stream_usage", body: chat(8, { include_usage: true }) },
    {
      recording: "chat_stream_usage_continuous",
      body: chat(8, { include_usage: true, continuous_usage_stats: true }),
    },
    { recording: "chat_stream_include_usage_false", body: chat(3, { include_usage: false }) },
    { recording: "chat_stream_continuous_only", body: chat(3, { continuous_usage_stats: true }) },
  ];
  for (const { recording, body } of cases) {
    it(`${JSON.stringify(body.stream_options ?? null)}: like ${recording}.txt, usage read`, async () => {
      const { text, requestId } = await viaGateway("/chat/completions", body);
      assert.equal(normalize(text), normalize(await direct("/v1/chat/completions", body)));
      assert.equal(skeleton(text), skeleton(recordedBody(recording)));
      // Whatever the client sees, the gateway read the usage for the quota and the audit.
      const audit = await auditRecordOf(stack, requestId);
      assert.equal(audit.usage?.completion_tokens, body.max_tokens);
    });
  }

  for (const [recording, streamOptions] of [
    ["completions_stream", undefined],
    ["completions_stream_usage", { include_usage: true }],
  ] as const) {
    it(`completions ${JSON.stringify(streamOptions ?? null)}: like ${recording}.txt`, async () => {
      const body = {
        model: "llama-3.1-8b-instruct",
        prompt: "The license is here today",
        max_tokens: 8,
        stream: true,
        ...(streamOptions && { stream_options: streamOptions }),
      };
      const { text } = await viaGateway("/completions", body);
      assert.equal(normalize(text), normalize(await direct("/v1/completions", body)));
      assert.equal(skeleton(text), skeleton(recordedBody(recording)));
    });
  }
});

describe("a model served under its upstream name", () => {
  it("answers JSON under the policy's name, with the content-length to match", async () => {
    const body = { model: RENAMED, messages: [{ role: "user" as const, content: "hi" }], max_tokens: 4 };
    const { data, response } = await client(stack, DEMO_KEYS.research)
      .chat.completions.create(body)
      .withResponse();
    assert.equal(data.model, RENAMED);
    const upstream = JSON.parse(
      await direct("/v1/chat/completions", { ...body, model: "llama-3.1-8b-instruct" }),
    );
    assert.deepEqual(
      JSON.parse(normalize(JSON.stringify(data))),
      JSON.parse(normalize(JSON.stringify({ ...upstream, model: RENAMED }))),
    );
    assert.equal((await auditRecordOf(stack, response.headers.get("x-request-id"))).served_model, RENAMED);
  });

  it("names it so in every chunk, with and without the usage chunk, through the SDK too", async () => {
    for (const streamOptions of [undefined, { include_usage: true }]) {
      const body = { ...chat(6, streamOptions), model: RENAMED };
      const { text } = await viaGateway("/chat/completions", body);
      const upstream = await direct("/v1/chat/completions", { ...body, model: "llama-3.1-8b-instruct" });
      assert.equal(
        normalize(text),
        normalize(upstream).replaceAll('"model":"llama-3.1-8b-instruct"', `"model":"${RENAMED}"`),
      );
      assert.doesNotMatch(text, /"model":"llama-3\.1-8b-instruct"/);
    }
    const stream = await client(stack, DEMO_KEYS.research).chat.completions.create({
      ...chat(6),
      model: RENAMED,
      stream: true,
    });
    for await (const chunk of stream) assert.equal(chunk.model, RENAMED);
  });

  it("leaves a model served under its own name byte for byte as the server sent it", async () => {
    const body = { model: "llama-3.1-8b-instruct", prompt: "Once upon a time", max_tokens: 5 };
    const res = await fetch(`${stack.baseURL}/completions`, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    assert.equal(normalize(await res.text()), normalize(await direct("/v1/completions", body)));
  });
});
