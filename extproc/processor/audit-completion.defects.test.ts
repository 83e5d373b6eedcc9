/*
 * Attack review of the audit trail: with prompts logged and output PII on, a record's completion must hold
 * what the client got. The streaming redactor holds the last characters of each text back and sends them
 * in a later, extra event; that text must reach the record too.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  decodeReply,
  requestBody,
  requestHeaders,
  responseBody,
  responseHeaders,
  unitDeps,
  unitPolicy,
} from "../../test/unit/ext-proc.js";
import { encodeResponse } from "../envoy/protocol.js";
import type { ProcessingRequestMessage } from "../envoy/messages.js";
import { Exchange } from "./index.js";

const POLICY = `
audit: { logPrompts: true }
pii:
  holdBackChars: 64
  rules:
    - actions: { EMAIL: redact }
      responses: true
`;

const send = async (exchange: Exchange, message: ProcessingRequestMessage) =>
  (await exchange.handle(message)).map((reply) => decodeReply(encodeResponse(reply)));

const sse = (events: unknown[]) =>
  events.map((e) => `data: ${JSON.stringify(e)}\n\n`).join("") + "data: [DONE]\n\n";

describe("attack review (DEFECTs found and fixed): audit completions under output PII", () => {
  it("DEFECT: a chat stream's held-back text is missing from the audit record's completion", async () => {
    const unit = unitDeps(unitPolicy(POLICY));
    const exchange = new Exchange(unit.deps);
    await send(exchange, requestHeaders());
    await send(
      exchange,
      requestBody({ model: "m1", messages: [{ role: "user", content: "hi" }], stream: true, max_tokens: 20 }),
    );
    await send(exchange, responseHeaders({ ":status": "200", "content-type": "text/event-stream" }));
    const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
      id: "c1",
      object: "chat.completion.chunk",
      created: 1,
      model: "m1",
      choices: [{ index: 0, delta, finish_reason: finish }],
    });
    const body = sse([
      chunk({ role: "assistant", content: "Hello there, " }),
      chunk({ content: "world." }),
      {
        id: "c1",
        object: "chat.completion.chunk",
        created: 1,
        model: "m1",
        choices: [],
        usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
      },
    ]);
    await send(exchange, responseBody(body, true));
    assert.equal(exchange.finished, true);
    const [record] = await unit.audit.records();
    assert.equal(record!.completion, "Hello there, world.");
  });

  it("DEFECT: a Responses stream's held-back text is missing from the audit record's completion", async () => {
    const unit = unitDeps(unitPolicy(POLICY));
    const exchange = new Exchange(unit.deps);
    await send(exchange, requestHeaders("/v1/responses"));
    await send(exchange, requestBody({ model: "m1", input: "hi", stream: true, max_output_tokens: 20 }));
    await send(exchange, responseHeaders({ ":status": "200", "content-type": "text/event-stream" }));
    const at = { item_id: "msg_1", output_index: 0, content_index: 0 };
    const events = [
      { type: "response.output_text.delta", ...at, delta: "Hello there, " },
      { type: "response.output_text.delta", ...at, delta: "world." },
      { type: "response.output_text.done", ...at, text: "Hello there, world." },
      {
        type: "response.completed",
        response: {
          object: "response",
          output: [],
          usage: { input_tokens: 3, output_tokens: 4, total_tokens: 7 },
        },
      },
    ];
    const body = events.map((e) => `event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`).join("");
    await send(exchange, responseBody(body, true));
    assert.equal(exchange.finished, true);
    const [record] = await unit.audit.records();
    assert.equal(record!.completion, "Hello there, world.");
  });
});
