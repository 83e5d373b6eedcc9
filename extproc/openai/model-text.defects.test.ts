/*
 * Attack review of the model-read field list: control() fields are not scanned, so each must be one the
 * model cannot read. Tool call ids are read: chat templates render them into the prompt (Kimi K2's writes
 * "## Return of <tool_call_id>" before a tool result; Mistral's writes each call's id), so a client can
 * pass PII or denied text to the model in an id the gateway never scans.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { messagesRequest } from "../anthropic/schemas.js";
import { modelTexts } from "./model-text.js";
import { chatCompletionRequest, responsesRequest } from "./schemas.js";

const SECRET = "bob.smith@corp-mail.test SSN 078-05-1120";

const seen = (body: Record<string, unknown>, schema: Parameters<typeof modelTexts>[1]) =>
  modelTexts(structuredClone(body), schema).some((text) => text.includes(SECRET));

describe("attack review: control fields a chat template renders", () => {
  it("DEFECT: a Messages tool_use id / tool_result tool_use_id is not scanned", () => {
    const body = {
      model: "m",
      max_tokens: 16,
      messages: [
        { role: "user", content: "weather?" },
        { role: "assistant", content: [{ type: "tool_use", id: SECRET, name: "weather", input: {} }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: SECRET, content: "sunny" }] },
      ],
    };
    assert.ok(seen(body, messagesRequest), "the id reaches the model unscanned");
  });

  it("DEFECT: a Responses function_call / function_call_output call_id is not scanned", () => {
    const body = {
      model: "m",
      input: [
        { type: "function_call", call_id: SECRET, name: "weather", arguments: "{}" },
        { type: "function_call_output", call_id: SECRET, output: "sunny" },
      ],
    };
    assert.ok(seen(body, responsesRequest), "the id reaches the model unscanned");
  });

  it("DEFECT: a chat tool call id / tool_call_id is not scanned", () => {
    const body = {
      model: "m",
      messages: [
        {
          role: "assistant",
          tool_calls: [{ id: SECRET, type: "function", function: { name: "weather", arguments: "{}" } }],
        },
        { role: "tool", tool_call_id: SECRET, content: "sunny" },
      ],
    };
    assert.ok(seen(body, chatCompletionRequest), "the id reaches the model unscanned");
  });
});
