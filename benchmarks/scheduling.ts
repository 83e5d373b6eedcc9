/**
 * Scheduling benchmark (`npm run bench:scheduling`, README "Scheduling"): issue 11's four figures in one
 * run. Both arms' stacks (Envoy least-request alone; the gateway's scheduler with a queue and priority
 * classes) run at once, each with a pool-a of two capacity-modelled demo servers of unequal speed as their
 * own processes; every workload alternates between them round by round, so a shared machine's drift hits
 * both alike:
 *
 * - idle: sequential tiny requests, p50 and p99 latency (the scheduler's added cost), and sequential
 *   streamed critical requests: the unloaded time to first token;
 * - overload: open-loop arrivals at twice the servers' capacity (measured first, closed-loop, on the
 *   least-request arm: a shared machine runs the modelled servers slower than modelled), 25 % critical and
 *   75 % batch, streamed: per class p50/p99 time to first token, completions, 429s, 503s; goodput
 *   (completions whose first token came within the SLO, per second of arrivals) and raw throughput;
 * - prefix-heavy: 8 long system prompts, at half capacity: mean time to first token, prefix-cache hit rate;
 * - the picker's own cost: `Scheduler.pick` in this process, on live reads of the two servers.
 *
 * `--seconds N` sets each loaded window (default 10), `--rounds N` how many windows per arm (default 2);
 * `--json` prints the result as JSON.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { DEMO_KEYS, startStack, type Stack } from "../test/harness/index.js";
import { writePolicy } from "../test/harness/policy.js";
import { seededRandom } from "../test/harness/random.js";
import { Scheduler, compileScheduling } from "../extproc/scheduling/index.js";
import {
  addBatchTeam,
  BATCH_KEY,
  capacityPerSecond,
  SERVER_CAPACITY,
  SERVERS,
  type SchedulingArm,
} from "./lib/scheduling.js";
import { leastRequest } from "./scenarios/scheduling-least-request.js";
import { scheduler } from "./scenarios/scheduling-scheduler.js";

const ARMS: readonly SchedulingArm[] = [leastRequest, scheduler];
const MODEL = "llama-3.1-8b-instruct";
/** Time to first token that still counts as served well (goodput): about 3x a slow server's full service. */
const TTFT_SLO_MS = 1000;
const OVERLOAD_PROMPT_WORDS = 60;
/** Share of the overload that is critical: interactive users are the minority of a shared pool's tokens. */
const CRITICAL_SHARE = 0.25;
const PREFIX_PROMPT_WORDS = 400;
const PREFIXES = 8;
/** Sequential one-token requests per arm for the added latency. */
const IDLE_REQUESTS = 600;
/** Issue 11's targets. */
const TARGETS = { criticalRatio: 1.5, prefixReduction: 0.3, addedIdleMs: 0.2 } as const;

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "10" },
    rounds: { type: "string", default: "2" },
    json: { type: "boolean", default: false },
  },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);

type Cls = "critical" | "batch";
const KEYS: Record<Cls, string> = { critical: DEMO_KEYS.research, batch: BATCH_KEY };

const random = seededRandom(11);
/** Why requests failed other than by a 429 (counted as sheds), per arm, with counts (printed at the end). */
const failures = new Map<string, number>();
const words = (n: number, tag: string) =>
  Array.from({ length: n }, () => `${tag}${Math.floor(random() * 5000)}`).join(" ");
const systemPrompts = Array.from({ length: PREFIXES }, (_, i) => words(PREFIX_PROMPT_WORDS, `s${i}w`));

/** One arm's running stack. */
interface ArmStack {
  readonly arm: SchedulingArm;
  readonly stack: Stack;
}

/** How one streamed request went: its status (0: no answer) and, when served, ms to first token and end. */
interface Outcome {
  readonly cls: Cls;
  readonly status: number;
  readonly ttftMs?: number;
  readonly endMs?: number;
}

