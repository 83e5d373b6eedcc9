/**
 * Gateway benchmark (`npm run bench`; benchmarks/README.md explains the output). In one run on loopback it
 * measures the demo model server called directly, through Envoy alone, and through Envoy + extproc with
 * the core gateway only (no limits, no PII scanning, no guardrails), for non-streaming and streaming chat
 * completions at low concurrency (latency) and non-streaming at high concurrency (saturation), and judges
 * extproc's overhead against the project's bars. "Feature rows" then add one feature each to that core
 * policy (quota checks with counters in memory, the same in Redis, PII scanning with every built-in
 * detector) and report, with no bars, what the feature adds over the core gateway.
 *
 * The load comes from a separate process (this file with the `loadgen` subcommand), so neither the
 * driver's nor the model servers' event loops share time with it.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { BUILTIN_ENTITIES } from "../extproc/pii/detectors.js";
import { DEMO_KEYS, DEMO_POOL_B_KEY, envoyBinary, startStack, type Stack } from "../test/harness/index.js";
import { writePolicy, type PolicyDoc } from "../test/harness/policy.js";
import { startRedis, type RedisServer } from "../test/harness/redis.js";
import {
  runLoad,
  type Distribution,
  type LoadMessage,
  type LoadResult,
  type LoadSpec,
} from "./load-generator.js";
import {
  allowedCpus,
  childrenOf,
  cpuSeconds,
  cpuTicks,
  environOf,
  pinSelf,
  type ChildInfo,
} from "./process-cpu.js";

const SELF = fileURLToPath(import.meta.url);

/** The bars extproc is held to (benchmarks/README.md, "The bars"). */
const BARS = { addedP50Ms: 1, addedP99Ms: 3, requestsPerS: 2000 } as const;

const MODEL = "llama-3.1-8b-instruct";
/** 24 words: the demo server echoes them, so every answer is 28 tokens (28 SSE chunks when streamed). */
const PROMPT =
  "Summarise in one paragraph why an API gateway in front of model servers should authenticate, " +
  "route and audit every request before it reaches a GPU.";

/** The id of the benchmark's key (sk-demo-research) in deploy/policy.yaml. */
const BENCH_KEY_ID = "research-notebooks";

/**
 * The one limit rule of the quota feature rows (docs/quotas.md). It applies to every benchmark
 * request and sets a requests and a tokens bucket, a calendar-day token window, a concurrency lease and a
 * monthly budget, all far beyond what a run can use: every request is token-counted, reserved against five
 * counters and settled with its usage, and none is ever rejected.
 */
export const QUOTA_LIMIT = {
  id: "benchmark",
  scope: { key: BENCH_KEY_ID },
  requestsPerMinute: 1_000_000_000,
  tokensPerMinute: 1_000_000_000_000,
  tokensPerDay: 1_000_000_000_000_000,
  concurrentRequests: 1_000_000,
  budgetPerMonth: 1_000_000_000,
} as const;

/** Price given to any model the sample policy leaves unpriced (a budget needs every model it counts priced). */
const FALLBACK_PRICE = { input: 0.1, output: 0.3 } as const;

// ---------------------------------------------------------------------------------------------------------
// Options

/** Settings of one benchmark run (every flag, after defaults). */
export interface Options {
  readonly requests: number;
  readonly durationS: number;
  readonly concurrency: number;
  readonly saturationConcurrency: number;
  readonly saturationRequests: number;
  readonly saturationDurationS: number;
  readonly warmup: number;
  readonly tokenDelayMs: number;
  readonly pin: boolean;
  readonly quick: boolean;
  readonly json: boolean;
}

const NUMERIC_FLAGS = {
  requests: "requests",
  "duration-s": "durationS",
  concurrency: "concurrency",
  "saturation-concurrency": "saturationConcurrency",
  "saturation-requests": "saturationRequests",
  "saturation-duration-s": "saturationDurationS",
  warmup: "warmup",
  "token-delay-ms": "tokenDelayMs",
} as const;
type NumericFlag = keyof typeof NUMERIC_FLAGS;

/** Defaults: about 3-3.5 minutes on 2 cores (six rows per table; saturation rows 12 s, down from 15 s). */
const DEFAULTS: Record<NumericFlag, number> = {
  requests: 5000,
  "duration-s": 10,
  concurrency: 1,
  "saturation-concurrency": 32,
  "saturation-requests": 200_000,
  "saturation-duration-s": 12,
  warmup: 500,
  "token-delay-ms": 0,
};

/** --quick: a smoke run of about 50 seconds; the numbers are too few to mean much. */
const QUICK: Partial<Record<NumericFlag, number>> = {
  requests: 300,
  "duration-s": 2,
  "saturation-requests": 20_000,
  "saturation-duration-s": 3,
  warmup: 50,
};

const USAGE = `Usage: node dist/benchmarks/gateway.js [flags]   (or: npm run bench -- [flags])
  --requests N                 measured requests per latency row, at most (default ${DEFAULTS.requests})
  --duration-s S               seconds per latency row, at most (default ${DEFAULTS["duration-s"]})
  --concurrency N              requests in flight in the latency phase (default ${DEFAULTS.concurrency})
  --saturation-concurrency N   requests in flight in the saturation phase (default ${DEFAULTS["saturation-concurrency"]})
  --saturation-requests N      measured requests per saturation row, at most (default ${DEFAULTS["saturation-requests"]})
  --saturation-duration-s S    seconds per saturation row, at most (default ${DEFAULTS["saturation-duration-s"]})
  --warmup N                   unmeasured requests before every row (default ${DEFAULTS.warmup})
  --token-delay-ms MS          model server delay between streamed tokens (default ${DEFAULTS["token-delay-ms"]})
  --no-pin                     do not pin processes to CPUs with taskset
  --quick                      small numbers for a smoke run (explicit flags still win)
  --json                       JSON result on stdout; the human-readable report moves to stderr
  -h, --help                   this text`;

