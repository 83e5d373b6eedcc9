/**
 * Rebuilding the in-memory store's calendar windows after a restart, from the audit log. Per-day and
 * per-month token limits and monthly budgets would otherwise start again from zero after a crash; the audit
 * log already holds every request's charged usage.
 */
import type { StoredAuditRecord } from "../audit/index.js";
import type { Identity } from "../auth/index.js";
import type { LimitRule, Model, Policy } from "../policy/index.js";
import { applicableLimits, buildCharges, costMicros } from "./index.js";
import type { MemoryQuotaStore } from "./memory.js";

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
  const monthStarts = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1);
  // Charges are sums, so records of one caller, model and UTC day are added up first and charged once
  // (building charges per record cost more than reading it). Spend is summed per record, as it was charged.
  const groups = new Map<string, Group>();
  let count = 0;
  for await (const record of records) {
    count++;
    const { usage } = record;
    const time = Date.parse(record.time);
    if (!usage || !(time >= monthStarts && time <= now)) continue;
    const model = record.served_model === null ? undefined : policy.models.get(record.served_model);
    if (!model || record.key_id === null || record.team === null) continue;
    const day = Math.floor(time / DAY_MS);
    const key = `${record.key_id}\u0000${record.team}\u0000${record.environment}\u0000${model.name}\u0000${day}`;
    let group = groups.get(key);
    if (!group) {
      const identity = {
        keyId: record.key_id,
        team: record.team,
        environment: record.environment ?? undefined,
        allowedModels: new Set<string>(),
      };
      const rules = applicableLimits(policy, identity, model);
      group = { identity, model, rules, time, input: 0, output: 0, spend: 0, records: 0 };
      groups.set(key, group);
    }
    if (group.rules.length === 0) continue;
    group.input += usage.prompt_tokens;
    group.output += usage.completion_tokens;
    group.spend += costMicros(model, usage.prompt_tokens, usage.completion_tokens);
    group.records++;
  }
  let replayed = 0;
  for (const group of groups.values()) {
    if (group.records === 0) continue;
    const { identity, model } = group;
    const { charges, roles } = buildCharges(
      { policy, identity, model, inputTokens: group.input, outputTokens: group.output },
      group.rules,
      group.time,
    );
    const open = charges
      .map((charge, i) => (roles[i]!.measure === "spend" ? { ...charge, amount: group.spend } : charge))
      .filter((charge) => charge.kind === "window" && charge.periodMs > now);
    if (open.length === 0) continue;
    store.add(open);
    replayed += group.records;
  }
  return { records: count, replayed };
}

const DAY_MS = 86_400_000;

/** Records of one caller and model on one UTC day, added up. */
interface Group {
  readonly identity: Identity;
  readonly model: Model;
  readonly rules: readonly LimitRule[];
  /** One of the records' times: it picks the day and month windows. */
  readonly time: number;
  input: number;
  output: number;
  /** Micros, summed per record (each was rounded up on its own when charged). */
  spend: number;
  records: number;
}
