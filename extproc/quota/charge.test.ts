/** The charging rule, and QuotaService.settleExchange against the in-memory store on a fixed clock. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pino from "pino";
import type { Identity } from "../auth/index.js";
import { createMetrics } from "../metrics/index.js";
import { parsePolicy, sha256Hex } from "../policy/index.js";
import { chargeable, type AnswerSeen, type CountTokens } from "./charge.js";
import { QuotaService } from "./index.js";
import { MemoryQuotaStore } from "./memory.js";

const T0 = Date.UTC(2026, 10, 22, 12, 0, 0);
const LIMIT = 10_000;

const policy = parsePolicy(
  `
version: 1
pools: { pool-a: {} }
models: { m1: { pool: pool-a, tokenizer: o200k_base } }
teams: { t: { models: [m1] } }
keys:
  - { id: k1, team: t, sha256: ${sha256Hex("key-1")} }
limits:
  - { id: tpm, scope: { key: k1 }, tokensPerMinute: ${LIMIT} }
`,
  "p.yaml",
);
const K1: Identity = { keyId: "k1", team: "t", allowedModels: new Set(["m1"]) };
const model = policy.models.get("m1")!;

/** Counts one token per character, and records which tokenizer it was asked for. */
function charCounter() {
  const encodings: string[] = [];
  const count: CountTokens = async (texts, encoding) => {
    encodings.push(encoding);
    return texts.reduce((sum, text) => sum + text.length, 0);
  };
  return { count, encodings };
}

const seen = (overrides: Partial<AnswerSeen>): AnswerSeen => ({
  usage: undefined,
  status: 200,
  streamedTexts: [],
  ...overrides,
});

const SERVER_USAGE = { prompt_tokens: 40, completion_tokens: 7, total_tokens: 47 };
const reserved = { input: 30, tokenizer: model.tokenizer };

describe("chargeable", () => {
  it("charges the server's usage whatever else was seen", async () => {
    const { count } = charCounter();
    const charge = await chargeable(
      reserved,
      seen({ usage: SERVER_USAGE, status: 500, streamedTexts: ["abc"] }),
      count,
    );
    assert.deepEqual(charge, { input: 40, output: 7, source: "server" });
  });

  it("charges nothing for an upstream error without usage", async () => {
    const { count } = charCounter();
    for (const status of [400, 429, 500, 503, 101]) {
      assert.deepEqual(await chargeable(reserved, seen({ status }), count), {
        input: 0,
        output: 0,
        source: undefined,
      });
    }
  });

  it("charges the prompt estimate and the streamed text, counted with the model's tokenizer", async () => {
    const { count, encodings } = charCounter();
    const charge = await chargeable(reserved, seen({ streamedTexts: ["Hello", " world"] }), count);
    assert.deepEqual(charge, { input: 30, output: 11, source: "counted" });
    assert.deepEqual(encodings, ["o200k_base"]);
  });

  it("charges the prompt alone for a request cut before any response, counting nothing", async () => {
    const { count, encodings } = charCounter();
    assert.deepEqual(await chargeable(reserved, seen({ status: undefined }), count), {
      input: 30,
      output: 0,
      source: "counted",
    });
    assert.deepEqual(encodings, []);
  });
});

describe("QuotaService.settleExchange", () => {
  async function setup() {
    const metrics = createMetrics();
    const service = new QuotaService({
      store: new MemoryQuotaStore(),
      shared: false,
      metrics,
      logger: pino({ level: "silent" }),
      now: () => T0,
    });
    let seq = 0;
    const admit = async (input: number, output: number) => {
      const admission = await service.admit({
        policy,
        identity: K1,
        model,
        requestId: `r${++seq}`,
        estimate: async () => ({ input, output }),
      });
      assert.ok(admission);
      return admission;
    };
    /** Tokens left in the bucket, read by reserving (and keeping) one more. */
    const left = async () =>
      Number((await admit(1, 0)).headers.find(([name]) => name === "x-ratelimit-remaining-tokens")![1]) + 1;
    return { service, admit, left };
  }

  it("settles the server's usage and reports it as charged", async () => {
    const { service, admit, left } = await setup();
    const admission = await admit(30, 100);
    const charged = await service.settleExchange(
      admission,
      seen({ usage: SERVER_USAGE }),
      charCounter().count,
    );
    assert.deepEqual(charged, { usage: SERVER_USAGE, source: "server" });
    assert.equal(await left(), LIMIT - 47);
  });

  it("releases the reservation of an upstream error and reports nothing charged", async () => {
    const { service, admit, left } = await setup();
    const admission = await admit(30, 100);
    assert.equal(
      await service.settleExchange(admission, seen({ status: 502 }), charCounter().count),
      undefined,
    );
    assert.equal(await left(), LIMIT);
  });

  it("charges the counted text", async () => {
    const { service, admit, left } = await setup();
    const admission = await admit(30, 100);
    const charged = await service.settleExchange(
      admission,
      seen({ streamedTexts: ["abcd"] }),
      charCounter().count,
    );
    assert.deepEqual(charged, {
      usage: { prompt_tokens: 30, completion_tokens: 4, total_tokens: 34 },
      source: "counted",
    });
    assert.equal(await left(), LIMIT - 34);
  });

  it("charges the whole reservation when counting the streamed text fails", async () => {
    const { service, admit, left } = await setup();
    const admission = await admit(30, 100);
    const failing: CountTokens = () => Promise.reject(new Error("worker gone"));
    const charged = await service.settleExchange(admission, seen({ streamedTexts: ["abcd"] }), failing);
    assert.deepEqual(charged, {
      usage: { prompt_tokens: 30, completion_tokens: 100, total_tokens: 130 },
      source: "reserved",
    });
    assert.equal(await left(), LIMIT - 130);
  });
});
