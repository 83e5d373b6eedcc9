/**
 * What the scheduling benchmark's arms share (benchmarks/scheduling.ts runs them; README "Scheduling"):
 * pool-a of two capacity-modelled demo servers of unequal speed.
 */
import type { CapacityOptions } from "../../test/model-server/capacity.js";

/** One way of balancing pool-a: its `scheduling` section, or none (Envoy's least-request decides). */
export interface SchedulingArm {
  readonly id: string;
  readonly label: string;
  readonly scheduling: Record<string, unknown> | undefined;
}

/**
 * Both servers: 4 sequences at a time, 0.5 ms prefill per uncached prompt token, 10 ms per output token at
 * speed 1; the prefix cache holds 120 blocks of 16 tokens (under 5 of the prefix workload's 8 system
 * prompts: a server that sees all 8 keeps evicting them).
 */
export const SERVER_CAPACITY: Omit<CapacityOptions, "speed"> = {
  maxSequences: 4,
  kvTokens: 16_384,
  blockTokens: 16,
  prefixCacheBlocks: 120,
  prefillMsPerToken: 0.5,
  decodeMsPerToken: 10,
};

/** The slow server (pool-a's own) and the fast one (an extra endpoint of pool-a's cluster). */
export const SERVERS = [
  { name: "pool-a", speed: 1 },
  { name: "pool-a-fast", speed: 2 },
] as const;

/** The demo server's answer is at most 28 tokens (4 + the prompt's first 24 words). */
export const OUTPUT_TOKENS = 28;

/**
 * Requests per second the two servers complete with `promptTokens` uncached: each server runs
 * `maxSequences` at once, each taking prefill + decode, divided by its speed.
 */
export function capacityPerSecond(promptTokens: number): number {
  const serviceMs =
    promptTokens * SERVER_CAPACITY.prefillMsPerToken + (OUTPUT_TOKENS - 1) * SERVER_CAPACITY.decodeMsPerToken;
  return SERVERS.reduce((sum, s) => sum + (SERVER_CAPACITY.maxSequences * 1000 * s.speed) / serviceMs, 0);
}
