/**
 * The report's period and grouping, from the command line: `--from`/`--to` as UTC instants, `--by` as
 * dimensions.
 */

/** What a report can group by, and the audit field each one reads. */
export const DIMENSIONS = {
  team: "team",
  key: "key_id",
  model: "served_model",
  environment: "environment",
  api: "api",
} as const;

/** One grouping dimension (see {@link DIMENSIONS}). */
export type Dimension = keyof typeof DIMENSIONS;

/** A flag's value the report cannot use; the CLI prints the message (exit 2). */
export class ReportUsageError extends Error {}

// A date, or a date and time (minutes, optional seconds and fraction), with an optional offset (none: UTC).
const INSTANT = /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)(Z|[+-]\d{2}:\d{2})?)?$/;

/**
 * An ISO 8601 date (`2026-11-01`: midnight UTC) or date-time (`2026-11-01T08:00`, `…Z`, `…+01:00`; without an
 * offset, UTC) as the ISO string audit records use for `time`, so a record's time compares to it as a string.
 */
export function parseInstant(text: string, flag: string): string {
  const match = INSTANT.exec(text);
  if (!match)
    throw new ReportUsageError(
      `${flag} ${text}: expected an ISO date (2026-11-01) or date-time (2026-11-01T08:00Z)`,
    );
  const [, date, time, offset] = match;
  const ms = Date.parse(time ? `${date}T${time}${offset ?? "Z"}` : `${date}T00:00Z`);
  // Date.parse rolls 2026-02-30 over to March; the round trip catches it.
  if (Number.isNaN(ms) || (!time && new Date(ms).toISOString().slice(0, 10) !== date))
    throw new ReportUsageError(`${flag} ${text}: not a valid date`);
  const year = new Date(ms).getUTCFullYear();
  if (year < 1970 || year > 9999) throw new ReportUsageError(`${flag} ${text}: out of range`);
  return new Date(ms).toISOString();
}

/** `--by team,model`: the dimensions in the order given, each once. */
export function parseDimensions(text: string): Dimension[] {
  const names = text.split(",").map((name) => name.trim());
  const known = Object.keys(DIMENSIONS);
  for (const name of names) {
    if (!known.includes(name))
      throw new ReportUsageError(`--by ${text}: "${name}" is not one of ${known.join(", ")}`);
  }
  if (new Set(names).size !== names.length)
    throw new ReportUsageError(`--by ${text}: a dimension is named twice`);
  return names as Dimension[];
}
