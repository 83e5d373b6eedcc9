/**
 * The gateway benchmark's result: what one run found ({@link Report}, printed as JSON with --json) and its
 * human-readable tables.
 */
import type { Added, Latency, Runs, Verdict } from "./judge.js";
import type { Measurement } from "./measure.js";
import type { Options } from "./options.js";
import type { Placement } from "./placement.js";
import {
  ANSWER_TOKENS,
  MODE_LABELS,
  MODEL,
  MODES,
  modeSpec,
  requestPath,
  TRANSLATED_MODEL,
  type Api,
  type Mode,
} from "./request.js";
import { fmt, ratio, signed, table } from "./tables.js";

/** A row as the report names it. */
export interface RowInfo {
  readonly id: string;
  readonly label: string;
  readonly description: string;
}

/** Everything one run found. */
export interface Report {
  readonly environment: Readonly<Record<string, string | number>>;
  readonly options: Options;
  readonly placement: Placement;
  /** The rows measured, in order; the first two ids named below are among them. */
  readonly rows: readonly RowInfo[];
  /** The row "added" is measured from (envoy alone), and our core row (the ratios' denominator). */
  readonly baseline: string;
  readonly ours: string;
  /** Rows not run, or (`api` set) not run in that API's modes, with why and how to make them run. */
  readonly skipped: ReadonlyArray<{
    readonly id: string;
    readonly label: string;
    readonly api?: Api;
    readonly why: string;
  }>;
  readonly latency: Latency;
  readonly saturation: Runs;
  /** Latency each row adds over the baseline, by row id (baseline excluded). */
  readonly added: Readonly<Record<string, readonly Added[]>>;
  readonly verdicts: readonly Verdict[];
  readonly notes: readonly string[];
}

const okErr = (m: Measurement): string[] => [String(m.ok), String(m.errors)];
const MB = 1024 * 1024;

/** CPU µs per request of one process (label) in `m`, if accounted. */
const usOf = (m: Measurement | undefined, label: string): number | undefined =>
  m?.cpu?.processes.find((p) => p.label === label)?.usPerRequest;

/** The labels of a row's proxy processes: those with an RSS reading at saturation. */
const proxyLabels = (r: Report, id: string): string[] => Object.keys(r.saturation[id]?.rssBytes ?? {});

/** Sum of `value` over a row's proxy processes; undefined if any is missing or the row has none. */
function proxySum(r: Report, id: string, value: (label: string) => number | undefined): number | undefined {
  const labels = proxyLabels(r, id);
  if (labels.length === 0) return undefined;
  let sum = 0;
  for (const label of labels) {
    const v = value(label);
    if (v === undefined) return undefined;
    sum += v;
  }
  return sum;
}

const proxyCpu = (r: Report, m: Measurement | undefined, id: string): number | undefined =>
  proxySum(r, id, (label) => usOf(m, label));
const proxyRss = (r: Report, id: string): number | undefined =>
  proxySum(r, id, (label) => r.saturation[id]?.rssBytes[label]);

/** The modes measured in this run, in table order. */
const measuredModes = (r: Report): Mode[] => MODES.filter((mode) => r.latency[mode]);

/** One mode's latency table, with its title: the rows measured in it. */
function modeTable(r: Report, mode: Mode): string[] {
  const runs = r.latency[mode]!;
  const { stream, translated } = modeSpec(mode);
  const target = translated
    ? `model ${TRANSLATED_MODEL} (pool-b: translated to chat completions by the gateway)`
    : `model ${MODEL}`;
  const title = stream
    ? `${MODE_LABELS[mode]}, POST ${requestPath(mode)}, ${target}: ${ANSWER_TOKENS}-token answers as SSE, no token delay (ms to first and to last body byte)`
    : `${MODE_LABELS[mode]}, POST ${requestPath(mode)}, ${target} (request start to last byte, ms)`;
  const rows = r.rows.flatMap(({ id, label }) => {
    const m = runs[id];
    if (!m) return [];
    const first = stream ? [fmt(m.ttfbMs.p50), fmt(m.ttfbMs.p99)] : [];
    return [
      [label, ...okErr(m), ...first, fmt(m.latencyMs.p50), fmt(m.latencyMs.p99), fmt(m.requestsPerS, 0)],
    ];
  });
  const heads = stream
    ? ["", "ok", "err", "first byte p50", "p99", "last byte p50", "p99", "req/s"]
    : ["", "ok", "err", "p50 ms", "p99 ms", "req/s"];
  return [title, table(heads, rows), ""];
}

