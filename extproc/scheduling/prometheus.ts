/**
 * A strict reader of the Prometheus text exposition format (version 0.0.4, as vLLM, SGLang and TGI print it),
 * for just what the scheduler needs: the samples of a few named metrics. Lines of other metrics are skipped
 * after a look at their name; a line of a wanted metric that does not parse fails the whole read (a model
 * server answering garbage is unknown, never half-read).
 */

/** A wanted metric's samples: how many series, their sum and their maximum. */
export interface MetricSamples {
  readonly series: number;
  readonly sum: number;
  readonly max: number;
}

/** Raised for text that is not Prometheus exposition where a wanted metric is. */
export class ExpositionError extends Error {}

/** Characters a metric name may contain after its first (`[a-zA-Z_:][a-zA-Z0-9_:]*`). */
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * The samples of each metric in `wanted` found in `text` (a name with no sample is absent from the map).
 * Labels are checked for syntax and otherwise ignored: several series (vLLM's engines under data
 * parallelism) are summed and their maximum kept.
 */
export function readMetrics(text: string, wanted: ReadonlySet<string>): Map<string, MetricSamples> {
  const found = new Map<string, MetricSamples>();
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const line = text.charCodeAt(end - 1) === 13 ? text.slice(start, end - 1) : text.slice(start, end);
    start = end + 1;
    if (line.length === 0 || line.charCodeAt(0) === 35 /* # */) continue;
    const nameEnd = nameLength(line);
    const name = line.slice(0, nameEnd);
    if (!wanted.has(name)) continue;
    if (!NAME.test(name)) throw new ExpositionError(`bad metric name in: ${line}`);
    const value = sampleValue(line, nameEnd);
    const previous = found.get(name);
    found.set(
      name,
      previous
        ? { series: previous.series + 1, sum: previous.sum + value, max: Math.max(previous.max, value) }
        : { series: 1, sum: value, max: value },
    );
  }
  return found;
}

/** Length of the metric name at the start of a sample line (up to `{`, space or tab). */
function nameLength(line: string): number {
  for (let i = 0; i < line.length; i++) {
    const c = line.charCodeAt(i);
    if (c === 123 /* { */ || c === 32 || c === 9) return i;
  }
  return line.length;
}

/** The value of a sample line whose name ends at `at`: labels skipped (checked), then value, then optional timestamp. */
function sampleValue(line: string, at: number): number {
  let i = at;
  if (line.charCodeAt(i) === 123) i = skipLabels(line, i + 1);
  const rest = line
    .slice(i)
    .trim()
    .split(/[ \t]+/);
  if (rest.length < 1 || rest.length > 2 || rest[0] === "")
    throw new ExpositionError(`bad sample line: ${line}`);
  const value = parseValue(rest[0]!);
  if (rest.length === 2 && !/^-?\d+$/.test(rest[1]!)) throw new ExpositionError(`bad timestamp in: ${line}`);
  if (Number.isNaN(value)) throw new ExpositionError(`value is NaN in: ${line}`);
  return value;
}

/** Index just after the `}` closing a label set that opened before `i`. */
function skipLabels(line: string, i: number): number {
  for (;;) {
    while (line.charCodeAt(i) === 32) i++;
    if (line.charCodeAt(i) === 125 /* } */) return i + 1;
    const eq = line.indexOf("=", i);
    if (eq < 0 || !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(line.slice(i, eq).trim()))
      throw new ExpositionError(`bad label name in: ${line}`);
    i = eq + 1;
    if (line.charCodeAt(i) !== 34 /* " */) throw new ExpositionError(`unquoted label value in: ${line}`);
    i++;
    for (;;) {
      const c = line.charCodeAt(i);
      if (Number.isNaN(c)) throw new ExpositionError(`unterminated label value in: ${line}`);
      if (c === 92 /* \ */) i += 2;
      else if (c === 34) break;
      else i++;
    }
    i++;
    while (line.charCodeAt(i) === 32) i++;
    if (line.charCodeAt(i) === 44 /* , */) i++;
    else if (line.charCodeAt(i) !== 125) throw new ExpositionError(`bad label set in: ${line}`);
  }
}

/** A sample value: a Go-style float (`1.5e+09`, `+Inf`, `-Inf`, `NaN`). */
function parseValue(text: string): number {
  if (text === "+Inf" || text === "Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  if (text === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new ExpositionError(`bad value ${text}`);
  return Number(text);
}
