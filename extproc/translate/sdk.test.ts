/**
 * Round trip through the official SDKs: translated answers, streamed and not, are handed to `openai` and
 * `@anthropic-ai/sdk` as a server's bytes (a `fetch` that answers with them), and the SDKs' own parsers and
 * accumulators (ResponseStream, MessageStream) must produce the final response/message: text, reasoning,
 * tool calls with parsed arguments, stop reason and usage. Errors must raise each SDK's matching class.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { chatTranslation } from "./index.js";
import {
  answering,
  chatAnswer,
  chatEvents,
  chatStream,
  convert,
  recording,
  type ChatScript,
} from "./test-support.js";

const BASE = "http://127.0.0.1:9"; // never dialled: every request is answered by the given fetch

const openai = (fetch: typeof globalThis.fetch) =>
  new OpenAI({ apiKey: "test", baseURL: `${BASE}/v1`, fetch, maxRetries: 0 });
const anthropic = (fetch: typeof globalThis.fetch) =>
  new Anthropic({ apiKey: "test", baseURL: BASE, fetch, maxRetries: 0 });

/** An agent turn: reasoning, a little text, then two tool calls whose arguments arrive in fragments. */
const AGENT_TURN: ChatScript = {
  id: "chatcmpl-agent-0001",
  reasoning: ["The user wants ", "the weather in two ", "cities."],
  text: ["Checking ", "both."],
  tools: [
    { id: "chatcmpl-tool-1", name: "get_weather", fragments: ['{"ci', 'ty": "Par', 'is", "unit":', ' "c"}'] },
    { id: "chatcmpl-tool-2", name: "get_weather", fragments: ['{"city": "Tōkyō 日本"', "}"] },
  ],
  usage: { prompt_tokens: 42, completion_tokens: 30 },
};

/** The output text of a response (a streamed final response has no `output_text` helper, natively too). */
const outputText = (response: OpenAI.Responses.Response): string =>
  response.output
    .flatMap((item) => (item.type === "message" ? item.content : []))
    .map((part) => (part.type === "output_text" ? part.text : ""))
    .join("");

const RESPONSES_PARAMS = { model: "tiny-llama", input: "Weather in Paris and Tokyo?" } as const;
const MESSAGES_PARAMS = {
  model: "tiny-llama",
  max_tokens: 64,
  messages: [{ role: "user" as const, content: "Weather in Paris and Tokyo?" }],
};

describe("the openai SDK reads translated Responses answers", () => {
  const translation = chatTranslation("responses");
  const stream = (script: ChatScript) =>
    convert(translation.streamConverter({ request: RESPONSES_PARAMS }), chatStream(script));

  it("accumulates the recorded text stream to the final response (ResponseStream)", async () => {
    const bytes = convert(translation.streamConverter(), chatEvents(recording("chat_stream_usage").body));
    const response = await openai(answering(bytes, 200, true))
      .responses.stream(RESPONSES_PARAMS)
      .finalResponse();
    assert.equal(outputText(response), " Libraryditional Libraryditional line redistribute line GENERAL");
    assert.equal(response.status, "incomplete");
    assert.deepEqual(response.incomplete_details, { reason: "max_output_tokens" });
    assert.deepEqual(
      [response.usage?.input_tokens, response.usage?.output_tokens, response.usage?.total_tokens],
      [17, 8, 25],
    );
  });

  it("accumulates reasoning, text and tool calls, and their events, from a streamed agent turn", async () => {
    const runner = openai(answering(stream(AGENT_TURN), 200, true)).responses.stream(RESPONSES_PARAMS);
    const argumentsDone: string[] = [];
    const textDeltas: string[] = [];
    runner.on("response.function_call_arguments.done", (event) => argumentsDone.push(event.arguments));
    runner.on("response.output_text.delta", (event) => textDeltas.push(event.delta));
    const response = await runner.finalResponse();
    assert.deepEqual(
      response.output.map((item) => item.type),
      ["reasoning", "message", "function_call", "function_call"],
    );
    const reasoning = response.output[0] as OpenAI.Responses.ResponseReasoningItem;
    assert.equal(reasoning.content?.[0]?.text, "The user wants the weather in two cities.");
    assert.equal(outputText(response), "Checking both.");
    assert.equal(textDeltas.join(""), "Checking both.");
    const calls = response.output.filter((item) => item.type === "function_call");
    assert.deepEqual(
      calls.map((call) => [call.call_id, call.name, JSON.parse(call.arguments)]),
      [
        ["chatcmpl-tool-1", "get_weather", { city: "Paris", unit: "c" }],
        ["chatcmpl-tool-2", "get_weather", { city: "Tōkyō 日本" }],
      ],
    );
    assert.deepEqual(
      argumentsDone,
      calls.map((call) => call.arguments),
    );
    assert.equal(response.status, "completed");
    assert.deepEqual([response.usage?.input_tokens, response.usage?.output_tokens], [42, 30]);
  });

  it("reads a whole translated answer with tool calls (responses.create)", async () => {
    const body = JSON.stringify(
      translation.fromChatAnswer(chatAnswer(AGENT_TURN), { request: RESPONSES_PARAMS }),
    );
    const response = await openai(answering(body)).responses.create(RESPONSES_PARAMS);
    assert.equal(response.output_text, "Checking both.");
    const call = response.output.find((item) => item.type === "function_call")!;
    assert.deepEqual(JSON.parse(call.arguments), { city: "Paris", unit: "c" });
    assert.equal(response.usage?.total_tokens, 72);
  });

  it("raises the SDK's class for a translated upstream error", async () => {
    const { status, body } = recording("err_unknown_model");
    const translated = JSON.stringify(translation.fromChatError(status, JSON.parse(body)));
    await assert.rejects(openai(answering(translated, status)).responses.create(RESPONSES_PARAMS), (err) => {
      assert.ok(err instanceof OpenAI.NotFoundError);
      assert.equal(err.message, "404 The model `nope` does not exist. Valid aliases: tiny-llama.");
      return true;
    });
  });
});