function latencyTables(r: Report): string[] {
  const o = r.options;
  return [
    `Latency: concurrency ${o.concurrency}, ${o.warmup} warm-up + ${o.requests} requests per row and mode (at most ${o.durationS} s)`,
    ...measuredModes(r).flatMap((mode) => modeTable(r, mode)),
  ];
}

function addedTable(r: Report): string {
  const rows = r.rows
    .filter(({ id }) => id !== r.baseline)
    .flatMap(({ id, label }) =>
      (r.added[id] ?? []).map((a) => [
        `${label}, ${a.metric}`,
        `${signed(a.p50Ms)} ms`,
        `×${fmt(a.p50Ratio)}`,
        `${signed(a.p99Ms)} ms`,
        `×${fmt(a.p99Ratio)}`,
      ]),
    );
  return table(["", "p50 added", "p50 ratio", "p99 added", "p99 ratio"], rows);
}

function saturationTable(r: Report): string {
  const cpuHeads = r.placement.cpus.map((c) => `CPU${c} busy`);
  return table(
    ["", "ok", "err", "p50 ms", "p99 ms", "req/s", ...cpuHeads],
    r.rows.map(({ id, label }) => {
      const m = r.saturation[id]!;
      const busy = r.placement.cpus.map((c) => {
        const b = m.cpu?.cpus.find((x) => x.cpu === c);
        return b ? `${fmt(b.busyPercent, 0)}%` : "n/a";
      });
      return [
        label,
        ...okErr(m),
        fmt(m.latencyMs.p50),
        fmt(m.latencyMs.p99),
        fmt(m.requestsPerS, 0),
        ...busy,
      ];
    }),
  );
}

/** One line per proxy process of every row: CPU per request in each phase and RSS at saturation. */
function proxyTable(r: Report): string {
  const n = (v: number | undefined, digits = 0): string => (v === undefined ? "n/a" : fmt(v, digits));
  const rows = r.rows.flatMap(({ id, label }) => {
    const labels = proxyLabels(r, id);
    const sat = r.saturation[id];
    const line = (
      name: string,
      cpu: (m: Measurement | undefined) => number | undefined,
      rss: number | undefined,
    ) => {
      const share = sat?.cpu?.processes.find((p) => p.label === name)?.percentOfCore;
      return [
        name === "" ? label : `${label}: ${name}`,
        n(cpu(r.latency.chat?.[id])),
        n(cpu(r.latency["chat-stream"]?.[id])),
        n(cpu(sat)),
        share === undefined ? "" : `${fmt(share, 0)}%`,
        rss === undefined ? "n/a" : fmt(rss / MB, 0),
      ];
    };
    const own = labels.map((name) => line(name, (m) => usOf(m, name), sat?.rssBytes[name]));
    if (labels.length < 2) return own;
    return [...own, line("", (m) => proxyCpu(r, m, id), proxyRss(r, id))];
  });
  return table(
    ["", "non-streaming µs/req", "streamed µs/req", "saturation µs/req", "of a core", "RSS MB"],
    rows,
  );
}

/** Envoy's own CPU per request in every row that has an Envoy, against Envoy alone. */
function envoyLines(r: Report): string[] {
  const base = (mode: Mode): number | undefined => usOf(r.latency[mode]?.[r.baseline], "envoy");
  return r.rows.flatMap(({ id, label }) => {
    if (!proxyLabels(r, id).includes("envoy")) return [];
    const parts = measuredModes(r).flatMap((mode) => {
      if (!r.latency[mode]?.[id]) return [];
      const us = usOf(r.latency[mode]?.[id], "envoy");
      const rel = id === r.baseline ? "" : ` (${ratio(us, base(mode))})`;
      return `${MODE_LABELS[mode]} ${us === undefined ? "n/a" : fmt(us, 0)} µs${rel}`;
    });
    return [`  ${label}: ${parts.join(", ")}`];
  });
}

