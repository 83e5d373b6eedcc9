/*
 * Attack review of the translated pools (a pool whose servers speak chat completions only): hostile but
 * schema-valid Responses and Messages bodies must be refused with a clear 400 in the API's own shape, not
 * fail the exchange with an internal error, and a refusal must leave the quota as it was.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  API_KEY,
  decodeReply,
  requestBody,
  requestHeaders,
  text,
  TOKENS_PER_MINUTE,
  unitDeps,
  type Reply,
} from "../../test/unit/ext-proc.js";
import { encodeResponse } from "../envoy/protocol.js";
import type { ProcessingRequestMessage } from "../envoy/messages.js";
import { parsePolicy, sha256Hex } from "../policy/index.js";
import { Exchange } from "./index.js";

const policy = () =>
  parsePolicy(
    `
version: 1
pools:
  chat-only: { apis: { responses: translated, messages: translated } }
models:
  m1: { pool: chat-only }
teams: { t: { models: [m1] } }
keys:
  - { id: k1, team: t, sha256: ${sha256Hex(API_KEY)} }
limits:
  - { id: tpm, scope: { key: k1 }, tokensPerMinute: ${TOKENS_PER_MINUTE} }
`,
    "translated.yaml",
  );

async function send(exchange: Exchange, message: ProcessingRequestMessage): Promise<Reply> {
  const replies = (await exchange.handle(message)).map((reply) => decodeReply(encodeResponse(reply)));
  return Object.assign({}, ...replies) as Reply;
}

/** The local reply to `body` posted to `path` on the translated pool (an exception fails the test). */
async function refusal(path: string, body: unknown) {
  const unit = unitDeps(policy());
  const exchange = new Exchange(unit.deps);
  await send(exchange, requestHeaders(path));
  let reply: Reply;
  try {
    reply = await send(exchange, requestBody(body));
  } catch (err) {
    assert.fail(`the exchange failed with an internal error (a 500 from Envoy): ${String(err)}`);
  }
  const local = reply.immediateResponse;
  assert.ok(local, "a local reply");
  const probe = await unit.deps.quota.admit({
    policy: unit.policy,
    identity: { keyId: "k1", team: "t", allowedModels: new Set(["m1"]) },
    model: unit.policy.models.get("m1")!,
    requestId: "probe",
    estimate: async () => ({ input: 1, output: 0 }),
  });
  const left = Number(probe?.headers.find(([n]) => n === "x-ratelimit-remaining-tokens")?.[1]) + 1;
  return { status: local.status?.code, body: JSON.parse(text(local.body)) as Record<string, unknown>, left };
}

describe("attack review (DEFECTs found and fixed): schema-valid bodies a translated pool cannot take", () => {
  const cases: Array<[string, string, unknown]> = [
    [
      "a Responses message item whose content is null",
      "/v1/responses",
      { model: "m1", input: [{ type: "message", role: "user", content: null }] },
    ],
    [
      "a Responses message item without content",
      "/v1/responses",
      { model: "m1", input: [{ type: "message", role: "user" }] },
    ],
    [
      "a Responses function_call_output without output",
      "/v1/responses",
      { model: "m1", input: [{ type: "function_call_output", call_id: "c1" }] },
    ],
    [
      "a Messages image block without source",
      "/v1/messages",
      { model: "m1", max_tokens: 16, messages: [{ role: "user", content: [{ type: "image" }] }] },
    ],
  ];
  for (const [what, path, body] of cases) {
    it(`DEFECT: ${what} fails the exchange (500) instead of a 400 invalid_request`, async () => {
      const { status, body: error, left } = await refusal(path, body);
      assert.equal(status, 400);
      assert.ok(error.error || error.type === "error", "an error body in the API's shape");
      assert.equal(left, TOKENS_PER_MINUTE, "nothing stays reserved or charged");
    });
  }

  it("refuses a feature chat cannot express with a 400 and no quota held", async () => {
    const { status, left } = await refusal("/v1/responses", {
      model: "m1",
      input: "hi",
      tools: [{ type: "web_search" }],
    });
    assert.equal(status, 400);
    assert.equal(left, TOKENS_PER_MINUTE);
  });
});
