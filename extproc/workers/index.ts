import { Worker } from "node:worker_threads";
import type { Logger } from "pino";
import { GatewayError } from "../errors/index.js";
import { scanGuardrailTexts, type DenyPattern, type GuardrailScan } from "../guardrails/scan.js";
import type { Finding, Scanner } from "../pii/scanner.js";
import { countTokensSync, type EncodingName } from "../tokens/count.js";
import type { TaskInput, TaskKind, TaskOutput, TaskReply, TaskRequest } from "./protocol.js";

export type { TaskKind } from "./protocol.js";

/**
 * Largest input (characters, all texts of a task together) run inline, per task kind. Measured on one core:
 * counting 32 KiB takes up to ~5 ms (non-Latin text); the PII scan of 64 KiB with the sample policy ~2.5 ms
 * and the guardrail scan less, while handing a task to a worker costs ~0.1–0.3 ms. Beyond these sizes the
 * event loop would stall long enough to delay other requests noticeably (see benchmarks/pii.ts).
 */
export const DEFAULT_INLINE_LIMIT_CHARS: Readonly<Record<TaskKind, number>> = {
  countTokens: 32 * 1024,
  findPii: 64 * 1024,
  scanGuardrails: 64 * 1024,
};

/** Options for {@link WorkerPool}. */
export interface WorkerPoolOptions {
  /** Worker threads (started on demand); 0 runs everything inline. */
  readonly workers: number;
  /** Per task kind, inputs up to this many characters run inline. */
  readonly inlineLimitChars?: Readonly<Record<TaskKind, number>>;
  /** Told why a worker failed (its tasks fail with a 503 `worker_failed`). */
  readonly logger?: Logger;
  /**
   * A worker that has tasks but finishes none for this long is ended (its tasks fail with a 503
   * `worker_failed`, a new worker starts): a task has run that long. Measured from the last finished task,
   * not from posting, so a queue of large tasks is not mistaken for a stuck one. The work is linear, so only
   * a bug gets here; the default stays under Envoy's 30 s max_message_timeout so the client gets a clear
   * answer, not a timeout.
   */
  readonly taskDeadlineMs?: number;
}

/** Default of {@link WorkerPoolOptions.taskDeadlineMs}. */
export const DEFAULT_TASK_DEADLINE_MS = 20_000;

interface Pending {
  readonly worker: Worker;
  readonly resolve: (output: TaskOutput<TaskKind>) => void;
  readonly reject: (err: Error) => void;
}

/**
 * The worker threads that keep linear-but-heavy work on large inputs (token counting, PII detection,
 * guardrail scans) off the event loop, so one multi-MB prompt does not stall every other request. Small
 * inputs run inline (cheaper than the hand-off). A task goes to the worker with the fewest tasks pending.
 * A worker that dies fails only its pending tasks (503 `worker_failed`); a new one starts on demand.
 * Results are the same either way: both paths run the same pure functions.
 */
