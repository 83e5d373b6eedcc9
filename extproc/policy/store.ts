import { watch, type FSWatcher } from "node:fs";
import path from "node:path";
import type { Logger } from "pino";
import type { Gauge, Counter } from "prom-client";
import { loadPolicy, PolicyError, type LoadPolicyOptions, type Policy } from "./index.js";

/** Metrics a {@link PolicyStore} keeps. */
export interface PolicyMetrics {
  readonly reloads: Counter<"result">;
  readonly lastSuccess: Gauge;
  readonly info: Gauge<"digest">;
  /** Price per million tokens in force, by model, token type (`prompt`, `completion`) and currency. */
  readonly price: Gauge<"model" | "type" | "currency">;
}

/**
 * The policy in force, replaced atomically on reload. A request reads it once when it starts, so it never
 * sees half of one policy and half of another; a reload that fails validation changes nothing.
 */
export class PolicyStore {
  private policy: Policy;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  /** Reloads rejected since the last good one: an operator must hear when the file is valid again. */
  private rejectedReloads = 0;

  constructor(
    private readonly file: string,
    private readonly options: LoadPolicyOptions,
    private readonly metrics: PolicyMetrics,
    private readonly logger: Logger,
    /** Called with each newly loaded policy (e.g. to preload tokenizers). */
    private readonly onLoad: (policy: Policy) => void = () => {},
  ) {
    this.policy = loadPolicy(file, options);
    this.onLoad(this.policy);
    this.recordSuccess();
  }

  /** The policy in force now. */
  get current(): Policy {
    return this.policy;
  }

  /** Loads the file again; on success swaps it in, on failure logs file/path/problem and keeps the last good one. */
  reload(trigger: string): boolean {
    let next: Policy;
    try {
      next = loadPolicy(this.file, this.options);
    } catch (err) {
      this.metrics.reloads.inc({ result: "failure" });
      this.rejectedReloads++;
      const problems =
        err instanceof PolicyError ? err.problems : [{ path: "", message: (err as Error).message }];
      this.logger.error(
        { trigger, file: this.file, problems },
        `policy reload rejected; keeping ${this.policy.digest.slice(0, 16)}`,
      );
      return false;
    }
    const rejected = this.rejectedReloads;
    this.rejectedReloads = 0;
    if (next.digest === this.policy.digest) {
      // The file was put back as it was: nothing to swap, but the rejection logged before is over.
      if (rejected > 0) {
        this.recordSuccess();
        this.logRecovery(trigger, rejected, this.policy, this.policy);
      }
      return true;
    }
    const previous = this.policy;
    if (JSON.stringify(next.quota) !== JSON.stringify(previous.quota)) {
      this.logger.warn(
        { trigger },
        "quota store settings changed: they take effect on restart; limits apply now",
      );
    }
    this.onLoad(next);
    this.policy = next;
    this.recordSuccess(previous);
    if (rejected > 0) this.logRecovery(trigger, rejected, next, previous);
    else {
      this.logger.info(
        {
          trigger,
          digest: next.digest.slice(0, 16),
          previous: previous.digest.slice(0, 16),
          keys: next.keysBySha256.size,
        },
        "policy reloaded",
      );
    }
    return true;
  }

  /** A valid file after rejected ones: at warn, the level the rejections were watched at, with what is in force. */
  private logRecovery(trigger: string, rejected: number, applied: Policy, previous: Policy): void {
    this.logger.warn(
      {
        trigger,
        digest: applied.digest.slice(0, 16),
        previous: previous.digest.slice(0, 16),
        rejected_reloads: rejected,
        keys: applied.keysBySha256.size,
      },
      `policy valid again after ${rejected} rejected reload(s); applied ${applied.digest.slice(0, 16)}`,
    );
  }

  /**
   * Reloads when the file changes. The directory is watched, not the file: editors and Kubernetes
   * ConfigMaps replace files (rename, symlink swap) rather than write them in place.
   */
  watch(): void {
    const dir = path.dirname(path.resolve(this.file));
    const name = path.basename(this.file);
    this.watcher = watch(dir, (_event, changed) => {
      // Only the policy file itself, or a ConfigMap's `..data` symlink swap: other files in the directory
      // (logs, say) change all the time and must neither trigger reloads nor starve the timer below.
      if (changed !== null && changed !== name && !String(changed).startsWith("..")) return;
      // Coalesce the burst of events one replacement makes; a pending reload is not pushed back.
      this.debounce ??= setTimeout(() => {
        this.debounce = undefined;
        this.reload("file change");
      }, 50);
    });
    this.watcher.on("error", (err) =>
      this.logger.error({ err }, "policy watch failed; SIGHUP still reloads"),
    );
  }

  close(): void {
    clearTimeout(this.debounce);
    this.watcher?.close();
  }

  private recordSuccess(previous?: Policy): void {
    this.metrics.reloads.inc({ result: "success" });
    this.metrics.lastSuccess.set(Date.now() / 1000);
    if (previous) this.metrics.info.remove({ digest: previous.digest.slice(0, 16) });
    this.metrics.info.set({ digest: this.policy.digest.slice(0, 16) }, 1);
    // Only the prices in force: a model removed or unpriced by this policy has none.
    this.metrics.price.reset();
    const currency = this.policy.currency;
    for (const [model, { price }] of this.policy.models) {
      if (!price) continue;
      this.metrics.price.set({ model, type: "prompt", currency }, price.input);
      this.metrics.price.set({ model, type: "completion", currency }, price.output);
    }
  }
}