/** Parses the command line; throws with the usage text on anything unknown or malformed. */
export function parseOptions(argv: string[]): Options | "help" {
  const stringFlags = Object.fromEntries(
    Object.keys(NUMERIC_FLAGS).map((flag) => [flag, { type: "string" as const }]),
  ) as Record<NumericFlag, { type: "string" }>;
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        ...stringFlags,
        quick: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        "no-pin": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${USAGE}`, { cause: err });
  }
  if (values.help) return "help";
  const numbers = {} as Record<(typeof NUMERIC_FLAGS)[NumericFlag], number>;
  for (const [flag, key] of Object.entries(NUMERIC_FLAGS) as Array<[NumericFlag, keyof typeof numbers]>) {
    const given = values[flag];
    const value =
      given === undefined ? ((values.quick ? QUICK[flag] : undefined) ?? DEFAULTS[flag]) : Number(given);
    const min = flag === "token-delay-ms" || flag === "warmup" ? 0 : 1;
    // Durations may be fractional; counts may not.
    const whole = !flag.endsWith("-s");
    if (!Number.isFinite(value) || value < min || (whole && !Number.isInteger(value)))
      throw new Error(`--${flag} must be ${whole ? "an integer" : "a number"} ≥ ${min}\n${USAGE}`);
    numbers[key] = value;
  }
  return { ...numbers, pin: !values["no-pin"], quick: values.quick, json: values.json };
}

// ---------------------------------------------------------------------------------------------------------
// Processes: where they run, what they cost

/** Which CPUs extproc and everything else run on. */
interface Placement {
  /** Passed to the harness (`extprocCpus`); absent when not pinning. */
  readonly extprocCpus?: string;
  /** CPUs whose busy time is reported (all the benchmark may use). */
  readonly cpus: readonly number[];
  readonly description: string;
}

/**
 * On 2+ CPUs: extproc alone on the first allowed CPU, everything else (this driver and, by inheritance,
 * Envoy, the model servers, redis-server and the load generator) on the rest, so extproc's throughput is one core's.
 */
function decidePlacement(pin: boolean): Placement {
  const allowed = allowedCpus() ?? [];
  if (!pin || allowed.length < 2) {
    const why = pin ? "fewer than 2 CPUs or no taskset" : "--no-pin";
    return { cpus: allowed, description: `no CPU pinning (${why}); the OS schedules everything` };
  }
  const [extprocCpu, ...others] = allowed as [number, ...number[]];
  pinSelf(others);
  return {
    extprocCpus: String(extprocCpu),
    cpus: allowed,
    description: `extproc on CPU ${extprocCpu}; Envoy, model servers, redis-server, load generator and driver on CPU ${others.join(",")} (taskset)`,
  };
}

/** A process whose CPU time is accounted during a measurement. */
interface Tracked {
  readonly label: string;
  readonly pid: number;
}

const argAfter = (argv: readonly string[], flag: string): string | undefined => argv[argv.indexOf(flag) + 1];

/** Envoy, the pool-a model server and (with `extproc`) extproc of `stack`, among this process's children. */
function stackProcesses(stack: Stack, children: readonly ChildInfo[], extproc: boolean): Tracked[] {
  const envoyConfig = path.join(stack.workDir, "envoy.yaml");
  const isModelServer = (c: ChildInfo): boolean =>
    c.argv.some((a) => a.endsWith(path.join("model-server", "main.js"))) &&
    argAfter(c.argv, "--port") === String(stack.ports.poolA);
  // Every stack's extproc has the same command line; its environment names its listen address.
  const listen = `EXTPROC_LISTEN=unix:${stack.extprocSockets[0]}`;
  const isExtproc = (c: ChildInfo): boolean =>
    c.argv.some((a) => a.endsWith(path.join("extproc", "main.js"))) &&
    (environOf(c.pid)?.includes(listen) ?? false);
  const roles: Array<[string, (c: ChildInfo) => boolean]> = [
    ["envoy", (c) => c.argv.includes(envoyConfig)],
    ["model server", isModelServer],
  ];
  if (extproc) roles.unshift(["extproc", isExtproc]);
  return roles.flatMap(([label, matches]) => {
    const child = children.find(matches);
    return child ? [{ label, pid: child.pid }] : [];
  });
}

/** The redis-server on `port` among this process's children (it rewrites its command line once up). */
function redisProcess(children: readonly ChildInfo[], port: number): Tracked[] {
  const child = children.find((c) => {
    const line = c.argv.join(" ");
    return line.includes("redis-server") && (line.includes(`:${port}`) || line.includes(`--port ${port}`));
  });
  return child ? [{ label: "redis-server", pid: child.pid }] : [];
}

interface Snapshot {
  readonly atMs: number;
  readonly seconds: ReadonlyMap<string, number>;
  readonly ticks: ReturnType<typeof cpuTicks>;
}

function snapshot(tracked: readonly Tracked[]): Snapshot {
  const seconds = new Map<string, number>();
  for (const t of tracked) {
    const s = cpuSeconds(t.pid);
    if (s !== undefined) seconds.set(t.label, s);
  }
  return { atMs: performance.now(), seconds, ticks: cpuTicks() };
}

/** CPU used during a measured window, per process and per CPU. */
export interface CpuUse {
  readonly wallS: number;
  readonly processes: ReadonlyArray<{
    readonly label: string;
    readonly percentOfCore: number;
    readonly usPerRequest: number;
  }>;
  /** Busy share of each CPU from /proc/stat: includes anything else running on the machine. */
  readonly cpus: ReadonlyArray<{ readonly cpu: number; readonly busyPercent: number }>;
}

function cpuUse(before: Snapshot, after: Snapshot, requests: number, cpuList: readonly number[]): CpuUse {
  const wallS = (after.atMs - before.atMs) / 1000;
  const processes = [...after.seconds].flatMap(([label, end]) => {
    const start = before.seconds.get(label);
    if (start === undefined) return [];
    const used = end - start;
    return [
      { label, percentOfCore: (100 * used) / wallS, usPerRequest: (1e6 * used) / Math.max(1, requests) },
    ];
  });
  const busy = cpuList.flatMap((cpu) => {
    const a = before.ticks.get(cpu);
    const b = after.ticks.get(cpu);
    if (!a || !b || b.total === a.total) return [];
    return [{ cpu, busyPercent: (100 * (b.busy - a.busy)) / (b.total - a.total) }];
  });
  return { wallS, processes, cpus: busy };
}

/**
 * extproc's own view from its /metrics: time inside the phase handlers, and messages, per request; PII
 * found; and what went wrong with quotas (both should stay 0 in this benchmark).
 */
export interface HandlerUse {
  readonly usPerRequest: number;
  readonly messagesPerRequest: number;
  /** Values the PII detectors found, requests and responses (`llm_gateway_pii_detections_total`). */
  readonly piiDetections: number;
  /** Requests refused by a limit (`llm_gateway_quota_rejections_total`). */
  readonly quotaRejections: number;
  /** Failed quota store calls, reserve or settle (`llm_gateway_quota_store_errors_total`). */
  readonly quotaStoreErrors: number;
}

interface HandlerTotals {
  readonly seconds: number;
  readonly messages: number;
  readonly requests: number;
  readonly piiDetections: number;
  readonly quotaRejections: number;
  readonly quotaStoreErrors: number;
}

async function scrapeExtproc(url: string): Promise<HandlerTotals | undefined> {
  try {
    const text = await (await fetch(url)).text();
    const total = (name: string): number =>
      text
        .split("\n")
        .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
    return {
      seconds: total("llm_gateway_processing_duration_seconds_sum"),
      messages: total("llm_gateway_processing_duration_seconds_count"),
      requests: total("llm_gateway_requests_total"),
      piiDetections: total("llm_gateway_pii_detections_total"),
      quotaRejections: total("llm_gateway_quota_rejections_total"),
      quotaStoreErrors: total("llm_gateway_quota_store_errors_total"),
    };
  } catch {
    return undefined;
  }
}

function handlerUse(before: HandlerTotals | undefined, after: HandlerTotals | undefined): HandlerUse | null {
  if (!before || !after || after.requests <= before.requests) return null;
  const requests = after.requests - before.requests;
  return {
    usPerRequest: (1e6 * (after.seconds - before.seconds)) / requests,
    messagesPerRequest: (after.messages - before.messages) / requests,
    piiDetections: after.piiDetections - before.piiDetections,
    quotaRejections: after.quotaRejections - before.quotaRejections,
    quotaStoreErrors: after.quotaStoreErrors - before.quotaStoreErrors,
  };
}

/** Envoy's counters for its link to extproc during a row (warm-up included): what explains HTTP 500s. */
export interface ExtprocLink {
  /** ext_proc gRPC streams that failed; each failed its HTTP request closed, with a 500. */
  readonly streamsFailed: number;
  /** Times extproc's side closed Envoy's gRPC connection (HTTP/2 GOAWAY). */
  readonly goaways: number;
  /** ext_proc streams Envoy reset itself rather than waiting for extproc to end them. */
  readonly streamResets: number;
}

const LINK_COUNTERS: Record<keyof ExtprocLink, string> = {
  streamsFailed: "http.llm_gateway.ext_proc.streams_failed",
  goaways: "cluster.extproc.upstream_cx_close_notify",
  streamResets: "cluster.extproc.upstream_rq_tx_reset",
};

async function envoyCounters(adminUrl: string): Promise<Map<string, number> | undefined> {
  const filter = encodeURIComponent("^(cluster\\.extproc|http\\.llm_gateway\\.ext_proc)\\.");
  try {
    const text = await (await fetch(`${adminUrl}/stats?filter=${filter}`)).text();
    return new Map(
      text
        .split("\n")
        .map((line) => line.split(": "))
        .filter((kv): kv is [string, string] => kv.length === 2 && /^\d+$/.test(kv[1]!))
        .map(([k, v]) => [k, Number(v)]),
    );
  } catch {
    return undefined;
  }
}

function extprocLink(
  before: Map<string, number> | undefined,
  after: Map<string, number> | undefined,
): ExtprocLink | null {
  if (!before || !after) return null;
  const delta = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0);
  return {
    streamsFailed: delta(LINK_COUNTERS.streamsFailed),
    goaways: delta(LINK_COUNTERS.goaways),
    streamResets: delta(LINK_COUNTERS.streamResets),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Measuring

/** The informational rows: each is envoy + extproc with one feature added to the core policy. */
const FEATURE_PATHS = [
  "envoy+extproc+quotas-memory",
  "envoy+extproc+quotas-redis",
  "envoy+extproc+pii",
] as const;
type FeaturePath = (typeof FEATURE_PATHS)[number];
const PATHS = ["direct", "envoy", "envoy+extproc", ...FEATURE_PATHS] as const;
type PathName = (typeof PATHS)[number];
/** The rows the bars are judged on (the feature rows are informational). */
const BAR_PATHS = ["direct", "envoy", "envoy+extproc"] as const satisfies readonly PathName[];
/** The rows with extproc: the core gateway, then the feature rows. */
const EXTPROC_PATHS = ["envoy+extproc", ...FEATURE_PATHS] as const satisfies readonly PathName[];
type ExtprocPath = (typeof EXTPROC_PATHS)[number];

/** What a feature row adds to the core policy, and how to tell that it does (see {@link checkRows}). */
interface Feature {
  /** The row's name without "envoy + extproc + ", as tables and metric labels show it. */
  readonly name: string;
  /** Its policy, in words, for the report's header. */
  readonly policy: string;
  /** Requests run through {@link QUOTA_LIMIT}: answers carry its `x-ratelimit-*` headers. */
  readonly quota: boolean;
  /** PII is scanned in requests and responses: audit records carry `pii`, emails come back redacted. */
  readonly pii: boolean;
  /** Its extproc keeps counters in the benchmark's redis-server (started before its stack). */
  readonly redis: boolean;
  /** Adds the feature to the core policy `doc`; `sample` is deploy/policy.yaml as read. */
  edit(doc: PolicyDoc, sample: PolicyDoc, redisUrl: string | undefined): void;
}

/** What {@link checkRows} expects of a row: quota headers or not, PII redaction or not. */
type Expectations = Pick<Feature, "quota" | "pii">;
/** The core gateway (envoy + extproc): neither. */
const CORE: Expectations & { readonly policy: string } = {
  quota: false,
  pii: false,
  policy: "the sample policy with no limits, no pii section and no guardrails",
};

/** The actions the PII row allows: both let the request through, so every benchmark request succeeds. */
const PII_ROW_ACTIONS = new Set(["log", "redact"]);

const FEATURES: Record<FeaturePath, Feature> = {
  "envoy+extproc+quotas-memory": {
    name: "quotas (memory)",
    policy: `limit "${QUOTA_LIMIT.id}" on key ${QUOTA_LIMIT.scope.key} (requests/min, tokens/min, tokens/day, concurrency, budget/month; never reached), counters in extproc's memory`,
    quota: true,
    pii: false,
    redis: false,
    edit: (doc) => addQuotaLimit(doc, { store: "memory" }),
  },
  "envoy+extproc+quotas-redis": {
    name: "quotas (redis)",
    policy: "the same limit, counters in a redis-server on loopback (fail-closed)",
    quota: true,
    pii: false,
    redis: true,
    edit: (doc, _sample, redisUrl) =>
      addQuotaLimit(doc, { store: "redis", redis: { url: redisUrl }, onStoreFailure: "fail-closed" }),
  },
  "envoy+extproc+pii": {
    name: "PII (all detectors)",
    policy: `the sample's pii and guardrails sections with all ${BUILTIN_ENTITIES.length} built-in detectors on (log or redact, none block) and responses scanned`,
    quota: false,
    pii: true,
    redis: false,
    edit: (doc, sample) => addAllDetectorsPii(doc, sample),
  },
};

