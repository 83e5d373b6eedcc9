/**
 * Every refusal through real Envoy: OpenAI-style JSON with the status that makes the SDK raise its
 * matching error class, an audit record for each, and nothing forwarded. Failure modes: upstream errors
 * pass through with their bodies, a 200 that is not JSON is passed on and audited as such, a dead pool is a clear 503, and without extproc Envoy fails closed.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI, { APIError } from "openai";
import { DEMO_KEYS, startStack, type Stack } from "../harness/index.js";
import {
  assertErrorObject,
  assertOpenAIError,
  auditRecordOf,
  client,
  markForwarded,
  rawRequest,
  type OpenAIErrorObject,
  userChat,
} from "./helpers.js";

let stack: Stack;

before(async () => {
  stack = await startStack();
});
after(() => stack?.stop());

const hello = userChat("llama-3.1-8b-instruct", "hello");

/** Checks the OpenAI error shape of an SDK error and returns its body. */
function errorBody(err: unknown, status: number, code: string): OpenAIErrorObject {
  assert.ok(err instanceof OpenAI.APIError, `expected an APIError, got ${String(err)}`);
  assert.equal(err.status, status);
  assert.equal(err.code, code);
  return assertErrorObject(err.error);
}

/** Expects `call` to fail with `ErrorClass`, `status` and `code`, audited as a denial, nothing forwarded. */
async function expectRefusal(
  call: () => Promise<unknown>,
  ErrorClass: new (...args: never[]) => APIError,
  status: number,
  code: string,
): Promise<OpenAIErrorObject> {
  const mark = markForwarded(stack);
  let caught: unknown;
  try {
    await call();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ErrorClass, `expected ${ErrorClass.name}, got ${String(caught)}`);
  const body = errorBody(caught, status, code);
  const audit = await auditRecordOf(stack, (caught as APIError).headers?.get("x-request-id") ?? null);
  assert.equal(audit.decision, "deny");
  assert.equal(audit.reason, code);
  assert.equal(audit.status, status);
  assert.deepEqual(mark.all(), [], "a refused request reached a model server");
  return body;
}

describe("authentication and authorization", () => {
  it("401 without a key", async () => {
    const res = await rawRequest(stack, "/v1/chat/completions", {
      headers: { "content-type": "application/json" },
      body: JSON.stringify(hello),
    });
    const error = assertOpenAIError(res, 401, "missing_api_key");
    // Exactly OpenAI's members, in OpenAI's order.
    assert.deepEqual(Object.keys(error), ["message", "type", "param", "code"]);
  });

  it("401 for unknown, revoked and expired keys, never echoing the key", async () => {
    for (const [key, code] of [
      ["sk-not-a-real-key", "invalid_api_key"],
      [DEMO_KEYS.revoked, "revoked_api_key"],
      [DEMO_KEYS.expired, "expired_api_key"],
    ] as const) {
      const body = await expectRefusal(
        () => client(stack, key).chat.completions.create(hello),
        OpenAI.AuthenticationError,
        401,
        code,
      );
      assert.ok(!body.message.includes(key));
    }
  });

  it("403 for a model the key's team may not use", async () => {
    const body = await expectRefusal(
      () => client(stack, DEMO_KEYS.support).chat.completions.create(hello),
      OpenAI.PermissionDeniedError,
      403,
      "model_not_allowed",
    );
    assert.equal(body.param, "model");
  });

  it("404 for an unknown model", async () => {
    const body = await expectRefusal(
      () => client(stack, DEMO_KEYS.research).chat.completions.create({ ...hello, model: "gpt-99" }),
      OpenAI.NotFoundError,
      404,
      "model_not_found",
    );
    assert.equal(body.param, "model");
  });
});

