/**
 * The demo model server's capacity model, shaped like vLLM's engine as the gateway's scheduler sees it: at
 * most `maxSequences` sequences run at once and the rest wait in arrival order; running sequences hold KV
 * blocks for their prompt and output tokens; a bounded LRU of prompt-prefix blocks (vLLM's automatic prefix
 * caching: a block's hash covers every token before it) makes a repeated prefix cheaper. Time to first
 * token is proportional to the prompt tokens not found in the cache, each token after it costs a decode
 * delay; both are divided by `speed`. It exports the counters and gauges vLLM's `/metrics` has (finished
 * sequences by `finished_reason` included).
 */
import { createHash } from "node:crypto";

/** Options for {@link CapacityModel}. */
export interface CapacityOptions {
  /** Sequences that run at once (vLLM `--max-num-seqs`); later ones wait. */
  readonly maxSequences: number;
  /** KV budget in tokens (vLLM's `kv_cache_size_tokens`): a sequence waits until its prompt + output fit. */
  readonly kvTokens: number;
  /** Tokens per KV / prefix-cache block (vLLM's `block_size`). */
  readonly blockTokens: number;
  /** Prefix blocks the cache keeps (least recently used go first). */
  readonly prefixCacheBlocks: number;
  /** Prefill time per uncached prompt token, at speed 1. */
  readonly prefillMsPerToken: number;
  /** Decode time per output token, at speed 1. */
  readonly decodeMsPerToken: number;
  /** Divides every delay: 2 is a server twice as fast. */
  readonly speed: number;
}

/** Defaults for everything but what a caller sets. */
export const DEFAULT_CAPACITY: CapacityOptions = {
  maxSequences: 4,
  kvTokens: 8192,
  blockTokens: 16,
  prefixCacheBlocks: 1024,
  prefillMsPerToken: 0.5,
  decodeMsPerToken: 5,
  speed: 1,
};

/** How a sequence ended: vLLM's `finished_reason` label values, in the order its `/metrics` lists them. */
export const FINISHED_REASONS = ["stop", "length", "abort", "error", "repetition"] as const;
/** One of {@link FINISHED_REASONS}. */
export type FinishedReason = (typeof FINISHED_REASONS)[number];

/** A sequence admitted to run: how long its first token takes, then each further token. */
export interface Admission {
  /** Delay before the first token (prefill of the uncached prompt). */
  readonly firstTokenMs: number;
  /** Delay between further tokens. */
  readonly tokenMs: number;
  /** Prompt tokens found in the prefix cache. */
  readonly cachedTokens: number;
  /**
   * Frees the sequence's slot and KV blocks and counts it finished by `reason` (`abort` when left out: the
   * client went away). Call once, when the answer ends or is abandoned; later calls do nothing.
   */
  release(reason?: FinishedReason): void;
}

/** The figures `/metrics` reports, as vLLM names them. */
export interface CapacitySnapshot {
  readonly waiting: number;
  readonly running: number;
  /** The most sequences that ever ran at once (a peak a sampled gauge could miss). */
  readonly peakRunning: number;
  /** KV blocks in use / all, 0..1 (vLLM `kv_cache_usage_perc`: 1 means 100 percent). */
  readonly kvUsage: number;
  /** Prompt tokens looked up in the prefix cache. */
  readonly prefixQueries: number;
  /** Of those, tokens found. */
  readonly prefixHits: number;
  /** Sequences that ended, by how (vLLM `request_success_total`). */
  readonly finished: Readonly<Record<FinishedReason, number>>;
}

interface Waiter {
  readonly blocks: number;
  /** Resolves the waiter: true when it took a slot, false when it was abandoned. */
  readonly start: (took: boolean) => void;
  readonly abandoned: () => boolean;
}

/** Sequences, KV blocks and the prefix cache of one demo server. */
export class CapacityModel {
  readonly options: CapacityOptions;
  private running = 0;
  private peakRunning = 0;
  private usedBlocks = 0;
  private readonly totalBlocks: number;
  private readonly waiters: Waiter[] = [];
  /** Block hash → true, in LRU order (Map keeps insertion order; a hit re-inserts). */
  private readonly prefixCache = new Map<string, true>();
  private prefixQueries = 0;
  private prefixHits = 0;
  private readonly finished: Record<FinishedReason, number> = {
    stop: 0,
    length: 0,
    abort: 0,
    error: 0,
    repetition: 0,
  };

  constructor(options: Partial<CapacityOptions> = {}) {
    this.options = { ...DEFAULT_CAPACITY, ...options };
    const { maxSequences, kvTokens, blockTokens, speed } = this.options;
    if (!(maxSequences >= 1 && kvTokens >= blockTokens && blockTokens >= 1 && speed > 0))
      throw new Error("capacity: maxSequences >= 1, kvTokens >= blockTokens >= 1 and speed > 0");
    this.totalBlocks = Math.floor(kvTokens / blockTokens);
  }

