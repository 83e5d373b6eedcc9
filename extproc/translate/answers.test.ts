/** Whole-answer and stream details beyond the recordings: outcomes, ids, odd and hostile upstream answers. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chatTranslation } from "./index.js";
import { chatAnswer, chatStream, convert, parseSse } from "./test-support.js";

type Json = Record<string, unknown>;
const responses = chatTranslation("responses");
const messages = chatTranslation("messages");
const answer = (message: Json, finish: string | null, extra: Json = {}) => ({
  id: "chatcmpl-x",
  created: 7,
  model: "served",
  choices: [{ index: 0, message, finish_reason: finish, ...extra }],
  usage: { prompt_tokens: 3, completion_tokens: 2 },
});

describe("translated outcomes", () => {
  it("maps finish reasons to Messages stop reasons, the matched stop string included", () => {
    const stop = (finish: string | null, extra: Json = {}, message: Json = { content: "x" }) => {
      const m = messages.fromChatAnswer(answer(message, finish, extra)) as Json;
      return [m.stop_reason, m.stop_sequence];
    };
    assert.deepEqual(stop("stop"), ["end_turn", null]);
    assert.deepEqual(stop("stop", { stop_reason: "END" }), ["stop_sequence", "END"]);
    assert.deepEqual(
      stop("stop", { stop_reason: 128001 }),
      ["end_turn", null],
      "an EOS token id is no stop string",
    );
    assert.deepEqual(stop("length"), ["max_tokens", null]);
    assert.deepEqual(stop("tool_calls"), ["tool_use", null]);
    assert.deepEqual(stop("content_filter"), ["refusal", null]);
    const call = { tool_calls: [{ id: "c", function: { name: "f", arguments: "{}" } }] };
    assert.deepEqual(
      stop("stop", {}, call),
      ["tool_use", null],
      "a server that finishes tool calls with stop",
    );
  });

  it("maps finish reasons to Responses status and incomplete_details", () => {
    const status = (finish: string | null) => {
      const r = responses.fromChatAnswer(answer({ content: "x" }, finish)) as Json;
      return [r.status, r.incomplete_details];
    };
    assert.deepEqual(status("stop"), ["completed", null]);
    assert.deepEqual(status("tool_calls"), ["completed", null]);
    assert.deepEqual(status("length"), ["incomplete", { reason: "max_output_tokens" }]);
    assert.deepEqual(status("content_filter"), ["incomplete", { reason: "content_filter" }]);
  });

  it("echoes the request's parameters and the requested model name in Responses objects", () => {
    const request = {
      model: "alias",
      input: "x",
      instructions: "Be brief.",
      tools: [{ type: "function", name: "f", parameters: {} }],
      tool_choice: "required",
      temperature: 0.3,
      max_output_tokens: 5,
      metadata: { k: "v" },
    };
    const r = responses.fromChatAnswer(answer({ content: "x" }, "stop"), { request, model: "alias" }) as Json;
    assert.deepEqual(
      [r.model, r.instructions, r.tools, r.tool_choice, r.temperature, r.max_output_tokens, r.metadata],
      ["alias", "Be brief.", request.tools, "required", 0.3, 5, { k: "v" }],
    );
    const m = messages.fromChatAnswer(answer({ content: "x" }, "stop"), { model: "alias" }) as Json;
    assert.equal(m.model, "alias");
  });

  it("derives stable, distinct ids from the chat id, and keeps the server's tool call ids", () => {
    const script = {
      id: "chatcmpl-abc",
      reasoning: ["r"],
      text: ["t"],
      tools: [
        { id: "call_1", name: "f", fragments: ["{}"] },
        { id: "", name: "g", fragments: ["{}"] },
      ],
    };
    const r1 = responses.fromChatAnswer(chatAnswer(script)) as { id: string; output: Json[] };
    const r2 = responses.fromChatAnswer(chatAnswer(script)) as { id: string; output: Json[] };
    assert.deepEqual(r1, r2);
    const ids = r1.output.map((item) => item.id as string);
    assert.deepEqual(
      ids.map((id) => id.replace(/[0-9a-f]{16}$/, "")),
      ["rs_", "msg_", "fc_", "fc_"],
    );
    assert.equal(new Set(ids).size, 4);
    assert.deepEqual(
      r1.output.slice(2).map((item) => item.call_id),
      ["call_1", (r1.output[3]!.call_id as string).match(/^call_[0-9a-f]{16}$/)?.[0]],
    );
    const m = messages.fromChatAnswer(chatAnswer(script)) as { content: Json[] };
    assert.equal(m.content[2]!.id, "call_1");
    assert.match(m.content[3]!.id as string, /^toolu_[0-9a-f]{16}$/);
  });

  it("gives tool_use input {} for arguments that are not a JSON object (a call cut off by max_tokens)", () => {
    for (const args of ['{"city": "Par', "[1,2]", "", "null"]) {
      const m = messages.fromChatAnswer(
        answer({ tool_calls: [{ id: "c", function: { name: "f", arguments: args } }] }, "length"),
      ) as { content: Json[] };
      assert.deepEqual(m.content[0]!.input, {}, args);
    }
  });

  it("never throws on malformed chat answers: they read as empty", () => {
    for (const junk of [
      null,
      1,
      "x",
      [],
      {},
      { choices: "no" },
      { choices: [{ message: { tool_calls: [1, null] } }] },
    ]) {
      const r = responses.fromChatAnswer(junk) as Json;
      assert.deepEqual([r.output, r.status], [[], "completed"]);
      const m = messages.fromChatAnswer(junk) as Json;
      assert.deepEqual([m.content, m.stop_reason], [[], "end_turn"]);
    }
  });

  it("closes a stream cut before any chunk with a whole, empty answer", () => {
    const now = () => 1_000_000;
    const r = parseSse(responses.streamConverter({ now }).done().toString());
    assert.deepEqual(
      r.map((e) => e.event),
      ["response.created", "response.in_progress", "response.completed"],
    );
    assert.equal((r[0]!.data.response as Json).created_at, 1000);
    const m = parseSse(messages.streamConverter({ promptTokens: 4 }).done().toString());
    assert.deepEqual(
      m.map((e) => e.event),
      ["message_start", "message_delta", "message_stop"],
    );
    assert.deepEqual(m[1]!.data.usage, { input_tokens: 4, output_tokens: 0 });
  });

  it("ends a Responses stream with response.failed on an upstream error chunk, and sends nothing after", () => {
    const converter = responses.streamConverter();
    const [first, second] = chatStream({ text: ["a"] });
    const bytes = Buffer.concat([
      converter.event(first),
      converter.event(second),
      converter.event({ error: { message: "engine died", type: "InternalServerError", code: 500 } }),
      converter.event(second),
      converter.done(),
    ]);
    const events = parseSse(bytes.toString());
    assert.deepEqual(
      events.map((e) => e.event),
      [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.failed",
      ],
    );
    const response = events.at(-1)!.data.response as Json;
    assert.equal(response.status, "failed");
    assert.deepEqual(response.error, { code: "server_error", message: "engine died" });
    const [item] = response.output as Json[];
    assert.equal(item!.status, "incomplete");
    assert.deepEqual(item!.content, [{ annotations: [], text: "a", type: "output_text", logprobs: null }]);
  });

  it("fails a Responses stream whose first chunk is an error as a whole lifecycle", () => {
    const events = parseSse(
      responses
        .streamConverter()
        .event({ error: { message: "no" } })
        .toString(),
    );
    assert.deepEqual(
      events.map((e) => e.event),
      ["response.created", "response.in_progress", "response.failed"],
    );
  });

  it("reports tool-argument characters it could not deliver", () => {
    const converter = messages.streamConverter();
    const call = (index: number, fn: Record<string, unknown>) => ({
      id: "chatcmpl-i",
      choices: [{ index: 0, delta: { tool_calls: [{ index, id: `c${index}`, function: fn }] } }],
    });
    converter.event(call(0, { name: "f", arguments: "{" }));
    converter.event(call(1, { name: "g", arguments: "{}" }));
    converter.event(call(0, { arguments: '"a":1}' }));
    assert.equal(converter.droppedChars, 6);
  });

  it("numbers the translated events of a long stream without gaps", () => {
    const text = Array.from({ length: 500 }, (_, i) => `t${i} `);
    const events = parseSse(convert(responses.streamConverter(), chatStream({ text })).toString());
    assert.equal(events.length, 2 + 2 + 500 + 3 + 1);
    assert.ok(events.every((e, i) => e.data.sequence_number === i));
  });
});
