/**
 * Reading audit files for a report: streamed line by line (a month of a busy site is millions of lines),
 * each line parsed once and its hash chain checked by the audit module's {@link ChainVerifier} on the way.
 */
import { ChainVerifier, forEachLine, type ChainBreak } from "../audit/index.js";
import { Aggregator, type GroupTotals, type Totals } from "./aggregate.js";
import type { Dimension } from "./period.js";

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
}

/** Costs in more than one currency (the policy's currency changed): a report adds up one. */
export class MixedCurrencyError extends Error {}

/**
 * Reads `files` (rotated files oldest first: each must continue the previous one's chain) and adds up the
 * records in the period. Never holds a file whole.
 */
export async function buildReport(files: readonly string[], options: ReportOptions): Promise<Report> {
  const verifier = new ChainVerifier();
  const aggregator = new Aggregator(options.by, options.from, options.to);
  // Where each file starts among the lines the verifier counts, to name a line as file:line.
  const starts: { path: string; first: number }[] = [];
  for (const path of files) {
    starts.push({ path, first: verifier.lines + 1 });
    await forEachLine(path, (line) => {
      const record = verifier.check(line);
      if (record) aggregator.add(record);
    });
  }
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