describe("request validation", () => {
  const research = () => client(stack, DEMO_KEYS.research);

  it("400 naming the missing or mistyped field", async () => {
    const cases: Array<[unknown, string]> = [
      [{ model: "llama-3.1-8b-instruct" }, "messages"],
      [{ messages: hello.messages }, "model"],
      [{ ...hello, messages: [{ role: "user", content: 42 }] }, "messages[0].content"],
      [{ ...hello, messages: [] }, "messages"],
      [{ ...hello, max_tokens: "ten" }, "max_tokens"],
      [{ ...hello, stream: "yes" }, "stream"],
    ];
    for (const [bad, param] of cases) {
      const body = await expectRefusal(
        () => research().chat.completions.create(bad as OpenAI.ChatCompletionCreateParamsNonStreaming),
        OpenAI.BadRequestError,
        400,
        "invalid_request",
      );
      assert.equal(body.param, param);
      assert.ok(body.message.includes(`'${param}'`), body.message);
    }
    const embedding = await expectRefusal(
      () => research().embeddings.create({ model: "bge-small-en-v1.5", input: { text: "x" } } as never),
      OpenAI.BadRequestError,
      400,
      "invalid_request",
    );
    assert.equal(embedding.param, "input");
  });

  it("400 for malformed JSON and 415 for a non-JSON body", async () => {
    const auth = { authorization: `Bearer ${DEMO_KEYS.research}` };
    const malformed = await rawRequest(stack, "/v1/chat/completions", {
      headers: { ...auth, "content-type": "application/json" },
      body: '{"model": "llama-3.1-8b-instruct", "messages": [',
    });
    assertOpenAIError(malformed, 400, "invalid_json");
    const text = await rawRequest(stack, "/v1/chat/completions", {
      headers: { ...auth, "content-type": "text/plain" },
      body: "hello",
    });
    assertOpenAIError(text, 415, "unsupported_content_type");
  });

  it("413 as OpenAI JSON for a body over the 8 MiB limit, 200 just under it", async () => {
    const big = (bytes: number) =>
      JSON.stringify({ ...hello, messages: [{ role: "user", content: "x".repeat(bytes) }], max_tokens: 1 });
    const auth = { authorization: `Bearer ${DEMO_KEYS.research}`, "content-type": "application/json" };
    const over = await rawRequest(stack, "/v1/chat/completions", {
      headers: auth,
      body: big(8 * 1024 * 1024 + 10),
    });
    assertOpenAIError(over, 413, "request_too_large");
    const under = await rawRequest(stack, "/v1/chat/completions", {
      headers: auth,
      body: big(7 * 1024 * 1024),
    });
    assert.equal(under.status, 200, under.text.slice(0, 200));
  });

  it("404 for an unknown URL and 405 for a wrong method", async () => {
    const auth = { authorization: `Bearer ${DEMO_KEYS.research}` };
    const unknown = await rawRequest(stack, "/v1/fine_tuning/jobs", { method: "GET", headers: auth });
    assertOpenAIError(unknown, 404, "unknown_url");
    const wrongMethod = await rawRequest(stack, "/v1/chat/completions", { method: "GET", headers: auth });
    assertOpenAIError(wrongMethod, 405, "method_not_allowed");
  });

  it("404 model_not_found for a model id with malformed percent-encoding, with no error logged", async () => {
    const auth = { authorization: `Bearer ${DEMO_KEYS.research}` };
    // A cut escape, a non-hex escape, an overlong UTF-8 form and a lone surrogate: none decodes.
    for (const id of ["%E0%A4%A", "%zz", "%C0%AF", "%ED%A0%80", "llama%"]) {
      const res = await rawRequest(stack, `/v1/models/${id}`, { method: "GET", headers: auth });
      assert.equal(res.status, 404, `${id}: ${res.text}`);
      assert.deepEqual(res.json, {
        error: {
          message: `The model '${id}' does not exist.`,
          type: "not_found_error",
          param: "model",
          code: "model_not_found",
        },
      });
      const audit = await auditRecordOf(stack, res.headers.get("x-request-id"));
      assert.equal(audit.reason, "model_not_found");
      assert.equal(audit.status, 404);
    }
    // extproc's log holds no error (level 50) or stack trace from these requests.
    const log = readFileSync(path.join(stack.workDir, "extproc.log"), "utf8");
    assert.doesNotMatch(log, /URIError|"level":[56]0|"stack"/);
  });
});

