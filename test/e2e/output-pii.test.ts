/**
 * PII output scanning covers every field the client reads, through real Envoy with the openai SDK: tool
 * call arguments (streamed 3 characters at a time), reasoning (both of vLLM's field names) and logprobs,
 * streamed and not. The demo model answers in vLLM's shapes (test/model-server).
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import type OpenAI from "openai";
import { DEMO_KEYS, startStack, type Stack } from "../harness/index.js";
import { writePolicy } from "../harness/policy.js";
import { client } from "./helpers.js";

let stack: Stack;
const MODEL = "llama-3.1-8b-instruct";
const EMAIL = "bob.smith@corp-mail.test";
const PHONE = "+44 20 7946 0958";

before(async () => {
  const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-output-pii-"));
  // The sample policy (output scanning on for everyone), except the support team's output is not scanned.
  const policyFile = writePolicy(dir, (doc) => {
    doc.pii.rules.push({ scope: { team: "support" }, actions: { EMAIL: "redact" }, responses: false });
    doc.teams.support.models.push(MODEL);
  });
  stack = await startStack({ policyFile, workDir: dir });
});
after(() => stack?.stop());

/** A research client (output scanned) whose demo model answers as the headers say. */
const research = (headers: Record<string, string>) => client(stack, DEMO_KEYS.research, headers);
const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "user", content: "hello" }];

/** Every chunk of a chat stream, as the SDK parsed it. */
async function chunks(
  c: OpenAI,
  extra: Partial<OpenAI.ChatCompletionCreateParamsStreaming> = {},
): Promise<OpenAI.ChatCompletionChunk[]> {
  const stream = await c.chat.completions.create({ model: MODEL, messages, stream: true, ...extra });
  const out: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of stream) out.push(chunk);
  return out;
}

describe("tool calls", () => {
  const args = JSON.stringify({ to: EMAIL, phone: PHONE, subject: "invoice" });
  const headers = {
    "x-demo-tool-call": encodeURIComponent(JSON.stringify({ name: "send_mail", arguments: args })),
    "x-demo-fragment-chars": "3",
  };
  const redacted = JSON.stringify({ to: "<EMAIL_1>", phone: "<PHONE_1>", subject: "invoice" });

  it("streamed 3 characters at a time: the arguments are redacted whole, the SDK's tool call is intact", async () => {
    const c = research(headers);
    const all = await chunks(c);
    assert.ok(all.length > args.length / 3, `${all.length} chunks`);
    assert.doesNotMatch(JSON.stringify(all), /bob|smith|7946/);
    // The SDK's stream helper replaces a tool call's name per delta and appends its arguments.
    const stream = c.chat.completions.stream({ model: MODEL, messages });
    const final = await stream.finalChatCompletion();
    const call = final.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    assert.equal(call.function.name, "send_mail");
    assert.equal(call.function.arguments, redacted);
    assert.match(call.id, /^chatcmpl-tool-/);
    assert.equal(final.choices[0]!.finish_reason, "tool_calls");
  });

  it("not streamed: the arguments are redacted", async () => {
    const answer = await research(headers).chat.completions.create({ model: MODEL, messages });
    const call = answer.choices[0]!.message.tool_calls![0]! as OpenAI.ChatCompletionMessageFunctionToolCall;
    assert.equal(call.function.name, "send_mail");
    assert.equal(call.function.arguments, redacted);
  });
});