describe("the Anthropic SDK reads translated Messages answers", () => {
  const translation = chatTranslation("messages");
  const stream = (script: ChatScript) =>
    convert(translation.streamConverter({ promptTokens: 40 }), chatStream(script));

  it("accumulates the recorded text stream to the final message (MessageStream)", async () => {
    const bytes = convert(translation.streamConverter(), chatEvents(recording("chat_stream_usage").body));
    const message = await anthropic(answering(bytes, 200, true))
      .messages.stream(MESSAGES_PARAMS)
      .finalMessage();
    assert.deepEqual(message.content, [
      { type: "text", text: " Libraryditional Libraryditional line redistribute line GENERAL" },
    ]);
    assert.equal(message.stop_reason, "max_tokens");
    assert.deepEqual([message.usage.input_tokens, message.usage.output_tokens], [17, 8]);
  });

  it("accumulates thinking, text and tool_use blocks with parsed input from a streamed agent turn", async () => {
    const runner = anthropic(answering(stream(AGENT_TURN), 200, true)).messages.stream(MESSAGES_PARAMS);
    const jsonDeltas: string[] = [];
    runner.on("inputJson", (partial) => jsonDeltas.push(partial));
    const message = await runner.finalMessage();
    assert.deepEqual(message.content, [
      { type: "thinking", thinking: "The user wants the weather in two cities.", signature: "" },
      { type: "text", text: "Checking both." },
      { type: "tool_use", id: "chatcmpl-tool-1", name: "get_weather", input: { city: "Paris", unit: "c" } },
      { type: "tool_use", id: "chatcmpl-tool-2", name: "get_weather", input: { city: "Tōkyō 日本" } },
    ]);
    assert.equal(jsonDeltas.join(""), AGENT_TURN.tools!.flatMap((t) => t.fragments).join(""));
    assert.equal(message.stop_reason, "tool_use");
    assert.deepEqual([message.usage.input_tokens, message.usage.output_tokens], [42, 30]);
  });

  it("reads a whole translated answer with tool_use (messages.create)", async () => {
    const body = JSON.stringify(translation.fromChatAnswer(chatAnswer(AGENT_TURN)));
    const message = await anthropic(answering(body)).messages.create(MESSAGES_PARAMS);
    assert.deepEqual(
      message.content.map((block) => block.type),
      ["thinking", "text", "tool_use", "tool_use"],
    );
    assert.equal(message.stop_reason, "tool_use");
    const tool = message.content[2] as Anthropic.ToolUseBlock;
    assert.deepEqual(tool.input, { city: "Paris", unit: "c" });
  });

  it("raises the SDK's class for a translated upstream error, with Anthropic's error type", async () => {
    const { status, body } = recording("err_unknown_model");
    const translated = JSON.stringify(translation.fromChatError(status, JSON.parse(body)));
    await assert.rejects(anthropic(answering(translated, status)).messages.create(MESSAGES_PARAMS), (err) => {
      assert.ok(err instanceof Anthropic.NotFoundError);
      assert.deepEqual(err.error, {
        type: "error",
        error: {
          type: "not_found_error",
          message: "The model `nope` does not exist. Valid aliases: tiny-llama.",
        },
      });
      return true;
    });
  });

  it("raises an error event mid-stream as the SDK's error", async () => {
    const converter = translation.streamConverter();
    const [first] = chatStream({ text: ["a"] });
    const bytes = Buffer.concat([
      converter.event(first),
      converter.event({ error: { message: "engine died", type: "InternalServerError", code: 500 } }),
      converter.done(),
    ]);
    await assert.rejects(
      anthropic(answering(bytes, 200, true))
        .messages.stream(MESSAGES_PARAMS)
        .finalMessage(),
      /engine died/,
    );
  });
});
