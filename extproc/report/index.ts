/**
 * Chargeback and show-back from the audit trail (`llm-gateway report`): requests, tokens, cost at the
 * prices each request ran under, and refusals by reason, per group and day, over rotated audit files whose
 * hash chain is verified while they are read. docs/reports.md is the reference.
 */
export { formatMicros, type GroupTotals, type Totals } from "./aggregate.js";
export { formatHtml } from "./html.js";
export { buildReport, MixedCurrencyError, type Integrity, type Report, type ReportOptions } from "./read.js";
export { DIMENSIONS, parseDimensions, parseInstant, ReportUsageError, type Dimension } from "./period.js";
export { formatCsv, formatTable, integrityLine } from "./text.js";

import { formatHtml } from "./html.js";
import type { Report } from "./read.js";
import { formatCsv, formatTable } from "./text.js";

/** The output formats, by `--format` name. */
export const FORMATS = {
  table: formatTable,
  csv: formatCsv,
  json: (report: Report): string => `${JSON.stringify(report, null, 2)}\n`,
  html: formatHtml,
} as const;

/** One `--format` name. */
export type Format = keyof typeof FORMATS;