describe("failure modes", () => {
  it("passes an upstream error through with its status and audits it", async () => {
    const failing = client(stack, DEMO_KEYS.research, { "x-demo-status": "503" });
    let caught: unknown;
    try {
      await failing.chat.completions.create(hello);
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof OpenAI.InternalServerError);
    assert.equal(caught.status, 503);
    const audit = await auditRecordOf(stack, caught.headers?.get("x-request-id") ?? null);
    assert.equal(audit.decision, "allow");
    assert.equal(audit.reason, "upstream_error");
    assert.equal(audit.served_model, "llama-3.1-8b-instruct");
  });

  it("passes a model server's own error through with its body byte for byte, not only its status", async () => {
    // vLLM's own answers (/work/shared/vllm-samples/direct/err_prompt_too_long.txt and a 503 of its shape).
    const answers = [
      {
        status: 400,
        body: '{"error":{"message":"This model\'s maximum context length is 1024 tokens. However, your prompt contains at least 1025 input tokens, which exceeds this limit even without any output tokens. Please reduce the length of the input prompt. (parameter=input_tokens, value=1025)","type":"BadRequestError","param":"input_tokens","code":400}}',
      },
      {
        status: 503,
        body: '{"error":{"message":"The engine is overloaded","type":"ServiceUnavailableError","param":null,"code":503}}',
      },
    ];
    for (const { status, body } of answers) {
      const res = await rawRequest(stack, "/v1/chat/completions", {
        headers: {
          authorization: `Bearer ${DEMO_KEYS.research}`,
          "content-type": "application/json",
          "x-demo-status": String(status),
          "x-demo-body": encodeURIComponent(body),
        },
        body: JSON.stringify(hello),
      });
      assert.equal(res.status, status);
      assert.equal(res.text, body);
      const audit = await auditRecordOf(stack, res.headers.get("x-request-id"));
      assert.equal(audit.reason, "upstream_error");
      assert.equal(audit.status, status);
    }
  });

  it("passes a 200 whose body is not JSON through as it came, audited as upstream_invalid_json", async () => {
    const body = '{"id":"cmpl-1","object":"chat.completion","choices":[{"index":0,"message":';
    const res = await rawRequest(stack, "/v1/chat/completions", {
      headers: {
        authorization: `Bearer ${DEMO_KEYS.research}`,
        "content-type": "application/json",
        "x-demo-body": encodeURIComponent(body),
      },
      body: JSON.stringify(hello),
    });
    assert.equal(res.status, 200);
    assert.equal(res.text, body);
    const audit = await auditRecordOf(stack, res.headers.get("x-request-id"));
    assert.equal(audit.decision, "allow");
    assert.equal(audit.reason, "upstream_invalid_json");
    assert.equal(audit.status, 200);
  });

  it("fails closed with a clear 500 while extproc is down, and recovers when it is back", async () => {
    await stack.stopExtProc();
    const mark = markForwarded(stack);
    const down = await rawRequest(stack, "/v1/chat/completions", {
      headers: { authorization: `Bearer ${DEMO_KEYS.research}`, "content-type": "application/json" },
      body: JSON.stringify(hello),
    });
    assertOpenAIError(down, 500, "gateway_policy_unavailable");
    assert.deepEqual(mark.all(), [], "a request was forwarded unchecked");
    await stack.startExtProc();
    const ok = await client(stack, DEMO_KEYS.research).chat.completions.create(hello);
    assert.equal(ok.model, "llama-3.1-8b-instruct");
  });

  it("answers 503 as OpenAI JSON when a pool has no server left", async () => {
    await stack.pools["pool-a"]!.close();
    let caught: unknown;
    try {
      await client(stack, DEMO_KEYS.research).chat.completions.create(hello);
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof OpenAI.InternalServerError);
    assert.equal(caught.status, 503);
    assert.equal(caught.code, "upstream_unavailable");
  });
});
