import { ANTHROPIC_REQUEST_SCHEMAS } from "../anthropic/schemas.js";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import type { z } from "zod";
import { GatewayError } from "../errors/index.js";
import { formatPath } from "../errors/document.js";
import { mapModelText, modelReadFields, modelReadFieldsMarkdown, modelTexts } from "./model-text.js";
import { mapRequestTexts, requestTexts } from "./prompt.js";
import {
  chatCompletionRequest,
  completionRequest,
  embeddingRequest,
  parseRequestBody,
  REQUEST_SCHEMAS,
  type InferenceRequest,
} from "./schemas.js";

const parse = (schema: z.ZodType, body: object): InferenceRequest =>
  parseRequestBody(Buffer.from(JSON.stringify(body)), schema);

/** Every visited text by where it is: `path` for a value, `path#key` for a field name. */
function visited(schema: z.ZodType, body: object): Map<string, string> {
  const seen = new Map<string, string>();
  mapModelText(parse(schema, body), schema, (text, path, key) => {
    seen.set(`${formatPath(path)}${key ? "#key" : ""}`, text);
    return text;
  });
  return seen;
}

const SSN = "123-45-6789";

const weatherTool = {
  type: "function",
  function: {
    name: "get_weather",
    description: `Looks up the weather. Caller ${SSN}`,
    parameters: {
      type: "object",
      properties: {
        city: { type: "string", description: `city of ${SSN}`, enum: ["Paris", SSN], default: SSN },
        [SSN]: { type: "string" },
      },
      patternProperties: { "^x-": { type: "string" } },
      $defs: { address: { type: "object", properties: { street: { type: "string" } } } },
      definitions: { legacy: { type: "string" } },
      required: ["city"],
    },
  },
};

