import type { Logger } from "pino";
import type { AuditCost } from "../audit/index.js";
import type { Identity } from "../auth/index.js";
import { GatewayError } from "../errors/index.js";
import type { GatewayMetrics } from "../metrics/index.js";
import type { LimitRule, Model, Policy } from "../policy/index.js";
import { scopeMatches } from "../scope/index.js";
import { chargeable, type AnswerSeen, type Charged, type CountTokens } from "./charge.js";
import { MemoryQuotaStore } from "./memory.js";
import type { Charge, ChargeState, QuotaStore, ReserveResult } from "./store.js";
import { dayWindow, formatDuration, monthWindow } from "./windows.js";

export { MemoryQuotaStore } from "./memory.js";
export { countPromptTokens, type AnswerSeen, type Charged, type CountTokens } from "./charge.js";
export type { RedisQuotaStore } from "./redis.js";

/**
 * The Redis store as policy says (see connectRedis). ioredis (~15 MB resident) loads only here: a replica
 * on the memory store never loads it.
 */
export async function openRedisStore(
  settings: NonNullable<Policy["quota"]["redis"]>,
  onError: (err: Error) => void,
  password?: string,
): Promise<import("./redis.js").RedisQuotaStore> {
  const { connectRedis, RedisQuotaStore } = await import("./redis.js");
  return new RedisQuotaStore(connectRedis(settings, onError, password), settings.keyPrefix);
}

/** What a charge counts, to report it and to settle it with actual usage. */
interface ChargeRole {
  readonly rule: LimitRule;
  readonly scope: string;
  readonly measure: "requests" | "tokens" | "spend" | "concurrency";
  readonly label: string;
}

/** A request's reservation, kept until it settles. */
export interface Admission {
  readonly requestId: string;
  readonly store: QuotaStore;
  readonly charges: readonly Charge[];
  readonly roles: readonly ChargeRole[];
  readonly model: Model;
  readonly reservedInput: number;
  readonly reservedOutput: number;
  /** x-ratelimit-* headers for the response. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/** Who asks for which model; the token estimate is only computed when some limit applies. */
export interface AdmissionRequest {
  readonly policy: Policy;
  readonly identity: Identity;
  readonly model: Model;
  readonly requestId: string;
  readonly estimate: () => Promise<{ readonly input: number; readonly output: number }>;
}

/** Who used which model, and how many tokens (estimated at admission, or actual when replaying). */
export interface Estimated extends Pick<AdmissionRequest, "policy" | "identity" | "model"> {
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/** Options for {@link QuotaService}. */
export interface QuotaServiceOptions {
  /** Where counters live: MemoryQuotaStore, or RedisQuotaStore shared by all replicas. */
  readonly store: QuotaStore;
  /** Whether `store` is shared (Redis): only then do failures fall back or fail closed. */
  readonly shared: boolean;
  readonly metrics: GatewayMetrics;
  readonly logger: Logger;
  readonly now?: () => number;
}

const MICROS = 1_000_000;

/** The limit rules that count a request from `identity` to `model`. */
export function applicableLimits(policy: Policy, identity: Identity, model: Model): LimitRule[] {
  return policy.limits.filter((rule) => scopeMatches(rule.scope, identity, model.name));
}

/** Cost in millionths of the currency (prices are per million tokens, so tokens × price). */
export function costMicros(model: Model, input: number, output: number): number {
  if (!model.price) return 0;
  // Round away floating-point noise (2.4 + 0.6 = 3.0000000000000004) before rounding up to whole micros.
  return Math.ceil(Number((input * model.price.input + output * model.price.output).toFixed(6)));
}

/**
 * What `usage` of `model` cost, for the audit record: at the prices of the policy the request ran under, so a
 * report honours a price change mid-month. Undefined without usage or a price.
 */
export function auditCost(
  model: Model | undefined,
  currency: string,
  usage: { readonly prompt_tokens: number; readonly completion_tokens: number } | null,
): AuditCost | undefined {
  if (!model?.price || !usage) return undefined;
  return { micros: costMicros(model, usage.prompt_tokens, usage.completion_tokens), currency };
}

/**
 * Admission against every applicable limit before a request is forwarded (reserve prompt + max output
 * tokens, one request, one concurrency slot, the worst-case spend), and reconciliation with actual usage
 * afterwards. With a shared store that fails, policy decides: 503 (fail closed) or local counters with each
 * limit divided by the replica count, until the store answers again.
 */
export class QuotaService {
  private readonly fallback = new MemoryQuotaStore();
  private degraded = false;
  private readonly now: () => number;