const PATH_LABELS: Record<PathName, string> = {
  direct: "direct model server",
  envoy: "envoy alone",
  "envoy+extproc": "envoy + extproc",
  ...(Object.fromEntries(FEATURE_PATHS.map((p) => [p, `envoy + extproc + ${FEATURES[p].name}`])) as Record<
    FeaturePath,
    string
  >),
};

/** {@link QUOTA_LIMIT} as the policy's only limit, counters in `quota`'s store. */
function addQuotaLimit(doc: PolicyDoc, quota: Record<string, unknown>): void {
  doc.limits = [QUOTA_LIMIT];
  // A budget scoped to a key counts every model, so every model needs a price (the sample has them).
  for (const model of Object.values(doc.models as Record<string, { price?: unknown }>))
    model.price ??= { ...FALLBACK_PRICE };
  doc.quota = quota;
}

/**
 * The sample's `pii` and `guardrails` sections as they are, except that every built-in detector ends up
 * on with `log` or `redact` for every request: in each rule, `block`, `mask` and `hash` become `redact`
 * and `off` becomes `log` (the sample's research rule switches IPv4/IPv6 off for the benchmark's key);
 * built-ins no unscoped rule names get `log` in a rule put first; and every rule scans responses.
 */
function addAllDetectorsPii(doc: PolicyDoc, sample: PolicyDoc): void {
  type Rule = { scope?: unknown; actions?: Record<string, string>; responses?: boolean };
  const pii = sample.pii as { rules?: Rule[] } | undefined;
  if (!pii) throw new Error("deploy/policy.yaml has no pii section for the PII row to keep");
  const rules = (pii.rules ??= []);
  for (const rule of rules) {
    const actions = (rule.actions ??= {});
    for (const [entity, action] of Object.entries(actions))
      if ((BUILTIN_ENTITIES as readonly string[]).includes(entity) && !PII_ROW_ACTIONS.has(action))
        actions[entity] = action === "off" ? "log" : "redact";
    rule.responses = true;
  }
  const unnamed = BUILTIN_ENTITIES.filter(
    (entity) => !rules.some((rule) => rule.scope === undefined && rule.actions![entity] !== undefined),
  );
  if (unnamed.length > 0)
    rules.unshift({ actions: Object.fromEntries(unnamed.map((e) => [e, "log"])), responses: true });
  doc.pii = pii;
  doc.guardrails = sample.guardrails;
}

const MODES = ["chat", "chat-stream"] as const;
type Mode = (typeof MODES)[number];
const MODE_LABELS: Record<Mode, string> = { chat: "non-streaming", "chat-stream": "streaming" };

