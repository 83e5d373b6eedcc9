/**
 * Rebuilding the in-memory store's calendar windows after a restart, from the audit log. Per-day and
 * per-month token limits and monthly budgets would otherwise start again from zero after a crash; the audit
 * log already holds every request's charged usage.
 */
import type { StoredAuditRecord } from "../audit/index.js";
import type { Policy } from "../policy/index.js";
import { applicableLimits, buildCharges } from "./index.js";
import type { MemoryQuotaStore } from "./memory.js";
import { monthWindow } from "./windows.js";

/** The fields of an audit record a replay reads. */
export type UsageRecord = Pick<
  StoredAuditRecord,
  "time" | "key_id" | "team" | "environment" | "served_model" | "usage"
>;

/** What a replay did, for the start-up log. */
export interface ReplaySummary {
  /** Records read. */
  readonly records: number;
  /** Records that were charged to at least one window still open at `now`. */
  readonly replayed: number;
}

/**
 * Re-applies to `store` the day and month window charges (tokensPerDay, tokensPerMonth, budgetPerMonth)
 * that `policy`'s limits make for each record's usage, at the record's time, for the windows still open at
 * `now`: a spent daily limit stays spent. Records without usage (refusals, upstream errors), from a window
 * that is over, from after `now`, or for a model the policy no longer has are skipped. Limits as the policy
 * has them now, and spend at its current prices (a price change applies to the month so far). Per-minute
 * buckets and concurrency slots are not rebuilt: they refill within a minute and free themselves.
 */
export async function replayUsage(
  store: MemoryQuotaStore,
  policy: Policy,
  records: AsyncIterable<UsageRecord> | Iterable<UsageRecord>,
  now: number,
): Promise<ReplaySummary> {
  const monthEnds = monthWindow(now).endsAt;
  let count = 0;
  let replayed = 0;
  for await (const record of records) {
    count++;
    const { usage } = record;
    const time = Date.parse(record.time);
    // Months end together, so a record from this month is exactly one whose month window ends with now's.
    if (!usage || !(time <= now) || monthWindow(time).endsAt !== monthEnds) continue;
    const model = record.served_model === null ? undefined : policy.models.get(record.served_model);
    if (!model || record.key_id === null || record.team === null) continue;
    const identity = {
      keyId: record.key_id,
      team: record.team,
      environment: record.environment ?? undefined,
      allowedModels: new Set<string>(),
    };
    const rules = applicableLimits(policy, identity, model);
    if (rules.length === 0) continue;
    const { charges } = buildCharges(
      { policy, identity, model, inputTokens: usage.prompt_tokens, outputTokens: usage.completion_tokens },
      rules,
      time,
    );
    const open = charges.filter((charge) => charge.kind === "window" && charge.periodMs > now);
    if (open.length === 0) continue;
    store.add(open);
    replayed++;
  }
  return { records: count, replayed };
}
