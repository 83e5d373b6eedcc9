import { Cluster, Redis, type RedisOptions } from "ioredis";
import type { QuotaSettings } from "../policy/schema.js";
import {
  afterCharge,
  assertValidCharges,
  WINDOW_GRACE_MS,
  type Charge,
  type ChargeState,
  type QuotaStore,
  type ReserveResult,
} from "./store.js";

/*
 * The same arithmetic as MemoryQuotaStore (see store.ts), as Lua scripts so each reserve/settle is one
 * atomic step on the Redis server, whatever the number of extproc replicas. ARGV carries, per charge:
 * kind (b = bucket, w = window, c = concurrency), limit, amount, periodMs.
 */

const CHECK = `
local function check(i, kind, limit, amount, period, now)
  if kind == 'b' then
    local v = redis.call('HMGET', KEYS[i], 'l', 't')
    local level = limit
    if v[1] then level = math.min(limit, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * limit / period) end
    local rate = limit / period
    local wait = 0
    if amount > limit then wait = period elseif level < amount then wait = math.ceil((amount - level) / rate) end
    return math.floor(level), math.ceil((limit - level) / rate), wait, level
  elseif kind == 'w' then
    local used = tonumber(redis.call('GET', KEYS[i]) or '0')
    local reset = math.max(0, period - now)
    local wait = 0
    if used + amount > limit then wait = math.max(1, reset) end
    return math.max(0, limit - used), reset, wait, used
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    local count = redis.call('ZCARD', KEYS[i])
    local wait = 0
    if count >= limit then wait = 1000 end
    return math.max(0, limit - count), 0, wait, count
  end
end
local function setBucket(i, limit, period, level, now)
  redis.call('HSET', KEYS[i], 'l', string.format('%.17g', level), 't', now)
  redis.call('PEXPIRE', KEYS[i], math.ceil((limit - level) * period / limit) + 1000)
end
`;

const RESERVE = `${CHECK}
local now = tonumber(ARGV[1])
local id = ARGV[2]
local states, current = {}, {}
local rejected, retry = -1, 0
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 4
  local remaining, reset, wait, cur = check(i, ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), now)
  states[#states + 1] = remaining
  states[#states + 1] = reset
  current[i] = cur
  if wait > 0 and rejected < 0 then rejected, retry = i - 1, wait end
end
if rejected >= 0 then return {0, rejected, retry, states} end
-- A trailing 'check' asks whether the charges fit, without reserving them.
if ARGV[#ARGV] == 'check' then return {1, -1, 0, states} end
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 4
  local kind, limit, amount, period = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
  if kind == 'b' then
    setBucket(i, limit, period, math.min(limit, current[i] - amount), now)
  elseif kind == 'w' then
    redis.call('INCRBY', KEYS[i], amount)
    -- Relative to the caller's clock, the one the window arithmetic uses (not Redis's own).
    redis.call('PEXPIRE', KEYS[i], math.max(1, period + ${WINDOW_GRACE_MS} - now))
  else
    redis.call('ZADD', KEYS[i], now + period, id)
    redis.call('PEXPIRE', KEYS[i], period)
  end
end
return {1, -1, 0, states}
`;

const SETTLE = `${CHECK}
local now = tonumber(ARGV[1])
local id = ARGV[2]
for i = 1, #KEYS do
  local a = 2 + (i - 1) * 5
  local kind, limit, amount, period, actual = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  if kind == 'b' then
    local _, _, _, level = check(i, kind, limit, 0, period, now)
    setBucket(i, limit, period, math.min(limit, level - (actual - amount)), now)
  elseif kind == 'w' then
    if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('INCRBY', KEYS[i], actual - amount) end
  else
    redis.call('ZREM', KEYS[i], id)
  end
end
return 1
`;

type RedisClient = Redis | Cluster;

interface ScriptedClient {
  quotaReserve(...args: Array<string | number>): Promise<[number, number, number, number[]]>;
  quotaSettle(...args: Array<string | number>): Promise<number>;
}

const KIND = { bucket: "b", window: "w", concurrency: "c" } as const;