/** Where one path sends its requests, and which processes serve them. */
interface Target {
  readonly path: PathName;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly processes: readonly Tracked[];
  /** extproc's /metrics, for the paths that have it. */
  readonly metricsUrl?: string;
  /** Envoy's admin endpoint, for the paths that have an ext_proc filter. */
  readonly adminUrl?: string;
  /** The stack serving an extproc path (its policy file and audit log). */
  readonly stack?: Stack;
}

/** Everything the benchmark starts: one stack per Envoy row, and the Redis the redis row's extproc uses. */
interface Stacks {
  /** Envoy alone (no ext_proc filter, no extproc). */
  readonly bare: Stack;
  /** Envoy + extproc with the core policy (no limits, PII or guardrails); its pool A also serves "direct". */
  readonly core: Stack;
  readonly features: Record<FeaturePath, Stack>;
  /** Started only if a feature row needs it. */
  readonly redis: RedisServer | undefined;
}

const CHAT_PATH = "/v1/chat/completions";

function targets(stacks: Stacks): Record<PathName, Target> {
  const children = childrenOf(process.pid);
  const { bare, core } = stacks;
  const coreProcs = stackProcesses(core, children, true);
  const headers = { "content-type": "application/json", authorization: `Bearer ${DEMO_KEYS.research}` };
  const withExtproc = (name: ExtprocPath, stack: Stack, extra: readonly Tracked[] = []): Target => ({
    path: name,
    url: `http://127.0.0.1:${stack.ports.http}${CHAT_PATH}`,
    headers,
    processes: [...stackProcesses(stack, children, true), ...extra],
    metricsUrl: `http://127.0.0.1:${stack.ports.metrics}/metrics`,
    adminUrl: `http://127.0.0.1:${stack.ports.admin}`,
    stack,
  });
  const feature = (p: FeaturePath): Target =>
    withExtproc(
      p,
      stacks.features[p],
      FEATURES[p].redis && stacks.redis ? redisProcess(children, stacks.redis.port) : [],
    );
  return {
    direct: {
      path: "direct",
      url: `http://127.0.0.1:${core.ports.poolA}${CHAT_PATH}`,
      headers,
      processes: coreProcs.filter((p) => p.label === "model server"),
    },
    // Without extproc nothing picks the pool, and the routes match on this header only.
    envoy: {
      path: "envoy",
      url: `http://127.0.0.1:${bare.ports.http}${CHAT_PATH}`,
      headers: { ...headers, "x-gateway-pool": "pool-a" },
      processes: stackProcesses(bare, children, false),
    },
    "envoy+extproc": withExtproc("envoy+extproc", core),
    ...(Object.fromEntries(FEATURE_PATHS.map((p) => [p, feature(p)])) as Record<FeaturePath, Target>),
  };
}

/**
 * Addresses the pre-measurement check puts in its prompt and has the model server answer with
 * (`x-demo-reply`), streamed in two pieces cut inside the address (`x-demo-split`).
 */
const CHECK = {
  prompt: " Please reply to jane.doe@example.com.",
  reply: "Sure, I will write to ops.team@example.org today.",
  replyEmail: "ops.team@example.org",
  splitAt: "27",
} as const;

/**
 * Two requests (non-streaming, streaming) to every extproc row before measuring, each with an email
 * address in its prompt and one in the model server's answer, checking that the row does what its label
 * says and nothing more: rows with quotas answer with the `x-ratelimit-*` headers of {@link QUOTA_LIMIT},
 * others without; rows with PII redact both addresses (the audit record counts an EMAIL redacted in the
 * request and in the response, and the answer reaches the client with a placeholder even when the
 * address is streamed in two pieces), others leave both alone and write no `pii` into the audit record.
 * The PII row's policy is also loaded with extproc's own code to check that every built-in detector
 * applies to the benchmark's key with `log` or `redact`, and responses are scanned.
 * A row measuring something other than its label would make the comparison meaningless, so this throws.
 */
async function checkRows(byPath: Record<PathName, Target>): Promise<void> {
  for (const p of EXTPROC_PATHS) {
    const target = byPath[p];
    const expect: Expectations = p === "envoy+extproc" ? CORE : FEATURES[p];
    const problems = expect.pii
      ? await piiPolicyProblems(path.join(target.stack!.workDir, "policy.yaml"))
      : [];
    for (const mode of MODES)
      problems.push(...(await checkRequest(target, mode, expect)).map((x) => `${MODE_LABELS[mode]}: ${x}`));
    if (problems.length > 0) throw new Error(`${PATH_LABELS[p]} fails its check: ${problems.join("; ")}`);
  }
}

async function checkRequest(target: Target, mode: Mode, expect: Expectations): Promise<string[]> {
  const res = await fetch(target.url, {
    method: "POST",
    headers: {
      ...target.headers,
      "x-demo-reply": encodeURIComponent(CHECK.reply),
      "x-demo-split": CHECK.splitAt,
    },
    body: requestBody(mode, CHECK.prompt),
  });
  const text = await res.text();
  if (res.status !== 200) return [`HTTP ${res.status}: ${text.slice(0, 300)}`];
  const problems: string[] = [];
  const limit = res.headers.get("x-ratelimit-limit-requests");
  const expectedLimit = expect.quota ? String(QUOTA_LIMIT.requestsPerMinute) : null;
  if (limit !== expectedLimit)
    problems.push(`x-ratelimit-limit-requests ${limit ?? "absent"}, expected ${expectedLimit ?? "absent"}`);
  const answer = answerText(mode, text);
  if (expect.pii ? answer.includes(CHECK.replyEmail) || !/<EMAIL_\w+>/.test(answer) : answer !== CHECK.reply)
    problems.push(
      `answer ${JSON.stringify(answer)}, expected ${expect.pii ? "<EMAIL_…> in it" : "it unchanged"}`,
    );
  const requestId = res.headers.get("x-request-id");
  const record = requestId ? await auditRecord(target.stack!.auditLog, requestId) : undefined;
  if (!record) return [...problems, `no audit record for x-request-id ${requestId ?? "(absent)"}`];
  const pii = record.pii as Record<"request" | "response", Record<string, { action?: string }>> | undefined;
  if (!expect.pii && pii !== undefined) problems.push(`audit record has pii ${JSON.stringify(pii)}`);
  if (expect.pii && (pii?.request.EMAIL?.action !== "redact" || pii.response.EMAIL?.action !== "redact"))
    problems.push(
      `audit record has pii ${JSON.stringify(pii)}, expected EMAIL redacted in request and response`,
    );
  return problems;
}

/** The answer's text: the message content, or the streamed deltas joined. */
function answerText(mode: Mode, body: string): string {
  type Choice = { message?: { content?: string }; delta?: { content?: string } };
  const choices = (json: string): Choice[] => (JSON.parse(json) as { choices?: Choice[] }).choices ?? [];
  if (mode === "chat") return choices(body)[0]?.message?.content ?? "";
  return body
    .split("\n")
    .filter((line) => line.startsWith("data: {"))
    .flatMap((line) => choices(line.slice("data: ".length)))
    .map((c) => c.delta?.content ?? "")
    .join("");
}

