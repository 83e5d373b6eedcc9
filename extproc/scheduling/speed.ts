/**
 * An endpoint's speed from its successive reads: requests finished per second of a request running, the
 * inverse of how long a request runs there. Raw throughput (finished per second) would measure what was
 * sent, not what the server can do: a server given more work finishes more, looks faster and would draw
 * still more, even past a queue while another server has free slots. Per running request, a server's
 * speed stays the same whether it gets one request or many (batching), so the picker's `(load + 1) / speed`
 * is about the time the server needs for what it holds plus the new request.
 *
 * Both sums decay with the time constant `windowMs`; their ratio is the estimate. The first completions
 * give one at once (the window only sets how fast old reads are forgotten), and while a server idles both
 * sums shrink alike, so its speed stays what it was.
 */

/** Below this weight (completions) the estimate is forgotten: after a long idle, old reads say nothing. */
const FORGET_BELOW = 1e-6;

/** The speed estimate of one endpoint, fed with each successful read. */
export class SpeedEstimate {
  /** The counter at the last read; undefined before one, or when the server does not export it. */
  private lastCompletions: number | undefined;
  private lastRunning = 0;
  private lastAt = 0;
  /** Decayed completions. */
  private finished = 0;
  /** Decayed running-request seconds. */
  private busySeconds = 0;

  constructor(private readonly windowMs: number) {}

  /**
   * Adds a read at monotonic `atMs`: the completions counter (undefined when the read had none) and the
   * requests running. A counter that went down is a restarted server: the estimate starts again.
   */
  observe(atMs: number, completions: number | undefined, running: number): void {
    const usable =
      completions !== undefined && Number.isFinite(completions) && Number.isFinite(running) && running >= 0;
    const last = this.lastCompletions;
    if (!usable || last === undefined || completions < last) {
      this.finished = 0;
      this.busySeconds = 0;
    } else {
      const dtMs = Math.max(0, atMs - this.lastAt);
      const decay = Math.exp(-dtMs / this.windowMs);
      this.finished = this.finished * decay + (completions - last);
      // The running gauge is sampled at each read: the mean of two reads stands for the time between them.
      this.busySeconds = this.busySeconds * decay + (((this.lastRunning + running) / 2) * dtMs) / 1000;
      if (this.finished > 0 && this.finished < FORGET_BELOW) this.finished = this.busySeconds = 0;
    }
    this.lastCompletions = usable ? completions : undefined;
    this.lastRunning = running;
    this.lastAt = atMs;
  }

  /** Requests finished per running-request second; undefined until something finished while running was seen. */
  perSecond(): number | undefined {
    return this.finished > 0 && this.busySeconds > 0 ? this.finished / this.busySeconds : undefined;
  }
}
