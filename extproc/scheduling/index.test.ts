import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { compileScheduling, METRIC_PRESETS, Scheduler, type PoolScheduling } from "./index.js";
import { PoolStateReader } from "./reader.js";

/** A stand-in model server's /metrics: answers `body()` (or hangs / fails as `mode` says). */
async function metricsServer(body: () => string) {
  let mode: "ok" | "fail" | "hang" = "ok";
  let scrapes = 0;
  const server: Server = createServer((req, res) => {
    scrapes++;
    if (req.url !== "/metrics" || mode === "fail") return void res.writeHead(503).end();
    if (mode === "hang") return;
    res.writeHead(200, { "content-type": "text/plain" }).end(body());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    set: (next: typeof mode) => (mode = next),
    scrapes: () => scrapes,
    close: () =>
      new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

/** vLLM's lines for the figures; `finished` requests split over two `finished_reason` series, as vLLM's are. */
const vllm = (waiting: number, running: number, kv: number, finished?: number) =>
  [
    "# TYPE vllm:num_requests_running gauge",
    `vllm:num_requests_running{engine="0",model_name="m"} ${running}.0`,
    `vllm:num_requests_waiting{engine="0",model_name="m"} ${waiting}.0`,
    `vllm:kv_cache_usage_perc{engine="0",model_name="m"} ${kv}`,
    ...(finished === undefined
      ? []
      : [
          "# TYPE vllm:request_success_total counter",
          `vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 1.0`,
          `vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} ${finished - 1}.0`,
          `vllm:request_success_total{engine="0",finished_reason="abort",model_name="m"} 0.0`,
        ]),
    "",
  ].join("\n");

const settings = (over: Partial<PoolScheduling> = {}): PoolScheduling => ({
  ...compileScheduling(
    "pool",
    {
      server: "vllm",
      metricsPath: "/metrics",
      intervalMs: 20,
      staleAfterIntervals: 3,
      speedWindowMs: 1000,
      endpoints: "envoy",
      affinity: { prefixChars: 32, queueMargin: 2 },
    },
    "pools.pool.scheduling",
    [],
  ),
  ...over,
});

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe("compileScheduling", () => {
  it("takes the server's metric names, overrides by name, and a timeout below the interval", () => {
    const problems: { path: string; message: string }[] = [];
    const base = {
      metricsPath: "/metrics",
      intervalMs: 100,
      staleAfterIntervals: 3,
      speedWindowMs: 10_000,
      endpoints: { dns: "vllm.models.svc.cluster.local", port: 8000, refreshMs: 5000 },
      affinity: false,
    } as const;
    const sglang = compileScheduling(
      "p",
      { ...base, server: "sglang", metricNames: { waiting: "my_queue" } },
      "x",
      problems,
    );
    assert.deepEqual(sglang.metricNames, { ...METRIC_PRESETS.sglang, waiting: "my_queue" });
    assert.equal(sglang.timeoutMs, 80);
    assert.equal(sglang.staleAfterMs, 300);
    assert.deepEqual(sglang.endpoints, {
      kind: "dns",
      host: "vllm.models.svc.cluster.local",
      port: 8000,
      refreshMs: 5000,
    });
    assert.equal(sglang.affinity, undefined);
    assert.equal(sglang.metricNames.completions, "sglang:num_requests_total");
    assert.equal(sglang.speedWindowMs, 10_000);
    assert.deepEqual(METRIC_PRESETS.tgi, {
      waiting: "tgi_queue_size",
      running: "tgi_batch_current_size",
      kvUsage: undefined,
      completions: "tgi_request_success",
    });
    assert.equal(problems.length, 0);
    compileScheduling("p", { ...base, server: "vllm", timeoutMs: 200 }, "pools.p.scheduling", problems);
    assert.equal(problems[0]?.path, "pools.p.scheduling.timeoutMs");
    compileScheduling("p", { ...base, server: "vllm", speedWindowMs: 150 }, "pools.p.scheduling", problems);
    assert.equal(problems[1]?.path, "pools.p.scheduling.speedWindowMs");
  });
});

describe("Scheduler", () => {
  const servers: Array<{ close(): Promise<void> }> = [];
  after(() => Promise.all(servers.map((s) => s.close())));

  it("reads each endpoint's state and picks the shorter queue; a failed, hung or stale read is unknown", async () => {
    let busy = { waiting: 5, running: 4, kv: 0.5 };
    const a = await metricsServer(() => vllm(busy.waiting, busy.running, busy.kv));
    const b = await metricsServer(() => vllm(0, 1, 0.1));
    servers.push(a, b);
    const scheduler = new Scheduler(() => [a.address, b.address]);
    scheduler.configure([settings({ affinity: undefined })]);
    try {
      assert.equal(
        scheduler.pick("other-pool", () => ""),
        undefined,
        "a pool without scheduling gets no pick",
      );
      await until("both read", () => scheduler.report().every((r) => r.known));
      assert.deepEqual(
        scheduler.report().map(({ ageSeconds: _, ...r }) => r),
        [
          {
            pool: "pool",
            address: a.address,
            known: true,
            waiting: 5,
            running: 4,
            kvUsage: 0.5,
            speed: undefined,
          },
          {
            pool: "pool",
            address: b.address,
            known: true,
            waiting: 0,
            running: 1,
            kvUsage: 0.1,
            speed: undefined,
          },
        ],
      );
      assert.deepEqual(
        scheduler.pick("pool", () => ""),
        { endpoint: b.address, reason: "queue" },
      );
      // b: 5 more sent since its last read counts as a queue of 5, but the next read resets it.
      busy = { waiting: 0, running: 0, kv: 0 };
      await until("a idle", () => scheduler.report()[0]!.waiting === 0);
      assert.equal(scheduler.pick("pool", () => "")?.endpoint, a.address);

      b.set("fail");
      await until("b unknown", () => !scheduler.report()[1]!.known);
      for (let i = 0; i < 5; i++) assert.equal(scheduler.pick("pool", () => "")?.endpoint, a.address);
      a.set("hang");
      await until("a unknown (timed out)", () => !scheduler.report()[0]!.known);
      assert.deepEqual(
        scheduler.pick("pool", () => ""),
        { endpoint: undefined, reason: "no_state" },
      );
      b.set("ok");
      await until("b known again", () => scheduler.report()[1]!.known);
      assert.equal(scheduler.pick("pool", () => "")?.endpoint, b.address);
      // A server reporting a negative or NaN queue, or a KV usage beyond 1, is not believed: unknown.
      a.set("ok");
      for (const odd of [
        { waiting: -1000, running: 0, kv: 0 },
        { waiting: NaN, running: 0, kv: 0 },
        { waiting: 0, running: 0, kv: 2 },
      ]) {
        busy = { waiting: 0, running: 0, kv: 0 };
        await until("a known", () => scheduler.report()[0]!.known);
        busy = odd;
        await until(`a unknown with ${JSON.stringify(odd)}`, () => !scheduler.report()[0]!.known);
        assert.equal(scheduler.pick("pool", () => "")?.endpoint, b.address);
      }
    } finally {
      scheduler.close();
    }
    // Closed: no more scrapes.
    const seen = a.scrapes() + b.scrapes();
    await new Promise((r) => setTimeout(r, 60));
    assert.equal(a.scrapes() + b.scrapes(), seen);
  });

  it("keeps a long prefix on one endpoint; a short prompt goes by queue", async () => {
    const a = await metricsServer(() => vllm(0, 0, 0));
    const b = await metricsServer(() => vllm(0, 0, 0));
    servers.push(a, b);
    const scheduler = new Scheduler(() => [a.address, b.address]);
    scheduler.configure([settings()]);
    try {
      await until("both read", () => scheduler.report().every((r) => r.known));
      const prefix = "You are a careful assistant. Answer in English. ";
      const first = scheduler.pick("pool", () => `${prefix} question 1`)!;
      assert.equal(first.reason, "affinity");
      // Two more to the same endpoint keep within the margin of 2; the next goes to the other.
      assert.deepEqual(
        scheduler.pick("pool", () => `${prefix} question 2`),
        first,
      );
      assert.deepEqual(
        scheduler.pick("pool", () => `${prefix} question 3`),
        first,
      );
      const fourth = scheduler.pick("pool", () => `${prefix} question 4`)!;
      assert.equal(fourth.reason, "queue");
      assert.notEqual(fourth.endpoint, first.endpoint);
      assert.equal(scheduler.pick("pool", () => "short")?.reason, "queue");
    } finally {
      scheduler.close();
    }
  });

  it("estimates an endpoint's speed from two reads, starts again after a counter reset, and reads on without the counter", async () => {
    let figures: { waiting: number; running: number; finished: number | undefined } = {
      waiting: 0,
      running: 2,
      finished: 10,
    };
    const a = await metricsServer(() => vllm(figures.waiting, figures.running, 0, figures.finished));
    servers.push(a);
    let clock = 0;
    const reader = new PoolStateReader(
      settings({ endpoints: { kind: "static", addresses: [a.address] } }),
      [],
      {},
      () => clock,
    );
    const state = () => reader.states()[0]!;
    // Reads at one clock reading add nothing: only the step between clock readings counts.
    const step = async (ms: number, next: typeof figures) => {
      clock += ms;
      figures = next;
      await until(
        `a read of ${JSON.stringify(next)}`,
        () => state().known && state().waiting === next.waiting,
      );
    };
    reader.start();
    try {
      await until("first read", () => state().known);
      assert.equal(state().speed, undefined, "one read: no speed yet");
      await step(1000, { waiting: 1, running: 2, finished: 14 });
      // 4 finished in 1 s with 2 running: 2 per running-request second.
      assert.equal(state().speed, 2);
      await step(1000, { waiting: 2, running: 2, finished: 3 });
      assert.equal(state().speed, undefined, "the counter went down: a restarted server, measured again");
      await step(1000, { waiting: 3, running: 2, finished: 5 });
      assert.equal(state().speed, 1);
      await step(1000, { waiting: 4, running: 2, finished: undefined });
      assert.equal(state().known, true, "a read without the counter still counts");
      assert.equal(state().speed, undefined);
    } finally {
      reader.stop();
    }
  });

  it("resolves a DNS name (a headless Service) to every address, and follows a changed policy", async () => {
    const a = await metricsServer(() => vllm(1, 1, 0));
    servers.push(a);
    const dns = settings({ endpoints: { kind: "dns", host: "localhost", port: a.port, refreshMs: 100 } });
    const reader = new PoolStateReader(dns, []);
    reader.start();
    try {
      await until("localhost read", () => reader.states().some((s) => s.address === a.address && s.known));
    } finally {
      reader.stop();
    }
    const scheduler = new Scheduler(() => []);
    scheduler.configure([settings({ endpoints: { kind: "static", addresses: [a.address] } })]);
    try {
      await until("read", () => scheduler.report()[0]?.known === true);
      scheduler.configure([]);
      assert.deepEqual(scheduler.report(), []);
      assert.equal(
        scheduler.pick("pool", () => ""),
        undefined,
      );
    } finally {
      scheduler.close();
    }
  });
});
