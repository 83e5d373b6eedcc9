import type { Cluster, Redis } from "ioredis";
import type { QueueBounds, QueueStore, Ticket, TicketState } from "./queue-store.js";

/*
 * The same arithmetic as MemoryQueueStore (queue-store.ts), as Lua scripts so each step is atomic on the
 * Redis server whatever the number of extproc replicas. Keys of one pool: KEYS[1] admitted tickets (zset,
 * score = lease end), KEYS[2] waiting tickets' records (hash id → "rank|start|slots|sheddable"), KEYS[3]
 * waiting tickets' expiry (zset), KEYS[4] virtual times and teams' last finish tags (hash), KEYS[5..] the
 * waiting tickets of each class rank (zset, score = finish tag; equal tags in id order, as in memory).
 */

const COMMON = `
local now = tonumber(ARGV[1])
local function waitingKey(rank) if rank >= 0 then return KEYS[5 + rank] end end
local function parse(record)
  local rank, start, slots, sheddable = string.match(record, '^(%d+)|([^|]+)|(%d+)|(%d)$')
  return tonumber(rank), tonumber(start), tonumber(slots), sheddable == '1'
end
local function forget(id, rank)
  local key = waitingKey(rank)
  if key then redis.call('ZREM', key, id) end
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
local function clean()
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do
    local record = redis.call('HGET', KEYS[2], id)
    forget(id, record and parse(record) or -1)
  end
end
local function ahead(id, rank)
  local n = redis.call('ZRANK', waitingKey(rank), id)
  for r = 0, rank - 1 do n = n + redis.call('ZCARD', waitingKey(r)) end
  return n
end
local function admit(id, rank, start, leaseMs)
  forget(id, rank)
  redis.call('ZADD', KEYS[1], now + leaseMs, id)
  local v = tonumber(redis.call('HGET', KEYS[4], 'v:' .. rank) or '0')
  if start > v then redis.call('HSET', KEYS[4], 'v:' .. rank, string.format('%.17g', start)) end
end
`;

/** ARGV: now, id, rank, team, cost, slots, sheddable (0/1), expiresAt, maxDepth, leaseMs. Returns a state code. */
const ARRIVE = `${COMMON}
clean()
local id, rank, team, cost = ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local slots, sheddable, expiresAt = tonumber(ARGV[6]), ARGV[7], tonumber(ARGV[8])
local maxDepth, leaseMs = tonumber(ARGV[9]), tonumber(ARGV[10])
local flow = 'f:' .. rank .. ':' .. team
local start = math.max(tonumber(redis.call('HGET', KEYS[4], 'v:' .. rank) or '0'), tonumber(redis.call('HGET', KEYS[4], flow) or '0'))
local finish = start + cost
redis.call('ZADD', waitingKey(rank), finish, id)
redis.call('HSET', KEYS[2], id, rank .. '|' .. string.format('%.17g', start) .. '|' .. slots .. '|' .. sheddable)
redis.call('ZADD', KEYS[3], expiresAt, id)
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], leaseMs + 60000) end
local result = 1
if redis.call('ZCARD', KEYS[1]) + ahead(id, rank) < slots then
  admit(id, rank, start, leaseMs)
  result = 2
else
  local depth = -1
  for r = 0, #KEYS - 5 do depth = depth + redis.call('ZCARD', waitingKey(r)) end
  if depth >= maxDepth then
    -- Full: push out the last waiting ticket if it is sheddable and of a lower class, or give up.
    local last, lastRank = nil, -1
    for r = #KEYS - 5, rank + 1, -1 do
      local tail = redis.call('ZRANGE', waitingKey(r), -1, -1)
      if tail[1] then last, lastRank = tail[1], r break end
    end
    local record = last and redis.call('HGET', KEYS[2], last)
    if record and select(4, parse(record)) then
      forget(last, lastRank)
    else
      forget(id, rank)
      return 3
    end
  end
end
redis.call('HSET', KEYS[4], flow, string.format('%.17g', finish))
return result
`;

/** ARGV: now, leaseMs, ids... Returns one state code per id. */
const POLL = `${COMMON}
clean()
local leaseMs = tonumber(ARGV[2])
local states = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local record = redis.call('HGET', KEYS[2], id)
  if not record then
    states[#states + 1] = 0
  else
    local rank, start, slots = parse(record)
    if redis.call('ZCARD', KEYS[1]) + ahead(id, rank) < slots then
      admit(id, rank, start, leaseMs)
      states[#states + 1] = 2
    else
      states[#states + 1] = 1
    end
  end
end
return states
`;

/** ARGV: (unused), id. A waiting ticket gives up. */
const LEAVE = `${COMMON}
local record = redis.call('HGET', KEYS[2], ARGV[2])
if record then forget(ARGV[2], (parse(record))) end
return 1
`;

const STATES: readonly TicketState[] = ["gone", "queued", "admitted", "full"];

interface ScriptedClient {
  queueArrive(...args: Array<string | number>): Promise<number>;
  queuePoll(...args: Array<string | number>): Promise<number[]>;
  queueLeave(...args: Array<string | number>): Promise<number>;
}

/**
 * The queues in Redis, shared exactly by every extproc replica (on the quota store's connection). Every
 * key carries the quota store's hash tag, so the scripts also run on Redis Cluster.
 */
export class RedisQueueStore implements QueueStore {
  private readonly scripted: ScriptedClient;

  /** `classes`: how many priority classes the policy has (one waiting set per class). */
  constructor(
    private readonly client: Redis | Cluster,
    private readonly prefix: string,
    private readonly classes: () => number,
  ) {
    client.defineCommand("queueArrive", { lua: ARRIVE });
    client.defineCommand("queuePoll", { lua: POLL });
    client.defineCommand("queueLeave", { lua: LEAVE });
    this.scripted = client as unknown as ScriptedClient;
  }

  async arrive(pool: string, ticket: Ticket, bounds: QueueBounds, now: number): Promise<TicketState> {
    const keys = this.keys(pool, ticket.rank + 1);
    const code = await this.scripted.queueArrive(
      keys.length,
      ...keys,
      now,
      ticket.id,
      ticket.rank,
      ticket.team,
      ticket.cost,
      ticket.slots,
      ticket.sheddable ? 1 : 0,
      ticket.expiresAt,
      bounds.maxDepth,
      bounds.leaseMs,
    );
    return STATES[code]!;
  }

  async poll(pool: string, ids: readonly string[], bounds: QueueBounds, now: number): Promise<TicketState[]> {
    const keys = this.keys(pool, 0);
    const codes = await this.scripted.queuePoll(keys.length, ...keys, now, bounds.leaseMs, ...ids);
    return codes.map((c) => STATES[c]!);
  }

  async leave(pool: string, id: string): Promise<void> {
    const keys = this.keys(pool, 0);
    await this.scripted.queueLeave(keys.length, ...keys, 0, id);
  }

  async release(pool: string, id: string): Promise<void> {
    await this.client.zrem(this.key(pool, "a"), id);
  }

  /** The pool's keys, with a waiting set for every class (at least `minClasses`). */
  private keys(pool: string, minClasses: number): string[] {
    const classes = Math.max(this.classes(), minClasses);
    const keys = [this.key(pool, "a"), this.key(pool, "t"), this.key(pool, "x"), this.key(pool, "v")];
    for (let r = 0; r < classes; r++) keys.push(this.key(pool, `w${r}`));
    return keys;
  }

  private key(pool: string, part: string): string {
    return `{${this.prefix}}:queue:${pool}:${part}`;
  }
}
