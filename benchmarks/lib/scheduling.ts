/**
 * What the scheduling benchmark's arms share (benchmarks/scheduling.ts runs them; README "Scheduling"):
 * pool-a of two capacity-modelled demo servers of unequal speed, and the two classes of traffic.
 */
import { createHash } from "node:crypto";
import type { PolicyDoc } from "../../test/harness/policy.js";
import type { CapacityOptions } from "../../test/model-server/capacity.js";

/** One way of balancing pool-a: its `scheduling` section and the policy's `priority`, or none (Envoy decides). */
export interface SchedulingArm {
  readonly id: string;
  readonly label: string;
  readonly scheduling: Record<string, unknown> | undefined;
  readonly priority: Record<string, unknown> | undefined;
}

/**
 * Both servers: 4 sequences at a time, 0.5 ms prefill per uncached prompt token, 10 ms per output token at
 * speed 1; the prefix cache holds 150 blocks of 16 tokens: 6 of the prefix workload's 8 system prompts
 * (25 blocks each). One server seeing all 8 keeps evicting them; the two servers together hold all 8, so
 * sending each prefix to one server can keep every one cached (and a rendezvous split of 8 prefixes puts
 * at most 6 on one server 93 % of the time: the sizing does not hinge on an exact 4/4 split).
 */
export const SERVER_CAPACITY: Omit<CapacityOptions, "speed"> = {
  maxSequences: 4,
  kvTokens: 16_384,
  blockTokens: 16,
  prefixCacheBlocks: 150,
  prefillMsPerToken: 0.5,
  decodeMsPerToken: 10,
};

/** The slow server (pool-a's own) and the fast one (an extra endpoint of pool-a's cluster). */
export const SERVERS = [
  { name: "pool-a", speed: 1 },
  { name: "pool-a-fast", speed: 2 },
] as const;

/** Sequences pool-a's servers run at once: the scheduler arm's queue admits this many (maxInFlight). */
export const POOL_SEQUENCES = SERVER_CAPACITY.maxSequences * SERVERS.length;

/** The demo server's answer is at most 28 tokens (4 + the prompt's first 24 words). */
export const OUTPUT_TOKENS = 28;

/**
 * The overload's two kinds of traffic: interactive requests of the demo key's team (critical) and bulk
 * requests of a team the benchmark adds, with its own key (batch).
 */
export const CRITICAL_TEAM = "research";
export const BATCH_TEAM = "bench-batch";
/** The batch team's API key (its SHA-256 goes into the policy). */
export const BATCH_KEY = "sk-bench-batch";

/** Adds the batch team and its key to a policy document (both arms: the traffic is the same). */
export function addBatchTeam(doc: PolicyDoc): void {
  doc.teams[BATCH_TEAM] = { description: "scheduling benchmark: bulk traffic", models: ["*"] };
  doc.keys.push({
    id: "bench-batch",
    team: BATCH_TEAM,
    sha256: createHash("sha256").update(BATCH_KEY).digest("hex"),
  });
}

/**
 * Requests per second the two servers complete with `promptTokens` uncached: each server runs
 * `maxSequences` at once, each taking prefill + decode, divided by its speed.
 */
export function capacityPerSecond(promptTokens: number): number {
  const serviceMs =
    promptTokens * SERVER_CAPACITY.prefillMsPerToken + (OUTPUT_TOKENS - 1) * SERVER_CAPACITY.decodeMsPerToken;
  return SERVERS.reduce((sum, s) => sum + (SERVER_CAPACITY.maxSequences * 1000 * s.speed) / serviceMs, 0);
}