describe("model-read text of a chat request", () => {
  const body = {
    model: "m1",
    messages: [
      { role: "system", content: "Be terse." },
      {
        role: "user",
        name: "alice",
        content: [
          { type: "text", text: "hello" },
          { type: "image_url", image_url: { url: "https://x/a.png" } },
        ],
      },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          {
            id: "call_1",
            type: "function",
            function: { name: "get_weather", arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { role: "tool", tool_call_id: "call_1", content: "sunny" },
    ],
    tools: [weatherTool],
    tool_choice: { type: "function", function: { name: "get_weather" } },
    response_format: {
      type: "json_schema",
      json_schema: {
        name: "answer",
        description: "the reply",
        schema: { type: "object", properties: { [`k ${SSN}`]: { description: SSN } } },
      },
    },
    logit_bias: { "50256": -100 },
    seed: 7,
    temperature: 0.2,
    stream: true,
    stream_options: { include_usage: true },
    guided_json: { properties: { secret: { default: SSN } } },
    chat_template_kwargs: { [SSN]: true, note: "kw" },
    documents: [{ title: "doc", text: "body" }],
  };
  const seen = visited(chatCompletionRequest, body);

  it("visits messages: content, text parts, names, tool call names and arguments, and undeclared part fields", () => {
    assert.equal(seen.get("messages[0].content"), "Be terse.");
    assert.equal(seen.get("messages[1].name"), "alice");
    assert.equal(seen.get("messages[1].content[0].text"), "hello");
    assert.equal(seen.get("messages[1].content[1].image_url#key"), "image_url");
    assert.equal(seen.get("messages[1].content[1].image_url.url"), "https://x/a.png");
    assert.equal(seen.get("messages[2].tool_calls[0].function.name"), "get_weather");
    assert.equal(seen.get("messages[2].tool_calls[0].function.arguments"), '{"city":"Paris"}');
    assert.equal(seen.get("messages[3].content"), "sunny");
  });

  it("visits tool descriptions and every string and property name of the parameter schema", () => {
    const p = "tools[0].function.parameters";
    assert.equal(seen.get("tools[0].function.name"), "get_weather");
    assert.equal(seen.get("tools[0].function.description"), weatherTool.function.description);
    assert.equal(seen.get(`${p}.properties.city.description`), `city of ${SSN}`);
    assert.equal(seen.get(`${p}.properties.city.enum[1]`), SSN);
    assert.equal(seen.get(`${p}.properties.city.default`), SSN);
    assert.equal(seen.get(`${p}.properties.${SSN}#key`), SSN);
    assert.equal(seen.get(`${p}.properties.city#key`), "city");
    assert.equal(seen.get(`${p}.patternProperties.^x-#key`), "^x-");
    assert.equal(seen.get(`${p}.$defs.address#key`), "address");
    assert.equal(seen.get(`${p}.$defs.address.properties.street#key`), "street");
    assert.equal(seen.get(`${p}.definitions.legacy#key`), "legacy");
    assert.equal(seen.get(`${p}.required[0]`), "city");
  });

  it("visits the response_format JSON schema, the named tool choice and undeclared fields", () => {
    const s = "response_format.json_schema.schema.properties";
    assert.equal(seen.get(`${s}.k ${SSN}#key`), `k ${SSN}`);
    assert.equal(seen.get(`${s}.k ${SSN}.description`), SSN);
    assert.equal(seen.get("response_format.json_schema.name"), "answer");
    assert.equal(seen.get("tool_choice.function.name"), "get_weather");
    assert.equal(seen.get("guided_json#key"), "guided_json");
    assert.equal(seen.get("guided_json.properties.secret.default"), SSN);
    assert.equal(seen.get(`chat_template_kwargs.${SSN}#key`), SSN);
    assert.equal(seen.get("chat_template_kwargs.note"), "kw");
    assert.equal(seen.get("documents[0].text"), "body");
  });

  it("skips control fields and declared field names", () => {
    for (const path of [
      "model",
      "messages[0].role",
      "messages[1].content[0].type",
      "messages[2].tool_calls[0].id",
      "messages[2].tool_calls[0].type",
      "messages[3].tool_call_id",
      "tools[0].type",
      "tool_choice.type",
      "response_format.type",
      "logit_bias.50256#key",
      "messages#key",
      "tools#key",
      "tools[0].function.description#key",
    ]) {
      assert.equal(seen.has(path), false, path);
    }
    assert.ok(![...seen.values()].includes("m1"));
    assert.ok(![...seen.values()].includes("call_1"));
  });

  it("scans a tool_choice mode (a control word, so nothing hides there either)", () => {
    assert.equal(visited(chatCompletionRequest, { ...body, tool_choice: "auto" }).get("tool_choice"), "auto");
  });

  it("refuses control strings that could carry a value past the scan", () => {
    const chat = (extra: object) => ({ model: "m", messages: [{ role: "user", content: "a" }], ...extra });
    for (const [body, param] of [
      [{ model: "m", messages: [{ role: `user ${SSN}`, content: "a" }] }, "messages[0].role"],
      [
        { model: "m", messages: [{ role: "user", content: [{ type: SSN, text: "a" }] }] },
        "messages[0].content[0].type",
      ],
      [chat({ tools: [{ type: `function${SSN}`, function: { name: "f" } }] }), "tools[0].type"],
      [chat({ response_format: { type: "a@b.example" } }), "response_format.type"],
      [chat({ tool_choice: SSN }), "tool_choice"],
      [chat({ logit_bias: { [SSN]: 1 } }), "logit_bias.123-45-6789"],
    ] as const) {
      assert.throws(
        () => parse(chatCompletionRequest, body),
        (err: unknown) =>
          err instanceof GatewayError && err.code === "invalid_request" && err.param === param,
        param,
      );
    }
  });
});

describe("model-read text of a completions request", () => {
  const seen = visited(completionRequest, {
    model: "m1",
    prompt: ["one", "two"],
    suffix: `end ${SSN}`,
    response_format: { type: "json_object", json_schema: { schema: { properties: { [SSN]: {} } } } },
    stop: ["\n\n"],
    user: "u-1",
  });

  it("visits prompt, suffix, response_format schema and undeclared fields, not the model", () => {
    assert.equal(seen.get("prompt[0]"), "one");
    assert.equal(seen.get("prompt[1]"), "two");
    assert.equal(seen.get("suffix"), `end ${SSN}`);
    assert.equal(seen.get(`response_format.json_schema.schema.properties.${SSN}#key`), SSN);
    assert.equal(seen.get("stop[0]"), "\n\n");
    assert.equal(seen.get("user"), "u-1");
    assert.equal(seen.has("model"), false);
    assert.equal(seen.has("response_format.type"), false);
  });

  it("reads nothing from token ids", () => {
    assert.deepEqual(
      modelTexts(parse(completionRequest, { model: "m", prompt: [[1, 2], [3]] }), completionRequest),
      [],
    );
  });
});

describe("model-read text of an embeddings request", () => {
  it("visits input and undeclared fields, not the model or encoding_format", () => {
    const seen = visited(embeddingRequest, {
      model: "e1",
      input: ["a", SSN],
      encoding_format: "float",
      dimensions: 8,
      input_type: "query",
    });
    assert.deepEqual(
      [...seen],
      [
        ["input[0]", "a"],
        ["input[1]", SSN],
        ["input_type#key", "input_type"],
        ["input_type", "query"],
      ],
    );
  });
});

describe("mapping model-read text in place", () => {
  it("lines up with requestTexts, so findings apply to the text they were made for", () => {
    const request = parse(chatCompletionRequest, {
      model: "m",
      messages: [{ role: "user", content: "a" }],
      tools: [weatherTool],
      extra: { b: ["c", { d: "e" }] },
    });
    const texts = requestTexts(request, chatCompletionRequest);
    let i = 0;
    mapRequestTexts(request, chatCompletionRequest, (text) => {
      assert.equal(text, texts[i], `text ${i}`);
      return `<${i++}>`;
    });
    assert.equal(i, texts.length);
    assert.deepEqual(
      requestTexts(request, chatCompletionRequest),
      texts.map((_, n) => `<${n}>`),
    );
  });

  it("renames field names in place, keeping their order and the values", () => {
    const request = parse(chatCompletionRequest, {
      model: "m",
      messages: [{ role: "user", content: "a" }],
      response_format: {
        type: "json_schema",
        json_schema: { schema: { properties: { a: 1, [SSN]: 2, z: 3 } } },
      },
    });
    mapRequestTexts(request, chatCompletionRequest, (text) => text.replace(SSN, "<US_SSN_1>"));
    assert.equal(
      JSON.stringify(request.response_format),
      '{"type":"json_schema","json_schema":{"schema":{"properties":{"a":1,"<US_SSN_1>":2,"z":3}}}}',
    );
  });

  it("refuses field names that become equal once redacted", () => {
    const request = parse(chatCompletionRequest, {
      model: "m",
      messages: [{ role: "user", content: "a" }],
      guided_json: { properties: { "secret-1": {}, "secret-2": {} } },
    });
    assert.throws(
      () => mapRequestTexts(request, chatCompletionRequest, (text) => text.replace(/secret-\d/, "<SECRET>")),
      (err: unknown) =>
        err instanceof GatewayError &&
        err.code === "invalid_request" &&
        err.status === 400 &&
        err.param === "guided_json.properties",
    );
  });

  it("writes a field named __proto__ as a field, never as the prototype", () => {
    const request = parseRequestBody(
      Buffer.from(
        `{"model":"m","messages":[{"role":"user","content":"a"}],"guided_json":{"__proto__":"${SSN}"}}`,
      ),
      chatCompletionRequest,
    );
    mapRequestTexts(request, chatCompletionRequest, (text) => text.replace(SSN, "<US_SSN_1>"));
    assert.equal(JSON.stringify(request.guided_json), '{"__proto__":"<US_SSN_1>"}');
  });
});

describe("modelReadFields", () => {
  const paths = (schema: z.ZodType) =>
    modelReadFields(schema).map((f) => `${f.path}${f.whole ? " (all)" : ""}`);

  it("names the declared fields the model reads, never a control field", () => {
    const chat = paths(chatCompletionRequest);
    for (const field of [
      "messages[].content",
      "messages[].content[].text",
      "messages[].tool_calls[].function.arguments",
      "tools[].function.description",
      "tools[].function.parameters (all)",
      "response_format.json_schema.schema (all)",
    ])
      assert.ok(chat.includes(field), field);
    for (const path of chat) assert.doesNotMatch(path, /^model$|role|\.id$|tool_call_id|type$|logit_bias/);
    assert.ok(paths(completionRequest).includes("suffix"));
    assert.deepEqual(paths(embeddingRequest), ["input", "input[]"]);
  });
});

describe("the PII page (docs/pii.md)", () => {
  it("lists exactly the model-read fields the request schemas give", () => {
    const page = readFileSync(new URL("../../../docs/pii.md", import.meta.url), "utf8");
    const start = page.indexOf("<!-- model-read fields:");
    const end = page.indexOf("<!-- end of model-read fields -->");
    assert.ok(start >= 0 && end > start, "docs/pii.md has the model-read fields markers");
    const listed = page.slice(page.indexOf("\n", start) + 1, end).trim();
    assert.equal(listed, modelReadFieldsMarkdown({ ...REQUEST_SCHEMAS, ...ANTHROPIC_REQUEST_SCHEMAS }));
  });
});
