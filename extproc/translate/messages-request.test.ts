import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gatewayErrorOf } from "../errors/test-support.js";
import { chatTranslation } from "./index.js";

const toChat = (request: Record<string, unknown>) =>
  chatTranslation("messages").toChatRequest({
    model: "m",
    max_tokens: 64,
    messages: [{ role: "user", content: "hi" }],
    ...request,
  });

describe("Messages requests as chat requests", () => {
  it("turns the system prompt (string or blocks) into one system message", () => {
    assert.deepEqual(toChat({ system: "Be brief." }).messages, [
      { role: "system", content: "Be brief." },
      { role: "user", content: "hi" },
    ]);
    const blocks = [
      { type: "text", text: "You are Claude Code." },
      { type: "text", text: "Be brief.", cache_control: { type: "ephemeral" } },
    ];
    assert.deepEqual((toChat({ system: blocks }).messages as unknown[])[0], {
      role: "system",
      content: "You are Claude Code.\nBe brief.",
    });
  });

  it("translates a tool-use conversation: tool_use → tool_calls, tool_result → tool messages first", () => {
    const chat = toChat({
      messages: [
        { role: "user", content: [{ type: "text", text: "Weather in Paris?" }] },
        {
          role: "assistant",
          content: [
            { type: "thinking", thinking: "hmm", signature: "s" },
            { type: "text", text: "Checking." },
            { type: "tool_use", id: "toolu_1", name: "get_weather", input: { city: "Paris" } },
          ],
        },
        {
          role: "user",
          content: [
            { type: "tool_result", tool_use_id: "toolu_1", content: [{ type: "text", text: "18C" }] },
            { type: "tool_result", tool_use_id: "toolu_2", content: "failed", is_error: true },
            { type: "text", text: "And Tokyo?" },
          ],
        },
      ],
    });
    assert.deepEqual(chat.messages, [
      { role: "user", content: "Weather in Paris?" },
      {
        role: "assistant",
        content: "Checking.",
        tool_calls: [
          {
            id: "toolu_1",
            type: "function",
            function: { name: "get_weather", arguments: '{"city":"Paris"}' },
          },
        ],
      },
      { role: "tool", tool_call_id: "toolu_1", content: "18C" },
      { role: "tool", tool_call_id: "toolu_2", content: "failed" },
      { role: "user", content: "And Tokyo?" },
    ]);
  });

  it("sends an assistant turn of only tool calls with null content, and a user turn of only results as tool messages", () => {
    const chat = toChat({
      messages: [
        { role: "user", content: "go" },
        { role: "assistant", content: [{ type: "tool_use", id: "t", name: "f", input: {} }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "t" }] },
      ],
    });
    assert.deepEqual((chat.messages as unknown[]).slice(1), [
      {
        role: "assistant",
        content: null,
        tool_calls: [{ id: "t", type: "function", function: { name: "f", arguments: "{}" } }],
      },
      { role: "tool", tool_call_id: "t", content: "" },
    ]);
  });

  it("keeps user images as image_url parts (base64 as a data: URL)", () => {
    const chat = toChat({
      messages: [
        {
          role: "user",
          content: [
            { type: "image", source: { type: "base64", media_type: "image/png", data: "AAAA" } },
            { type: "image", source: { type: "url", url: "https://example.com/a.png" } },
            { type: "text", text: "Compare." },
          ],
        },
      ],
    });
    assert.deepEqual(chat.messages, [
      {
        role: "user",
        content: [
          { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } },
          { type: "image_url", image_url: { url: "https://example.com/a.png" } },
          { type: "text", text: "Compare." },
        ],
      },
    ]);
  });

  it("maps tools, tool_choice, stop sequences, sampling, the user and streaming; drops thinking", () => {
    const schema = { type: "object", properties: { city: { type: "string" } } };
    const chat = toChat({
      tools: [{ name: "get_weather", description: "Weather", input_schema: schema }],
      tool_choice: { type: "any", disable_parallel_tool_use: true },
      stop_sequences: ["END"],
      temperature: 0.5,
      top_p: 0.9,
      top_k: 40,
      metadata: { user_id: "u1" },
      stream: true,
      thinking: { type: "enabled", budget_tokens: 1024 },
    });
    assert.deepEqual(chat, {
      model: "m",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 64,
      tools: [
        { type: "function", function: { name: "get_weather", parameters: schema, description: "Weather" } },
      ],
      tool_choice: "required",
      parallel_tool_calls: false,
      stop: ["END"],
      temperature: 0.5,
      top_p: 0.9,
      top_k: 40,
      user: "u1",
      stream: true,
      stream_options: { include_usage: true },
    });
    assert.equal(toChat({ tool_choice: { type: "auto" } }).tool_choice, "auto");
    assert.equal(toChat({ tool_choice: { type: "none" } }).tool_choice, "none");
    assert.deepEqual(toChat({ tool_choice: { type: "tool", name: "f" } }).tool_choice, {
      type: "function",
      function: { name: "f" },
    });
  });

  const refused: Array<[string, Record<string, unknown>, string]> = [
    ["a server tool", { tools: [{ type: "web_search_20250305", name: "web_search" }] }, "tools[0].type"],
    ["remote MCP servers", { mcp_servers: [{ type: "url", url: "u", name: "n" }] }, "mcp_servers"],
    ["a container", { container: "c" }, "container"],
    [
      "a document block",
      { messages: [{ role: "user", content: [{ type: "document", source: {} }] }] },
      "messages[0].content[0].type",
    ],
    [
      "an image in an assistant turn",
      { messages: [{ role: "assistant", content: [{ type: "image", source: { type: "url", url: "u" } }] }] },
      "messages[0].content[0].type",
    ],
    [
      "an image by file id",
      { messages: [{ role: "user", content: [{ type: "image", source: { type: "file", file_id: "f" } }] }] },
      "messages[0].content[0].source.type",
    ],
    [
      "an image in a tool result",
      {
        messages: [
          {
            role: "user",
            content: [{ type: "tool_result", tool_use_id: "t", content: [{ type: "image", source: {} }] }],
          },
        ],
      },
      "messages[0].content[0].content[0].type",
    ],
    ["a non-text system block", { system: [{ type: "image" }] }, "system[0].type"],
    [
      "server tool use in history",
      {
        messages: [
          {
            role: "assistant",
            content: [{ type: "server_tool_use", id: "s", name: "web_search", input: {} }],
          },
        ],
      },
      "messages[0].content[0].type",
    ],
    [
      "tool_use in a user turn",
      { messages: [{ role: "user", content: [{ type: "tool_use", id: "t", name: "f", input: {} }] }] },
      "messages[0].content[0].type",
    ],
  ];
  for (const [what, request, param] of refused)
    it(`refuses ${what}, naming ${param}`, () => {
      const error = gatewayErrorOf(() => toChat(request));
      assert.equal(error.code, "invalid_request");
      assert.equal(error.param, param);
      assert.match(error.message, /is not supported on this model's pool/);
    });
});
