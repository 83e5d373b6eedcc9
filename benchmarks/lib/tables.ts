/** Number formatting and plain-text tables for the benchmark's human-readable report. */

/** `n` with `digits` decimals and thousands separators; "n/a" when it is not a finite number. */
export const fmt = (n: number, digits = 2): string =>
  Number.isFinite(n)
    ? n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits })
    : "n/a";

/** {@link fmt} with a sign, for differences. */
export const signed = (n: number, digits = 2): string => (n >= 0 ? `+${fmt(n, digits)}` : fmt(n, digits));

/** `a / b` as "×1.23"; "n/a" when either is missing or not finite. */
export const ratio = (a: number | undefined, b: number | undefined): string =>
  a === undefined || b === undefined || !Number.isFinite(a / b) ? "n/a" : `×${fmt(a / b)}`;

/** Text table, indented by two spaces: first column left-aligned, the others right-aligned. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
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
