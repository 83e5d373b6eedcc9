/**
 * Scheduling benchmark (`npm run bench:scheduling`, README "Scheduling"): for each arm (Envoy least-request
 * alone; the gateway's scheduler) one stack whose pool-a is two capacity-modelled demo servers of unequal
 * speed, run as their own processes, and the same workloads side by side:
 *
 * - idle: sequential tiny requests, p50 and p99 latency (the scheduler's added cost);
 * - overload: open-loop arrivals at twice the servers' capacity (as measured first, closed-loop, on the
 *   least-request arm: a shared machine runs the modelled servers slower than modelled), streamed: mean
 *   and p99 time to first token, completions per second and goodput (first token within the SLO);
 * - prefix-heavy: 8 long system prompts, at half capacity: mean time to first token;
 * - the picker's own cost: `Scheduler.pick` in this process, on live reads of the two servers.
 *
 * `--seconds N` sets each loaded window (default 10); `--json` prints the result as JSON.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEMO_KEYS, startStack, type Stack } from "../test/harness/index.js";
import { writePolicy } from "../test/harness/policy.js";
import { seededRandom } from "../test/harness/random.js";
import { Scheduler, compileScheduling } from "../extproc/scheduling/index.js";
import { capacityPerSecond, SERVER_CAPACITY, SERVERS, type SchedulingArm } from "./lib/scheduling.js";
import { leastRequest } from "./scenarios/scheduling-least-request.js";
import { scheduler } from "./scenarios/scheduling-scheduler.js";

const ARMS: readonly SchedulingArm[] = [leastRequest, scheduler];
const MODEL = "llama-3.1-8b-instruct";
/** Time to first token that still counts as served well (goodput). */
const TTFT_SLO_MS = 1000;
const OVERLOAD_PROMPT_WORDS = 60;
const PREFIX_PROMPT_WORDS = 400;
const PREFIXES = 8;

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "10" }, json: { type: "boolean", default: false } },
});
const seconds = Number(values.seconds);

const random = seededRandom(11);
/** Why requests failed, with counts (printed at the end). */
const failures = new Map<string, number>();
const words = (n: number, tag: string) =>
  Array.from({ length: n }, () => `${tag}${Math.floor(random() * 5000)}`).join(" ");
const systemPrompts = Array.from({ length: PREFIXES }, (_, i) => words(PREFIX_PROMPT_WORDS, `s${i}w`));

/** One streamed chat request: ms to the first content token and to the end, or undefined on failure. */
async function streamOnce(
  stack: Stack,
  messages: Array<{ role: string; content: string }>,
  maxTokens: number,
): Promise<{ ttftMs: number; totalMs: number } | undefined> {
  const started = performance.now();
  try {
    const res = await fetch(`${stack.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${DEMO_KEYS.research}` },
      body: JSON.stringify({ model: MODEL, messages, max_tokens: maxTokens, stream: true }),
    });
    if (res.status !== 200 || !res.body) {
      const reason = `status ${res.status}: ${(await res.text()).slice(0, 160)}`;
      failures.set(reason, 1 + (failures.get(reason) ?? 0));
      return undefined;
    }
    let ttftMs: number | undefined;
    let seen = "";
    const decoder = new TextDecoder();
    for await (const part of res.body) {
      if (ttftMs === undefined) {
        seen += decoder.decode(part as Uint8Array, { stream: true });
        // The role chunk comes at once with an empty content; the first token's chunk has text.
        if (/"content":"[^"]/.test(seen)) ttftMs = performance.now() - started;
      }
    }
    return ttftMs === undefined ? undefined : { ttftMs, totalMs: performance.now() - started };
  } catch (err) {
    const reason = `${(err as Error).message} ${String((err as Error & { cause?: unknown }).cause ?? "")}`;
    failures.set(reason, 1 + (failures.get(reason) ?? 0));
    return undefined;
  }
}