/** Every row next to our core row: latency added, proxy CPU, throughput and memory, as ratios. */
function sideBySide(r: Report): string {
  const ours = r.ours;
  // Indexes into a row's added metrics (judge.ts): 0 non-streaming, 2 streamed last byte.
  const addedP50 = (id: string, metric: number): number | undefined => r.added[id]?.[metric]?.p50Ms;
  const cells = (id: string): string[] => [
    ratio(addedP50(id, 0), addedP50(ours, 0)),
    ratio(addedP50(id, 2), addedP50(ours, 2)),
    ratio(proxyCpu(r, r.latency.chat?.[id], id), proxyCpu(r, r.latency.chat?.[ours], ours)),
    ratio(
      proxyCpu(r, r.latency["chat-stream"]?.[id], id),
      proxyCpu(r, r.latency["chat-stream"]?.[ours], ours),
    ),
    ratio(r.saturation[id]?.requestsPerS, r.saturation[ours]?.requestsPerS),
    ratio(proxyRss(r, id), proxyRss(r, ours)),
  ];
  return table(
    [
      "",
      "added p50 non-streaming",
      "added p50 streamed",
      "proxy CPU non-streaming",
      "proxy CPU streamed",
      "saturation req/s",
      "RSS",
    ],
    r.rows
      .filter(({ id }) => id !== r.baseline && id !== ours && proxyLabels(r, id).length > 0)
      .map(({ id, label }) => [label, ...cells(id)]),
  );
}

/** Mean time inside extproc's handlers per request in the latency phase, for the rows with extproc. */
function handlerLines(r: Report): string[] {
  return r.rows.flatMap(({ id, label }) => {
    const parts = measuredModes(r).flatMap((mode) => {
      const h = r.latency[mode]?.[id]?.extprocHandler;
      return h
        ? [`${MODE_LABELS[mode]} ${fmt(h.usPerRequest, 0)} µs over ${fmt(h.messagesPerRequest, 1)} messages`]
        : [];
    });
    const pii = measuredModes(r).reduce(
      (sum, mode) => sum + (r.latency[mode]?.[id]?.extprocHandler?.piiDetections ?? 0),
      0,
    );
    return parts.length > 0
      ? [`  ${label}: ${parts.join(", ")}; PII found in measured requests: ${pii}`]
      : [];
  });
}

/** The report as text. */
export function humanReport(r: Report): string {
  const env = r.environment;
  const o = r.options;
  const baseline = r.rows.find((x) => x.id === r.baseline)!.label;
  const ours = r.rows.find((x) => x.id === r.ours)!.label;
  return [
    `Gateway benchmark: Envoy ${env.envoy}, Node ${env.node}, ${env.cpus} × ${env.cpuModel}, load average ${env.loadAverage} at start${o.quick ? " (quick run: too few requests to mean much)" : ""}`,
    `Placement: ${r.placement.description}`,
    "Rows (one demo model server behind every row):",
    ...r.rows.map((x) => `  ${x.label}: ${x.description}`),
    ...(r.skipped.length > 0
      ? ["Skipped:", ...r.skipped.map((s) => `  ${s.label}${s.api ? ` (${s.api})` : ""}: ${s.why}`)]
      : []),
    "",
    ...latencyTables(r),
    `Added over ${baseline} (row minus ${baseline}; ratio = row / ${baseline})`,
    addedTable(r),
    "",
    `Saturation: non-streaming, ${o.saturationConcurrency} concurrent, ${o.warmup} warm-up + ${o.saturationDurationS} s per row (at most ${o.saturationRequests} requests)`,
    saturationTable(r),
    "",
    "Proxy CPU per request (user + system time from /proc, latency and saturation phases) and RSS at the end of saturation",
    proxyTable(r),
    `Envoy's own CPU per request in the latency phase (ratio to ${baseline})`,
    ...envoyLines(r),
    "",
    `Side by side, measured in this run (ratio = row / ${ours}; added latency is over ${baseline}, proxy CPU and RSS are all of a row's proxy processes)`,
    sideBySide(r),
    "",
    "Time inside extproc's handlers per request, latency phase (the rest of extproc's CPU is gRPC, HTTP/2, protobuf, GC and audit logging)",
    ...handlerLines(r),
    "",
    `Bars (judged on ${baseline} and ${ours})`,
    ...r.verdicts.map((v) => `  ${v.pass ? "PASS" : "FAIL"}  ${v.bar}: ${v.measured}`),
    ...(r.notes.length > 0 ? ["", "Notes", ...r.notes.map((n) => `  ${n}`)] : []),
    "",
  ].join("\n");
}
