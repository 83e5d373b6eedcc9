/**
 * Bounded, seeded fuzzing of the two parsers that see untrusted bytes first: parseRequestBody (every request
 * body) and SseSplitter (every streamed model response). Deterministic for a seed: set FUZZ_SEED to explore
 * other inputs, FUZZ_ITERATIONS to run longer; a failure names the seed and case to reproduce it.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { z } from "zod";
import { GatewayError } from "../errors/index.js";
import { countTokensRequest, messagesRequest } from "../anthropic/schemas.js";
import {
  chatCompletionRequest,
  completionRequest,
  embeddingRequest,
  parseRequestBody,
  responsesRequest,
} from "./schemas.js";
import { SseSplitter, type SseEvent } from "./sse.js";
import { seededRandom } from "../../test/harness/random.js";

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_2026) >>> 0;
const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 1000);
/** Fewer cases than this prove little (FUZZ_ITERATIONS=0 would pass with none): the run fails instead. */
const MIN_ITERATIONS = 200;

describe("fuzz settings", () => {
  it(`runs at least ${MIN_ITERATIONS} cases per parser`, () => {
    assert.ok(
      Number.isInteger(ITERATIONS) && ITERATIONS >= MIN_ITERATIONS,
      `FUZZ_ITERATIONS=${process.env.FUZZ_ITERATIONS}: at least ${MIN_ITERATIONS} cases are needed`,
    );
  });
});

/** Seeded random choices for input generation. */
function prng(seed: number): Random {
  const next = seededRandom(seed);
  const int = (n: number): number => Math.floor(next() * n);
  return {
    next,
    int,
    chance: (p) => next() < p,
    pick: <T>(items: readonly T[]): T => items[int(items.length)]!,
  };
}

