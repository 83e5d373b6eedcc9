import { lookup } from "node:dns/promises";
import { Agent, get } from "node:http";
import { isIPv6 } from "node:net";
import type { PoolScheduling } from "./compile.js";
import type { EndpointState } from "./picker.js";
import { readMetrics } from "./prometheus.js";
import { SpeedEstimate } from "./speed.js";

/** A `/metrics` answer larger than this is refused (vLLM's is ~60 KB). */
const MAX_METRICS_BYTES = 4 * 1024 * 1024;

/** One endpoint's last successful read. */
interface Reading {
  waiting: number;
  running: number;
  kvUsage: number;
  /** Monotonic ms of the last successful read; -Infinity before the first. */
  readAt: number;
  scraping: boolean;
  /** Requests this replica sent since the read in flight (or the last one) began. */
  assigned: number;
  /** Requests this replica sent that have not ended. */
  inFlight: number;
  readonly speed: SpeedEstimate;
}

/** What one read of an endpoint's metrics found. */
interface Figures {
  readonly waiting: number;
  readonly running: number;
  readonly kvUsage: number;
  /** The completions counter, all series summed; undefined when not configured or not in the answer. */
  readonly completions: number | undefined;
}

/** What {@link PoolStateReader} reports of one endpoint, for metrics. */
export interface EndpointReport {
  readonly pool: string;
  readonly address: string;
  readonly known: boolean;
  readonly waiting: number;
  readonly running: number;
  readonly kvUsage: number;
  /** Requests finished per running-request second (undefined while unknown). */
  readonly speed: number | undefined;
  /** Seconds since the last successful read (Infinity before the first). */
  readonly ageSeconds: number;
}

/** Callbacks a reader reports through. */
export interface ReaderEvents {
  /** A scrape of `address` failed (logged at debug: a down server fails every interval). */
  readonly scrapeFailed?: (pool: string, address: string, err: Error) => void;
  /** A DNS refresh failed; the last resolved set stays. */
  readonly resolveFailed?: (pool: string, err: Error) => void;
}

/**
 * Reads every endpoint of one pool at the pool's interval: `GET <metricsPath>` with a bounded timeout, only
 * on configured endpoints (from Envoy, a static list or a DNS name), over one keep-alive agent.
 */
