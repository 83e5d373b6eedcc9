import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gatewayErrorOf } from "../errors/test-support.js";
import { chatTranslation } from "./index.js";

const toChat = (request: Record<string, unknown>) =>
  chatTranslation("responses").toChatRequest({ model: "m", ...request });

describe("Responses requests as chat requests", () => {
  it("turns string input and instructions into system and user messages", () => {
    assert.deepEqual(toChat({ input: "Hello there", instructions: "Be brief." }), {
      model: "m",
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hello there" },
      ],
    });
  });

  it("translates a multi-turn tool conversation: calls join the assistant turn, outputs become tool messages", () => {
    const chat = toChat({
      input: [
        { role: "developer", content: "Use tools." },
        {
          type: "message",
          role: "user",
          content: [
            { type: "input_text", text: "Weather in " },
            { type: "input_text", text: "Paris?" },
          ],
        },
        { type: "message", role: "assistant", content: [{ type: "output_text", text: "Checking." }] },
        { type: "reasoning", id: "rs_1", summary: [] },
        { type: "function_call", call_id: "call_1", name: "get_weather", arguments: '{"city":"Paris"}' },
        { type: "function_call", call_id: "call_2", name: "get_time", arguments: "{}" },
        { type: "function_call_output", call_id: "call_1", output: "18C" },
        { type: "function_call_output", call_id: "call_2", output: [{ type: "input_text", text: "noon" }] },
      ],
    });
    assert.deepEqual(chat.messages, [
      { role: "system", content: "Use tools." },
      { role: "user", content: "Weather in Paris?" },
      {
        role: "assistant",
        content: "Checking.",
        tool_calls: [
          {
            id: "call_1",
            type: "function",
            function: { name: "get_weather", arguments: '{"city":"Paris"}' },
          },
          { id: "call_2", type: "function", function: { name: "get_time", arguments: "{}" } },
        ],
      },
      { role: "tool", tool_call_id: "call_1", content: "18C" },
      { role: "tool", tool_call_id: "call_2", content: "noon" },
    ]);
  });

  it("starts an assistant turn for a call that follows no assistant text", () => {
    const chat = toChat({
      input: [
        { role: "user", content: "hi" },
        { type: "function_call", call_id: "c", name: "f", arguments: "{}" },
      ],
    });
    assert.deepEqual((chat.messages as unknown[])[1], {
      role: "assistant",
      content: null,
      tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }],
    });
  });

  it("keeps user images as image_url parts", () => {
    const chat = toChat({
      input: [
        {
          role: "user",
          content: [
            { type: "input_text", text: "What is this?" },
            { type: "input_image", image_url: "data:image/png;base64,AAAA", detail: "low" },
          ],
        },
      ],
    });
    assert.deepEqual((chat.messages as unknown[])[0], {
      role: "user",
      content: [
        { type: "text", text: "What is this?" },
        { type: "image_url", image_url: { url: "data:image/png;base64,AAAA", detail: "low" } },
      ],
    });
  });

  it("maps tools, tool_choice, caps, sampling, reasoning effort, the JSON schema format and streaming", () => {
    const schema = { type: "object", properties: { city: { type: "string" } }, required: ["city"] };
    const chat = toChat({
      input: "hi",
      tools: [
        { type: "function", name: "get_weather", description: "Weather", parameters: schema, strict: true },
      ],
      tool_choice: { type: "function", name: "get_weather" },
      parallel_tool_calls: false,
      max_output_tokens: 100,
      temperature: 0.2,
      top_p: 0.9,
      user: "u1",
      reasoning: { effort: "low", summary: "auto" },
      text: { format: { type: "json_schema", name: "out", schema, strict: true } },
      stream: true,
      store: false,
      include: ["reasoning.encrypted_content"],
      metadata: { a: "b" },
    });
    assert.deepEqual(chat, {
      model: "m",
      messages: [{ role: "user", content: "hi" }],
      tools: [
        {
          type: "function",
          function: { name: "get_weather", description: "Weather", parameters: schema, strict: true },
        },
      ],
      tool_choice: { type: "function", function: { name: "get_weather" } },
      parallel_tool_calls: false,
      max_tokens: 100,
      temperature: 0.2,
      top_p: 0.9,
      user: "u1",
      reasoning_effort: "low",
      response_format: { type: "json_schema", json_schema: { name: "out", schema, strict: true } },
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.deepEqual(toChat({ input: "x", tool_choice: "required" }).tool_choice, "required");
    assert.deepEqual(toChat({ input: "x", text: { format: { type: "json_object" } } }).response_format, {
      type: "json_object",
    });
    assert.equal(
      toChat({ input: "x", text: { format: { type: "text" }, verbosity: "medium" } }).response_format,
      undefined,
    );
  });

  const refused: Array<[string, Record<string, unknown>, string]> = [
    ["previous_response_id", { previous_response_id: "resp_1" }, "previous_response_id"],
    ["a conversation", { conversation: "conv_1" }, "conversation"],
    ["a stored prompt", { prompt: { id: "p" } }, "prompt"],
    ["background mode", { background: true }, "background"],
    ["max_tool_calls", { max_tool_calls: 2 }, "max_tool_calls"],
    ["automatic truncation", { truncation: "auto" }, "truncation"],
    ["logprobs", { top_logprobs: 3 }, "top_logprobs"],
    ["a verbosity", { text: { verbosity: "low" } }, "text.verbosity"],
    ["a hosted tool", { tools: [{ type: "web_search" }] }, "tools[0].type"],
    ["a hosted tool choice", { tool_choice: { type: "file_search" } }, "tool_choice"],
    ["a hosted tool's item", { input: [{ type: "web_search_call", id: "w" }] }, "input[0].type"],
    ["an item reference", { input: [{ type: "item_reference", id: "msg_1" }] }, "input[0].type"],
    [
      "a file",
      { input: [{ role: "user", content: [{ type: "input_file", file_id: "f" }] }] },
      "input[0].content[0].type",
    ],
    [
      "an image by file id",
      { input: [{ role: "user", content: [{ type: "input_image", file_id: "f" }] }] },
      "input[0].content[0].file_id",
    ],
    [
      "an image in a system message",
      { input: [{ role: "system", content: [{ type: "input_image", image_url: "u" }] }] },
      "input[0].content[0].type",
    ],
    [
      "an image in a tool output",
      {
        input: [
          { type: "function_call_output", call_id: "c", output: [{ type: "input_image", image_url: "u" }] },
        ],
      },
      "input[0].output[0].type",
    ],
    ["a grammar format", { text: { format: { type: "grammar" } } }, "text.format.type"],
  ];
  for (const [what, request, param] of refused)
    it(`refuses ${what}, naming ${param}`, () => {
      const error = gatewayErrorOf(() => toChat({ input: "hi", ...request }));
      assert.equal(error.code, "invalid_request");
      assert.equal(error.status, 400);
      assert.equal(error.param, param);
      assert.match(error.message, /is not supported on this model's pool: it serves only chat completions/);
    });
});
