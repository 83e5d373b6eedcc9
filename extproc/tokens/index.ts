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
  readonly worker: Worker;
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
  private closed = false;

  constructor(private readonly options: TokenCounterOptions) {}

  /** Number of tokens in `texts` under `encoding`. */
  count(texts: readonly string[], encoding: EncodingName): Promise<number> {
    let chars = 0;
    for (const text of texts) chars += text.length;
    if (chars <= this.options.inlineLimitChars || this.options.workers === 0 || this.closed) {
      return Promise.resolve(countTokensSync(texts, encoding));
    }
    const id = this.nextId++;
    const worker = this.worker();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { worker, resolve, reject });
      worker.postMessage({ id, texts, encoding });
    });
  }

  /** Stops the worker threads; counts still in flight are rejected, later ones run inline. */
  async close(): Promise<void> {
    this.closed = true;
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((w) => w.terminate()));
  }

  /** Rejects the counts a worker still owed, and forgets the worker (a new one starts on demand). */
  private retire(worker: Worker, err: Error): void {
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      p.reject(err);
    }
    const index = this.workers.indexOf(worker);
    if (index !== -1) this.workers.splice(index, 1);
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
      worker.on("error", (err) => this.retire(worker, err));
      worker.on("exit", () => this.retire(worker, new Error("token counting worker exited")));
      worker.unref();
      this.workers.push(worker);
      return worker;
    }
    return this.workers[this.nextWorker++ % this.workers.length]!;
  }
}
