/**
 * Properties of the stream translations, over generated agent turns (reasoning, text, tool calls with JSON
 * arguments, any Unicode) cut into chat chunks at generated points, grouped as different servers group them
 * (finish_reason on the last content chunk, a tool call's name with its first fragment, usage on every chunk):
 * - any chunking gives the same client output, read by the official SDKs' own accumulators, and it is the
 *   output of the whole (non-streamed) answer's translation;
 * - every character of generated text, reasoning and arguments appears exactly once, in order, in the
 *   translated deltas;
 * - tool-call argument fragments reassemble to the same JSON;
 * - the event structure holds: sequence numbers count from 0, every item/block opened is closed once.
 * Seeded: FC_SEED reproduces a run; fast-check prints the seed and path of a failure.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import fc from "fast-check";
import OpenAI from "openai";
import { chatTranslation } from "./index.js";
import {
  answering,
  chatAnswer,
  convert,
  parseSse,
  type ChatScript,
  type ParsedEvent,
} from "./test-support.js";

const SEED = Number(process.env.FC_SEED ?? 0x7a5_1a7e) | 0;
const NUM_RUNS = Number(process.env.FC_RUNS ?? 60);

type Json = Record<string, unknown>;

/** An agent turn as strings (what the model generated), before it is cut into chunks. */
interface Turn {
  readonly reasoning: string;
  readonly text: string;
  readonly tools: ReadonlyArray<{ readonly id: string; readonly name: string; readonly args: unknown }>;
  readonly finish: "stop" | "length" | "tool_calls";
}

/** How a server groups a turn into chunks. */
interface Grouping {
  readonly reasoningField: "reasoning" | "reasoning_content";
  readonly finishOnLast: boolean;
  readonly nameWithFirstFragment: boolean;
  readonly continuousUsage: boolean;
}

// Any code unit: astral characters, lone surrogates where a cut splits a pair, quotes, newlines, NULs.
const text = fc.string({ unit: "binary", maxLength: 40 });
const turn: fc.Arbitrary<Turn> = fc.record({
  reasoning: fc.oneof(fc.constant(""), text),
  text: fc.oneof(fc.constant(""), text),
  tools: fc.array(
    fc.record({
      id: fc.stringMatching(/^chatcmpl-tool-[0-9a-f]{8}$/),
      name: fc.stringMatching(/^[a-z_]{1,12}$/),
      args: fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
    }),
    { maxLength: 3 },
  ),
  finish: fc.constantFrom("stop", "length", "tool_calls"),
});
const grouping: fc.Arbitrary<Grouping> = fc.record({
  reasoningField: fc.constantFrom("reasoning", "reasoning_content"),
  finishOnLast: fc.boolean(),
  nameWithFirstFragment: fc.boolean(),
  continuousUsage: fc.boolean(),
});
/** Cut points, as fractions of each string's length. */
const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 });

/** `value` cut at the given fractions (empty pieces dropped, as servers send none). */
function cut(value: string, at: readonly number[]): string[] {
  const points = [...new Set(at.map((f) => Math.floor(f * value.length)))].sort((a, b) => a - b);
  const pieces: string[] = [];
  let from = 0;
  for (const point of [...points, value.length]) {
    if (point > from) pieces.push(value.slice(from, point));
    from = Math.max(from, point);
  }
  return pieces;
}

const argsText = (args: unknown) => JSON.stringify(args);
const USAGE = { prompt_tokens: 11, completion_tokens: 7 };