/** One non-streamed tiny request's latency in ms. */
async function tinyOnce(stack: Stack, i: number): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${stack.baseURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${DEMO_KEYS.research}` },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: `hi ${i}` }], max_tokens: 1 }),
  });
  await res.text();
  if (res.status !== 200) throw new Error(`idle request: status ${res.status}`);
  return performance.now() - started;
}

const percentile = (sorted: readonly number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Completions per second with `concurrency` requests always in flight for `ms`. */
async function closedLoop(
  concurrency: number,
  ms: number,
  send: (i: number) => Promise<unknown>,
): Promise<number> {
  const started = performance.now();
  let done = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() - started < ms) {
        if ((await send(next++)) !== undefined) done++;
      }
    }),
  );
  return (done * 1000) / (performance.now() - started);
}

/** Microseconds per `Scheduler.pick` of a 2-endpoint pool with live reads (affinity on, a 2 KB prompt). */
async function pickCostMicros(stack: Stack): Promise<number> {
  const settings = compileScheduling(
    "pool-a",
    {
      server: "vllm",
      metricsPath: "/metrics",
      intervalMs: 50,
      staleAfterIntervals: 3,
      speedWindowMs: 10_000,
      endpoints: "envoy",
      affinity: { prefixChars: 1024, queueMargin: 2 },
    },
    "",
    [],
  );
  const addresses = [stack.ports.poolA, ...stack.extraEndpointPorts].map((p) => `127.0.0.1:${p}`);
  const picker = new Scheduler(() => addresses);
  picker.configure([settings]);
  try {
    await sleep(300);
    const prompt = systemPrompts[0]!.slice(0, 2048);
    const n = 100_000;
    const started = performance.now();
    for (let i = 0; i < n; i++) picker.pick("pool-a", () => prompt);
    return ((performance.now() - started) * 1000) / n;
  } finally {
    picker.close();
  }
}

/** Open-loop arrivals at `rate` per second for `seconds`: every request's result once all have ended. */
async function openLoop<T>(rate: number, send: (i: number) => Promise<T>): Promise<T[]> {
  const started = performance.now();
  const pending: Promise<T>[] = [];
  const total = Math.round(rate * seconds);
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(send(i));
  }
  return Promise.all(pending);
}

interface ArmResult {
  readonly arm: string;
  readonly idle: { readonly p50Ms: number; readonly p99Ms: number };
  readonly unloadedTtftMs: number;
  readonly overload: {
    readonly offeredPerSecond: number;
    readonly meanTtftMs: number;
    readonly p99TtftMs: number;
    readonly completedPerSecond: number;
    readonly goodputPerSecond: number;
    readonly failed: number;
  };
  readonly prefix: {
    readonly offeredPerSecond: number;
    readonly meanTtftMs: number;
    readonly failed: number;
  };
  readonly pickMicros: number;
}

/** Overload requests per second the servers completed closed-loop on the first arm (every arm is offered 2x). */
let measuredCapacity: number | undefined;

async function runArm(arm: SchedulingArm): Promise<ArmResult> {
  const dir = mkdtempSync(path.join(tmpdir(), `llm-gateway-bench-scheduling-${arm.id}-`));
  const policyFile = writePolicy(dir, (doc) => {
    // The core policy: nothing but authentication, routing, accounting and audit (and scheduling).
    doc.limits = [];
    delete doc.pii;
    doc.guardrails = [];
    if (arm.scheduling) doc.pools["pool-a"].scheduling = arm.scheduling;
  });
  const [own, fast] = SERVERS;
  const stack = await startStack({
    policyFile,
    workDir: dir,
    modelServersAsProcesses: true,
    capacity: { [own.name]: { ...SERVER_CAPACITY, speed: own.speed } },
    extraEndpoints: [
      { pool: own.name, name: fast.name, capacity: { ...SERVER_CAPACITY, speed: fast.speed } },
    ],
  });
  try {
    // Let the scheduler read both servers, and warm up every connection.
    await sleep(500);
    for (let i = 0; i < 50; i++) await tinyOnce(stack, i);
    const idle = [];
    for (let i = 0; i < 300; i++) idle.push(await tinyOnce(stack, i));
    idle.sort((a, b) => a - b);

    const overloadMessages = (i: number) => [
      { role: "user", content: `${i} ${words(OVERLOAD_PROMPT_WORDS, "q")}` },
    ];
    const unloaded = [];
    for (let i = 0; i < 10; i++) unloaded.push((await streamOnce(stack, overloadMessages(i), 28))!.ttftMs);

    measuredCapacity ??= await closedLoop(4 * SERVER_CAPACITY.maxSequences, 4000, (i) =>
      streamOnce(stack, overloadMessages(i), 28),
    );
    await sleep(1000);
    const offered = 2 * measuredCapacity;
    const loadStarted = performance.now();
    const overload = await openLoop(offered, (i) => streamOnce(stack, overloadMessages(i), 28));
    const loadMs = performance.now() - loadStarted;
    const ok = overload.filter((r) => r !== undefined);
    const ttfts = ok.map((r) => r.ttftMs).sort((a, b) => a - b);

    // Prefix-heavy at half the capacity of uncached prompts: the servers are not saturated, so time to first
    // token is mostly prefill, and a prefix found in the cache skips it.
    const prefixRate =
      0.5 *
      capacityPerSecond(PREFIX_PROMPT_WORDS + 4) *
      (measuredCapacity / capacityPerSecond(OVERLOAD_PROMPT_WORDS + 2));
    const prefix = await openLoop(prefixRate, (i) =>
      streamOnce(
        stack,
        [
          { role: "system", content: systemPrompts[Math.floor(random() * PREFIXES)]! },
          { role: "user", content: `question ${i}` },
        ],
        8,
      ),
    );
    const prefixOk = prefix.filter((r) => r !== undefined);
    const pickMicros = await pickCostMicros(stack);
    return {
      arm: arm.label,
      idle: { p50Ms: percentile(idle, 50), p99Ms: percentile(idle, 99) },
      unloadedTtftMs: mean(unloaded),
      overload: {
        offeredPerSecond: offered,
        meanTtftMs: mean(ttfts),
        p99TtftMs: percentile(ttfts, 99),
        completedPerSecond: (ok.length * 1000) / loadMs,
        goodputPerSecond: (ok.filter((r) => r.ttftMs <= TTFT_SLO_MS).length * 1000) / loadMs,
        failed: overload.length - ok.length,
      },
      prefix: {
        offeredPerSecond: prefixRate,
        meanTtftMs: mean(prefixOk.map((r) => r.ttftMs)),
        failed: prefix.length - prefixOk.length,
      },
      pickMicros,
    };
  } finally {
    await stack.stop();
  }
}

const results: ArmResult[] = [];
for (const arm of ARMS) results.push(await runArm(arm));
for (const [reason, count] of failures) console.error(`failed ${count}x: ${reason}`);
if (values.json) {
  console.log(JSON.stringify({ seconds, ttftSloMs: TTFT_SLO_MS, results }, null, 2));
} else {
  const f = (n: number) => n.toFixed(n < 10 ? 2 : 0);
  const rows = [
    ["", ...results.map((r) => r.arm)],
    ["idle p50 / p99 ms", ...results.map((r) => `${f(r.idle.p50Ms)} / ${f(r.idle.p99Ms)}`)],
    ["unloaded TTFT ms", ...results.map((r) => f(r.unloadedTtftMs))],
    ["overload offered req/s", ...results.map((r) => f(r.overload.offeredPerSecond))],
    [
      "overload TTFT mean / p99 ms",
      ...results.map((r) => `${f(r.overload.meanTtftMs)} / ${f(r.overload.p99TtftMs)}`),
    ],
    ["overload completed req/s", ...results.map((r) => f(r.overload.completedPerSecond))],
    [
      `overload goodput req/s (TTFT <= ${TTFT_SLO_MS} ms)`,
      ...results.map((r) => f(r.overload.goodputPerSecond)),
    ],
    ["overload failed", ...results.map((r) => String(r.overload.failed))],
    ["prefix-heavy TTFT mean ms", ...results.map((r) => f(r.prefix.meanTtftMs))],
    ["prefix-heavy failed", ...results.map((r) => String(r.prefix.failed))],
    ["Scheduler.pick µs (in process)", ...results.map((r) => r.pickMicros.toFixed(2))],
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join("  "));
  const [lr, sched] = results as [ArmResult, ArmResult];
  console.log(
    `\nscheduler vs least-request: idle p50 ${f(sched.idle.p50Ms - lr.idle.p50Ms)} ms added (pick: ${sched.pickMicros.toFixed(2)} µs); overload goodput ${f(sched.overload.goodputPerSecond / lr.overload.goodputPerSecond)}x; prefix-heavy mean TTFT ${f(100 * (1 - sched.prefix.meanTtftMs / lr.prefix.meanTtftMs))} % lower`,
  );
}