describe("reasoning", () => {
  const reasoning = `The user wants mail sent to ${EMAIL}, phone ${PHONE}. I will answer briefly.`;
  const expected = "The user wants mail sent to <EMAIL_1>, phone <PHONE_1>. I will answer briefly.";

  for (const field of ["reasoning_content", "reasoning"] as const) {
    const headers = {
      "x-demo-reasoning": encodeURIComponent(reasoning),
      "x-demo-reasoning-field": field,
      "x-demo-fragment-chars": "3",
      "x-demo-reply": encodeURIComponent("Done."),
    };

    it(`streamed \`${field}\` in 3-character pieces is redacted, content untouched`, async () => {
      const all = await chunks(research(headers));
      assert.doesNotMatch(JSON.stringify(all), /bob|smith|7946/);
      const deltas = all.map((chunk) => (chunk.choices[0]?.delta ?? {}) as Record<string, unknown>);
      assert.equal(deltas.map((d) => d[field] ?? "").join(""), expected);
      assert.equal(deltas.map((d) => d.content ?? "").join(""), "Done.");
    });

    it(`not streamed \`${field}\` is redacted`, async () => {
      const answer = await research(headers).chat.completions.create({ model: MODEL, messages });
      const message = answer.choices[0]!.message as unknown as Record<string, unknown>;
      assert.equal(message[field], expected);
      assert.equal(message.content, "Done.");
    });
  }
});

describe("logprobs", () => {
  const reply = `Write to ${EMAIL} today.`;
  // Tokens cut inside the address: together they would spell it.
  const split = [reply.indexOf("smith"), reply.indexOf("@"), reply.indexOf("mail.")].join(",");
  const headers = { "x-demo-reply": encodeURIComponent(reply), "x-demo-split": split };
  const ask = { logprobs: true, top_logprobs: 2 } as const;

  it("chat, not streamed: dropped while output is scanned, the content redacted", async () => {
    const answer = await research(headers).chat.completions.create({ model: MODEL, messages, ...ask });
    assert.equal(answer.choices[0]!.message.content, "Write to <EMAIL_1> today.");
    assert.equal(answer.choices[0]!.logprobs, null);
    assert.doesNotMatch(JSON.stringify(answer), /bob|smith|corp-mail/);
  });

  it("chat, streamed: every chunk's logprobs dropped", async () => {
    const all = await chunks(research(headers), ask);
    assert.ok(all.length >= 4, `${all.length} chunks`);
    assert.ok(all.every((chunk) => chunk.choices.every((choice) => choice.logprobs == null)));
    assert.doesNotMatch(JSON.stringify(all), /bob|smith|corp-mail/);
    assert.equal(
      all.map((chunk) => chunk.choices[0]?.delta.content ?? "").join(""),
      "Write to <EMAIL_1> today.",
    );
  });

  it("completions, streamed and not: dropped, the text redacted", async () => {
    const c = research(headers);
    const whole = await c.completions.create({ model: MODEL, prompt: "hello", logprobs: 2 });
    assert.equal(whole.choices[0]!.text, "Write to <EMAIL_1> today.");
    assert.equal(whole.choices[0]!.logprobs, null);
    const stream = await c.completions.create({ model: MODEL, prompt: "hello", logprobs: 2, stream: true });
    let text = "";
    let wire = "";
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      wire += JSON.stringify(chunk);
      assert.ok(chunk.choices.every((choice) => choice.logprobs == null));
    }
    assert.equal(text, "Write to <EMAIL_1> today.");
    assert.doesNotMatch(wire, /bob|smith|corp-mail/);
  });

  it("kept, in vLLM's shapes, where output is not scanned", async () => {
    const c = client(stack, DEMO_KEYS.support, headers);
    const chat = await c.chat.completions.create({ model: MODEL, messages, ...ask });
    const content = chat.choices[0]!.logprobs!.content!;
    assert.equal(content.map((t) => t.token).join(""), reply);
    assert.deepEqual(content[1]!.bytes, [...Buffer.from(content[1]!.token)]);
    assert.equal(content[0]!.top_logprobs.length, 2);
    const completion = await c.completions.create({ model: MODEL, prompt: "hello", logprobs: 2 });
    const lp = completion.choices[0]!.logprobs!;
    assert.equal(lp.tokens!.join(""), reply);
    assert.deepEqual(lp.text_offset, [
      0,
      ...lp.tokens!.slice(0, -1).map((_, i) => lp.tokens!.slice(0, i + 1).join("").length),
    ]);
  });
});
