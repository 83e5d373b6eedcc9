/*
 * Attack review of the agent APIs' output side: texts a client reads in a Responses answer or stream that
 * the PII redactor must not let through. Each test names the defect it demonstrates.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Identity } from "../auth/index.js";
import type { TypedEvent } from "../openai/events.js";
import { responsesAnswer, responsesEvents } from "../openai/responses.js";
import { parsePolicy, sha256Hex } from "../policy/index.js";
import { EventStreamPii } from "./events.js";
import { PiiSession, resolvePii } from "./index.js";
import { processAnswer } from "./response.js";

const POLICY = parsePolicy(
  `
version: 1
pools: { pool-a: {} }
models: { m1: { pool: pool-a } }
teams: { t: { models: [m1] } }
keys: [{ id: k1, team: t, sha256: ${sha256Hex("key-1")} }]
pii:
  holdBackChars: 64
  rules:
    - actions: { EMAIL: redact }
      responses: true
`,
  "p.yaml",
);
const PII = POLICY.pii!;
const IDENTITY: Identity = { keyId: "k1", team: "t", allowedModels: new Set(["m1"]) };
const session = () => new PiiSession(PII, resolvePii(PII, IDENTITY, "m1")!);
const EMAIL = "bob.smith@corp-mail.test";
/** How a tokenizer spells the email: the pieces vLLM's logprobs list, one entry per generated token. */
const TOKENS = ["bob", ".smith", "@", "corp", "-mail", ".test"];

/** vLLM's Responses logprobs for `tokens` (include: ["message.output_text.logprobs"], top_logprobs: 1). */
const logprobs = (tokens: string[]) =>
  tokens.map((token) => ({
    token,
    bytes: [...Buffer.from(token)],
    logprob: -0.1,
    top_logprobs: [{ token, bytes: [...Buffer.from(token)], logprob: -0.1 }],
  }));

/** The tokens of every `logprobs` list in `value`, each list concatenated (what a client reassembles). */
function spelled(value: unknown): string {
  let out = "";
  JSON.stringify(value, (key, v: unknown) => {
    if (key === "logprobs" && Array.isArray(v))
      out += (v as Array<{ token?: unknown }>)
        .map((e) => (typeof e.token === "string" ? e.token : ""))
        .join("");
    return v;
  });
  return out;
}

describe("attack review (DEFECTs found and fixed): Responses output the redactor missed", () => {
  it("DEFECT: a whole Responses answer's output_text logprobs spell a redacted email", () => {
    const answer = {
      object: "response",
      output: [
        {
          type: "message",
          role: "assistant",
          content: [
            { type: "output_text", text: `Mail ${EMAIL}`, annotations: [], logprobs: logprobs(TOKENS) },
          ],
        },
      ],
      usage: { input_tokens: 5, output_tokens: 7, total_tokens: 12 },
    };
    processAnswer(session(), answer, responsesAnswer);
    assert.ok(!JSON.stringify(answer.output[0]!.content[0]!.text).includes(EMAIL), "text is redacted");
    assert.ok(!spelled(answer).includes(EMAIL), "logprob tokens spell the redacted email");
  });

  it("DEFECT: a Responses stream's output_text.delta logprobs spell a redacted email", () => {
    const pii = new EventStreamPii(session(), PII.holdBackChars, responsesEvents);
    const out: TypedEvent[] = [];
    TOKENS.forEach((token, i) => {
      const event: TypedEvent = {
        name: "response.output_text.delta",
        data: {
          content_index: 0,
          delta: token,
          item_id: "msg_1",
          logprobs: logprobs([token]),
          output_index: 0,
          sequence_number: 4 + i,
          type: "response.output_text.delta",
        },
      };
      const { before } = pii.apply(event);
      out.push(...before, event);
    });
    out.push(...pii.flush());
    assert.ok(
      !out
        .map((e) => String(e.data.delta ?? ""))
        .join("")
        .includes(EMAIL),
      "deltas are redacted",
    );
    assert.ok(!spelled(out).includes(EMAIL), "logprob tokens spell the redacted email");
  });

  it("DEFECT: a custom_tool_call item's input reaches the client unredacted (whole answer and item events)", () => {
    const item = () => ({
      type: "custom_tool_call",
      call_id: "c1",
      name: "mailer",
      input: `send to ${EMAIL}`,
    });
    const answer = { object: "response", output: [item()] };
    processAnswer(session(), answer, responsesAnswer);
    assert.ok(!JSON.stringify(answer).includes(EMAIL), "whole answer");

    const pii = new EventStreamPii(session(), PII.holdBackChars, responsesEvents);
    const done: TypedEvent = {
      name: "response.output_item.done",
      data: { type: "response.output_item.done", output_index: 0, item: item() },
    };
    pii.apply(done);
    assert.ok(!JSON.stringify(done).includes(EMAIL), "output_item.done event");
  });

  it("DEFECT: a code interpreter call's code (vLLM's gpt-oss python tool) reaches the client unredacted", () => {
    // vLLM's harmony stream: the code arrives as response.code_interpreter_call_code.delta events, whole in
    // the .done event and in the code_interpreter_call item.
    const code = `send("${EMAIL}")`;
    const pieces = [code.slice(0, 9), code.slice(9, 17), code.slice(17)];
    const pii = new EventStreamPii(session(), PII.holdBackChars, responsesEvents);
    const out: TypedEvent[] = [];
    const events: TypedEvent[] = [
      ...pieces.map((delta, i) => ({
        name: "response.code_interpreter_call_code.delta",
        data: {
          type: "response.code_interpreter_call_code.delta",
          sequence_number: 3 + i,
          output_index: 0,
          item_id: "tool_1",
          delta,
        },
      })),
      {
        name: "response.code_interpreter_call_code.done",
        data: {
          type: "response.code_interpreter_call_code.done",
          sequence_number: 6,
          output_index: 0,
          item_id: "tool_1",
          code,
        },
      },
      {
        name: "response.output_item.done",
        data: {
          type: "response.output_item.done",
          sequence_number: 7,
          output_index: 0,
          item: { type: "code_interpreter_call", id: "tool_1", code, container_id: "auto", outputs: [] },
        },
      },
    ];
    for (const event of events) {
      const { before } = pii.apply(event);
      out.push(...before, event);
    }
    out.push(...pii.flush());
    const deltas = out
      .filter((e) => e.data.type === "response.code_interpreter_call_code.delta")
      .map((e) => String(e.data.delta))
      .join("");
    assert.ok(!deltas.includes(EMAIL), "code deltas");
    assert.ok(!JSON.stringify(out.slice(-2)).includes(EMAIL), "the .done event and the item");

    const answer = {
      object: "response",
      output: [
        {
          type: "code_interpreter_call",
          id: "tool_1",
          code,
          outputs: [{ type: "logs", logs: `mailed ${EMAIL}` }],
        },
      ],
    };
    processAnswer(session(), answer, responsesAnswer);
    assert.ok(!JSON.stringify(answer).includes(EMAIL), "whole answer: code and output logs");
  });
});
