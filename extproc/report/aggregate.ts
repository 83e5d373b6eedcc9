/**
 * Adding audit records up per group: requests, tokens, cost, refusals and errors by reason, cost per UTC
 * day. Memory grows with the number of groups and days, never with the number of records.
 */
import type { ChainedLine } from "../audit/index.js";
import { DIMENSIONS, type Dimension } from "./period.js";

/** What one group (or the whole period) adds up to. JSON field names are the report's schema. */
export interface Totals {
  /** Every request in the period, refused ones included. */
  requests: number;
  input_tokens: number;
  output_tokens: number;
  /** Cost in whole millionths of the report's currency: exact sums of what each record carries. */
  cost_micros: number;
  /** `cost_micros` as a decimal string in the currency (`"12.345678"`). */
  cost: string;
  /** Requests with usage but no cost: the model has no price, or the record predates `cost`. */
  unpriced_requests: number;
  /** Requests the gateway refused (`decision: deny`), by `reason` (an error code). */
  refusals: Record<string, number>;
  /** Requests let through that did not end `ok` (`upstream_error`, `closed_during_response`, …), by `reason`. */
  errors: Record<string, number>;
  /** Cost per UTC day (`YYYY-MM-DD`), days without cost left out. */
  daily_cost_micros: Record<string, number>;
}

/** One group's totals, with the values of the dimensions that make it (null: the record had none). */
export interface GroupTotals extends Totals {
  readonly group: Partial<Record<Dimension, string | null>>;
}

/** A sum in progress. */
export interface Sum {
  requests: number;
  input: number;
  output: number;
  micros: number;
  unpriced: number;
  refusals: Map<string, number>;
  errors: Map<string, number>;
  daily: Map<string, number>;
}

const newSum = (): Sum => ({
  requests: 0,
  input: 0,
  output: 0,
  micros: 0,
  unpriced: 0,
  refusals: new Map(),
  errors: new Map(),
  daily: new Map(),
});

/** Whole millionths as a decimal string: exact (integer arithmetic), always six decimals. */
export function formatMicros(micros: number): string {
  const sign = micros < 0 ? "-" : "";
  const abs = Math.abs(micros);
  return `${sign}${Math.floor(abs / 1_000_000)}.${String(abs % 1_000_000).padStart(6, "0")}`;
}

const count = (tokens: unknown): number =>
  typeof tokens === "number" && Number.isFinite(tokens) ? tokens : 0;
const text = (value: unknown): string | null => (typeof value === "string" ? value : null);
const bump = (map: Map<string, number>, key: string, by = 1): void => {
  map.set(key, (map.get(key) ?? 0) + by);
};

/** Adds one record to `sum`; `input` undefined: the record has no usage. */
function addTo(
  sum: Sum,
  input: number | undefined,
  output: number,
  micros: number | undefined,
  day: string,
  outcome: "refusals" | "errors" | undefined,
  reason: string,
): void {
  sum.requests++;
  if (input !== undefined) {
    sum.input += input;
    sum.output += output;
    if (micros === undefined) sum.unpriced++;
  }
  if (micros !== undefined) {
    sum.micros += micros;
    if (micros !== 0) bump(sum.daily, day, micros);
  }
  if (outcome) bump(sum[outcome], reason);
}

/** Adds `from` into `into`. */
function addSum(into: Sum, from: Sum): void {
  into.requests += from.requests;
  into.input += from.input;
  into.output += from.output;
  into.micros += from.micros;
  into.unpriced += from.unpriced;
  for (const [key, n] of from.refusals) bump(into.refusals, key, n);
  for (const [key, n] of from.errors) bump(into.errors, key, n);
  for (const [day, micros] of from.daily) bump(into.daily, day, micros);
}

/** What an {@link Aggregator} has added up, as plain data a worker thread can post (Maps clone). */
export interface AggregateState {
  readonly groups: Map<string, { group: GroupTotals["group"]; sum: Sum }>;
  readonly total: Sum;
  readonly currencies: Set<string>;
  readonly firstDay: string | undefined;
  readonly lastDay: string | undefined;
}

/** Records in [`from`, `to`) added up per group of `by`. */
export class Aggregator {
  private readonly groups: AggregateState["groups"] = new Map();
  private readonly total = newSum();
  /** Every currency a record's cost was in (a report has one; see {@link currency}). */
  readonly currencies = new Set<string>();
  private firstDay: string | undefined;
  private lastDay: string | undefined;

