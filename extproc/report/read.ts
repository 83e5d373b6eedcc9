/**
 * Reading audit files for a report (a month of a busy site is millions of lines): cut into byte ranges read
 * on worker threads, each line parsed once and its hash chain checked inside its range by the audit module's
 * {@link ChainVerifier}; the main thread joins the ranges' chains in order (the seams, and each file
 * continuing the one before) and adds up their sums.
 */
import { statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { ChainVerifier, type ChainBreak } from "../audit/index.js";
import { Aggregator, type GroupTotals, type Totals } from "./aggregate.js";
import type { Dimension } from "./period.js";
import { readRange, type RangeResult, type RangeTask } from "./range.js";

/** What the report says about the hash chain of the files it read. */
export interface Integrity {
  /** True when every line read belongs to one intact chain across the files, in the order given. */
  readonly intact: boolean;
  /** Chained records read and verified (all of them, those outside the period included). */
  readonly records: number;
  readonly files: readonly { readonly path: string; readonly lines: number }[];
  /** Lines cut short by a crash that the next record chains to (accepted, as `audit verify` does). */
  readonly torn_lines: readonly { readonly file: string; readonly line: number }[];
  /** The first break: the records after it are still reported, but the chain no longer vouches for them. */
  readonly broken: { readonly file: string; readonly line: number; readonly problem: string } | null;
}

/** The whole report: the JSON format prints it as is (docs/reports.md documents the schema). */
export interface Report {
  readonly schema: "llm-gateway.report/1";
  /** Start of the period (inclusive), ISO UTC; null: from the first record. */
  readonly from: string | null;
  /** End of the period (exclusive), ISO UTC; null: to the last record. */
  readonly to: string | null;
  readonly by: readonly Dimension[];
  /** The policy's currency, as the records' costs carry it; null when no record had a cost. */
  readonly currency: string | null;
  readonly integrity: Integrity;
  readonly groups: readonly GroupTotals[];
  readonly total: Totals;
  /** Every UTC day from the first record in the period to the last. */
  readonly days: readonly string[];
}

/** What to report. */
export interface ReportOptions {
  readonly by: readonly Dimension[];
  readonly from?: string;
  readonly to?: string;
  /** Worker threads reading ranges; 1 reads them in this thread. Default: `os.availableParallelism()`. */
  readonly jobs?: number;
  /** Bytes per range (lines are whole: each belongs to the range it starts in). Default 32 MiB. */
  readonly rangeBytes?: number;
}

const RANGE_BYTES = 32 << 20;

/** Costs in more than one currency (the policy's currency changed): a report adds up one. */
export class MixedCurrencyError extends Error {}

/**
 * Reads `files` (rotated files oldest first: each must continue the previous one's chain) and adds up the
 * records in the period. Never holds a file whole: each reader holds one buffer, the main thread the sums
 * of the ranges read ahead of one still being read.
 */
export async function buildReport(files: readonly string[], options: ReportOptions): Promise<Report> {
  const verifier = new ChainVerifier();
  const aggregator = new Aggregator(options.by, options.from, options.to);
  const { by, from, to } = options;
  const rangeBytes = options.rangeBytes ?? RANGE_BYTES;
  const tasks: RangeTask[] = [];
  // Where each file starts among the lines the verifier counts, to name a line as file:line.
  const starts: { path: string; first: number }[] = [];
  const firstTask = new Map<number, number>();
  files.forEach((file, index) => {
    firstTask.set(tasks.length, index);
    const size = statSync(file).size;
    for (let start = 0; start < size || start === 0; start += rangeBytes)
      tasks.push({ file, start, end: Math.min(size, start + rangeBytes), by, from, to });
  });
  // Ranges are joined in file order, whatever order they finish in.
  await readRanges(tasks, options.jobs ?? availableParallelism(), (index, result) => {
    const file = firstTask.get(index);
    if (file !== undefined) starts.push({ path: files[file]!, first: verifier.lines + 1 });
    verifier.absorb(result.chain);
    aggregator.merge(result.sums);
  });
  if (aggregator.currencies.size > 1)
    throw new MixedCurrencyError(
      `costs are in ${[...aggregator.currencies].sort().join(" and ")}: report each currency's period separately (--from/--to)`,
    );
  const verdict = verifier.end();
  const at = (line: number) => {
    const index = starts.findLastIndex((s) => s.first <= line);
    return { index, file: starts[index]!.path, line: line - starts[index]!.first + 1 };
  };
  const fileLines = starts.map((s, i) => ({
    path: s.path,
    lines: (starts[i + 1]?.first ?? verifier.lines + 1) - s.first,
  }));
  const { groups, total, days } = aggregator.result();
  return {
    schema: "llm-gateway.report/1",
    from: options.from ?? null,
    to: options.to ?? null,
    by: options.by,
    currency: [...aggregator.currencies][0] ?? null,
    integrity: {
      intact: verdict.ok,
      records: verdict.records,
      files: fileLines,
      torn_lines: verdict.ok
        ? verdict.tornLines.map((line) => ({ file: at(line).file, line: at(line).line }))
        : [],
      broken: verdict.ok ? null : describeBreak(verdict, at(verdict.line), starts),
    },
    groups,
    total,
    days,
  };
}

/** The break at its file and line; at a file's first line, it is the file that does not continue the chain. */
function describeBreak(
  verdict: ChainBreak,
  where: { index: number; file: string; line: number },
  starts: readonly { path: string }[],
): NonNullable<Integrity["broken"]> {
  const previous = starts[where.index - 1];
  const problem =
    where.line === 1 && previous
      ? `${verdict.problem}; ${where.file} does not continue the chain of ${previous.path} (files out of order, or one missing?)`
      : verdict.problem;
  return { file: where.file, line: where.line, problem };
}

/** Reads `tasks` on `jobs` readers; `join` sees every result in task order. */
async function readRanges(
  tasks: readonly RangeTask[],
  jobs: number,
  join: (index: number, result: RangeResult) => void,
): Promise<void> {
  if (jobs <= 1 || tasks.length <= 1) {
    tasks.forEach((task, index) => join(index, readRange(task)));
    return;
  }
  const done = new Map<number, RangeResult>();
  let joined = 0;
  let next = 0;
  const workers = Array.from(
    { length: Math.min(jobs, tasks.length) },
    () => new Worker(new URL("./worker.js", import.meta.url)),
  );
  try {
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            let current = -1;
            const send = () => {
              if (next >= tasks.length) return resolve();
              current = next++;
              worker.postMessage(tasks[current]);
            };
            worker.on("message", (result: RangeResult) => {
              done.set(current, result);
              for (let ready = done.get(joined); ready; ready = done.get(joined)) {
                done.delete(joined);
                join(joined++, ready);
              }
              send();
            });
            worker.on("error", reject);
            worker.on("exit", (code) => reject(new Error(`report worker exited with code ${code}`)));
            send();
          }),
      ),
    );
  } finally {
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}