/** The chat chunks a server streams for a turn, cut and grouped as given. */
function chunksOf(t: Turn, g: Grouping, at: readonly number[]): Json[] {
  const chunk = (delta: Json, finish: string | null = null, usage = g.continuousUsage): Json => ({
    id: "chatcmpl-0123456789abcdef",
    object: "chat.completion.chunk",
    created: 1796150741,
    model: "tiny-llama",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    ...(usage && { usage: { ...USAGE, total_tokens: 18 } }),
  });
  const chunks: Json[] = [chunk({ role: "assistant", content: "" })];
  for (const piece of cut(t.reasoning, at)) chunks.push(chunk({ [g.reasoningField]: piece }));
  for (const piece of cut(t.text, at)) chunks.push(chunk({ content: piece }));
  t.tools.forEach((tool, index) => {
    const pieces = cut(argsText(tool.args), at);
    const first = g.nameWithFirstFragment ? (pieces.shift() ?? "") : "";
    chunks.push(
      chunk({
        tool_calls: [
          { id: tool.id, type: "function", index, function: { name: tool.name, arguments: first } },
        ],
      }),
    );
    for (const piece of pieces)
      chunks.push(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }));
  });
  const last = chunks.at(-1)!;
  if (g.finishOnLast && chunks.length > 1) (last.choices as Json[])[0]!.finish_reason = t.finish;
  else chunks.push(chunk({}, t.finish));
  chunks.push({ ...chunk({}, null, true), choices: [] });
  return chunks;
}

/** The same turn as a whole chat answer. */
function wholeAnswer(t: Turn, g: Grouping): Json {
  const script: ChatScript = {
    id: "chatcmpl-0123456789abcdef",
    reasoning: t.reasoning ? [t.reasoning] : [],
    text: t.text ? [t.text] : [],
    tools: t.tools.map((tool) => ({ id: tool.id, name: tool.name, fragments: [argsText(tool.args)] })),
    finish: t.finish,
    usage: USAGE,
    reasoningField: g.reasoningField,
  };
  return chatAnswer(script);
}

const REQUEST = { model: "tiny-llama", input: "go" };
const MESSAGES_REQUEST = {
  model: "tiny-llama",
  max_tokens: 64,
  messages: [{ role: "user" as const, content: "go" }],
};

/** The fields the SDKs add while parsing (structured-output helpers), which no server sends. */
const SDK_FIELDS = new Set(["parsed", "parsed_arguments", "output_parsed", "parsed_output"]);

/** A plain JSON copy of what an SDK accumulated, without its own fields. */
function asServerSent(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (key, v: unknown) => (SDK_FIELDS.has(key) ? undefined : v)));
}

async function responsesFinal(bytes: Buffer): Promise<unknown> {
  const client = new OpenAI({
    apiKey: "t",
    baseURL: "http://127.0.0.1:9/v1",
    fetch: answering(bytes, 200, true),
  });
  return asServerSent(await client.responses.stream(REQUEST).finalResponse());
}

async function messagesFinal(bytes: Buffer): Promise<unknown> {
  const client = new Anthropic({
    apiKey: "t",
    baseURL: "http://127.0.0.1:9",
    fetch: answering(bytes, 200, true),
  });
  return asServerSent(await client.messages.stream(MESSAGES_REQUEST).finalMessage());
}

/** The deltas of each output item/block, joined, by index, with the kind of delta. */
function deltasByBlock(events: readonly ParsedEvent[]): Map<number, { kind: string; text: string }> {
  const blocks = new Map<number, { kind: string; text: string }>();
  for (const { event, data } of events) {
    let index: number | undefined;
    let kind = "";
    let piece = "";
    if (event.endsWith(".delta")) {
      index = data.output_index as number;
      kind = event;
      piece = data.delta as string;
    } else if (event === "content_block_delta") {
      const delta = data.delta as Json;
      index = data.index as number;
      kind = delta.type as string;
      piece = (delta.text ?? delta.thinking ?? delta.partial_json) as string;
    }
    if (index === undefined) continue;
    const block = blocks.get(index) ?? { kind, text: "" };
    assert.equal(block.kind, kind, "one kind of delta per block");
    block.text += piece;
    blocks.set(index, block);
  }
  return blocks;
}

/** What the turn must show, block by block: [delta kind, text]. */
function expectedBlocks(
  t: Turn,
  kinds: { reasoning: string; text: string; tool: string },
): Array<[string, string]> {
  return [
    ...(t.reasoning ? [[kinds.reasoning, t.reasoning] as [string, string]] : []),
    ...(t.text ? [[kinds.text, t.text] as [string, string]] : []),
    ...t.tools.map((tool) => [kinds.tool, argsText(tool.args)] as [string, string]),
  ];
}

