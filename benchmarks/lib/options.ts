/**
 * The gateway benchmark's command line: flags, their defaults (the method of benchmarks/README.md, "How it
 * measures") and the quick smoke run (`--quick` or `BENCH_QUICK=1`).
 */
import { parseArgs } from "node:util";
import { APIS, type Api } from "./request.js";

/** Settings of one benchmark run (every flag, after defaults). */
export interface Options {
  readonly requests: number;
  readonly durationS: number;
  readonly concurrency: number;
  readonly saturationConcurrency: number;
  readonly saturationRequests: number;
  readonly saturationDurationS: number;
  readonly warmup: number;
  readonly pin: boolean;
  /** Row ids to run besides the baseline and our core row (which always run); undefined: every row. */
  readonly rows: readonly string[] | undefined;
  /** The inference APIs measured; chat always (the bars' saturation phase and the peers' request). */
  readonly apis: readonly Api[];
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
} as const;
type NumericFlag = keyof typeof NUMERIC_FLAGS;

/**
 * Defaults: latency over 2,000 requests at concurrency 1 (the time limit only stops a row whose proxy hangs),
 * saturation at 32 concurrent requests for 10 s. About 4 minutes on 2 cores with both peers installed.
 */
const DEFAULTS: Record<NumericFlag, number> = {
  requests: 2000,
  "duration-s": 300,
  concurrency: 1,
  "saturation-concurrency": 32,
  "saturation-requests": 1_000_000,
  "saturation-duration-s": 10,
  warmup: 500,
};

/** The quick smoke run: every row and table in well under a minute; the numbers are too few to mean much. */
const QUICK: Partial<Record<NumericFlag, number>> = {
  requests: 100,
  "saturation-duration-s": 1,
  warmup: 20,
};

export const USAGE = `Usage: node dist/benchmarks/gateway.js [flags]   (or: npm run bench -- [flags])
  --requests N                 measured requests per latency row (default ${DEFAULTS.requests})
  --duration-s S               seconds per latency row, at most (default ${DEFAULTS["duration-s"]})
  --concurrency N              requests in flight in the latency phase (default ${DEFAULTS.concurrency})
  --saturation-concurrency N   requests in flight in the saturation phase (default ${DEFAULTS["saturation-concurrency"]})
  --saturation-requests N      measured requests per saturation row, at most (default ${DEFAULTS["saturation-requests"]})
  --saturation-duration-s S    seconds per saturation row, at most (default ${DEFAULTS["saturation-duration-s"]})
  --warmup N                   unmeasured requests before every row (default ${DEFAULTS.warmup})
  --rows ID,ID                 only these rows besides envoy and envoy+extproc (ids: direct,
                               envoy+extproc+quotas+pii, envoy+extproc+tracing, litellm,
                               ai-gateway; default all)
  --apis API,API               inference APIs to measure (${APIS.join(",")}; chat always runs and
                               is the default): each non-streaming and streamed, the agent APIs
                               also to pool-b's model, which the gateway translates to chat
  --no-pin                     do not pin processes to CPUs with taskset
  --quick                      small numbers for a smoke run, as BENCH_QUICK=1 (explicit flags still win)
  --json                       JSON result on stdout; the human-readable report moves to stderr
  -h, --help                   this text`;

/** Parses the command line (and BENCH_QUICK); throws with the usage text on anything unknown or malformed. */
export function parseOptions(argv: string[], env: NodeJS.ProcessEnv = process.env): Options | "help" {
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
        rows: { type: "string" },
        apis: { type: "string" },
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
  const quick = values.quick || env.BENCH_QUICK === "1";
  const numbers = {} as Record<(typeof NUMERIC_FLAGS)[NumericFlag], number>;
  for (const [flag, key] of Object.entries(NUMERIC_FLAGS) as Array<[NumericFlag, keyof typeof numbers]>) {
    const given = values[flag];
    const value = given === undefined ? ((quick ? QUICK[flag] : undefined) ?? DEFAULTS[flag]) : Number(given);
    const min = flag === "warmup" ? 0 : 1;
    // Durations may be fractional; counts may not.
    const whole = !flag.endsWith("-s");
    if (!Number.isFinite(value) || value < min || (whole && !Number.isInteger(value)))
      throw new Error(`--${flag} must be ${whole ? "an integer" : "a number"} ≥ ${min}\n${USAGE}`);
    numbers[key] = value;
  }
  const rows = values.rows?.split(",").map((id) => id.trim());
  const named = values.apis?.split(",").map((api) => api.trim()) ?? [];
  const unknownApis = named.filter((api) => !(APIS as readonly string[]).includes(api));
  if (unknownApis.length > 0) throw new Error(`unknown APIs ${unknownApis.join(", ")}\n${USAGE}`);
  const apis = APIS.filter((api) => api === "chat" || named.includes(api));
  return { ...numbers, pin: !values["no-pin"], rows, apis, quick, json: values.json };
}