/** The audit record of `requestId` in `file`, waiting up to 5 s for extproc's buffered writes. */
async function auditRecord(file: string, requestId: string): Promise<Record<string, unknown> | undefined> {
  const deadline = performance.now() + 5000;
  for (;;) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      // not written yet
    }
    for (const line of text.split("\n")) {
      if (!line.includes(requestId)) continue;
      const record = JSON.parse(line) as Record<string, unknown>;
      if (record.request_id === requestId) return record;
    }
    if (performance.now() > deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** What keeps the PII row's policy from scanning with every built-in detector, by extproc's own resolution. */
async function piiPolicyProblems(file: string): Promise<string[]> {
  const { loadPolicy, sha256Hex } = await import("../extproc/policy/index.js");
  const { resolvePii } = await import("../extproc/pii/index.js");
  const policy = loadPolicy(file, { env: { POOL_B_API_KEY: DEMO_POOL_B_KEY } });
  const key = policy.keysBySha256.get(sha256Hex(DEMO_KEYS.research));
  if (!key) return [`${file}: no key for ${DEMO_KEYS.research}`];
  const resolved = resolvePii(policy.pii, { keyId: key.id, team: key.team }, MODEL);
  const problems = BUILTIN_ENTITIES.flatMap((entity) => {
    const action = resolved?.actions.get(entity) ?? "off";
    return PII_ROW_ACTIONS.has(action) ? [] : [`${entity} resolves to ${action}`];
  });
  if (!resolved?.responses) problems.push("responses are not scanned");
  return problems.map((x) => `policy: ${x}`);
}

function requestBody(mode: Mode, appendToPrompt = ""): string {
  return JSON.stringify({
    model: MODEL,
    messages: [
      { role: "system", content: "You are a concise assistant." },
      { role: "user", content: PROMPT + appendToPrompt },
    ],
    max_tokens: 64,
    ...(mode === "chat-stream" && { stream: true }),
  });
}

let activeGenerator: ChildProcess | undefined;

/** Runs the load generator in a child process; `onMeasuring`/`onDone` bracket the measured window. */
function runGenerator(
  spec: LoadSpec,
  onMeasuring: (pid: number) => void,
  onDone: () => void,
): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SELF, "loadgen", JSON.stringify(spec)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    activeGenerator = child;
    // The generator stops by itself; this only catches a wedged one.
    const limit = setTimeout(() => child.kill("SIGKILL"), 2 * spec.durationMs + spec.timeoutMs + 30_000);
    let result: LoadResult | undefined;
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!line.startsWith("{")) return; // not ours: only messages are JSON objects
      const message = JSON.parse(line) as LoadMessage;
      if (message.event === "measuring") onMeasuring(child.pid!);
      else {
        onDone();
        result = message.result;
      }
    });
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(limit);
      activeGenerator = undefined;
      if (result) resolve(result);
      else reject(new Error(`load generator exited (${signal ?? code}) without a result`));
    });
  });
}

/** One row of the report: a path's load result with the CPU it took. */
export interface Measurement extends LoadResult {
  readonly path: PathName;
  readonly concurrency: number;
  readonly cpu: CpuUse | null;
  readonly extprocHandler: HandlerUse | null;
  readonly extprocLink: ExtprocLink | null;
}

interface Phase {
  readonly concurrency: number;
  readonly requests: number;
  readonly durationS: number;
}