describe("stream translation properties", () => {
  it("Responses: any chunking gives the SDK the whole answer's response; every character once; arguments reassemble", async () => {
    const translation = chatTranslation("responses");
    await fc.assert(
      fc.asyncProperty(turn, grouping, cuts, cuts, async (t, g, cutsA, cutsB) => {
        const bytesA = convert(translation.streamConverter({ request: REQUEST }), chunksOf(t, g, cutsA));
        const bytesB = convert(translation.streamConverter({ request: REQUEST }), chunksOf(t, g, cutsB));
        const whole = JSON.parse(
          JSON.stringify(translation.fromChatAnswer(wholeAnswer(t, g), { request: REQUEST })),
        );
        const [finalA, finalB] = [await responsesFinal(bytesA), await responsesFinal(bytesB)];
        assert.deepEqual(finalA, finalB);
        assert.deepEqual((finalA as Json).output, whole.output);
        assert.deepEqual((finalA as Json).usage, whole.usage);

        const events = parseSse(bytesA.toString());
        assert.deepEqual(
          events.map((e) => e.data.sequence_number),
          events.map((_, i) => i),
        );
        const added = events
          .filter((e) => e.event === "response.output_item.added")
          .map((e) => e.data.output_index);
        const done = events
          .filter((e) => e.event === "response.output_item.done")
          .map((e) => e.data.output_index);
        assert.deepEqual(added, done);
        assert.deepEqual(added, [...added.keys()]);
        const blocks = [...deltasByBlock(events).values()].map((b) => [b.kind, b.text]);
        // A tool call with empty arguments ("{}" never is) has no delta: compare blocks that have text.
        assert.deepEqual(
          blocks,
          expectedBlocks(t, {
            reasoning: "response.reasoning_text.delta",
            text: "response.output_text.delta",
            tool: "response.function_call_arguments.delta",
          }),
        );
        const calls = ((finalA as Json).output as Json[]).filter((item) => item.type === "function_call");
        assert.deepEqual(
          calls.map((call) => JSON.parse(call.arguments as string)),
          t.tools.map((tool) => JSON.parse(argsText(tool.args)) as unknown),
        );
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
  });

  it("Messages: any chunking gives the SDK the whole answer's message; every character once; input reassembles", async () => {
    const translation = chatTranslation("messages");
    await fc.assert(
      fc.asyncProperty(turn, grouping, cuts, cuts, async (t, g, cutsA, cutsB) => {
        const bytesA = convert(translation.streamConverter(), chunksOf(t, g, cutsA));
        const bytesB = convert(translation.streamConverter(), chunksOf(t, g, cutsB));
        const whole = JSON.parse(JSON.stringify(translation.fromChatAnswer(wholeAnswer(t, g))));
        const [finalA, finalB] = [await messagesFinal(bytesA), await messagesFinal(bytesB)];
        assert.deepEqual(finalA, finalB);
        assert.deepEqual(finalA, whole);

        const events = parseSse(bytesA.toString());
        const starts = events.filter((e) => e.event === "content_block_start").map((e) => e.data.index);
        const stops = events.filter((e) => e.event === "content_block_stop").map((e) => e.data.index);
        assert.deepEqual(starts, stops);
        assert.deepEqual(starts, [...starts.keys()]);
        assert.deepEqual(
          events.map((e) => e.event).filter((name) => !name.startsWith("content_block")),
          ["message_start", "message_delta", "message_stop"],
        );
        const blocks = [...deltasByBlock(events).values()].map((b) => [b.kind, b.text]);
        assert.deepEqual(
          blocks,
          expectedBlocks(t, { reasoning: "thinking_delta", text: "text_delta", tool: "input_json_delta" }),
        );
        const inputs = ((finalA as Json).content as Json[])
          .filter((b) => b.type === "tool_use")
          .map((b) => b.input);
        assert.deepEqual(
          inputs,
          t.tools.map((tool) => JSON.parse(argsText(tool.args)) as unknown),
        );
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
  });
});