/** One streamed chat request, by `cls`'s key. `endMs` is performance.now() at its end. */
async function streamOnce(
  { arm, stack }: ArmStack,
  cls: Cls,
  messages: Array<{ role: string; content: string }>,
  maxTokens: number,
): Promise<Outcome> {
  const started = performance.now();
  const fail = (reason: string) => {
    const key = `${arm.id}: ${reason}`;
    failures.set(key, 1 + (failures.get(key) ?? 0));
  };
  try {
    const res = await fetch(`${stack.baseURL}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEYS[cls]}` },
      body: JSON.stringify({ model: MODEL, messages, max_tokens: maxTokens, stream: true }),
    });
    if (res.status !== 200 || !res.body) {
      const text = await res.text();
      if (res.status !== 429)
        fail(`status ${res.status}: ${text.replace(/Retry after.*/, "").slice(0, 160)}`);
      return { cls, status: res.status };
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
    if (ttftMs === undefined) fail("stream ended without a token");
    return { cls, status: ttftMs === undefined ? 0 : 200, ttftMs, endMs: performance.now() };
  } catch (err) {
    fail(`${(err as Error).message} ${String((err as Error & { cause?: unknown }).cause ?? "")}`);
    return { cls, status: 0 };
  }
}

/** One non-streamed tiny request's latency in ms. */
async function tinyOnce({ stack }: ArmStack, i: number): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${stack.baseURL}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${KEYS.critical}` },
    body: JSON.stringify({ model: MODEL, messages: [{ role: "user", content: `hi ${i}` }], max_tokens: 1 }),
  });
  await res.text();
  if (res.status !== 200) throw new Error(`idle request: status ${res.status}`);
  return performance.now() - started;
}

const percentile = (xs: readonly number[], p: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
const mean = (xs: readonly number[]) => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `work` on every arm, alternating, `times` times: each arm's results in order. */
async function alternate<T>(arms: readonly ArmStack[], times: number, work: (a: ArmStack) => Promise<T>) {
  const out = arms.map(() => [] as T[]);
  for (let r = 0; r < times; r++)
    for (const [i, a] of arms.entries()) {
      out[i]!.push(await work(a));
      await sleep(500);
    }
  return out;
}

/** Completions per second with `concurrency` requests always in flight for `ms`. */
async function closedLoop(concurrency: number, ms: number, send: (i: number) => Promise<Outcome>) {
  const started = performance.now();
  let done = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() - started < ms) if ((await send(next++)).status === 200) done++;
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
  const picker = new Scheduler(() => serverPorts(stack).map((p) => `127.0.0.1:${p}`));
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

/** Pool-a's servers' ports: the slow one, then the fast one (SERVERS' order). */
const serverPorts = (stack: Stack) => [stack.ports.poolA, ...stack.extraEndpointPorts];

/** Prefix-cache tokens looked up and found, per server of pool-a (the demo servers' vLLM counters). */
async function prefixCounters(stack: Stack): Promise<Array<{ queries: number; hits: number }>> {
  return Promise.all(
    serverPorts(stack).map(async (port) => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const read = (name: string) =>
        Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
      return { queries: read("vllm:prefix_cache_queries_total"), hits: read("vllm:prefix_cache_hits_total") };
    }),
  );
}

/**
 * Samples pool-a's servers' `vllm:num_requests_waiting` every 25 ms until `done` settles: per server (slow,
 * fast), the share of samples in which requests waited on the server itself (a critical request sent there
 * waits behind sequences it cannot overtake, whatever the gateway's queue order).
 */
async function serverQueueing(stack: Stack, done: Promise<unknown>): Promise<number[]> {
  let over = false;
  void done.finally(() => (over = true));
  const ports = serverPorts(stack);
  const busy = ports.map(() => 0);
  let samples = 0;
  while (!over) {
    const waiting = await Promise.all(
      ports.map(async (port) => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return Number(/^vllm:num_requests_waiting\{[^}]*\} (\S+)$/m.exec(text)?.[1] ?? 0);
      }),
    );
    waiting.forEach((w, i) => (busy[i]! += w > 0 ? 1 : 0));
    samples++;
    await sleep(25);
  }
  return busy.map((b) => b / Math.max(1, samples));
}

/** Median time inside extproc (audit `latency_ms.gateway`) of the one-token requests: the idle phase's. */
function gatewayMsP50(stack: Stack): number {
  const records = readFileSync(stack.auditLog, "utf8")
    .split("\n")
    .filter((line) => line.includes('"completion_tokens":1,'))
    .map((line) => (JSON.parse(line) as { latency_ms: { gateway: number } }).latency_ms.gateway);
  return percentile(records, 50);
}

/** The scheduler's choices so far, by reason (`llm_gateway_endpoint_picks_total`; none without scheduling). */
async function pickReasons(stack: Stack): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${stack.metricsPorts[0]}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^llm_gateway_endpoint_picks_total\{[^}]*reason="(\w+)"[^}]*\} (\S+)$/gm))
    out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  return out;
}

/** Open-loop arrivals at `rate` per second for `seconds`: every request's outcome once all have ended. */
async function openLoop(rate: number, send: (i: number) => Promise<Outcome>) {
  const started = performance.now();
  const pending: Promise<Outcome>[] = [];
  const total = Math.round(rate * seconds);
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(send(i));
  }
  return { started, outcomes: await Promise.all(pending) };
}

/** One class's overload figures. */
interface ClassFigures {
  readonly offered: number;
  readonly completed: number;
  readonly p50TtftMs: number;
  readonly p99TtftMs: number;
  readonly withinSlo: number;
  /** 429 pool_busy: shed as designed (sheddable class). */
  readonly shed429: number;
  /** 503 (pool_saturated or any other). */
  readonly refused503: number;
  /** Any other status, or no answer. */
  readonly failed: number;
}

function classFigures(outcomes: readonly Outcome[]): ClassFigures {
  const ok = outcomes.filter((o) => o.status === 200);
  const ttfts = ok.map((o) => o.ttftMs!);
  return {
    offered: outcomes.length,
    completed: ok.length,
    p50TtftMs: percentile(ttfts, 50),
    p99TtftMs: percentile(ttfts, 99),
    withinSlo: ttfts.filter((t) => t <= TTFT_SLO_MS).length,
    shed429: outcomes.filter((o) => o.status === 429).length,
    refused503: outcomes.filter((o) => o.status === 503).length,
    failed: outcomes.filter((o) => o.status !== 200 && o.status !== 429 && o.status !== 503).length,
  };
}

interface ArmResult {
  readonly arm: string;
  readonly idle: {
    readonly p50Ms: number;
    readonly p99Ms: number;
    /** Median time inside extproc (the audit records' figure), where the scheduler's work happens. */
    readonly gatewayP50Ms: number;
  };
  readonly unloadedCritical: { readonly p50TtftMs: number; readonly p99TtftMs: number };
  readonly overload: {
    readonly offeredPerSecond: number;
    readonly critical: ClassFigures;
    readonly batch: ClassFigures;
    /** Completions within the SLO per second of arrivals. */
    readonly goodputPerSecond: number;
    /** Completions per second, from the first arrival to the last completion (backlog drained). */
    readonly throughputPerSecond: number;
    /** Per server (slow, fast): share of the time requests waited on the server itself. */
    readonly serverQueueing: readonly number[];
    /** The scheduler's picks during the overload, by reason (no_state: Envoy chose, reads were stale). */
    readonly picks: Readonly<Record<string, number>>;
  };
  readonly prefix: {
    readonly offeredPerSecond: number;
    readonly meanTtftMs: number;
    readonly failed: number;
    /** Per server (slow, fast): prefix tokens found / looked up during the prefix-heavy windows. */
    readonly hitRates: readonly number[];
  };
  readonly pickMicros: number;
}

async function startArm(arm: SchedulingArm): Promise<ArmStack> {
  const dir = mkdtempSync(path.join(tmpdir(), `llm-gateway-bench-scheduling-${arm.id}-`));
  const policyFile = writePolicy(dir, (doc) => {
    // The core policy: nothing but authentication, routing, accounting and audit (and scheduling).
    doc.limits = [];
    delete doc.pii;
    doc.guardrails = [];
    addBatchTeam(doc);
    if (arm.scheduling) doc.pools["pool-a"].scheduling = arm.scheduling;
    if (arm.priority) doc.priority = arm.priority;
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
  return { arm, stack };
}

const overloadMessages = (i: number) => [
  { role: "user", content: `${i} ${words(OVERLOAD_PROMPT_WORDS, "q")}` },
];
/** Every 4th overload request is critical (CRITICAL_SHARE), spread evenly rather than in bursts. */
const classOf = (i: number): Cls => (i % Math.round(1 / CRITICAL_SHARE) === 0 ? "critical" : "batch");

async function run(arms: readonly ArmStack[]): Promise<ArmResult[]> {
  // Let the schedulers read both servers, and warm up every connection.
  await sleep(500);
  await alternate(arms, 1, async (a) => {
    for (let i = 0; i < 50; i++) await tinyOnce(a, i);
  });
  // Idle: one request per arm in turn, so any drift of the machine's load hits both arms alike.
  const idle = arms.map(() => [] as number[]);
  for (let i = 0; i < IDLE_REQUESTS; i++)
    for (const [n, a] of arms.entries()) idle[n]!.push(await tinyOnce(a, i));
  const unloaded = (
    await alternate(arms, 4, async (a) => {
      const ms = [];
      for (let i = 0; i < 15; i++)
        ms.push((await streamOnce(a, "critical", overloadMessages(i), 28)).ttftMs!);
      return ms;
    })
  ).map((r) => r.flat());

  // Capacity of the servers alone (no gateway queue), all requests alike.
  const capacity = await closedLoop(4 * SERVER_CAPACITY.maxSequences, 4000, (i) =>
    streamOnce(arms[0]!, classOf(i), overloadMessages(i), 28),
  );
  await sleep(1000);
  const offered = 2 * capacity;
  const picksBefore = await Promise.all(arms.map((a) => pickReasons(a.stack)));
  const overload = await alternate(arms, rounds, async (a) => {
    const window = openLoop(offered, (i) => streamOnce(a, classOf(i), overloadMessages(i), 28));
    const [{ started, outcomes }, queueing] = await Promise.all([window, serverQueueing(a.stack, window)]);
    const lastEnd = Math.max(started, ...outcomes.map((o) => o.endMs ?? 0));
    return { outcomes, drainedMs: lastEnd - started, queueing };
  });
  const picksAfter = await Promise.all(arms.map((a) => pickReasons(a.stack)));

  // Prefix-heavy at half the capacity of uncached prompts: the servers are not saturated, so time to first
  // token is mostly prefill, and a prefix found in the cache skips it.
  const prefixRate =
    0.5 *
    capacityPerSecond(PREFIX_PROMPT_WORDS + 4) *
    (capacity / capacityPerSecond(OVERLOAD_PROMPT_WORDS + 2));
  const prefixWindow = async (a: ArmStack) =>
    (
      await openLoop(prefixRate, (i) =>
        streamOnce(
          a,
          "critical",
          [
            { role: "system", content: systemPrompts[Math.floor(random() * PREFIXES)]! },
            { role: "user", content: `question ${i}` },
          ],
          8,
        ),
      )
    ).outcomes;
  // One unmeasured window first: system prompts are long-lived, so the measure is the steady state, not
  // the first sight of each prompt (the overload's unique prompts also evicted the caches).
  await alternate(arms, 1, prefixWindow);
  const before = await Promise.all(arms.map((a) => prefixCounters(a.stack)));
  const prefix = await alternate(arms, rounds, prefixWindow);
  const after = await Promise.all(arms.map((a) => prefixCounters(a.stack)));

  const results: ArmResult[] = [];
  for (const [i, a] of arms.entries()) {
    const outcomes = overload[i]!.flatMap((w) => w.outcomes);
    const critical = classFigures(outcomes.filter((o) => o.cls === "critical"));
    const batch = classFigures(outcomes.filter((o) => o.cls === "batch"));
    const prefixOutcomes = prefix[i]!.flat();
    const prefixOk = prefixOutcomes.filter((o) => o.status === 200);
    results.push({
      arm: a.arm.label,
      idle: {
        p50Ms: percentile(idle[i]!, 50),
        p99Ms: percentile(idle[i]!, 99),
        gatewayP50Ms: gatewayMsP50(a.stack),
      },
      unloadedCritical: { p50TtftMs: percentile(unloaded[i]!, 50), p99TtftMs: percentile(unloaded[i]!, 99) },
      overload: {
        offeredPerSecond: offered,
        critical,
        batch,
        goodputPerSecond: (critical.withinSlo + batch.withinSlo) / (rounds * seconds),
        serverQueueing: [0, 1].map((s) => mean(overload[i]!.map((w) => w.queueing[s]!))),
        picks: Object.fromEntries(
          Object.entries(picksAfter[i]!).map(([k, v]) => [k, v - (picksBefore[i]![k] ?? 0)]),
        ),
        throughputPerSecond:
          ((critical.completed + batch.completed) * 1000) / overload[i]!.reduce((s, w) => s + w.drainedMs, 0),
      },
      prefix: {
        offeredPerSecond: prefixRate,
        meanTtftMs: mean(prefixOk.map((o) => o.ttftMs!)),
        failed: prefixOutcomes.length - prefixOk.length,
        hitRates: after[i]!.map((c, s) => {
          const b = before[i]![s]!;
          return (c.hits - b.hits) / Math.max(1, c.queries - b.queries);
        }),
      },
      pickMicros: await pickCostMicros(a.stack),
    });
  }
  return results;
}

const arms: ArmStack[] = [];
let results: ArmResult[];
try {
  for (const arm of ARMS) arms.push(await startArm(arm));
  results = await run(arms);
} finally {
  await Promise.all(arms.map((a) => a.stack.stop()));
}
for (const [reason, count] of failures) console.error(`failed ${count}x: ${reason}`);

const [lr, sched] = results as [ArmResult, ArmResult];
const criticalRatio = sched.overload.critical.p99TtftMs / sched.unloadedCritical.p99TtftMs;
const criticalRefused =
  sched.overload.critical.refused503 + sched.overload.critical.shed429 + sched.overload.critical.failed;
const prefixReduction = 1 - sched.prefix.meanTtftMs / lr.prefix.meanTtftMs;
const addedIdleMs = sched.idle.p50Ms - lr.idle.p50Ms;
const verdicts = [
  {
    target: `critical p99 TTFT under overload <= ${TARGETS.criticalRatio}x unloaded p99, none refused, batch shed`,
    figure: `${criticalRatio.toFixed(2)}x (${criticalRefused} critical refused, ${sched.overload.batch.shed429} batch 429s)`,
    pass: criticalRatio <= TARGETS.criticalRatio && criticalRefused === 0 && sched.overload.batch.shed429 > 0,
  },
  {
    target: `goodput (TTFT <= ${TTFT_SLO_MS} ms) >= least-request's`,
    figure: `${sched.overload.goodputPerSecond.toFixed(1)} vs ${lr.overload.goodputPerSecond.toFixed(1)} req/s`,
    pass: sched.overload.goodputPerSecond >= lr.overload.goodputPerSecond,
  },
  {
    target: `prefix-heavy mean TTFT >= ${100 * TARGETS.prefixReduction} % lower than least-request's`,
    figure: `${(100 * prefixReduction).toFixed(1)} % lower`,
    pass: prefixReduction >= TARGETS.prefixReduction,
  },
  {
    target: `idle p50 added by the scheduler <= ${TARGETS.addedIdleMs} ms`,
    figure: `${addedIdleMs.toFixed(3)} ms (inside extproc ${(sched.idle.gatewayP50Ms - lr.idle.gatewayP50Ms).toFixed(3)} ms; pick ${sched.pickMicros.toFixed(2)} µs)`,
    pass: addedIdleMs <= TARGETS.addedIdleMs,
  },
];