  constructor(private readonly options: QuotaServiceOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Reserves for the request, or throws 429 (limit), 503 (store down, fail closed). Undefined: no limit applies. */
  async admit(request: AdmissionRequest): Promise<Admission | undefined> {
    const rules = applicableLimits(request.policy, request.identity, request.model);
    if (rules.length === 0) return undefined;
    const { input, output } = await request.estimate();
    const now = this.now();
    const { charges, roles } = buildCharges(
      { ...request, inputTokens: input, outputTokens: output },
      rules,
      now,
    );
    const neverFits = charges.findIndex((c) => c.kind !== "concurrency" && c.amount > c.limit);
    if (neverFits !== -1) {
      const role = roles[neverFits]!;
      this.options.metrics.quotaRejections.inc({ limit: role.rule.id, measure: role.measure });
      throw exceedsLimit(request.policy, role, charges[neverFits]!);
    }
    const { quota } = request.policy;
    let store = this.options.store;
    let effective = charges;
    let result;
    try {
      result = await store.reserve(request.requestId, charges, now);
      this.recovered();
    } catch (err) {
      this.failed(err as Error);
      if (!this.options.shared || quota.onStoreFailure === "fail-closed") {
        throw new GatewayError(
          "quota_store_unavailable",
          "The quota store is unavailable; the request was not admitted.",
        );
      }
      store = this.fallback;
      // Each replica gets its share of every limit, so together they still stay within it.
      effective = charges.map((c) => ({ ...c, limit: Math.max(1, Math.floor(c.limit / quota.replicas)) }));
      result = await store.reserve(request.requestId, effective, now);
    }
    if (!result.admitted) throw this.refused(request.policy, effective, roles, result);
    return {
      requestId: request.requestId,
      store,
      charges: effective,
      roles,
      model: request.model,
      reservedInput: input,
      reservedOutput: output,
      headers: rateLimitHeaders(effective, roles, result.states),
    };
  }

  /**
   * Refuses (429), before any costly work such as scanning a multi-MB body, a request that no size of it
   * could get admitted: a window or budget already spent, no request or concurrency slot left. Reserves
   * nothing; {@link admit} follows. A store failure is left to admit, which applies the failure policy.
   */
  async precheck(request: Omit<AdmissionRequest, "estimate">): Promise<void> {
    const rules = applicableLimits(request.policy, request.identity, request.model);
    if (rules.length === 0) return;
    const now = this.now();
    // The least any request costs: one request, one slot, one prompt token.
    const { charges, roles } = buildCharges({ ...request, inputTokens: 1, outputTokens: 0 }, rules, now);
    let result: ReserveResult;
    try {
      result = await this.options.store.check(charges, now);
    } catch {
      return;
    }
    if (!result.admitted) throw this.refused(request.policy, charges, roles, result);
  }

  /** The 429 for a reservation that did not fit, counted in the rejection metric. */
  private refused(
    policy: Policy,
    charges: readonly Charge[],
    roles: readonly ChargeRole[],
    result: Extract<ReserveResult, { admitted: false }>,
  ): GatewayError {
    const role = roles[result.rejected]!;
    this.options.metrics.quotaRejections.inc({ limit: role.rule.id, measure: role.measure });
    return rejection(
      policy,
      role,
      charges[result.rejected]!,
      result.states[result.rejected]!,
      result.retryAfterMs,
      rateLimitHeaders(charges, roles, result.states),
    );
  }

  /** Replaces the reservation with actual usage; never throws (a failed settle is logged and counted). */
  async settle(admission: Admission, input: number, output: number): Promise<void> {
    const actual = admission.charges.map((charge, i) => {
      const role = admission.roles[i]!;
      if (role.measure === "tokens") return tokensCounted(role.rule, input, output);
      if (role.measure === "spend") return costMicros(admission.model, input, output);
      return charge.amount;
    });
    try {
      await admission.store.settle(admission.requestId, admission.charges, actual, this.now());
    } catch (err) {
      // The reservation stands (conservative) and its concurrency slot frees itself when its lease ends.
      this.failed(err as Error);
    }
  }

  /**
   * Settles the reservation of a request that ended with what it used (see {@link chargeable}), or with the
   * reservation when counting the streamed text failed; resolves to what was charged, undefined when
   * nothing was (an upstream error). Never rejects.
   */
  async settleExchange(
    admission: Admission,
    seen: AnswerSeen,
    countTokens: CountTokens,
  ): Promise<Charged | undefined> {
    let charge;
    try {
      charge = await chargeable(
        { input: admission.reservedInput, tokenizer: admission.model.tokenizer },
        seen,
        countTokens,
      );
    } catch (err) {
      this.options.logger.warn(
        { err, requestId: admission.requestId },
        "could not count streamed tokens; charging the reservation",
      );
      charge = {
        input: admission.reservedInput,
        output: admission.reservedOutput,
        source: "reserved" as const,
      };
    }
    await this.settle(admission, charge.input, charge.output);
    if (charge.source === undefined) return undefined;
    const usage = seen.usage ?? {
      prompt_tokens: charge.input,
      completion_tokens: charge.output,
      total_tokens: charge.input + charge.output,
    };
    return { usage, source: charge.source };
  }

  private failed(err: Error): void {
    this.options.metrics.quotaStoreErrors.inc();
    if (!this.degraded) {
      this.degraded = true;
      this.options.metrics.quotaStoreDegraded.set(1);
      this.options.logger.error({ err: err.message }, "quota store unavailable");
    }
  }

  private recovered(): void {
    if (!this.degraded) return;
    this.degraded = false;
    this.options.metrics.quotaStoreDegraded.set(0);
    this.options.logger.info("quota store available again");
  }
}

function tokensCounted(rule: LimitRule, input: number, output: number): number {
  if (rule.countTokens === "input") return input;
  if (rule.countTokens === "output") return output;
  return input + output;
}

/**
 * The charges `rules` make for `request` at time `now` (which picks the day and month windows), and what
 * each one counts. Admission reserves them; replay.ts re-applies the window ones after a restart.
 */
export function buildCharges(request: Estimated, rules: readonly LimitRule[], now: number) {
  const charges: Charge[] = [];
  const roles: ChargeRole[] = [];
  const day = dayWindow(now);
  const month = monthWindow(now);
  const values = { key: request.identity.keyId, team: request.identity.team, model: request.model.name };
  for (const rule of rules) {
    const scope = (["key", "team", "model"] as const)
      .filter((f) => rule.scope[f] !== undefined)
      .map((f) => `${f}=${encodeURIComponent(values[f])}`)
      .join(",");
    const base = `${rule.id}:${scope}`;
    const tokens = tokensCounted(rule, request.inputTokens, request.outputTokens);
    const add = (charge: Charge, measure: ChargeRole["measure"], label: string) => {
      charges.push(charge);
      roles.push({ rule, scope, measure, label });
    };
    if (rule.requestsPerMinute) {
      add(
        { key: `${base}:rpm`, kind: "bucket", limit: rule.requestsPerMinute, amount: 1, periodMs: 60_000 },
        "requests",
        "requests per minute",
      );
    }
    if (rule.tokensPerMinute) {
      add(
        { key: `${base}:tpm`, kind: "bucket", limit: rule.tokensPerMinute, amount: tokens, periodMs: 60_000 },
        "tokens",
        "tokens per minute",
      );
    }
    if (rule.tokensPerDay) {
      add(
        {
          key: `${base}:tpd:${day.id}`,
          kind: "window",
          limit: rule.tokensPerDay,
          amount: tokens,
          periodMs: day.endsAt,
        },
        "tokens",
        "tokens per day",
      );
    }
    if (rule.tokensPerMonth) {
      add(
        {
          key: `${base}:tpmo:${month.id}`,
          kind: "window",
          limit: rule.tokensPerMonth,
          amount: tokens,
          periodMs: month.endsAt,
        },
        "tokens",
        "tokens per month",
      );
    }
    if (rule.concurrentRequests) {
      const lease = request.policy.quota.leaseSeconds * 1000;
      add(
        {
          key: `${base}:conc`,
          kind: "concurrency",
          limit: rule.concurrentRequests,
          amount: 1,
          periodMs: lease,
        },
        "concurrency",
        "concurrent requests",
      );
    }
    if (rule.budgetPerMonth) {
      const cost = costMicros(request.model, request.inputTokens, request.outputTokens);
      const limit = Math.round(rule.budgetPerMonth * MICROS);
      add(
        { key: `${base}:spend:${month.id}`, kind: "window", limit, amount: cost, periodMs: month.endsAt },
        "spend",
        "spend per month",
      );
    }
  }
  return { charges, roles };
}

/** The 429 for a charge that did not fit, with Retry-After and the rate-limit headers. */
function rejection(
  policy: Policy,
  role: ChargeRole,
  charge: Charge,
  state: ChargeState,
  retryAfterMs: number,
  headers: Array<[string, string]>,
): GatewayError {
  const retrySeconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  const show = shownAs(policy, role);
  // In degraded (local) mode a request may exceed this replica's share of a limit and still fit later.
  const detail =
    charge.kind !== "concurrency" && charge.amount > charge.limit
      ? `this request needs ${show(charge.amount)}, more than this replica's share of ${show(charge.limit)} while the quota store is unavailable`
      : `limit ${show(charge.limit)}, remaining ${show(state.remaining)}, requested ${show(charge.kind === "concurrency" ? 1 : charge.amount)}`;
  const message = `${role.measure === "spend" ? "Budget exhausted" : "Rate limit reached"} for ${scope(role)} (limit '${role.rule.id}', ${role.label}): ${detail}. Retry after ${retrySeconds}s.`;
  return new GatewayError(
    role.measure === "spend" ? "insufficient_quota" : "rate_limit_exceeded",
    message,
    null,
    [["retry-after", String(retrySeconds)], ...headers],
  );
}

/**
 * A request larger than a limit's whole capacity can never be admitted, however long it waits: refused at
 * once with a 400 (which no SDK retries, unlike a 429) that says so and what to change.
 */
function exceedsLimit(policy: Policy, role: ChargeRole, charge: Charge): GatewayError {
  const show = shownAs(policy, role);
  return new GatewayError(
    "request_exceeds_limit",
    `This request can never fit the limit '${role.rule.id}' for ${scope(role)} (${role.label}): it needs ${show(charge.amount)} and the whole limit is ${show(charge.limit)}. Retrying will not help: lower max_tokens or shorten the input.`,
    null,
    [["x-should-retry", "false"]],
  );
}

/** How a charge's amounts read in a message: money for spend, plain numbers otherwise. */
function shownAs(policy: Policy, role: ChargeRole): (amount: number) => string {
  if (role.measure !== "spend") return String;
  // Cents at least, and every digit down to the micro-unit a charge is counted in (0.0014 USD, not 0.00).
  return (micros) => `${(micros / MICROS).toFixed(6).replace(/(\.\d\d\d*?)0+$/, "$1")} ${policy.currency}`;
}

const scope = (role: ChargeRole): string => role.scope.replaceAll(",", ", ");

/**
 * OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers, from the tightest per-minute
 * request and token buckets that applied.
 */
function rateLimitHeaders(
  charges: readonly Charge[],
  roles: readonly ChargeRole[],
  states: readonly ChargeState[],
): Array<[string, string]> {
  const headers: Array<[string, string]> = [];
  for (const measure of ["requests", "tokens"] as const) {
    let tightest = -1;
    charges.forEach((charge, i) => {
      if (charge.kind !== "bucket" || roles[i]!.measure !== measure) return;
      if (tightest === -1 || states[i]!.remaining < states[tightest]!.remaining) tightest = i;
    });
    if (tightest === -1) continue;
    headers.push(
      [`x-ratelimit-limit-${measure}`, String(charges[tightest]!.limit)],
      [`x-ratelimit-remaining-${measure}`, String(states[tightest]!.remaining)],
      [`x-ratelimit-reset-${measure}`, formatDuration(states[tightest]!.resetMs)],
    );
  }
  return headers;
}