  /**
   * Waits for a slot and KV room for `promptTokens` + `maxOutputTokens` (capped at the whole budget, so a
   * huge request runs alone rather than never), looks the prompt's blocks up in the prefix cache, and
   * resolves with the sequence's timing. `abandoned` is asked before starting a waiter: a client gone while
   * it waited never takes a slot, and gets undefined.
   */
  async admit(
    promptTokens: readonly string[],
    maxOutputTokens: number,
    abandoned: () => boolean = () => false,
  ): Promise<Admission | undefined> {
    const { blockTokens } = this.options;
    const blocks = Math.min(
      this.totalBlocks,
      Math.ceil((promptTokens.length + Math.max(1, maxOutputTokens)) / blockTokens),
    );
    const took = await new Promise<boolean>((resolve) => {
      this.waiters.push({ blocks, start: resolve, abandoned });
      this.schedule();
    });
    if (!took) return undefined;
    const cachedTokens = this.lookUpPrefix(promptTokens);
    const { prefillMsPerToken, decodeMsPerToken, speed } = this.options;
    let released = false;
    return {
      firstTokenMs: ((promptTokens.length - cachedTokens) * prefillMsPerToken) / speed,
      tokenMs: decodeMsPerToken / speed,
      cachedTokens,
      release: (reason = "abort") => {
        if (released) return;
        released = true;
        this.finished[reason]++;
        this.running--;
        this.usedBlocks -= blocks;
        this.schedule();
      },
    };
  }

  /** The current figures. */
  snapshot(): CapacitySnapshot {
    return {
      waiting: this.waiters.length,
      running: this.running,
      peakRunning: this.peakRunning,
      kvUsage: this.usedBlocks / this.totalBlocks,
      prefixQueries: this.prefixQueries,
      prefixHits: this.prefixHits,
      finished: { ...this.finished },
    };
  }

  /** Starts waiters in arrival order while a slot and their KV blocks are free (no overtaking: FCFS). */
  private schedule(): void {
    while (this.waiters.length > 0) {
      const next = this.waiters[0]!;
      if (next.abandoned()) {
        this.waiters.shift();
        next.start(false);
        continue;
      }
      if (this.running >= this.options.maxSequences) return;
      if (this.usedBlocks + next.blocks > this.totalBlocks) return;
      this.waiters.shift();
      this.running++;
      this.peakRunning = Math.max(this.peakRunning, this.running);
      this.usedBlocks += next.blocks;
      next.start(true);
    }
  }

  /**
   * Prompt tokens covered by cached full blocks, from the start up to the first miss (a block's hash chains
   * every token before it, as vLLM's); every full block of this prompt is then cached (most recent last).
   */
  private lookUpPrefix(tokens: readonly string[]): number {
    const { blockTokens, prefixCacheBlocks } = this.options;
    const fullBlocks = Math.floor(tokens.length / blockTokens);
    this.prefixQueries += tokens.length;
    let hash = "";
    let hits = 0;
    let missed = false;
    for (let b = 0; b < fullBlocks; b++) {
      hash = createHash("sha256")
        .update(hash)
        .update(tokens.slice(b * blockTokens, (b + 1) * blockTokens).join("\u0000"))
        .digest("base64");
      const cached = this.prefixCache.delete(hash);
      if (cached && !missed) hits += blockTokens;
      else missed = true;
      this.prefixCache.set(hash, true);
      if (this.prefixCache.size > prefixCacheBlocks)
        this.prefixCache.delete(this.prefixCache.keys().next().value!);
    }
    this.prefixHits += hits;
    return hits;
  }
}

/**
 * vLLM's `/metrics` lines for the scheduler's figures, byte-shaped as vLLM 0.32 prints them (HELP, TYPE,
 * labels in name order: `engine`, `finished_reason`, `model_name`; floats with a decimal point); `model` is
 * the served model's name.
 */
export function vllmMetricsText(snapshot: CapacitySnapshot, model: string): string {
  const labels = `{engine="0",model_name="${model}"}`;
  const float = (n: number) => (Number.isInteger(n) ? `${n}.0` : String(n));
  const header = (name: string, type: string, help: string) =>
    `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
  const metric = (name: string, type: string, help: string, value: number) =>
    `${header(name, type, help)}${name}${labels} ${float(value)}\n`;
  const success = "vllm:request_success_total";
  return [
    metric(
      "vllm:num_requests_running",
      "gauge",
      "Number of requests in model execution batches.",
      snapshot.running,
    ),
    metric(
      "vllm:num_requests_waiting",
      "gauge",
      "Number of requests waiting to be processed.",
      snapshot.waiting,
    ),
    metric(
      "vllm:kv_cache_usage_perc",
      "gauge",
      "KV-cache usage. 1 means 100 percent usage.",
      snapshot.kvUsage,
    ),
    metric(
      "vllm:prefix_cache_queries_total",
      "counter",
      "Prefix cache queries, in terms of number of queried tokens.",
      snapshot.prefixQueries,
    ),
    metric(
      "vllm:prefix_cache_hits_total",
      "counter",
      "Prefix cache hits, in terms of number of cached tokens.",
      snapshot.prefixHits,
    ),
    header(success, "counter", "Count of successfully processed requests."),
    ...FINISHED_REASONS.map(
      (reason) =>
        `${success}{engine="0",finished_reason="${reason}",model_name="${model}"} ${float(snapshot.finished[reason])}\n`,
    ),
  ].join("");
}