interface Random {
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  chance(p: number): boolean;
  pick<T>(items: readonly T[]): T;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const STRINGS = [
  "",
  "hi",
  "user",
  "system",
  "assistant",
  "m",
  "llama-3.1-8b-instruct",
  "héllo 日本 😀",
  "\u0000",
  "\u0001\u001f\u007f",
  "\ud800",
  "\udc00\ud800",
  "\u202e\u200b\ufeff",
  '"quoted" \\ backslash',
  "__proto__",
  "constructor",
  "[DONE]",
  "data: x\n\n",
  "x".repeat(1000),
];
const NUMBERS = [0, -0, 1, -1, 1.5, 2 ** 31, 2 ** 53 + 2, -(2 ** 63), 1e308, -1e-308, 5e-324, 0.1];
const KEYS = [
  "model",
  "messages",
  "prompt",
  "input",
  "stream",
  "stream_options",
  "include_usage",
  "max_tokens",
  "max_completion_tokens",
  "n",
  "temperature",
  "top_p",
  "role",
  "content",
  "type",
  "text",
  "encoding_format",
  "dimensions",
  "tool_calls",
  "__proto__",
  "constructor",
  "",
  "x",
];

function randomScalar(r: Random): Json {
  switch (r.int(5)) {
    case 0:
      return null;
    case 1:
      return r.chance(0.5);
    case 2:
      return r.chance(0.5) ? r.pick(NUMBERS) : r.int(2000) - 1000;
    default:
      return r.pick(STRINGS);
  }
}

/** Sets a member the way JSON.parse does: `__proto__` becomes an own property, not the prototype. */
function set(holder: Json[] | { [key: string]: Json }, key: string | number, value: Json): void {
  Object.defineProperty(holder, key, { value, enumerable: true, writable: true, configurable: true });
}

function randomJson(r: Random, depth: number): Json {
  if (depth <= 0 || r.chance(0.4)) return randomScalar(r);
  if (r.chance(0.5)) return Array.from({ length: r.int(4) }, () => randomJson(r, depth - 1));
  const out: { [key: string]: Json } = {};
  for (let i = r.int(4); i > 0; i--) set(out, r.pick(KEYS), randomJson(r, depth - 1));
  return out;
}

const tokenIds = (r: Random): number[] => Array.from({ length: r.int(5) }, () => r.int(100_000));

function validChat(r: Random): { [key: string]: Json } {
  const message = (): { [key: string]: Json } => {
    const role = r.pick(["system", "user", "assistant", "tool", "developer"]);
    switch (r.int(4)) {
      case 0:
        return { role, content: r.pick(STRINGS) };
      case 1:
        return {
          role,
          content: [
            { type: "text", text: r.pick(STRINGS) },
            { type: "image_url", image_url: { url: "data:image/png;base64,AAAA" } },
          ],
        };
      case 2:
        return {
          role: "assistant",
          content: null,
          tool_calls: [{ id: "c1", type: "function", function: { name: "f", arguments: '{"a":1}' } }],
        };
      default:
        return { role, content: r.pick(STRINGS), name: "n" };
    }
  };
  const body: { [key: string]: Json } = {
    model: r.pick(["m", "chat-default", "llama-3.1-8b-instruct"]),
    messages: Array.from({ length: 1 + r.int(4) }, message),
  };
  if (r.chance(0.5)) body.stream = r.chance(0.5);
  if (r.chance(0.3)) body.stream_options = { include_usage: r.chance(0.5) };
  if (r.chance(0.4)) body.max_tokens = 1 + r.int(4096);
  if (r.chance(0.2)) body.max_completion_tokens = 1 + r.int(4096);
  if (r.chance(0.2)) body.n = 1 + r.int(4);
  if (r.chance(0.3)) body.temperature = r.next() * 2;
  if (r.chance(0.2)) body.top_p = r.next();
  if (r.chance(0.2)) body.user = "u-1";
  return body;
}

function validCompletion(r: Random): { [key: string]: Json } {
  const prompts: Json[] = [
    r.pick(STRINGS),
    [r.pick(STRINGS), r.pick(STRINGS)],
    tokenIds(r),
    [tokenIds(r), tokenIds(r)],
  ];
  const body: { [key: string]: Json } = { model: "m", prompt: r.pick(prompts) };
  if (r.chance(0.5)) body.stream = r.chance(0.5);
  if (r.chance(0.4)) body.max_tokens = 1 + r.int(100);
  if (r.chance(0.2)) body.echo = true;
  return body;
}

function validEmbedding(r: Random): { [key: string]: Json } {
  const inputs: Json[] = [r.pick(STRINGS), [r.pick(STRINGS)], tokenIds(r), [tokenIds(r)]];
  const body: { [key: string]: Json } = { model: "bge-small-en-v1.5", input: r.pick(inputs) };
  if (r.chance(0.3)) body.encoding_format = r.pick(["float", "base64"]);
  if (r.chance(0.3)) body.dimensions = 1 + r.int(1024);
  return body;
}

/** A cap value as a hostile client may send one: mostly valid, sometimes negative, fractional, huge or a string. */
function capValue(r: Random): Json {
  return r.pick<Json>([1 + r.int(4096), 1 + r.int(4096), -1, 0, 2.5, 2 ** 40, "64", null]);
}

function validResponses(r: Random): { [key: string]: Json } {
  const item = (): { [key: string]: Json } =>
    r.pick<{ [key: string]: Json }>([
      { role: "user", content: r.pick(STRINGS) },
      { role: "assistant", content: [{ type: "output_text", text: r.pick(STRINGS) }] },
      { type: "function_call", call_id: "call_1", name: "f", arguments: '{"a":1}' },
      { type: "function_call_output", call_id: "call_1", output: r.pick(STRINGS) },
    ]);
  const body: { [key: string]: Json } = {
    model: "m",
    input: r.chance(0.4) ? r.pick(STRINGS) : Array.from({ length: 1 + r.int(3) }, item),
  };
  if (r.chance(0.4)) body.instructions = r.pick(STRINGS);
  if (r.chance(0.4)) body.max_output_tokens = capValue(r);
  if (r.chance(0.3)) body.stream = r.chance(0.5);
  if (r.chance(0.2)) body.store = false;
  if (r.chance(0.3))
    body.tools = [{ type: "function", name: "f", parameters: { type: "object" }, strict: false }];
  return body;
}

function validMessages(r: Random, generating = true): { [key: string]: Json } {
  const block = (): { [key: string]: Json } =>
    r.pick<{ [key: string]: Json }>([
      { type: "text", text: r.pick(STRINGS) },
      { type: "tool_use", id: "toolu_1", name: "f", input: { a: r.pick(STRINGS) } },
      { type: "tool_result", tool_use_id: "toolu_1", content: r.pick(STRINGS) },
    ]);
  const body: { [key: string]: Json } = {
    model: "m",
    messages: Array.from({ length: 1 + r.int(3) }, () => ({
      role: r.pick(["user", "assistant"]),
      content: r.chance(0.5) ? r.pick(STRINGS) : [block()],
    })),
  };
  if (generating) body.max_tokens = capValue(r);
  if (r.chance(0.4)) body.system = r.pick(STRINGS);
  if (r.chance(0.3)) body.stream = r.chance(0.5);
  if (generating && r.chance(0.2)) body.thinking = { type: "enabled", budget_tokens: capValue(r) };
  return body;
}

/** Every container (object or array) in `value`, with the value itself first. */
function containers(value: Json, out: Array<Json[] | { [key: string]: Json }> = []): typeof out {
  if (value !== null && typeof value === "object") {
    out.push(value);
    for (const child of Object.values(value)) containers(child, out);
  }
  return out;
}

/** Changes one random spot of `body` in place: a deletion, a type swap, a new field, an odd value. */
function mutateValue(r: Random, body: { [key: string]: Json }): void {
  const target = r.pick(containers(body));
  const keys = Object.keys(target);
  // Arrays get indexes (a "constructor" member on an array would break the test's own array methods).
  const key: string | number =
    keys.length > 0 && r.chance(0.8) ? r.pick(keys) : Array.isArray(target) ? target.length : r.pick(KEYS);
  const current = (target as { [key: string]: Json })[key] ?? null;
  switch (r.int(6)) {
    case 0:
      if (Array.isArray(target)) target.splice(Number(key) || 0, 1);
      else delete (target as { [key: string]: Json })[key];
      break;
    case 1:
      set(target, key, randomScalar(r));
      break;
    case 2:
      set(target, key, randomJson(r, 4));
      break;
    case 3:
      // Wrap in an array or object: the type a field expects, one level too deep.
      set(target, key, r.chance(0.5) ? [current] : { value: current });
      break;
    case 4:
      set(target, key, r.pick([[], {}, "", 0, -1, null, true, "x".repeat(100_000)]));
      break;
    default:
      // A copy of some other part of the body in this place (a copy: the body must stay a tree).
      if (Array.isArray(target)) target.push(...structuredClone(target.slice(0, r.int(3))));
      else set(target, r.pick(KEYS), structuredClone(r.pick(Object.values(body))));
  }
}

/** Deeply nested arrays or objects as text (JSON.stringify itself could not build them). */
function deepText(r: Random): string {
  const depth = r.pick([50, 1000, 10_000, 100_000]);
  return r.chance(0.5)
    ? "[".repeat(depth) + "]".repeat(depth)
    : '{"a":'.repeat(depth) + (r.chance(0.5) ? "1" : "[]") + "}".repeat(depth);
}

const RAW_BYTES = [
  0x00, 0x0a, 0x0d, 0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x80, 0xc3, 0xe6, 0xf0, 0xff,
];

/** Byte-level damage to serialized JSON: random bytes, deletions, truncation, deep nesting, duplicates. */
function mutateBytes(r: Random, bytes: Buffer): Buffer {
  const at = (): number => r.int(bytes.length + 1);
  switch (r.int(8)) {
    case 0: {
      const copy = Buffer.from(bytes);
      for (let i = 1 + r.int(4); i > 0 && copy.length > 0; i--) copy[r.int(copy.length)] = r.int(256);
      return copy;
    }
    case 1: {
      const pos = at();
      const noise = Buffer.from(Array.from({ length: 1 + r.int(6) }, () => r.pick(RAW_BYTES)));
      return Buffer.concat([bytes.subarray(0, pos), noise, bytes.subarray(pos)]);
    }
    case 2: {
      const from = at();
      return Buffer.concat([bytes.subarray(0, from), bytes.subarray(from + 1 + r.int(20))]);
    }
    case 3:
      return bytes.subarray(0, at());
    case 4: {
      // A deeply nested value for a new field, or in place of the first value after a colon.
      const text = bytes.toString("latin1");
      const colon = text.indexOf(":", r.int(text.length));
      if (colon === -1 || r.chance(0.3))
        return Buffer.from(text.replace(/^\s*\{/, `{"deep":${deepText(r)},`), "latin1");
      return Buffer.from(`${text.slice(0, colon + 1)}${deepText(r)},"x":${text.slice(colon + 1)}`, "latin1");
    }
    case 5:
      // Duplicate keys: the first member repeated with a different value.
      return Buffer.from(
        bytes
          .toString("latin1")
          .replace(/^\s*\{/, `{"model":${JSON.stringify(randomScalar(r))},"messages":[],"prompt":7,`),
        "latin1",
      );
    case 6:
      return Buffer.from(r.pick(["", " ", "null", "[]", "[{}]", '"s"', "1e999", "{", "}", "\ufeff{}"]));
    default:
      return Buffer.concat([Buffer.from(r.pick([" ", "\t\n", "\ufeff", "\u0000"])), bytes]);
  }
}

/** A fuzz case: a valid body, maybe mutated as a value, maybe damaged as bytes. */
function fuzzBody(r: Random, valid: (r: Random) => { [key: string]: Json }): Buffer {
  if (r.chance(0.05)) return Buffer.from(Array.from({ length: r.int(64) }, () => r.int(256)));
  const body = valid(r);
  for (let i = r.chance(0.2) ? 0 : 1 + r.int(3); i > 0; i--) mutateValue(r, body);
  let bytes: Buffer = Buffer.from(JSON.stringify(body), "utf8");
  for (let i = r.chance(0.5) ? 0 : 1 + r.int(2); i > 0; i--) bytes = mutateBytes(r, bytes);
  return bytes;
}

const SCHEMAS: ReadonlyArray<[string, z.ZodType, (r: Random) => { [key: string]: Json }]> = [
  ["chatCompletionRequest", chatCompletionRequest, validChat],
  ["completionRequest", completionRequest, validCompletion],
  ["embeddingRequest", embeddingRequest, validEmbedding],
  ["responsesRequest", responsesRequest, validResponses],
  ["messagesRequest", messagesRequest, validMessages],
  ["countTokensRequest", countTokensRequest, (r) => validMessages(r, false)],
];

describe(`parseRequestBody fuzz (seed ${SEED})`, () => {
  for (const [name, schema, valid] of SCHEMAS) {
    it(`${name}: returns a request with a string model or throws a 400 GatewayError, nothing else`, () => {
      const r = prng(SEED ^ name.length);
      const outcomes = { accepted: 0, invalid_json: 0, invalid_request: 0 };
      for (let i = 0; i < ITERATIONS; i++) {
        const body = fuzzBody(r, valid);
        const label = () =>
          `${name} case ${i} (FUZZ_SEED=${SEED}), body ${JSON.stringify(body.toString("utf8").slice(0, 200))}`;
        let parsed: unknown;
        try {
          parsed = parseRequestBody(body, schema);
        } catch (err) {
          assert.ok(err instanceof GatewayError, `${label()}: threw ${String(err)}`);
          assert.ok(err.code === "invalid_json" || err.code === "invalid_request", `${label()}: ${err.code}`);
          assert.equal(err.status, 400, label());
          assert.equal(err.type, "invalid_request_error", label());
          assert.ok(typeof err.message === "string" && err.message.length > 0, label());
          // invalid_request names the offending field.
          if (err.code === "invalid_request") assert.ok(err.param !== null && err.param.length > 0, label());
          outcomes[err.code]++;
          continue;
        }
        assert.ok(
          typeof parsed === "object" && parsed !== null && !Array.isArray(parsed),
          `${label()}: returned ${String(parsed)}`,
        );
        const model = (parsed as { model?: unknown }).model;
        assert.ok(typeof model === "string" && model.length > 0, `${label()}: model ${String(model)}`);
        outcomes.accepted++;
      }
      assert.equal(outcomes.accepted + outcomes.invalid_json + outcomes.invalid_request, ITERATIONS);
      // The generator must exercise all three outcomes, or the invariant proves little.
      for (const [outcome, count] of Object.entries(outcomes)) {
        assert.ok(count >= ITERATIONS / 50, `${name}: only ${count} cases ended ${outcome}`);
      }
    });
  }
});

/** An SSE stream the splitter must take apart: random events with every terminator and field form. */
function randomStream(r: Random): { bytes: Buffer; raws: string[]; datas: string[]; tail: string } {
  const terminator = () => r.pick(["\n", "\r\n", "\r"]);
  const value = () =>
    r.pick([
      "",
      " ",
      "x",
      '{"choices":[{"delta":{"content":"é日本😀"}}]}',
      "[DONE]",
      "data: nested",
      ":colon",
      '{"usage":null}',
      "ü".repeat(r.int(40)),
      "日本語".repeat(r.int(10)),
    ]);
  const raws: string[] = [];
  const datas: string[] = [];
  for (let e = r.int(12); e > 0; e--) {
    let raw = "";
    const data: string[] = [];
    for (let l = r.int(4); l >= 0; l--) {
      switch (r.int(5)) {
        case 0:
          raw += `: ${value()}`;
          break;
        case 1:
          raw += `${r.pick(["event", "id", "retry"])}: ${value()}`;
          break;
        default: {
          const v = `${r.pick(["", " ", "  "])}${value()}`;
          raw += `data:${v}`;
          data.push(v.startsWith(" ") ? v.slice(1) : v); // one optional space after the colon
        }
      }
      raw += terminator();
    }
    // The blank line ending the event. After a CR line end, a bare LF would merge with it into one CRLF.
    raw += raw.endsWith("\r") ? r.pick(["\r", "\r\n"]) : terminator();
    raws.push(raw);
    datas.push(data.join("\n"));
  }
  const tail = r.chance(0.5) ? "" : `data: ${value()}`.replace(/[\r\n]/g, "");
  return { bytes: Buffer.from(raws.join("") + tail, "utf8"), raws, datas, tail };
}

/** Cuts `bytes` into random chunks: empty ones, single bytes, cuts inside UTF-8 characters and CR LF. */
function randomChunks(r: Random, bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    const size = r.chance(0.1) ? 0 : r.chance(0.5) ? 1 + r.int(3) : 1 + r.int(64);
    chunks.push(bytes.subarray(pos, pos + size));
    pos += size;
  }
  if (r.chance(0.2)) chunks.push(Buffer.alloc(0));
  return chunks;
}

function split(chunks: readonly Buffer[]): { events: SseEvent[]; rest: Buffer } {
  const splitter = new SseSplitter();
  const events: SseEvent[] = [];
  for (const chunk of chunks) events.push(...splitter.push(chunk));
  const rest = splitter.flush();
  assert.equal(splitter.heldBytes, 0);
  return { events, rest };
}

describe(`SseSplitter fuzz (seed ${SEED})`, () => {
  it("re-assembles random streams split at random points, byte for byte and event for event", () => {
    const r = prng(SEED ^ 0x55e);
    let cases = 0;
    for (let i = 0; i < ITERATIONS; i++, cases++) {
      const stream = randomStream(r);
      const whole = split([stream.bytes]);
      const chunked = split(randomChunks(r, stream.bytes));
      const label = `case ${i} (FUZZ_SEED=${SEED}): ${JSON.stringify(stream.bytes.toString("utf8"))}`;
      const text = (b: Buffer) => b.toString("utf8");
      assert.deepEqual(
        chunked.events.map((e) => text(e.raw)),
        whole.events.map((e) => text(e.raw)),
        label,
      );
      assert.deepEqual(
        chunked.events.map((e) => e.data),
        whole.events.map((e) => e.data),
        label,
      );
      assert.ok(
        Buffer.concat([...chunked.events.map((e) => e.raw), chunked.rest]).equals(stream.bytes),
        label,
      );
      // And both match what the generator meant, when the stream does not end in a CR that an LF might follow.
      if (!stream.bytes.toString("latin1").endsWith("\r")) {
        assert.deepEqual(
          whole.events.map((e) => text(e.raw)),
          stream.raws,
          label,
        );
        assert.deepEqual(
          whole.events.map((e) => e.data),
          stream.datas,
          label,
        );
        assert.equal(text(whole.rest), stream.tail, label);
      }
    }
    assert.equal(cases, ITERATIONS);
  });
});
