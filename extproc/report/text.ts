/** The report as aligned text (`--format table`) and as RFC 4180 CSV (`--format csv`). */
import type { Totals } from "./aggregate.js";
import type { Report } from "./read.js";

/** One line saying what the chain check found: the first thing the table shows, and the CLI's stderr line. */
export function integrityLine(report: Report): string {
  const { integrity } = report;
  const files = `${integrity.files.length} file${integrity.files.length === 1 ? "" : "s"}`;
  const torn =
    integrity.torn_lines.length > 0
      ? `; ${integrity.torn_lines.map((t) => `${t.file}:${t.line}`).join(", ")} cut short by a crash, the chain resumes after`
      : "";
  if (integrity.broken) {
    const { file, line, problem } = integrity.broken;
    return `AUDIT CHAIN BROKEN at ${file}:${line}: ${problem}. Verified ${integrity.records} records before it; the figures include records the chain no longer vouches for.`;
  }
  return `Audit chain verified: ${integrity.records} records in ${files}, hash chain intact${torn}.`;
}

/** The period in words: `2026-11-01 to 2026-12-01 (exclusive)`; a boundary that is not a midnight keeps its time. */
export function periodText(report: Report): string {
  const instant = (iso: string) => iso.replace("T00:00:00.000Z", "").replace(".000Z", "Z");
  const from = report.from ? instant(report.from) : "the first record";
  return `${from} to ${report.to ? `${instant(report.to)} (exclusive)` : "the last record"}`;
}

/** A dimension value for display. */
export const shown = (value: string | null | undefined): string => value ?? "(none)";

/** Every refusal and error reason in the report, each once, sorted, as `refused:CODE` / `error:REASON`. */
export function outcomeColumns(report: Report): string[] {
  const refused = Object.keys(report.total.refusals).map((r) => `refused:${r}`);
  const errors = Object.keys(report.total.errors).map((r) => `error:${r}`);
  return [...refused, ...errors];
}

const outcome = (totals: Totals, column: string): number => {
  const [kind, reason] = column.split(/:(.*)/s) as [string, string];
  return (kind === "refused" ? totals.refusals : totals.errors)[reason] ?? 0;
};

const sum = (record: Record<string, number>): number => Object.values(record).reduce((a, b) => a + b, 0);

/** Aligned columns: text left, numbers right. */
function aligned(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  numeric: (i: number) => boolean,
): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (numeric(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)];
}

/** `--format table`: the integrity line, the groups with a total row, then refusals and errors by reason. */
export function formatTable(report: Report): string {
  const currency = report.currency ?? "no cost";
  const header = [
    ...report.by,
    "requests",
    "input tokens",
    "output tokens",
    `cost (${currency})`,
    "unpriced",
    "refused",
    "errors",
  ];
  const cells = (totals: Totals): string[] => [
    String(totals.requests),
    String(totals.input_tokens),
    String(totals.output_tokens),
    totals.cost,
    String(totals.unpriced_requests),
    String(sum(totals.refusals)),
    String(sum(totals.errors)),
  ];
  const rows = report.groups.map((g) => [...report.by.map((d) => shown(g.group[d])), ...cells(g)]);
  const totalRow = [...report.by.map((_, i) => (i === 0 ? "TOTAL" : "")), ...cells(report.total)];
  const numeric = (i: number) => i >= report.by.length;
  const out = [
    integrityLine(report),
    `Period: ${periodText(report)}, UTC. Grouped by ${report.by.join(", ")}.`,
    "",
    ...aligned(header, [...rows, totalRow], numeric),
  ];
  const reasons: string[][] = [];
  for (const g of report.groups) {
    for (const column of outcomeColumns(report)) {
      const n = outcome(g, column);
      if (n > 0)
        reasons.push([
          ...report.by.map((d) => shown(g.group[d])),
          ...column.split(/:(.*)/s).slice(0, 2),
          String(n),
        ]);
    }
  }
  if (reasons.length > 0) {
    out.push("", "Refusals and errors by reason:", "");
    out.push(
      ...aligned([...report.by, "outcome", "reason", "requests"], reasons, (i) => i === report.by.length + 2),
    );
  }
  return `${out.join("\n")}\n`;
}

/**
 * `--format csv`: RFC 4180 (CRLF, quoted when needed), one row per group and a `total` row (`row` column),
 * a column per refusal and error reason. A cell that a spreadsheet would run as a formula is prefixed with `'`.
 */
export function formatCsv(report: Report): string {
  const reasons = outcomeColumns(report);
  const header = [
    "row",
    ...report.by,
    "requests",
    "input_tokens",
    "output_tokens",
    "cost",
    "currency",
    "unpriced_requests",
    ...reasons,
  ];
  const cells = (totals: Totals): string[] => [
    String(totals.requests),
    String(totals.input_tokens),
    String(totals.output_tokens),
    totals.cost,
    report.currency ?? "",
    String(totals.unpriced_requests),
    ...reasons.map((column) => String(outcome(totals, column))),
  ];
  const rows = [
    header,
    ...report.groups.map((g) => ["group", ...report.by.map((d) => g.group[d] ?? ""), ...cells(g)]),
    ["total", ...report.by.map(() => ""), ...cells(report.total)],
  ];
  return rows.map((row) => row.map(csvCell).join(",")).join("\r\n") + "\r\n";
}

function csvCell(value: string): string {
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}
