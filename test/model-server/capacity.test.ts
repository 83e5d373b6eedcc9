import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { CapacityModel, vllmMetricsText } from "./capacity.js";

const tokens = (n: number, word = "w") => Array.from({ length: n }, (_, i) => `${word}${i}`);

describe("CapacityModel", () => {
  it("runs at most maxSequences at once and starts waiters in arrival order as slots free", async () => {
    const model = new CapacityModel({ maxSequences: 2 });
    const a = (await model.admit(tokens(4), 4))!;
    const b = (await model.admit(tokens(4), 4))!;
    const started: string[] = [];
    const c = model.admit(tokens(4), 4).then((x) => (started.push("c"), x!));
    const d = model.admit(tokens(4), 4).then((x) => (started.push("d"), x!));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(model.snapshot().running, 2);
    assert.deepEqual(model.snapshot().waiting, 2);
    assert.deepEqual(started, []);
    a.release("stop");
    a.release("length"); // a second release frees and counts nothing more
    (await c).release("length");
    assert.deepEqual(started, ["c"]);
    b.release(); // abandoned
    (await d).release("stop");
    assert.deepEqual(started, ["c", "d"]);
    assert.deepEqual(model.snapshot(), {
      waiting: 0,
      running: 0,
      peakRunning: 2,
      kvUsage: 0,
      prefixQueries: 16,
      prefixHits: 0,
      finished: { stop: 2, length: 1, abort: 1, error: 0, repetition: 0 },
    });
  });

  it("fills the KV budget with prompt + output tokens and makes a sequence wait until its blocks fit", async () => {
    const model = new CapacityModel({ maxSequences: 8, kvTokens: 128, blockTokens: 16 });
    const big = (await model.admit(tokens(60), 36))!; // 96 tokens: 6 of 8 blocks
    assert.equal(model.snapshot().kvUsage, 0.75);
    let started = false;
    const next = model.admit(tokens(40), 8).then((x) => ((started = true), x!)); // 3 blocks: does not fit
    await new Promise((r) => setImmediate(r));
    assert.equal(started, false);
    assert.equal(model.snapshot().waiting, 1);
    big.release();
    const admitted = await next;
    assert.equal(model.snapshot().kvUsage, 3 / 8);
    admitted.release();
    // Larger than the whole budget: it runs alone instead of never.
    const huge = (await model.admit(tokens(500), 500))!;
    assert.equal(model.snapshot().kvUsage, 1);
    huge.release();
  });

  it("a waiter whose client left never takes a slot", async () => {
    const model = new CapacityModel({ maxSequences: 1 });
    const first = (await model.admit(tokens(4), 4))!;
    let gone = false;
    const waiting = model.admit(tokens(4), 4, () => gone);
    gone = true;
    first.release();
    assert.equal(await waiting, undefined);
    assert.equal(model.snapshot().running, 0);
  });

  it("answers a repeated prefix from the cache: time to first token follows the uncached tokens, scaled by speed", async () => {
    const model = new CapacityModel({
      blockTokens: 16,
      prefillMsPerToken: 1,
      decodeMsPerToken: 10,
      speed: 2,
    });
    const shared = tokens(64, "shared");
    const first = (await model.admit([...shared, ...tokens(10, "a")], 4))!;
    assert.equal(first.cachedTokens, 0);
    assert.equal(first.firstTokenMs, 37);
    assert.equal(first.tokenMs, 5);
    first.release();
    const second = (await model.admit([...shared, ...tokens(10, "b")], 4))!;
    assert.equal(second.cachedTokens, 64);
    assert.equal(second.firstTokenMs, 5);
    second.release();
    // A block's hash covers everything before it: the same words after a different start are no hit.
    const shifted = (await model.admit(["x", ...shared], 4))!;
    assert.equal(shifted.cachedTokens, 0);
    shifted.release();
    const { prefixQueries, prefixHits } = model.snapshot();
    assert.deepEqual([prefixQueries, prefixHits], [74 + 74 + 65, 64]);
  });

  it("keeps a bounded LRU of prefix blocks", async () => {
    const model = new CapacityModel({ blockTokens: 16, prefixCacheBlocks: 2 });
    const one = tokens(32, "one");
    const two = tokens(32, "two");
    for (const prompt of [one, two, one]) (await model.admit(prompt, 1))!.release();
    // `two` pushed `one` out, and `one` then pushed `two` out: neither is cached whole by the last look-up.
    const again = (await model.admit(two, 1))!;
    assert.equal(again.cachedTokens, 0);
    again.release();
  });
});

describe("vllmMetricsText", () => {
  it("prints each figure's lines exactly as vLLM 0.32 does", () => {
    const recorded = readFileSync(
      new URL("../../../test/vllm-recordings/metrics.txt", import.meta.url),
      "utf8",
    );
    const finished = { stop: 1, length: 12, abort: 0, error: 0, repetition: 0 };
    const text = vllmMetricsText(
      { waiting: 0, running: 0, peakRunning: 0, kvUsage: 0, prefixQueries: 176, prefixHits: 0, finished },
      "tiny-llama",
    );
    // Every line we print, HELP and TYPE included, is a line of the real server's answer.
    for (const line of text.trimEnd().split("\n")) assert.ok(recorded.includes(`${line}\n`), line);
    // The finished-request counter whole, as one block: HELP, TYPE, then every reason in vLLM's order.
    const success = /# HELP vllm:request_success_total [^]*?(?=# HELP)/.exec(recorded)![0];
    assert.ok(text.includes(success), success);
    const none = { stop: 0, length: 0, abort: 0, error: 0, repetition: 0 };
    assert.match(
      vllmMetricsText(
        {
          waiting: 3,
          running: 4,
          peakRunning: 4,
          kvUsage: 0.625,
          prefixQueries: 1,
          prefixHits: 1,
          finished: none,
        },
        "m",
      ),
      /^vllm:kv_cache_usage_perc\{engine="0",model_name="m"\} 0\.625$/m,
    );
  });
});
