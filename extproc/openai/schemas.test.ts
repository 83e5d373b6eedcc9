import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { z } from "zod";
import type { GatewayError } from "../errors/index.js";
import { gatewayErrorOf } from "../errors/test-support.js";
import { chatCompletionRequest, completionRequest, embeddingRequest, parseRequestBody } from "./schemas.js";

const json = (value: unknown) => Buffer.from(JSON.stringify(value), "utf8");

/** Runs parseRequestBody and returns the GatewayError it throws. */
const errorOf = (body: Buffer, schema: z.ZodType): GatewayError =>
  gatewayErrorOf(() => parseRequestBody(body, schema), "request body was accepted");

/** Asserts a 400 invalid_request naming `param`, and returns the message. */
function invalidParam(body: unknown, schema: z.ZodType, param: string): string {
  const err = errorOf(json(body), schema);
  assert.equal(err.code, "invalid_request");
  assert.equal(err.status, 400);
  assert.equal(err.type, "invalid_request_error");
  assert.equal(err.param, param);
  return err.message;
}

const chat = (extra: Record<string, unknown> = {}) => ({
  model: "m",
  messages: [{ role: "user", content: "hi" }],
  ...extra,
});

describe("parseRequestBody", () => {
  it("accepts a valid chat request and returns it unchanged", () => {
    const body = chat({ stream: true, stream_options: { include_usage: true }, max_tokens: 5 });
    assert.deepEqual(parseRequestBody(json(body), chatCompletionRequest), body);
  });

  it("answers malformed JSON with invalid_json 400", () => {
    for (const text of ["{", "", "{'model': 'm'}", '{"model": "m",}', "not json"]) {
      const err = errorOf(Buffer.from(text), chatCompletionRequest);
      assert.equal(err.code, "invalid_json", text);
      assert.equal(err.status, 400, text);
      assert.equal(err.type, "invalid_request_error", text);
      assert.equal(err.param, null, text);
      assert.match(err.message, /^We could not parse the JSON body of your request: .+\.$/, text);
    }
  });

  it("answers JSON that is not an object with invalid_json 400", () => {
    for (const text of ["[]", '[{"model":"m"}]', "null", "42", '"model"', "true"]) {
      const err = errorOf(Buffer.from(text), chatCompletionRequest);
      assert.equal(err.code, "invalid_json", text);
      assert.equal(err.status, 400, text);
      assert.equal(err.message, "The request body must be a JSON object.", text);
    }
  });

  it("names a missing model", () => {
    for (const schema of [chatCompletionRequest, completionRequest, embeddingRequest]) {
      assert.equal(invalidParam({}, schema, "model"), "Missing required parameter: 'model'.");
    }
    assert.equal(
      invalidParam({ messages: [{ role: "user", content: "x" }] }, chatCompletionRequest, "model"),
      "Missing required parameter: 'model'.",
    );
  });

  it("refuses a model that is not a non-empty string", () => {
    for (const model of [null, 42, "", ["m"], { name: "m" }]) {
      const message = invalidParam(chat({ model }), chatCompletionRequest, "model");
      assert.ok(message.startsWith("Invalid value for 'model': "), message);
      assert.ok(message.endsWith("."), message);
    }
  });

  it("names missing messages and missing fields inside messages", () => {
    assert.equal(
      invalidParam({ model: "m" }, chatCompletionRequest, "messages"),
      "Missing required parameter: 'messages'.",
    );
    assert.equal(
      invalidParam(
        chat({ messages: [{ role: "user", content: "a" }, { content: "b" }] }),
        chatCompletionRequest,
        "messages[1].role",
      ),
      "Missing required parameter: 'messages[1].role'.",
    );
  });

  it("names the path of a field with the wrong type", () => {
    const cases: Array<[unknown, string]> = [
      [[{ role: "user", content: 123 }], "messages[0].content"],
      [
        [
          { role: "user", content: "a" },
          { role: 5, content: "b" },
        ],
        "messages[1].role",
      ],
      [
        [{ role: "user", content: [{ type: "text", text: "a" }, { text: "no type" }] }],
        "messages[0].content",
      ],
      [[{ role: "user", content: { type: "text" } }], "messages[0].content"],
      [[{ role: "", content: "a" }], "messages[0].role"],
      [["hello"], "messages[0]"],
      [[], "messages"],
      ["hello", "messages"],
    ];
    for (const [messages, param] of cases) {
      const message = invalidParam(chat({ messages }), chatCompletionRequest, param);
      assert.ok(message.startsWith(`Invalid value for '${param}': `), message);
    }
  });

  it("checks the types of the common sampling and streaming fields", () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ stream: "yes" }, "stream"],
      [{ stream_options: { include_usage: "yes" } }, "stream_options.include_usage"],
      [{ stream_options: true }, "stream_options"],
      [{ max_tokens: 0 }, "max_tokens"],
      [{ max_tokens: 1.5 }, "max_tokens"],
      [{ max_tokens: "10" }, "max_tokens"],
      [{ max_completion_tokens: -1 }, "max_completion_tokens"],
      [{ n: 0 }, "n"],
      [{ temperature: "hot" }, "temperature"],
      [{ top_p: [1] }, "top_p"],
    ];
    for (const [extra, param] of cases) {
      const message = invalidParam(chat(extra), chatCompletionRequest, param);
      assert.ok(message.startsWith(`Invalid value for '${param}': `), message);
    }
  });

  it("accepts null for the nullable fields", () => {
    const body = chat({
      stream: null,
      stream_options: null,
      max_tokens: null,
      max_completion_tokens: null,
      n: null,
      temperature: null,
      top_p: null,
    });
    assert.deepEqual(parseRequestBody(json(body), chatCompletionRequest), body);
  });

  it("passes unknown fields through unchanged, at the top level and inside messages", () => {
    const body = {
      model: "m",
      messages: [
        { role: "system", content: "be brief", name: "sys" },
        {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: "{}" } }],
        },
        { role: "tool", tool_call_id: "c1", content: "42" },
      ],
      tools: [{ type: "function", function: { name: "f", parameters: { type: "object" } } }],
      response_format: { type: "json_object" },
      seed: 7,
      logit_bias: { "50256": -100 },
      user: "u-1",
      stream_options: { include_usage: false, continuous_usage_stats: true },
      vendor_extension: { nested: [1, "two", null, { three: 3 }] },
    };
    assert.deepEqual(parseRequestBody(json(body), chatCompletionRequest), body);
  });

  it("accepts content parts arrays and passes their fields through", () => {
    const content = [
      { type: "text", text: "what is this?" },
      { type: "image_url", image_url: { url: "data:image/png;base64,AAAA", detail: "low" } },
      { type: "input_audio", input_audio: { data: "AAAA", format: "wav" } },
    ];
    const body = chat({ messages: [{ role: "user", content }] });
    assert.deepEqual(parseRequestBody(json(body), chatCompletionRequest), body);
  });

  it("accepts a message without content", () => {
    const body = chat({ messages: [{ role: "assistant", tool_calls: [] }] });
    assert.deepEqual(parseRequestBody(json(body), chatCompletionRequest), body);
  });

  it("accepts every prompt form of /v1/completions", () => {
    for (const prompt of ["hello", "", ["a", "b"], [], [1, 2, 3], [[1, 2], [3]], [[]]]) {
      const body = { model: "m", prompt, echo: true, suffix: "x" };
      assert.deepEqual(parseRequestBody(json(body), completionRequest), body, JSON.stringify(prompt));
    }
  });

  it("refuses malformed prompts and names prompt", () => {
    for (const prompt of [null, 42, ["a", 1], [1.5], [[1], ["a"]], [[1, 2.5]], { text: "a" }, [null]]) {
      const message = invalidParam({ model: "m", prompt }, completionRequest, "prompt");
      assert.ok(message.startsWith("Invalid value for 'prompt': "), `${JSON.stringify(prompt)}: ${message}`);
    }
  });

  it("reports a missing prompt as a missing parameter", () => {
    assert.equal(
      invalidParam({ model: "m" }, completionRequest, "prompt"),
      "Missing required parameter: 'prompt'.",
    );
  });

  it("accepts every input form of /v1/embeddings", () => {
    for (const input of ["hello", ["a", "b"], [1, 2, 3], [[1, 2], [3]]]) {
      const body = { model: "m", input, encoding_format: "base64", dimensions: 256, user: "u" };
      assert.deepEqual(parseRequestBody(json(body), embeddingRequest), body, JSON.stringify(input));
    }
    assert.deepEqual(parseRequestBody(json({ model: "m", input: "x" }), embeddingRequest), {
      model: "m",
      input: "x",
    });
  });

  it("refuses malformed embeddings requests and names the field", () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ input: null }, "input"],
      [{ input: 7 }, "input"],
      [{ input: ["a", 2] }, "input"],
      [{ input: [[0.5]] }, "input"],
      [{ input: "x", encoding_format: "int8" }, "encoding_format"],
      [{ input: "x", dimensions: 0 }, "dimensions"],
      [{ input: "x", dimensions: 1.5 }, "dimensions"],
    ];
    for (const [extra, param] of cases) {
      const message = invalidParam({ model: "m", ...extra }, embeddingRequest, param);
      assert.ok(message.startsWith(`Invalid value for '${param}': `), `${JSON.stringify(extra)}: ${message}`);
    }
  });

  it("reports a missing input as a missing parameter", () => {
    assert.equal(
      invalidParam({ model: "m" }, embeddingRequest, "input"),
      "Missing required parameter: 'input'.",
    );
  });

  it("reads the body as UTF-8", () => {
    const body = chat({ messages: [{ role: "user", content: "héllo 😀" }] });
    assert.deepEqual(
      parseRequestBody(Buffer.from(JSON.stringify(body), "utf8"), chatCompletionRequest),
      body,
    );
  });

  it("returns the model and streaming fields the gateway reads", () => {
    const parsed = parseRequestBody(
      json({ model: "m", prompt: "p", stream: true, stream_options: { include_usage: true } }),
      completionRequest,
    );
    assert.equal(parsed.model, "m");
    assert.equal(parsed.stream, true);
    assert.equal(parsed.stream_options?.include_usage, true);
  });
});

describe("parseRequestBody hardening", () => {
  it("refuses invalid UTF-8 instead of reading replacement characters", () => {
    const body = Buffer.concat([
      Buffer.from('{"model":"m","messages":[{"role":"user","content":"'),
      Buffer.from([0xff, 0xfe, 0xc3, 0x28]),
      Buffer.from('"}]}'),
    ]);
    assert.throws(
      () => parseRequestBody(body, chatCompletionRequest),
      (err: GatewayError) => err.code === "invalid_json" && /UTF-8/.test(err.message),
    );
  });

  it("refuses nesting deeper than 64 levels, counting only outside strings", () => {
    const nested = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`;
    const ok = `{"model":"m","messages":[{"role":"user","content":"x"}],"extra":${nested(62)},"s":"${"[".repeat(500)}"}`;
    assert.equal(parseRequestBody(Buffer.from(ok), chatCompletionRequest).model, "m");
    const deep = `{"model":"m","messages":[{"role":"user","content":"x"}],"extra":${nested(64)}}`;
    assert.throws(
      () => parseRequestBody(Buffer.from(deep), chatCompletionRequest),
      (err: GatewayError) => err.code === "invalid_json" && err.message.includes("65 levels deep"),
    );
  });
});
