/**
 * What the measurements mean: latency one row adds over another, the bars our gateway is held to
 * (benchmarks/README.md, "The bars") and whatever makes a row's numbers suspect.
 */
import type { Distribution } from "./load-generator.js";
import type { Measurement } from "./measure.js";
import { MODE_LABELS, MODES, modeSpec, type Mode } from "./request.js";
import { fmt, signed } from "./tables.js";

/** The bars extproc is held to. */
export const BARS = { addedP50Ms: 1, addedP99Ms: 3, requestsPerS: 2000 } as const;

/** Every row's measurement, by row id. */
export type Runs = Readonly<Record<string, Measurement>>;

/** Every row's latency measurements, by mode: the modes of the APIs measured (a row not serving one is absent). */
export type Latency = Readonly<Partial<Record<Mode, Runs>>>;

/** The latency one row adds over another for one metric. */
export interface Added {
  readonly metric: string;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p50Ratio: number;
  readonly p99Ratio: number;
}

/**
 * The latency metrics "added" compares, in mode order (chat's three first: non-streaming, streamed first
 * byte, streamed last byte): (label, mode, last byte or first byte).
 */
const ADDED_METRICS = MODES.flatMap((mode): Array<readonly [string, Mode, "latencyMs" | "ttfbMs"]> =>
  modeSpec(mode).stream
    ? [
        [`${MODE_LABELS[mode]}, first byte`, mode, "ttfbMs"],
        [`${MODE_LABELS[mode]}, last byte`, mode, "latencyMs"],
      ]
    : [[MODE_LABELS[mode], mode, "latencyMs"]],
);

function added(metric: string, from: Distribution, to: Distribution): Added {
  return {
    metric,
    p50Ms: to.p50 - from.p50,
    p99Ms: to.p99 - from.p99,
    p50Ratio: to.p50 / from.p50,
    p99Ratio: to.p99 / from.p99,
  };
}

/** Row `to` minus row `from` for each metric both were measured in. */
export function addedRows(latency: Latency, from: string, to: string): Added[] {
  return ADDED_METRICS.flatMap(([metric, mode, field]) => {
    const [a, b] = [latency[mode]?.[from], latency[mode]?.[to]];
    return a && b ? [added(metric, a[field], b[field])] : [];
  });
}

/** One bar's verdict. */
export interface Verdict {
  readonly bar: string;
  readonly pass: boolean;
  readonly measured: string;
}

/** The latency bar at `which` for `ours` over `baseline`; failed requests on either row fail it. */
export function latencyVerdict(
  which: "p50" | "p99",
  latency: Latency,
  baseline: string,
  ours: string,
): Verdict {
  const limit = which === "p50" ? BARS.addedP50Ms : BARS.addedP99Ms;
  const value = (a: Added): number => (which === "p50" ? a.p50Ms : a.p99Ms);
  const worst = addedRows(latency, baseline, ours).reduce((w, a) => (value(a) > value(w) ? a : w));
  const errors = MODES.flatMap((m) => [baseline, ours].map((id) => latency[m]?.[id]?.errors ?? 0)).reduce(
    (a, b) => a + b,
    0,
  );
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

/** The throughput bar on `run` (our row at saturation), with what extproc's CPU says about it. */
export function throughputVerdict(run: Measurement, proxyCpu: string | undefined): Verdict {
  const extproc = run.cpu?.processes.find((p) => p.label === "extproc");
  const parts = [`${fmt(run.requestsPerS, 0)} req/s measured`];
  if (run.errors > 0) parts.push(`${run.errors} requests failed`);
  if (extproc) {
    parts.push(`extproc ${fmt(extproc.percentOfCore, 0)}% of a core`);
    // Requests one fully busy core could serve at the measured CPU cost: an estimate, not the verdict.
    parts.push(
      `CPU cost ${fmt(extproc.usPerRequest, 0)} µs/request ≈ ${fmt(1e6 / extproc.usPerRequest, 0)} req/s per core`,
    );
    const ownCpu = run.cpu?.cpus.find((c) => String(c.cpu) === proxyCpu);
    if (ownCpu) parts.push(`CPU ${ownCpu.cpu} (Envoy and extproc) ${fmt(ownCpu.busyPercent, 0)}% busy`);
  }
  return {
    bar: `one extproc sustains ≥ ${BARS.requestsPerS} req/s`,
    pass: run.requestsPerS >= BARS.requestsPerS && run.errors === 0,
    measured: parts.join("; "),
  };
}

/** Whatever makes a row's numbers suspect, in words: failed requests and a broken link to extproc. */
export function notes(
  latency: Latency,
  saturation: Runs,
  labels: Readonly<Record<string, string>>,
): string[] {
  const rows: Array<[string, Measurement, boolean]> = [
    ...MODES.flatMap((mode) =>
      Object.entries(latency[mode] ?? {}).map(([id, m]): [string, Measurement, boolean] => [
        `latency, ${MODE_LABELS[mode]}, ${labels[id]}`,
        m,
        true,
      ]),
    ),
    ...Object.entries(saturation).map(([id, m]): [string, Measurement, boolean] => [
      `saturation, ${labels[id]}`,
      m,
      false,
    ]),
  ];
  return rows.flatMap(([name, m, isLatency]) => {
    const found: string[] = [];
    if (m.errors > 0) found.push(`${name}: ${m.errors} failed requests (first: ${m.firstError})`);
    const link = m.extprocLink;
    if (link && (link.streamsFailed > 0 || link.goaways > 0))
      found.push(
        `${name}: Envoy saw ${link.streamsFailed} failed ext_proc streams and ${link.goaways} GOAWAYs from extproc,` +
          ` after resetting ${link.streamResets} ext_proc streams itself (README: "Known limits", the ext_proc link)`,
      );
    const handler = m.extprocHandler;
    if (handler && handler.quotaRejections > 0)
      found.push(`${name}: ${handler.quotaRejections} requests were refused by a limit (quota rejections)`);
    if (handler && handler.quotaStoreErrors > 0)
      found.push(
        `${name}: ${handler.quotaStoreErrors} quota store calls failed (llm_gateway_quota_store_errors_total)`,
      );
    // A latency row is a request count; only a hung or very slow proxy hits its time limit.
    if (isLatency && m.stoppedBy === "time")
      found.push(`${name}: stopped by the time limit after ${m.ok + m.errors} requests`);
    return found;
  });
}