async function measure(
  target: Target,
  mode: Mode,
  phase: Phase,
  options: Options,
  placement: Placement,
): Promise<Measurement> {
  const headers = { ...target.headers };
  if (mode === "chat-stream" && options.tokenDelayMs > 0)
    headers["x-demo-token-delay-ms"] = String(options.tokenDelayMs);
  const spec: LoadSpec = {
    url: target.url,
    headers,
    body: requestBody(mode),
    stream: mode === "chat-stream",
    concurrency: phase.concurrency,
    warmup: options.warmup,
    requests: phase.requests,
    durationMs: phase.durationS * 1000,
    timeoutMs: 30_000,
  };
  let tracked: Tracked[] = [];
  let before: Snapshot | undefined;
  let after: Snapshot | undefined;
  let metricsBefore: Promise<HandlerTotals | undefined> | undefined;
  const linkBefore = target.adminUrl ? await envoyCounters(target.adminUrl) : undefined;
  const result = await runGenerator(
    spec,
    (pid) => {
      tracked = [
        ...target.processes,
        { label: "load generator", pid },
        { label: "driver", pid: process.pid },
      ];
      before = snapshot(tracked);
      if (target.metricsUrl) metricsBefore = scrapeExtproc(target.metricsUrl);
    },
    () => (after = snapshot(tracked)),
  );
  const metricsAfter = target.metricsUrl ? await scrapeExtproc(target.metricsUrl) : undefined;
  const linkAfter = target.adminUrl ? await envoyCounters(target.adminUrl) : undefined;
  return {
    ...result,
    path: target.path,
    concurrency: phase.concurrency,
    cpu: before && after ? cpuUse(before, after, result.ok, placement.cpus) : null,
    extprocHandler: handlerUse(await metricsBefore, metricsAfter),
    extprocLink: extprocLink(linkBefore, linkAfter),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Judging

/** extproc's added latency for one metric: envoy + extproc minus envoy alone. */
export interface Added {
  readonly metric: string;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p50Ratio: number;
  readonly p99Ratio: number;
}

function added(metric: string, envoy: Distribution, withExtproc: Distribution): Added {
  return {
    metric,
    p50Ms: withExtproc.p50 - envoy.p50,
    p99Ms: withExtproc.p99 - envoy.p99,
    p50Ratio: withExtproc.p50 / envoy.p50,
    p99Ratio: withExtproc.p99 / envoy.p99,
  };
}

/** The three latency metrics both kinds of "added" compare: (label, mode, TTLB or TTFB). */
const ADDED_METRICS = [
  ["non-streaming", "chat", "latencyMs"],
  ["streaming, last byte", "chat-stream", "latencyMs"],
  ["streaming, first byte", "chat-stream", "ttfbMs"],
] as const satisfies ReadonlyArray<readonly [string, Mode, "latencyMs" | "ttfbMs"]>;

/** `to` minus `from` for each of {@link ADDED_METRICS}. */
function addedRows(latency: Record<Mode, Runs>, from: PathName, to: PathName): Added[] {
  return ADDED_METRICS.map(([metric, mode, field]) =>
    added(metric, latency[mode][from][field], latency[mode][to][field]),
  );
}

/** What one extproc row costs at saturation (envoy + extproc included, as the feature rows' base). */
export interface FeatureCost {
  readonly path: ExtprocPath;
  readonly requestsPerS: number;
  readonly errors: number;
  /** requests/s relative to envoy + extproc, in percent (0 for that row itself). */
  readonly requestsPerSChangePercent: number;
  readonly extprocUsPerRequest: number | null;
  readonly extprocPercentOfCore: number | null;
  /** extproc's CPU per request minus that of envoy + extproc. */
  readonly extprocAddedUsPerRequest: number | null;
  /** The Redis server's CPU per request (rows with a redis-server only). */
  readonly redisUsPerRequest: number | null;
}

function featureCosts(saturation: Runs): FeatureCost[] {
  const use = (p: PathName, label: string) => saturation[p].cpu?.processes.find((x) => x.label === label);
  const base = saturation["envoy+extproc"];
  const baseUs = use("envoy+extproc", "extproc")?.usPerRequest;
  return EXTPROC_PATHS.map((p) => {
    const extproc = use(p, "extproc");
    return {
      path: p,
      requestsPerS: saturation[p].requestsPerS,
      errors: saturation[p].errors,
      requestsPerSChangePercent: (100 * (saturation[p].requestsPerS - base.requestsPerS)) / base.requestsPerS,
      extprocUsPerRequest: extproc?.usPerRequest ?? null,
      extprocPercentOfCore: extproc?.percentOfCore ?? null,
      extprocAddedUsPerRequest: extproc && baseUs !== undefined ? extproc.usPerRequest - baseUs : null,
      redisUsPerRequest: use(p, "redis-server")?.usPerRequest ?? null,
    };
  });
}

/** One bar's verdict. */
export interface Verdict {
  readonly bar: string;
  readonly pass: boolean;
  readonly measured: string;
}

type Runs = Record<PathName, Measurement>;

function latencyVerdict(
  which: "p50" | "p99",
  addedRows: readonly Added[],
  latency: Record<Mode, Runs>,
): Verdict {
  const limit = which === "p50" ? BARS.addedP50Ms : BARS.addedP99Ms;
  const value = (a: Added): number => (which === "p50" ? a.p50Ms : a.p99Ms);
  const worst = addedRows.reduce((w, a) => (value(a) > value(w) ? a : w));
  const errors = MODES.flatMap((m) => BAR_PATHS.map((p) => latency[m][p].errors)).reduce((a, b) => a + b, 0);
  const within = value(worst) <= limit;
  const detail = `worst ${signed(value(worst))} ms (${worst.metric})`;
  // Latency covers successful requests only, so a run that failed requests cannot pass on latency alone.
  return {
    bar: `extproc adds ≤ ${limit} ms at ${which}`,
    pass: within && errors === 0,
    measured:
      errors === 0
        ? detail
        : `${detail}${within ? " is within the bar, but" : ";"} ${errors} requests failed in the latency phase`,
  };
}

function throughputVerdict(run: Measurement, placement: Placement): Verdict {
  const extproc = run.cpu?.processes.find((p) => p.label === "extproc");
  const parts = [`${fmt(run.requestsPerS, 0)} req/s measured`];
  if (run.errors > 0) parts.push(`${run.errors} requests failed`);
  if (extproc) {
    parts.push(`extproc ${fmt(extproc.percentOfCore, 0)}% of a core`);
    // Requests one fully busy core could serve at the measured CPU cost: an estimate, not the verdict.
    parts.push(
      `CPU cost ${fmt(extproc.usPerRequest, 0)} µs/request ≈ ${fmt(1e6 / extproc.usPerRequest, 0)} req/s per core`,
    );
    const ownCpu = run.cpu?.cpus.find((c) => String(c.cpu) === placement.extprocCpus);
    // Below ~90% of its core extproc was waiting for work, unless other processes took that core.
    if (ownCpu && extproc.percentOfCore < 90)
      parts.push(
        ownCpu.busyPercent >= 90
          ? `its CPU ${ownCpu.cpu} was ${fmt(ownCpu.busyPercent, 0)}% busy: something else ran there too`
          : `extproc idled ${fmt(100 - extproc.percentOfCore, 0)}% of the time, waiting for the rest of the path`,
      );
  }
  return {
    bar: `one extproc sustains ≥ ${BARS.requestsPerS} req/s`,
    pass: run.requestsPerS >= BARS.requestsPerS && run.errors === 0,
    measured: parts.join("; "),
  };
}

/** Whatever makes a row's numbers suspect, in words: failed requests and a broken link to extproc. */
function notes(latency: Record<Mode, Runs>, saturation: Runs): string[] {
  const rows: Array<[string, Measurement]> = [
    ...MODES.flatMap((mode) =>
      PATHS.map((p): [string, Measurement] => [
        `latency, ${MODE_LABELS[mode]}, ${PATH_LABELS[p]}`,
        latency[mode][p],
      ]),
    ),
    ...PATHS.map((p): [string, Measurement] => [`saturation, ${PATH_LABELS[p]}`, saturation[p]]),
  ];
  return rows.flatMap(([name, m]) => {
    const found: string[] = [];
    if (m.errors > 0) found.push(`${name}: ${m.errors} failed requests (first: ${m.firstError})`);
    const link = m.extprocLink;
    if (link && (link.streamsFailed > 0 || link.goaways > 0))
      found.push(
        `${name}: Envoy saw ${link.streamsFailed} failed ext_proc streams and ${link.goaways} GOAWAYs from extproc,` +
          ` after resetting ${link.streamResets} ext_proc streams itself (benchmarks/README.md: "Known limits", the ext_proc link)`,
      );
    const handler = m.extprocHandler;
    if (handler && handler.quotaRejections > 0)
      found.push(`${name}: ${handler.quotaRejections} requests were refused by a limit (quota rejections)`);
    if (handler && handler.quotaStoreErrors > 0)
      found.push(
        `${name}: ${handler.quotaStoreErrors} quota store calls failed (llm_gateway_quota_store_errors_total):` +
          ` failed admissions are 503s, failed settlements only leave the reservation charged`,
      );
    return found;
  });
}

/** What one feature row adds over envoy + extproc, for the report: no bar, just the numbers. */
function featureInfo(
  p: FeaturePath,
  rows: readonly Added[],
  cost: FeatureCost,
  latency: Record<Mode, Runs>,
  saturation: Runs,
): string {
  const worst = (value: (a: Added) => number): Added => rows.reduce((w, a) => (value(a) > value(w) ? a : w));
  const p50 = worst((a) => a.p50Ms);
  const p99 = worst((a) => a.p99Ms);
  const parts = [
    `worst ${signed(p50.p50Ms)} ms at p50 (${p50.metric}) and ${signed(p99.p99Ms)} ms at p99 (${p99.metric})`,
    `saturation ${fmt(cost.requestsPerS, 0)} req/s (${signed(cost.requestsPerSChangePercent, 1)}%)`,
  ];
  if (cost.extprocAddedUsPerRequest !== null)
    parts.push(`extproc CPU ${signed(cost.extprocAddedUsPerRequest, 0)} µs/request`);
  if (cost.redisUsPerRequest !== null)
    parts.push(`redis-server ${fmt(cost.redisUsPerRequest, 0)} µs/request`);
  if (FEATURES[p].pii) {
    // The benchmark's prompt and answer hold no PII: the measured cost is scanning clean text.
    const found = [...MODES.map((m) => latency[m][p]), saturation[p]].reduce(
      (n, m) => n + (m.extprocHandler?.piiDetections ?? 0),
      0,
    );
    parts.push(`PII found in measured requests: ${found}`);
  }
  const errors = MODES.reduce((n, m) => n + latency[m][p].errors, cost.errors);
  if (errors > 0) parts.push(`${errors} requests failed (see the notes)`);
  return `${FEATURES[p].name} over envoy + extproc: ${parts.join("; ")}`;
}

// ---------------------------------------------------------------------------------------------------------
// Reporting

const fmt = (n: number, digits = 2): string =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "n/a";
const signed = (n: number, digits = 2): string => (n >= 0 ? `+${fmt(n, digits)}` : fmt(n, digits));

/** Text table: first column left-aligned, the others right-aligned. */
function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? "").length)));
  return all
    .map((r) =>
      r
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .map((line) => `  ${line}`)
    .join("\n");
}

const okErr = (m: Measurement): string[] => [String(m.ok), String(m.errors)];

function latencyTable(mode: Mode, runs: Runs): string {
  if (mode === "chat")
    return table(
      ["", "ok", "err", "p50 ms", "p99 ms", "req/s"],
      PATHS.map((p) => {
        const m = runs[p];
        return [
          PATH_LABELS[p],
          ...okErr(m),
          fmt(m.latencyMs.p50),
          fmt(m.latencyMs.p99),
          fmt(m.requestsPerS, 0),
        ];
      }),
    );
  return table(
    ["", "ok", "err", "TTFB p50", "TTFB p99", "TTLB p50", "TTLB p99", "req/s"],
    PATHS.map((p) => {
      const m = runs[p];
      return [
        PATH_LABELS[p],
        ...okErr(m),
        fmt(m.ttfbMs.p50),
        fmt(m.ttfbMs.p99),
        fmt(m.latencyMs.p50),
        fmt(m.latencyMs.p99),
        fmt(m.requestsPerS, 0),
      ];
    }),
  );
}