export class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly load = new Map<Worker, number>();
  /** Per busy worker: ends it if it finishes no task in time (see taskDeadlineMs). */
  private readonly watchdogs = new Map<Worker, NodeJS.Timeout>();
  private readonly inlineLimitChars: Readonly<Record<TaskKind, number>>;
  private nextId = 0;
  private closed = false;

  constructor(private readonly options: WorkerPoolOptions) {
    this.inlineLimitChars = options.inlineLimitChars ?? DEFAULT_INLINE_LIMIT_CHARS;
  }

  /** Number of tokens in `texts` under `encoding`. */
  countTokens(texts: readonly string[], encoding: EncodingName): Promise<number> {
    return this.run("countTokens", { texts, encoding }, () => countTokensSync(texts, encoding));
  }

  /** `scanner`'s findings of the `enabled` entity types in each text (one entry per text). */
  findPii(scanner: Scanner, texts: readonly string[], enabled: ReadonlySet<string>): Promise<Finding[][]> {
    return this.run(
      "findPii",
      { texts, scanner: { key: scanner.key, spec: scanner.spec }, enabled: [...enabled] },
      () => scanner.scanAll(texts, enabled),
    );
  }

  /** Deny-pattern matches, redacted texts and injection score (see scanGuardrailTexts). */
  scanGuardrails(
    texts: readonly string[],
    denies: readonly DenyPattern[],
    injection: boolean,
  ): Promise<GuardrailScan> {
    const specs = denies.map(({ regex, ...rest }) => ({ ...rest, pattern: regex.source }));
    return this.run("scanGuardrails", { texts, denies: specs, injection }, () =>
      scanGuardrailTexts(texts, denies, injection),
    );
  }

  /** Stops the worker threads; tasks still in flight are rejected, later ones run inline. */
  async close(): Promise<void> {
    this.closed = true;
    const workers = this.workers.splice(0);
    await Promise.all(workers.map((w) => w.terminate()));
  }

  private async run<K extends TaskKind>(
    kind: K,
    input: TaskInput<K>,
    inline: () => TaskOutput<K>,
  ): Promise<TaskOutput<K>> {
    let chars = 0;
    for (const text of input.texts) chars += text.length;
    if (chars <= this.inlineLimitChars[kind] || this.options.workers === 0 || this.closed) return inline();
    const id = this.nextId++;
    const worker = this.worker();
    this.load.set(worker, (this.load.get(worker) ?? 0) + 1);
    if (!this.watchdogs.has(worker)) this.watch(worker);
    return new Promise<TaskOutput<K>>((resolve, reject) => {
      this.pending.set(id, { worker, resolve: resolve as Pending["resolve"], reject });
      worker.postMessage({ id, kind, input } as TaskRequest);
    });
  }

  /** (Re)starts `worker`'s watchdog: it must finish a task within the deadline. */
  private watch(worker: Worker): void {
    clearTimeout(this.watchdogs.get(worker));
    const timer = setTimeout(() => {
      this.options.logger?.error("a worker task ran past its deadline; ending the worker");
      void worker.terminate(); // its "exit" retires it, failing its tasks
    }, this.options.taskDeadlineMs ?? DEFAULT_TASK_DEADLINE_MS);
    timer.unref();
    this.watchdogs.set(worker, timer);
  }

  /** Stops `worker`'s watchdog (idle or gone). */
  private unwatch(worker: Worker): void {
    clearTimeout(this.watchdogs.get(worker));
    this.watchdogs.delete(worker);
  }

  private settle(reply: TaskReply): void {
    const pending = this.pending.get(reply.id);
    if (!pending) return;
    this.pending.delete(reply.id);
    const load = this.load.get(pending.worker)! - 1;
    this.load.set(pending.worker, load);
    // A task finished: the worker is making progress. The next one gets a full deadline.
    if (load > 0) this.watch(pending.worker);
    else this.unwatch(pending.worker);
    if ("error" in reply) pending.reject(new Error(reply.error));
    else pending.resolve(reply.output);
  }

  /** Fails the tasks a worker still owed, and forgets the worker (a new one starts on demand). */
  private retire(worker: Worker, cause: Error): void {
    const index = this.workers.indexOf(worker);
    if (index !== -1) this.workers.splice(index, 1);
    this.load.delete(worker);
    this.unwatch(worker);
    let failed = 0;
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      failed++;
      p.reject(
        new GatewayError(
          "worker_failed",
          "The gateway could not check this request (a worker failed). Retry it.",
        ),
      );
    }
    if (failed > 0 && !this.closed)
      this.options.logger?.error({ err: cause, failedTasks: failed }, "worker thread failed; replacing it");
  }

  private worker(): Worker {
    let idle: Worker | undefined;
    for (const w of this.workers)
      if (idle === undefined || this.load.get(w)! < this.load.get(idle)!) idle = w;
    if (idle !== undefined && (this.load.get(idle) === 0 || this.workers.length >= this.options.workers))
      return idle;
    const worker = new Worker(new URL("./worker.js", import.meta.url));
    worker.on("message", (reply: TaskReply) => this.settle(reply));
    worker.on("error", (err) => this.retire(worker, err));
    worker.on("exit", (code) => this.retire(worker, new Error(`worker thread exited with code ${code}`)));
    // A reply that cannot be deserialized would leave its task unanswered: end the worker, failing its tasks.
    worker.on("messageerror", (err) => {
      this.retire(worker, err);
      void worker.terminate();
    });
    // Workers must not keep the process alive; the server's handles do while requests are pending.
    worker.unref();
    this.workers.push(worker);
    this.load.set(worker, 0);
    return worker;
  }
}