/**
 * Connects to Redis as policy says (single server, Sentinel or Cluster); never throws on connection loss.
 * `password` (REDIS_PASSWORD, see config/) is used when the URL carries none.
 */
export function connectRedis(
  settings: NonNullable<QuotaSettings["redis"]>,
  onError: (err: Error) => void,
  password?: string,
): RedisClient {
  const common: RedisOptions = {
    // Fail fast while disconnected instead of queueing: the quota service decides what happens then.
    enableOfflineQueue: false,
    commandTimeout: settings.commandTimeoutMs,
    maxRetriesPerRequest: 0,
    // Concurrent admissions from many requests share one round trip to Redis.
    enableAutoPipelining: true,
    retryStrategy: (times) => Math.min(times * 100, 2000),
    password,
  };
  let client: RedisClient;
  if (settings.cluster) {
    client = new Cluster(settings.cluster, {
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      redisOptions: common,
    });
  } else if (settings.sentinels) {
    client = new Redis({
      ...common,
      sentinels: settings.sentinels,
      name: settings.sentinelName ?? "mymaster",
    });
  } else {
    client = new Redis(settings.url!, common);
  }
  client.on("error", onError);
  client.defineCommand("quotaReserve", { lua: RESERVE });
  client.defineCommand("quotaSettle", { lua: SETTLE });
  return client;
}

/**
 * Quota counters in Redis, shared exactly by every extproc replica. All keys carry one hash tag
 * (`{prefix}`), so the multi-key scripts also run on Redis Cluster (at the price of one slot for all of them).
 */
export class RedisQuotaStore implements QuotaStore {
  private readonly scripted: ScriptedClient;

  constructor(
    readonly client: RedisClient,
    readonly prefix: string,
  ) {
    this.scripted = client as unknown as ScriptedClient;
  }

  async reserve(requestId: string, charges: readonly Charge[], now: number): Promise<ReserveResult> {
    const result = await this.run(requestId, charges, now, false);
    if (!result.admitted) return result;
    return { admitted: true, states: result.states.map((s, i) => afterCharge(charges[i]!, s)) };
  }

  check(charges: readonly Charge[], now: number): Promise<ReserveResult> {
    return this.run("", charges, now, true);
  }

  private async run(
    requestId: string,
    charges: readonly Charge[],
    now: number,
    checkOnly: boolean,
  ): Promise<ReserveResult> {
    assertValidCharges(charges);
    const args: Array<string | number> = [charges.length, ...charges.map((c) => this.key(c)), now, requestId];
    for (const c of charges) args.push(KIND[c.kind], c.limit, c.amount, c.periodMs);
    if (checkOnly) args.push("check");
    const [admitted, rejected, retryAfterMs, flat] = await this.scripted.quotaReserve(...args);
    const states: ChargeState[] = [];
    for (let i = 0; i < flat.length; i += 2) states.push({ remaining: flat[i]!, resetMs: flat[i + 1]! });
    if (admitted !== 1) return { admitted: false, rejected, retryAfterMs, states };
    return { admitted: true, states };
  }

  async settle(
    requestId: string,
    charges: readonly Charge[],
    actual: readonly number[],
    now: number,
  ): Promise<void> {
    assertValidCharges(charges, actual);
    const args: Array<string | number> = [charges.length, ...charges.map((c) => this.key(c)), now, requestId];
    charges.forEach((c, i) => args.push(KIND[c.kind], c.limit, c.amount, c.periodMs, actual[i] ?? c.amount));
    await this.scripted.quotaSettle(...args);
  }

  /** Resolves once connected (commands fail fast while disconnected); rejects after `timeoutMs`. */
  async ready(timeoutMs: number): Promise<void> {
    if (this.client.status === "ready") return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off("ready", onReady);
        reject(new Error(`redis not ready after ${timeoutMs} ms`));
      }, timeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      this.client.once("ready", onReady);
    });
  }

  async close(): Promise<void> {
    this.client.disconnect();
  }

  private key(charge: Charge): string {
    return `{${this.prefix}}:${charge.key}`;
  }
}
