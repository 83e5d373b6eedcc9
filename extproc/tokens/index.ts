import { Worker } from "node:worker_threads";
import { countTokensSync, type EncodingName } from "./count.js";

export { ENCODINGS, countTokensSync, preloadEncoding, type EncodingName } from "./count.js";

/** Options for {@link TokenCounter}. */
export interface TokenCounterOptions {
  /** Worker threads for large inputs. */
  readonly workers: number;
  /** Inputs up to this many characters are counted inline (~5 ms worst case); larger ones in a worker. */
  readonly inlineLimitChars: number;
}

interface Pending {
  readonly resolve: (count: number) => void;
  readonly reject: (err: Error) => void;
}

/**
 * Counts prompt tokens without blocking the event loop: small inputs inline, large ones on a pool of
 * worker threads (round-robin). Counting is linear in the input (see count.ts).
 */
export class TokenCounter {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private nextWorker = 0;

  constructor(private readonly options: TokenCounterOptions) {}

  /** Number of tokens in `texts` under `encoding`. */
  count(texts: readonly string[], encoding: EncodingName): Promise<number> {
    let chars = 0;
    for (const text of texts) chars += text.length;
    if (chars <= this.options.inlineLimitChars || this.options.workers === 0) {
      return Promise.resolve(countTokensSync(texts, encoding));
    }
    const id = this.nextId++;
    const worker = this.worker();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, texts, encoding });
    });
  }

  /** Stops the worker threads. */
  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private worker(): Worker {
    if (this.workers.length < this.options.workers) {
      const worker = new Worker(new URL("./worker.js", import.meta.url));
      worker.on("message", (msg: { id: number; count?: number; error?: string }) => {
        const pending = this.pending.get(msg.id);
        if (!pending) return;
        this.pending.delete(msg.id);
        if (msg.error !== undefined) pending.reject(new Error(msg.error));
        else pending.resolve(msg.count!);
      });
      worker.on("error", (err) => {
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
        this.workers.splice(this.workers.indexOf(worker), 1);
      });
      worker.unref();
      this.workers.push(worker);
      return worker;
    }
    return this.workers[this.nextWorker++ % this.workers.length]!;
  }
}