  constructor(
    private readonly by: readonly Dimension[],
    private readonly from: string | undefined,
    private readonly to: string | undefined,
  ) {}

  /** Adds `record` if it is a request record in the period. */
  add(record: ChainedLine): void {
    const { time } = record;
    // Records' times are toISOString()'s fixed format, so string order is time order (and no Date per record).
    if (typeof time !== "string" || record.kind !== "llm_request") return;
    if ((this.from !== undefined && time < this.from) || (this.to !== undefined && time >= this.to)) return;
    const values = this.by.map((dimension) => text(record[DIMENSIONS[dimension]]));
    const key = values.join("\u0000") + values.map((v) => (v === null ? "0" : "1")).join("");
    let entry = this.groups.get(key);
    if (!entry) {
      entry = { group: Object.fromEntries(this.by.map((d, i) => [d, values[i]!])), sum: newSum() };
      this.groups.set(key, entry);
    }
    const day = time.slice(0, 10);
    this.widenDays(day);
    const cost = record.cost;
    const micros = cost && typeof cost.micros === "number" ? cost.micros : undefined;
    if (micros !== undefined) this.currencies.add(String(cost!.currency));
    const input = record.usage ? count(record.usage.prompt_tokens) : undefined;
    const output = record.usage ? count(record.usage.completion_tokens) : 0;
    const reason = text(record.reason) ?? "unknown";
    const outcome = record.decision === "deny" ? "refusals" : reason !== "ok" ? "errors" : undefined;
    addTo(entry.sum, input, output, micros, day, outcome, reason);
    addTo(this.total, input, output, micros, day, outcome, reason);
  }

  /** What has been added so far, for {@link merge} into another aggregator of the same `by` and period. */
  state(): AggregateState {
    const { groups, total, currencies, firstDay, lastDay } = this;
    return { groups, total, currencies, firstDay, lastDay };
  }

  /** Adds what another aggregator added up (integer sums: exact, in any order). */
  merge(state: AggregateState): void {
    for (const [key, { group, sum }] of state.groups) {
      const entry = this.groups.get(key);
      if (entry) addSum(entry.sum, sum);
      else this.groups.set(key, { group, sum });
    }
    addSum(this.total, state.total);
    for (const currency of state.currencies) this.currencies.add(currency);
    this.widenDays(state.firstDay);
    this.widenDays(state.lastDay);
  }

  private widenDays(day: string | undefined): void {
    if (day === undefined) return;
    if (this.firstDay === undefined || day < this.firstDay) this.firstDay = day;
    if (this.lastDay === undefined || day > this.lastDay) this.lastDay = day;
  }

  /** The groups in order of their dimension values (null first), then the totals and the days. */
  result(): { groups: GroupTotals[]; total: Totals; days: string[] } {
    const groups = [...this.groups.values()]
      .sort((a, b) => compareGroups(this.by, a.group, b.group))
      .map(({ group, sum }) => ({ group, ...totalsOf(sum) }));
    return { groups, total: totalsOf(this.total), days: daysBetween(this.firstDay, this.lastDay) };
  }
}

function compareGroups(by: readonly Dimension[], a: GroupTotals["group"], b: GroupTotals["group"]): number {
  for (const d of by) {
    const x = a[d] ?? null;
    const y = b[d] ?? null;
    if (x === y) continue;
    if (x === null) return -1;
    if (y === null) return 1;
    return x < y ? -1 : 1;
  }
  return 0;
}

const sorted = (map: Map<string, number>): Record<string, number> =>
  Object.fromEntries([...map].sort(([a], [b]) => (a < b ? -1 : 1)));

function totalsOf(sum: Sum): Totals {
  return {
    requests: sum.requests,
    input_tokens: sum.input,
    output_tokens: sum.output,
    cost_micros: sum.micros,
    cost: formatMicros(sum.micros),
    unpriced_requests: sum.unpriced,
    refusals: sorted(sum.refusals),
    errors: sorted(sum.errors),
    daily_cost_micros: sorted(sum.daily),
  };
}

/** Every UTC day from `first` to `last`, both included (none without records). */
function daysBetween(first: string | undefined, last: string | undefined): string[] {
  if (first === undefined || last === undefined) return [];
  const days: string[] = [];
  for (let ms = Date.parse(`${first}T00:00Z`); ms <= Date.parse(`${last}T00:00Z`); ms += 86_400_000)
    days.push(new Date(ms).toISOString().slice(0, 10));
  return days;
}
