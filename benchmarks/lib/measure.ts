/**
 * Measures one row in one mode: runs the load generator against the row's URL and accounts, for exactly
 * the measured window, the CPU time of every process involved (from /proc), the busy time of every CPU,
 * the proxies' resident memory at its end and, for extproc rows, extproc's and Envoy's own counters.
 */
import { performance } from "node:perf_hooks";
import {
  envoyCounters,
  extprocLink,
  handlerUse,
  scrapeExtproc,
  type ExtprocEndpoints,
  type ExtprocLink,
  type HandlerTotals,
  type HandlerUse,
} from "./extproc-metrics.js";
import { runGenerator, type LoadResult, type LoadSpec } from "./load-generator.js";
import { cpuTicks, treeCpuSeconds, treeResidentBytes } from "./process-cpu.js";
import { requestBody, requestHeaders, requestPath, streamEnd, type Mode } from "./request.js";

/** A process (and its descendants) whose CPU time is accounted during a measurement. */
export interface Tracked {
  readonly label: string;
  readonly pid: number;
}

/** Where a row sends its requests and which of its processes are the proxy. */
export interface Target {
  /** Scheme, host and port; each mode's request goes to its API's path there. */
  readonly origin: string;
  /** Headers the row adds to a mode's request (e.g. the routing header Envoy alone needs); none if absent. */
  readonly headers?: (mode: Mode) => Readonly<Record<string, string>>;
  /** The row's proxy processes (pinned to the proxies' CPU): CPU per request and RSS are theirs. */
  readonly proxies: readonly Tracked[];
  /** extproc rows: extproc's /metrics and Envoy's admin. */
  readonly extproc?: ExtprocEndpoints;
}

/** Requests in flight, and how many or for how long, in one phase. */
export interface Phase {
  readonly concurrency: number;
  readonly warmup: number;
  readonly requests: number;
  readonly durationS: number;
}

/** One process's CPU during a measured window. */
export interface ProcessUse {
  readonly label: string;
  readonly percentOfCore: number;
  readonly usPerRequest: number;
}

/** CPU used during a measured window, per process and per CPU. */
export interface CpuUse {
  readonly wallS: number;
  readonly processes: readonly ProcessUse[];
  /** Busy share of each CPU from /proc/stat: includes anything else running on the machine. */
  readonly cpus: ReadonlyArray<{ readonly cpu: number; readonly busyPercent: number }>;
}

/** One row's result in one mode and phase: the load result with what it cost. */
export interface Measurement extends LoadResult {
  readonly concurrency: number;
  readonly cpu: CpuUse | null;
  /** Each proxy process's resident memory at the end of the measured window, in bytes. */
  readonly rssBytes: Readonly<Record<string, number>>;
  readonly extprocHandler: HandlerUse | null;
  readonly extprocLink: ExtprocLink | null;
}

interface Snapshot {
  readonly atMs: number;
  readonly seconds: ReadonlyMap<string, number>;
  readonly ticks: ReturnType<typeof cpuTicks>;
}

function snapshot(tracked: readonly Tracked[]): Snapshot {
  const seconds = new Map<string, number>();
  for (const t of tracked) {
    const s = treeCpuSeconds(t.pid);
    if (s !== undefined) seconds.set(t.label, s);
  }
  return { atMs: performance.now(), seconds, ticks: cpuTicks() };
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

/** What {@link measure} needs besides the row: the processes off the proxies' CPU, and the CPUs to report. */
export interface MeasureContext {
  /** Processes accounted next to the proxies (the model server). */
  readonly others: readonly Tracked[];
  readonly cpus: readonly number[];
}

/** Runs `phase` of `mode` against `target` and accounts what it cost. */
export async function measure(
  target: Target,
  mode: Mode,
  phase: Phase,
  context: MeasureContext,
): Promise<Measurement> {
  const spec: LoadSpec = {
    url: `${target.origin}${requestPath(mode)}`,
    headers: { ...requestHeaders(mode), ...target.headers?.(mode) },
    body: requestBody(mode),
    streamEnd: streamEnd(mode),
    concurrency: phase.concurrency,
    warmup: phase.warmup,
    requests: phase.requests,
    durationMs: phase.durationS * 1000,
    timeoutMs: 30_000,
  };
  let tracked: Tracked[] = [];
  let before: Snapshot | undefined;
  let after: Snapshot | undefined;
  const rssBytes: Record<string, number> = {};
  let metricsBefore: Promise<HandlerTotals | undefined> | undefined;
  const endpoints = target.extproc;
  const linkBefore = endpoints ? await envoyCounters(endpoints.adminUrl) : undefined;
  const result = await runGenerator(
    spec,
    (pid) => {
      tracked = [
        ...target.proxies,
        ...context.others,
        { label: "load generator", pid },
        { label: "driver", pid: process.pid },
      ];
      before = snapshot(tracked);
      if (endpoints) metricsBefore = scrapeExtproc(endpoints.metricsUrl);
    },
    () => {
      after = snapshot(tracked);
      for (const proxy of target.proxies) {
        const rss = treeResidentBytes(proxy.pid);
        if (rss !== undefined) rssBytes[proxy.label] = rss;
      }
    },
  );
  const metricsAfter = endpoints ? await scrapeExtproc(endpoints.metricsUrl) : undefined;
  const linkAfter = endpoints ? await envoyCounters(endpoints.adminUrl) : undefined;
  return {
    ...result,
    concurrency: phase.concurrency,
    cpu: before && after ? cpuUse(before, after, result.ok, context.cpus) : null,
    rssBytes,
    extprocHandler: handlerUse(await metricsBefore, metricsAfter),
    extprocLink: extprocLink(linkBefore, linkAfter),
  };
}