function addedTable(rows: readonly Added[]): string {
  return table(
    ["", "p50 added", "p50 ratio", "p99 added", "p99 ratio"],
    rows.map((a) => [
      a.metric,
      `${signed(a.p50Ms)} ms`,
      `×${fmt(a.p50Ratio)}`,
      `${signed(a.p99Ms)} ms`,
      `×${fmt(a.p99Ratio)}`,
    ]),
  );
}

function saturationTable(runs: Runs, placement: Placement): string {
  const cpuHeads = placement.cpus.map((c) => `CPU${c} busy`);
  return table(
    ["", "ok", "err", "p50 ms", "p99 ms", "req/s", ...cpuHeads],
    PATHS.map((p) => {
      const m = runs[p];
      const busy = placement.cpus.map((c) => {
        const b = m.cpu?.cpus.find((x) => x.cpu === c);
        return b ? `${fmt(b.busyPercent, 0)}%` : "n/a";
      });
      return [
        PATH_LABELS[p],
        ...okErr(m),
        fmt(m.latencyMs.p50),
        fmt(m.latencyMs.p99),
        fmt(m.requestsPerS, 0),
        ...busy,
      ];
    }),
  );
}

function cpuLines(runs: Runs): string {
  const lines = PATHS.map((p) => {
    const use = runs[p].cpu;
    if (!use) return `  ${PATH_LABELS[p]}: n/a`;
    const parts = use.processes.map(
      (x) => `${x.label} ${fmt(x.usPerRequest, 0)} µs (${fmt(x.percentOfCore, 0)}%)`,
    );
    return `  ${PATH_LABELS[p]}: ${parts.join(", ")}`;
  });
  const handlers = EXTPROC_PATHS.flatMap((p) => {
    const handler = runs[p].extprocHandler;
    if (!handler) return [];
    const redis = p !== "envoy+extproc" && FEATURES[p].redis ? " (this includes waiting for Redis)" : "";
    return [
      `    ${PATH_LABELS[p]}: ${fmt(handler.usPerRequest, 0)} µs over ${fmt(handler.messagesPerRequest, 1)} ext_proc messages${redis}`,
    ];
  });
  if (handlers.length > 0)
    lines.push(
      "  extproc's handlers ran, per request (time inside them; the rest of extproc's CPU is gRPC, HTTP/2, protobuf, GC and audit logging):",
      ...handlers,
    );
  return lines.join("\n");
}

/** Mean time inside extproc's handlers per request in the latency phase, per extproc row (feature rows: + added). */
function handlerTable(latency: Record<Mode, Runs>): string {
  return table(
    ["", ...EXTPROC_PATHS.map((p) => (p === "envoy+extproc" ? PATH_LABELS[p] : FEATURES[p].name))],
    MODES.map((mode) => {
      const ms = (p: PathName): number | undefined => {
        const handler = latency[mode][p].extprocHandler;
        return handler ? handler.usPerRequest / 1000 : undefined;
      };
      const base = ms("envoy+extproc");
      return [
        MODE_LABELS[mode],
        ...EXTPROC_PATHS.map((p) => {
          const value = ms(p);
          if (value === undefined) return "n/a";
          const delta = p === "envoy+extproc" || base === undefined ? "" : ` (${signed(value - base)})`;
          return `${fmt(value)} ms${delta}`;
        }),
      ];
    }),
  );
}

function featureCostTable(costs: readonly FeatureCost[]): string {
  const n = (x: number | null, show: (v: number) => string): string => (x === null ? "n/a" : show(x));
  return table(
    ["", "req/s", "change", "extproc µs/req", "added µs/req", "extproc core", "redis-server µs/req"],
    costs.map((c) => {
      const base = c.path === "envoy+extproc";
      return [
        PATH_LABELS[c.path],
        fmt(c.requestsPerS, 0),
        base ? "" : `${signed(c.requestsPerSChangePercent, 1)}%`,
        n(c.extprocUsPerRequest, (v) => fmt(v, 0)),
        base ? "" : n(c.extprocAddedUsPerRequest, (v) => signed(v, 0)),
        n(c.extprocPercentOfCore, (v) => `${fmt(v, 0)}%`),
        c.redisUsPerRequest === null ? "" : fmt(c.redisUsPerRequest, 0),
      ];
    }),
  );
}

/** The feature rows' findings: what each adds over envoy + extproc (the core gateway). */
export interface FeatureReport {
  /** Each extproc row's policy, in words ("envoy+extproc" included). */
  readonly policies: Record<ExtprocPath, string>;
  /** The limit rule the quota rows apply to every request. */
  readonly quotaLimit: typeof QUOTA_LIMIT;
  /** Latency added over envoy + extproc, per feature row, for each metric of "added". */
  readonly added: Record<FeaturePath, readonly Added[]>;
  /** Throughput and extproc's CPU per request at saturation, envoy + extproc first. */
  readonly saturation: readonly FeatureCost[];
  /** One informational line per feature row (no bars). */
  readonly info: readonly string[];
}

/** Everything one run found, as printed with --json. */
export interface Report {
  readonly environment: Readonly<Record<string, string | number>>;
  readonly options: Options;
  readonly placement: Placement;
  readonly latency: Record<Mode, Runs>;
  readonly added: readonly Added[];
  readonly saturation: Runs;
  readonly features: FeatureReport;
  readonly verdicts: readonly Verdict[];
  readonly notes: readonly string[];
}