export class PoolStateReader {
  private readonly readings = new Map<string, Reading>();
  private timer: NodeJS.Timeout | undefined;
  private dnsTimer: NodeJS.Timeout | undefined;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 1 });
  private readonly wanted: ReadonlySet<string>;

  /**
   * `envoyAddresses`: the pool cluster's endpoints in the Envoy bootstrap (used by an `envoy` source).
   * `now`: monotonic milliseconds.
   */
  constructor(
    readonly settings: PoolScheduling,
    envoyAddresses: readonly string[],
    private readonly events: ReaderEvents = {},
    private readonly now: () => number = () => performance.now(),
  ) {
    const { metricNames } = settings;
    this.wanted = new Set(
      [metricNames.waiting, metricNames.running, metricNames.kvUsage, metricNames.completions].filter(
        (n) => n !== undefined,
      ),
    );
    const { endpoints } = settings;
    if (endpoints.kind === "envoy") this.setAddresses(envoyAddresses);
    else if (endpoints.kind === "static") this.setAddresses(endpoints.addresses);
  }

  /** Starts reading (and resolving, for a DNS source). Timers do not keep the process alive. */
  start(): void {
    const { endpoints, intervalMs } = this.settings;
    if (endpoints.kind === "dns") {
      void this.resolve();
      this.dnsTimer = setInterval(() => void this.resolve(), endpoints.refreshMs).unref();
    }
    this.scrapeAll();
    this.timer = setInterval(() => this.scrapeAll(), intervalMs).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    clearInterval(this.dnsTimer);
    this.agent.destroy();
  }

  /**
   * Every endpoint's state now: unknown once its last successful read is older than the staleness bound. One
   * failed read does not make it unknown: that would send every request to the others until the next read.
   */
  states(): EndpointState[] {
    const now = this.now();
    const out: EndpointState[] = [];
    for (const [address, r] of this.readings) {
      const known = now - r.readAt <= this.settings.staleAfterMs;
      out.push({
        address,
        known,
        waiting: r.waiting,
        running: r.running,
        kvUsage: r.kvUsage,
        assigned: r.assigned,
        inFlight: r.inFlight,
        speed: r.speed.perSecond(),
      });
    }
    return out;
  }

  /** Counts a request sent to `address`: until the next read shows it, and until it ends. */
  assigned(address: string): void {
    const r = this.readings.get(address);
    if (r) {
      r.assigned++;
      r.inFlight++;
    }
  }

  /** A request sent to `address` has ended. */
  finished(address: string): void {
    const r = this.readings.get(address);
    if (r && r.inFlight > 0) r.inFlight--;
  }

  /** The endpoints' last reads, for metrics. */
  report(): EndpointReport[] {
    const now = this.now();
    return this.states().map((s) => ({
      pool: this.settings.pool,
      address: s.address,
      known: s.known,
      waiting: s.waiting,
      running: s.running,
      kvUsage: s.kvUsage,
      speed: s.speed,
      ageSeconds: (now - this.readings.get(s.address)!.readAt) / 1000,
    }));
  }

  /** Replaces the endpoint set, keeping what is known of endpoints that stay. */
  private setAddresses(addresses: readonly string[]): void {
    const next = new Set(addresses);
    for (const address of this.readings.keys()) if (!next.has(address)) this.readings.delete(address);
    for (const address of next) {
      if (!this.readings.has(address))
        this.readings.set(address, {
          waiting: 0,
          running: 0,
          kvUsage: 0,
          readAt: -Infinity,
          scraping: false,
          inFlight: 0,
          assigned: 0,
          speed: new SpeedEstimate(this.settings.speedWindowMs),
        });
    }
  }

  private async resolve(): Promise<void> {
    const { endpoints } = this.settings;
    if (endpoints.kind !== "dns") return;
    try {
      const found = await lookup(endpoints.host, { all: true });
      this.setAddresses(
        found.map(({ address }) =>
          isIPv6(address) ? `[${address}]:${endpoints.port}` : `${address}:${endpoints.port}`,
        ),
      );
    } catch (err) {
      this.events.resolveFailed?.(this.settings.pool, err as Error);
    }
  }

  private scrapeAll(): void {
    for (const [address, reading] of this.readings) {
      // A scrape still running is bounded by its timeout; the next interval tries again.
      if (reading.scraping) continue;
      reading.scraping = true;
      // Requests sent before the server answers may or may not be in its figures; those sent before the
      // read began are assumed to be (counting them twice would push requests away from a server for nothing).
      const assignedBefore = reading.assigned;
      this.scrape(address).then(
        (values) => {
          reading.scraping = false;
          reading.waiting = values.waiting;
          reading.running = values.running;
          reading.kvUsage = values.kvUsage;
          reading.readAt = this.now();
          reading.speed.observe(reading.readAt, values.completions, values.running);
          reading.assigned = Math.max(0, reading.assigned - assignedBefore);
        },
        (err: Error) => {
          reading.scraping = false;
          this.events.scrapeFailed?.(this.settings.pool, address, err);
        },
      );
    }
  }

  /**
   * One `GET /metrics` of `address`, parsed; rejects on any failure, a timeout or a missing gauge (a missing
   * completions counter only leaves the speed unknown).
   */
  private scrape(address: string): Promise<Figures> {
    const { metricsPath, timeoutMs, metricNames } = this.settings;
    const colon = address.lastIndexOf(":");
    const host = address.slice(0, colon).replace(/^\[|\]$/g, "");
    const port = Number(address.slice(colon + 1));
    return new Promise((resolve, reject) => {
      const req = get(
        {
          host,
          port,
          path: metricsPath,
          agent: this.agent,
          timeout: timeoutMs,
          signal: AbortSignal.timeout(timeoutMs),
        },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            reject(new Error(`status ${res.statusCode}`));
            return;
          }
          const parts: Buffer[] = [];
          let size = 0;
          res.on("data", (part: Buffer) => {
            size += part.length;
            if (size > MAX_METRICS_BYTES) req.destroy(new Error(`metrics over ${MAX_METRICS_BYTES} bytes`));
            else parts.push(part);
          });
          res.on("error", reject);
          res.on("end", () => {
            try {
              const found = readMetrics(Buffer.concat(parts).toString("utf8"), this.wanted);
              const waiting = found.get(metricNames.waiting);
              const running = found.get(metricNames.running);
              if (!waiting || !running)
                throw new Error(`no ${waiting ? metricNames.running : metricNames.waiting}`);
              const kv = metricNames.kvUsage === undefined ? undefined : found.get(metricNames.kvUsage);
              if (metricNames.kvUsage !== undefined && !kv) throw new Error(`no ${metricNames.kvUsage}`);
              // Several engines (data parallel): their queues add up; the fullest cache is what a request risks.
              const completions =
                metricNames.completions === undefined ? undefined : found.get(metricNames.completions)?.sum;
              const read = { waiting: waiting.sum, running: running.sum, kvUsage: kv ? kv.max : 0 };
              // A negative or NaN queue would draw every request to this server (and past maxSequences).
              if (!(read.waiting >= 0 && read.running >= 0 && read.kvUsage >= 0 && read.kvUsage <= 1))
                throw new Error(`figures out of range: ${JSON.stringify(read)}`);
              resolve({ ...read, completions });
            } catch (err) {
              reject(err as Error);
            }
          });
        },
      );
      req.on("timeout", () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
      req.on("error", reject);
    });
  }
}
