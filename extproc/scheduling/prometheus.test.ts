import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { ExpositionError, readMetrics } from "./prometheus.js";

/** What a real vLLM 0.32 answered on /metrics (test/vllm-recordings/metrics.txt), headers dropped. */
const recorded = (() => {
  const text = readFileSync(new URL("../../../test/vllm-recordings/metrics.txt", import.meta.url), "utf8");
  return text.slice(text.indexOf("\r\n\r\n") + 4);
})();

const VLLM = new Set([
  "vllm:num_requests_waiting",
  "vllm:num_requests_running",
  "vllm:kv_cache_usage_perc",
  "vllm:prefix_cache_queries_total",
]);

describe("readMetrics", () => {
  it("reads the scheduler's gauges from a real vLLM's /metrics and nothing else", () => {
    const found = readMetrics(recorded, VLLM);
    assert.deepEqual(Object.fromEntries(found), {
      "vllm:num_requests_running": { series: 1, sum: 0, max: 0 },
      "vllm:num_requests_waiting": { series: 1, sum: 0, max: 0 },
      "vllm:kv_cache_usage_perc": { series: 1, sum: 0, max: 0 },
      "vllm:prefix_cache_queries_total": { series: 1, sum: 176, max: 176 },
    });
    // A name that only prefixes another (…_waiting_by_reason) is not it.
    assert.equal(readMetrics(recorded, new Set(["vllm:num_requests"])).size, 0);
  });

  it("sums series over label sets and keeps their maximum (engines under data parallelism)", () => {
    const text = [
      "# TYPE vllm:num_requests_waiting gauge",
      'vllm:num_requests_waiting{engine="0",model_name="m"} 2.0',
      'vllm:num_requests_waiting{engine="1",model_name="m"} 5',
      'vllm:kv_cache_usage_perc{engine="0",model_name="a \\"quoted\\", {odd} name"} 0.25 1700000000000',
      "vllm:kv_cache_usage_perc{} 7.5e-1",
      "",
    ].join("\r\n");
    const found = readMetrics(text, VLLM);
    assert.deepEqual(found.get("vllm:num_requests_waiting"), { series: 2, sum: 7, max: 5 });
    assert.deepEqual(found.get("vllm:kv_cache_usage_perc"), { series: 2, sum: 1, max: 0.75 });
  });

  it("refuses a wanted line that is not exposition format, and ignores others' lines unread", () => {
    const wanted = new Set(["w"]);
    for (const line of [
      "w",
      "w abc",
      "w 1 2 3",
      "w NaN",
      'w{a="1" 2',
      "w{a=1} 2",
      'w{1a="x"} 2',
      'w{a="x} 2',
      "w 1 1.5",
    ])
      assert.throws(() => readMetrics(`${line}\n`, wanted), ExpositionError, line);
    assert.equal(readMetrics("other garbage {{{\nw 3\n", wanted).get("w")?.sum, 3);
    assert.equal(readMetrics("w +Inf\n", wanted).get("w")?.sum, Infinity);
  });

  it("reads the recording fast enough to run every 100 ms per endpoint", () => {
    const started = performance.now();
    for (let i = 0; i < 100; i++) readMetrics(recorded, VLLM);
    const perRead = (performance.now() - started) / 100;
    assert.ok(perRead < 2, `${perRead.toFixed(3)} ms per read`);
  });
});
