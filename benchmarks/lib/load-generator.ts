/**
 * Closed-loop HTTP load generator for the gateway benchmark. It runs in its own process
 * (load-generator-process.ts, started by {@link runGenerator}) so its event loop never competes with the
 * code being measured: a fixed number of
 * workers each keep exactly one request in flight on a keep-alive connection, first for a warm-up that is
 * thrown away, then for the measured run, which ends after a request count or a time limit, whichever
 * comes first.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

/** One load-generator run: where to send what, how hard, for how long. */
export interface LoadSpec {
  /** Absolute `http://127.0.0.1:<port>/<path>` URL. */
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /**
   * The response is SSE when set: success also requires this text, which only the stream's final event
   * carries (chat's `data: [DONE]`, the agent APIs' last event name: lib/request.ts, `streamEnd`).
   */
  readonly streamEnd?: string;
  /** Requests in flight at all times (closed loop), and sockets in the keep-alive pool. */
  readonly concurrency: number;
  /** Requests sent first and not measured (JIT, connection set-up, caches everywhere on the path). */
  readonly warmup: number;
  /** Measured requests at most. */
  readonly requests: number;
  /** Measured run time at most; the warm-up has the same limit of its own. */
  readonly durationMs: number;
  /** A single request slower than this fails, so a hung peer cannot keep the run going forever. */
  readonly timeoutMs: number;
}

/** Percentiles of a latency sample, in milliseconds. */
export interface Distribution {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

/** What a measured run produced. Failed requests are counted, never part of the latency figures. */
export interface LoadResult {
  readonly ok: number;
  readonly errors: number;
  /** The first failure's description, to tell a broken setup from a slow one. */
  readonly firstError: string | null;
  readonly elapsedS: number;
  /** Successful requests per second of measured wall time. */
  readonly requestsPerS: number;
  readonly stoppedBy: "requests" | "time";
  /** Request start to last response byte. */
  readonly latencyMs: Distribution;
  /** Request start to first response body byte (the first SSE event for streams). */
  readonly ttfbMs: Distribution;
}

/** Messages the generator process writes to stdout, one JSON object per line. */
export type LoadMessage =
  { readonly event: "measuring" } | { readonly event: "done"; readonly result: LoadResult };

interface Sample {
  readonly ok: boolean;
  readonly ttfbMs: number;
  readonly totalMs: number;
  readonly error?: string;
}

/** Sends one request on the shared agent and resolves (never rejects) with its timings. */
function sendOne(agent: Agent, url: URL, spec: LoadSpec, body: Buffer): Promise<Sample> {
  return new Promise((resolve) => {
    const start = performance.now();
    let settled = false;
    const settle = (sample: Sample): void => {
      if (settled) return;
      settled = true;
      resolve(sample);
    };
    const fail = (error: string): void => settle({ ok: false, ttfbMs: 0, totalMs: 0, error });
    const req = request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        headers: { ...spec.headers, "content-length": body.length },
      },
      (res) => {
        let firstByte = 0;
        const endMark = spec.streamEnd;
        // Only a tail is kept, enough to see the final event's mark across chunk boundaries, without
        // buffering whole answers.
        let tail = "";
        let ended = false;
        res.on("data", (chunk: Buffer) => {
          if (firstByte === 0) firstByte = performance.now();
          if (endMark === undefined || ended) return;
          const seen = tail + chunk.toString("latin1");
          ended = seen.includes(endMark);
          tail = seen.slice(-(endMark.length - 1));
        });
        res.on("end", () => {
          const end = performance.now();
          if (res.statusCode !== 200) return fail(`HTTP ${res.statusCode}`);
          if (endMark !== undefined && !ended)
            return fail(`stream ended without its final event (${JSON.stringify(endMark)})`);
          settle({ ok: true, ttfbMs: (firstByte || end) - start, totalMs: end - start });
        });
        res.on("error", (err) => fail(err.message));
        res.on("close", () => fail("response closed before its end"));
      },
    );
    req.setTimeout(spec.timeoutMs, () => req.destroy(new Error(`no answer within ${spec.timeoutMs} ms`)));
    req.on("error", (err) => fail(err.message));
    req.end(body);
  });
}

