/**
 * The output cap invariant over every body the gateway accepts: whatever the client puts in the fields that
 * set how much may be generated, the reservation is a whole non-negative number, and the forwarded body,
 * read the way vLLM reads it, can never generate more than that.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { GatewayError } from "../errors/index.js";
import { applyOutputCap, outputCap, type GeneratingApi } from "./output-cap.js";
import { chatCompletionRequest, completionRequest, parseRequestBody } from "./schemas.js";

const DEFAULT_MAX_TOKENS = 64;
const SEED = 20261201;

/**
 * How vLLM 0.32 turns a forwarded body into sampling limits (written independently of output-cap.ts):
 * chat reads `max_completion_tokens or max_tokens` (unbounded up to the context without either),
 * completions `max_tokens` (16 by default) for `max(n, best_of)` sequences.
 */
function vllmGenerates(api: GeneratingApi, body: Record<string, unknown>): number {
  const num = (v: unknown): number | undefined => (typeof v === "number" && v > 0 ? v : undefined);
  const n = num(body.n) ?? 1;
  if (api === "chat.completions") {
    return (num(body.max_completion_tokens) ?? num(body.max_tokens) ?? Infinity) * n;
  }
  return (num(body.max_tokens) ?? 16) * Math.max(n, num(body.best_of) ?? n);
}

/** Anything a client could send in a numeric field. */
const hostileValue = fc.oneof(
  // Valid values often enough that most bodies are accepted and the invariant is exercised.
  { arbitrary: fc.integer({ min: 1, max: 128 }), weight: 12 },
  fc.integer({ min: -1e9, max: 1e9 }),
  fc.constantFrom(0, -1, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 53, -100_000_000, 1e308),
  fc.double(),
  fc.string({ maxLength: 5 }),
  fc.constantFrom("abc", "100", "", "1e3"),
  fc.boolean(),
  fc.constant(null),
  fc.jsonValue({ maxDepth: 2 }),
);

const capFields = fc.record(
  {
    max_tokens: hostileValue,
    max_completion_tokens: hostileValue,
    n: hostileValue,
    best_of: hostileValue,
  },
  { requiredKeys: [] },
);

const bases: Record<GeneratingApi, { schema: typeof chatCompletionRequest; body: object }> = {
  "chat.completions": {
    schema: chatCompletionRequest,
    body: { model: "m", messages: [{ role: "user", content: "hi" }] },
  },
  completions: { schema: completionRequest as never, body: { model: "m", prompt: "hi" } },
};

describe("output cap", () => {
  for (const api of ["chat.completions", "completions"] as const) {
    it(`${api}: every accepted body reserves a whole number at least what the forwarded body lets vLLM generate`, () => {
      let accepted = 0;
      fc.assert(
        fc.property(capFields, fc.boolean(), (fields, stream) => {
          const raw = Buffer.from(JSON.stringify({ ...bases[api].body, stream, ...fields }));
          let request;
          try {
            request = parseRequestBody(raw, bases[api].schema);
          } catch (err) {
            assert.ok(err instanceof GatewayError && err.status === 400, String(err));
            return;
          }
          accepted++;
          const cap = outputCap(api, request, DEFAULT_MAX_TOKENS);
          assert.ok(Number.isSafeInteger(cap.total) && cap.total >= 0, `reservation ${cap.total}`);
          applyOutputCap(api, request, cap);
          const forwarded = JSON.parse(JSON.stringify(request)) as Record<string, unknown>;
          assert.ok(
            vllmGenerates(api, forwarded) <= cap.total,
            `${JSON.stringify(fields)} reserves ${cap.total}, forwarded body generates ${vllmGenerates(api, forwarded)}`,
          );
        }),
        { seed: SEED, numRuns: 1500 },
      );
      // The generator must reach the accepting side often enough to mean something.
      assert.ok(accepted > 100, `only ${accepted} accepted bodies`);
    });
  }

  it("reads the field vLLM reads when both are given", () => {
    const chat = parseRequestBody(
      Buffer.from(
        '{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":100,"max_completion_tokens":7,"n":3}',
      ),
      chatCompletionRequest,
    );
    assert.deepEqual(outputCap("chat.completions", chat, 64), { perSequence: 7, sequences: 3, total: 21 });
    const completion = parseRequestBody(
      Buffer.from('{"model":"m","prompt":"x","max_tokens":5,"max_completion_tokens":900,"n":2,"best_of":4}'),
      completionRequest,
    );
    assert.deepEqual(outputCap("completions", completion, 64), { perSequence: 5, sequences: 4, total: 20 });
    applyOutputCap("completions", completion, outputCap("completions", completion, 64));
    assert.equal(completion.max_tokens, 5);
  });

  it("forwards the default cap when the client sent none", () => {
    const chat = parseRequestBody(
      Buffer.from('{"model":"m","messages":[{"role":"user","content":"x"}]}'),
      chatCompletionRequest,
    );
    const cap = outputCap("chat.completions", chat, 64);
    applyOutputCap("chat.completions", chat, cap);
    assert.equal(chat.max_tokens, 64);
    assert.equal("max_completion_tokens" in chat, false);
  });

  it("refuses the values an attacker used, naming the field", () => {
    for (const [field, value] of [
      ["max_completion_tokens", -100000000],
      ["max_completion_tokens", "abc"],
      ["max_tokens", 0],
      ["max_tokens", 1.5],
      ["n", 1000],
      ["best_of", 0],
    ] as const) {
      const body = Buffer.from(JSON.stringify({ model: "m", prompt: "x", [field]: value }));
      assert.throws(
        () => parseRequestBody(body, completionRequest),
        (err: unknown) =>
          err instanceof GatewayError && err.code === "invalid_request" && err.param === field,
      );
    }
    const fewer = Buffer.from('{"model":"m","prompt":"x","n":3,"best_of":2}');
    assert.throws(
      () => parseRequestBody(fewer, completionRequest),
      (err: unknown) => err instanceof GatewayError && err.param === "best_of",
    );
  });
});