function humanReport(r: Report): string {
  const o = r.options;
  const env = r.environment;
  const lat = `closed loop, concurrency ${o.concurrency}, ${o.warmup} warm-up + up to ${o.requests} requests or ${o.durationS} s per row`;
  return [
    `Gateway benchmark: Envoy ${env.envoy}, Node ${env.node}, ${env.cpus} × ${env.cpuModel}, load average ${env.loadAverage} at start`,
    `Placement: ${r.placement.description}`,
    `Latency phase: ${lat}`,
    "Policies (deploy/policy.yaml, changed): envoy + extproc is the core gateway; each feature row adds one feature to it",
    ...EXTPROC_PATHS.map((p) => `  ${PATH_LABELS[p]}: ${r.features.policies[p]}`),
    "",
    "Chat completions, non-streaming (latency = request start to last byte)",
    latencyTable("chat", r.latency.chat),
    "",
    `Chat completions, streaming: 28-token answers as SSE, token delay ${o.tokenDelayMs} ms (TTFB = first body byte, TTLB = last byte)`,
    latencyTable("chat-stream", r.latency["chat-stream"]),
    "",
    "Added by extproc (envoy + extproc minus envoy alone; ratio = envoy + extproc / envoy alone)",
    addedTable(r.added),
    "",
    "Added by each feature (feature row minus envoy + extproc; ratio = feature row / envoy + extproc)",
    addedTable(
      FEATURE_PATHS.flatMap((p) =>
        r.features.added[p].map((a) => ({ ...a, metric: `${FEATURES[p].name}, ${a.metric}` })),
      ),
    ),
    "Time inside extproc's handlers per request, mean (quota admission and PII scanning happen there; quota settlement is started, not awaited)",
    handlerTable(r.latency),
    "",
    `Saturation: non-streaming, concurrency ${o.saturationConcurrency}, ${o.warmup} warm-up + up to ${o.saturationRequests} requests or ${o.saturationDurationS} s per row`,
    saturationTable(r.saturation, r.placement),
    "CPU per request at saturation: µs of CPU time (share of one core)",
    cpuLines(r.saturation),
    "",
    "Feature rows at saturation: throughput and extproc's CPU per request (change and added = over envoy + extproc)",
    featureCostTable(r.features.saturation),
    "",
    "Bars (judged on direct, envoy alone and envoy + extproc only)",
    ...r.verdicts.map((v) => `  ${v.pass ? "PASS" : "FAIL"}  ${v.bar}: ${v.measured}`),
    "",
    "Feature rows (informational, no bars)",
    ...r.features.info.map((line) => `  INFO  ${line}`),
    ...(r.notes.length > 0 ? ["", "Notes", ...r.notes.map((n) => `  ${n}`)] : []),
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------------------
// Main

function environment(): Report["environment"] {
  const version = spawnSync(envoyBinary(), ["--version"], { encoding: "utf8" }).stdout ?? "";
  return {
    envoy: /\/(\d+\.\d+\.\d+)\//.exec(version)?.[1] ?? "unknown",
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    loadAverage: fmt(loadavg()[0] ?? NaN),
    startedAt: new Date().toISOString(),
  };
}

const progress = (line: string): void => void process.stderr.write(`bench: ${line}\n`);

function summary(m: Measurement): string {
  const stop = m.stoppedBy === "time" ? " (time limit)" : "";
  const errors = m.errors > 0 ? `, ${m.errors} errors (first: ${m.firstError})` : "";
  return `${m.ok} ok${errors}${stop}, p50 ${fmt(m.latencyMs.p50)} ms, p99 ${fmt(m.latencyMs.p99)} ms, ${fmt(m.requestsPerS, 0)} req/s`;
}

async function runPhases(options: Options, placement: Placement, stacks: Stacks): Promise<Report> {
  const environmentInfo = environment();
  const byPath = targets(stacks);
  await checkRows(byPath);
  const latencyPhase: Phase = {
    concurrency: options.concurrency,
    requests: options.requests,
    durationS: options.durationS,
  };
  const saturationPhase: Phase = {
    concurrency: options.saturationConcurrency,
    requests: options.saturationRequests,
    durationS: options.saturationDurationS,
  };
  // One row at a time: every other stack sits idle meanwhile.
  const runPaths = async (mode: Mode, phase: Phase, name: string): Promise<Runs> => {
    const runs = {} as Runs;
    for (const p of PATHS) {
      progress(`${name}, ${MODE_LABELS[mode]}, ${PATH_LABELS[p]} ...`);
      runs[p] = await measure(byPath[p], mode, phase, options, placement);
      progress(`  ${summary(runs[p])}`);
    }
    return runs;
  };
  const latency = {} as Record<Mode, Runs>;
  for (const mode of MODES) latency[mode] = await runPaths(mode, latencyPhase, "latency");
  const saturation = await runPaths("chat", saturationPhase, "saturation");

  const extprocAdded = addedRows(latency, "envoy", "envoy+extproc");
  const featureAdded = Object.fromEntries(
    FEATURE_PATHS.map((p) => [p, addedRows(latency, "envoy+extproc", p)]),
  ) as Record<FeaturePath, Added[]>;
  const costs = featureCosts(saturation);
  return {
    environment: environmentInfo,
    options,
    placement,
    latency,
    added: extprocAdded,
    saturation,
    features: {
      policies: {
        "envoy+extproc": CORE.policy,
        ...(Object.fromEntries(FEATURE_PATHS.map((p) => [p, FEATURES[p].policy])) as Record<
          FeaturePath,
          string
        >),
      },
      quotaLimit: QUOTA_LIMIT,
      added: featureAdded,
      saturation: costs,
      info: FEATURE_PATHS.map((p) =>
        featureInfo(
          p,
          featureAdded[p],
          costs.find((c) => c.path === p)!,
          latency,
          saturation,
        ),
      ),
    },
    verdicts: [
      latencyVerdict("p50", extprocAdded, latency),
      latencyVerdict("p99", extprocAdded, latency),
      throughputVerdict(saturation["envoy+extproc"], placement),
    ],
    notes: notes(latency, saturation),
  };
}

/**
 * The policy of one extproc stack, written into `dir`: the core gateway (the sample policy with no limits,
 * no `pii` section and no guardrails), plus `feature` for a feature row.
 */
function benchPolicy(dir: string, feature?: Feature, redisUrl?: string): string {
  return writePolicy(dir, (doc) => {
    const sample = structuredClone(doc);
    doc.limits = [];
    delete doc.pii;
    doc.guardrails = [];
    feature?.edit(doc, sample, redisUrl);
  });
}

async function benchmarkMain(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  if (options === "help") {
    console.log(USAGE);
    return;
  }
  const placement = decidePlacement(options.pin);
  progress(placement.description);
  const started: Stack[] = [];
  let redis: RedisServer | undefined;
  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> => {
    activeGenerator?.kill("SIGKILL");
    stopping ??= Promise.all(started.map((s) => s.stop())).then(() => redis?.stop());
    return stopping;
  };
  const onSignal = (code: number) => () => void stopAll().finally(() => process.exit(code));
  process.once("SIGINT", onSignal(130));
  process.once("SIGTERM", onSignal(143));
  // Stacks start one after the other, each in its own directory (policy, logs, envoy.yaml).
  const start = async (what: string, extproc: boolean, feature?: Feature): Promise<Stack> => {
    progress(`starting ${what} (model servers as processes) ...`);
    const workDir = mkdtempSync(path.join(tmpdir(), "llm-gateway-bench-"));
    const stack = await startStack({
      modelServersAsProcesses: true,
      workDir,
      ...(extproc
        ? { extprocCpus: placement.extprocCpus, policyFile: benchPolicy(workDir, feature, redis?.url) }
        : { withoutExtProc: true }),
    });
    started.push(stack);
    return stack;
  };
  try {
    const core = await start("Envoy + extproc (core gateway)", true);
    const bare = await start("Envoy alone", false);
    const features = {} as Record<FeaturePath, Stack>;
    for (const p of FEATURE_PATHS) {
      const feature = FEATURES[p];
      if (feature.redis && !redis) {
        progress("starting redis-server ...");
        redis = await startRedis().catch((err: Error) => {
          throw new Error(
            `could not start redis-server for the ${feature.name} row (scripts/setup.sh installs it; REDIS_SERVER picks another): ${err.message}`,
            { cause: err },
          );
        });
      }
      features[p] = await start(PATH_LABELS[p], true, feature);
    }
    const report = await runPhases(options, placement, { bare, core, features, redis });
    (options.json ? process.stderr : process.stdout).write(`\n${humanReport(report)}`);
    if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await stopAll();
  }
}

/** `loadgen <spec JSON>`: the child side of {@link runGenerator}; NDJSON messages on stdout. */
async function loadgenMain(specJson: string): Promise<void> {
  const spec = JSON.parse(specJson) as LoadSpec;
  const emit = (message: LoadMessage): void => void process.stdout.write(`${JSON.stringify(message)}\n`);
  const result = await runLoad(spec, () => emit({ event: "measuring" }));
  emit({ event: "done", result });
}

const [command, ...rest] = process.argv.slice(2);
const run = command === "loadgen" ? loadgenMain(rest[0] ?? "{}") : benchmarkMain(process.argv.slice(2));
run.catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