/**
 * Keeps `concurrency` requests in flight until `count` have been sent or `deadline` (performance.now())
 * has passed; in-flight requests are always awaited. Reports how the loop ended.
 */
async function closedLoop(
  spec: LoadSpec,
  count: number,
  deadline: number,
  send: () => Promise<Sample>,
  record: (sample: Sample) => void,
): Promise<"requests" | "time"> {
  let issued = 0;
  const worker = async (): Promise<void> => {
    while (issued < count && performance.now() < deadline) {
      issued++;
      record(await send());
    }
  };
  await Promise.all(Array.from({ length: spec.concurrency }, worker));
  return issued >= count ? "requests" : "time";
}

/** Nearest-rank percentiles of the first `n` values (sorted in place). */
export function distribution(values: Float64Array, n: number): Distribution {
  if (n === 0) return { p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const sorted = values.subarray(0, n).sort();
  const at = (p: number): number => sorted[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]!;
  let sum = 0;
  for (const v of sorted) sum += v;
  return { p50: at(50), p90: at(90), p99: at(99), max: sorted[n - 1]!, mean: sum / n };
}

/**
 * Runs the warm-up and the measured run. `onMeasuring` is called between the two, so the caller can
 * start its own accounting (CPU time) for exactly the measured window.
 */
export async function runLoad(spec: LoadSpec, onMeasuring: () => void = () => {}): Promise<LoadResult> {
  const url = new URL(spec.url);
  const body = Buffer.from(spec.body, "utf8");
  // One socket per worker, never closed between requests: connection set-up is not what we measure.
  const agent = new Agent({
    keepAlive: true,
    maxSockets: spec.concurrency,
    maxFreeSockets: spec.concurrency,
    noDelay: true,
  });
  const send = () => sendOne(agent, url, spec, body);
  try {
    await closedLoop(spec, spec.warmup, performance.now() + spec.durationMs, send, () => {});

    const total = new Float64Array(spec.requests);
    const ttfb = new Float64Array(spec.requests);
    let ok = 0;
    let errors = 0;
    let firstError: string | null = null;
    const record = (sample: Sample): void => {
      if (!sample.ok) {
        errors++;
        firstError ??= sample.error ?? "failed";
        return;
      }
      total[ok] = sample.totalMs;
      ttfb[ok] = sample.ttfbMs;
      ok++;
    };
    onMeasuring();
    const started = performance.now();
    const stoppedBy = await closedLoop(spec, spec.requests, started + spec.durationMs, send, record);
    const elapsedS = (performance.now() - started) / 1000;
    return {
      ok,
      errors,
      firstError,
      elapsedS,
      requestsPerS: ok / elapsedS,
      stoppedBy,
      latencyMs: distribution(total, ok),
      ttfbMs: distribution(ttfb, ok),
    };
  } finally {
    agent.destroy();
  }
}

const PROCESS_MAIN = fileURLToPath(new URL("./load-generator-process.js", import.meta.url));
const running = new Set<ChildProcess>();

/**
 * Runs {@link runLoad} in a child process (inheriting this process's CPUs); `onMeasuring` (with the
 * child's pid) and `onDone` bracket the measured window, so CPU accounting covers exactly it.
 */
export function runGenerator(
  spec: LoadSpec,
  onMeasuring: (pid: number) => void,
  onDone: () => void,
): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PROCESS_MAIN, JSON.stringify(spec)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    running.add(child);
    // The generator stops by itself; this only catches a wedged one.
    const limit = setTimeout(() => child.kill("SIGKILL"), 2 * spec.durationMs + spec.timeoutMs + 30_000);
    let result: LoadResult | undefined;
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!line.startsWith("{")) return; // not ours: only messages are JSON objects
      const message = JSON.parse(line) as LoadMessage;
      if (message.event === "measuring") onMeasuring(child.pid!);
      else {
        onDone();
        result = message.result;
      }
    });
    child.once("error", reject);
    child.once("close", (code, signal) => {
      clearTimeout(limit);
      running.delete(child);
      if (result) resolve(result);
      else reject(new Error(`load generator exited (${signal ?? code}) without a result`));
    });
  });
}

/** Kills every load generator still running (the benchmark was interrupted). */
export function killGenerators(): void {
  for (const child of running) child.kill("SIGKILL");
}