if (values.json) {
  console.log(JSON.stringify({ seconds, rounds, ttftSloMs: TTFT_SLO_MS, results, verdicts }, null, 2));
} else {
  const f = (n: number) => n.toFixed(n < 10 ? 2 : 0);
  const both = (g: (r: ArmResult) => string) => results.map(g);
  const cls = (name: Cls) => {
    const c = (r: ArmResult) => r.overload[name];
    return [
      [`${name}: offered / completed`, ...both((r) => `${c(r).offered} / ${c(r).completed}`)],
      [`${name}: TTFT p50 / p99 ms`, ...both((r) => `${f(c(r).p50TtftMs)} / ${f(c(r).p99TtftMs)}`)],
      [`${name}: within SLO`, ...both((r) => String(c(r).withinSlo))],
      [
        `${name}: 429 / 503 / other failed`,
        ...both((r) => `${c(r).shed429} / ${c(r).refused503} / ${c(r).failed}`),
      ],
    ];
  };
  const rows = [
    ["", ...both((r) => r.arm)],
    ["idle p50 / p99 ms", ...both((r) => `${f(r.idle.p50Ms)} / ${f(r.idle.p99Ms)}`)],
    ["idle p50 ms inside extproc (audit)", ...both((r) => r.idle.gatewayP50Ms.toFixed(3))],
    ["Scheduler.pick µs (in process)", ...both((r) => r.pickMicros.toFixed(2))],
    [
      "unloaded critical TTFT p50 / p99 ms",
      ...both((r) => `${f(r.unloadedCritical.p50TtftMs)} / ${f(r.unloadedCritical.p99TtftMs)}`),
    ],
    ["overload offered req/s", ...both((r) => f(r.overload.offeredPerSecond))],
    ...cls("critical"),
    ...cls("batch"),
    [
      "critical p99 overload / unloaded p99 (p50)",
      ...both(
        (r) =>
          `${f(r.overload.critical.p99TtftMs / r.unloadedCritical.p99TtftMs)}x (${f(r.overload.critical.p99TtftMs / r.unloadedCritical.p50TtftMs)}x)`,
      ),
    ],
    [`goodput req/s (TTFT <= ${TTFT_SLO_MS} ms)`, ...both((r) => f(r.overload.goodputPerSecond))],
    ["throughput req/s (to last completion)", ...both((r) => f(r.overload.throughputPerSecond))],
    [
      "overload: time requests waited on server slow / fast",
      ...both((r) => r.overload.serverQueueing.map((q) => `${(100 * q).toFixed(0)} %`).join(" / ")),
    ],
    [
      "overload picks queue / affinity / no_state",
      ...both((r) => {
        const p = r.overload.picks;
        return Object.keys(p).length === 0
          ? "-"
          : `${p.queue ?? 0} / ${p.affinity ?? 0} / ${p.no_state ?? 0}`;
      }),
    ],
    ["prefix-heavy offered req/s", ...both((r) => f(r.prefix.offeredPerSecond))],
    ["prefix-heavy TTFT mean ms", ...both((r) => f(r.prefix.meanTtftMs))],
    [
      "prefix-cache hit rate slow / fast",
      ...both((r) => r.prefix.hitRates.map((h) => `${(100 * h).toFixed(0)} %`).join(" / ")),
    ],
    ["prefix-heavy failed", ...both((r) => String(r.prefix.failed))],
  ];
  const print = (table: string[][]) => {
    const widths = table[0]!.map((_, c) => Math.max(...table.map((row) => row[c]!.length)));
    for (const row of table) console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join("  "));
  };
  print(rows);
  console.log(`\n${rounds} round(s) of ${seconds} s per arm, alternating\n`);
  print([
    ["target", "gateway scheduler", ""],
    ...verdicts.map((v) => [v.target, v.figure, v.pass ? "PASS" : "MISS"]),
  ]);
}
