/**
 * A real Prometheus (the Debian `prometheus` package scripts/setup.sh installs, or PROMETHEUS_BIN) for tests:
 * on loopback, on a free port, with its own temporary data directory, scraping the given targets and
 * evaluating the given rule files. Its HTTP API answers the queries.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as yaml from "js-yaml";
import { childEnv, launch, terminate, type Launched } from "./children.js";
import { freePort, waitFor } from "./index.js";

/** A scrape job: its name and the `host:port` targets it scrapes at `metricsPath`. */
export interface ScrapeJob {
  readonly job: string;
  readonly targets: readonly string[];
  readonly metricsPath: string;
}

/** Options for {@link startPrometheus}. */
export interface PrometheusOptions {
  readonly jobs: readonly ScrapeJob[];
  /** Rule files to load (absolute paths). */
  readonly ruleFiles: readonly string[];
  /** Scrape and rule evaluation interval, e.g. "1s". */
  readonly interval: string;
}

/** One sample of an instant query's vector result. */
export interface Sample {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

/** An alert as `/api/v1/alerts` lists it. */
export interface ActiveAlert {
  readonly labels: Record<string, string>;
  readonly state: "pending" | "firing";
}

/** A running Prometheus. */
export interface Prometheus {
  readonly url: string;
  /** The configuration file it runs with (for `promtool check config`). */
  readonly configFile: string;
  /** Evaluates `expr` now; rejects with Prometheus' error when it does not parse or cannot be evaluated. */
  query(expr: string): Promise<Sample[]>;
  /** Series of `metric` known to Prometheus now. */
  series(metric: string): Promise<Array<Record<string, string>>>;
  alerts(): Promise<ActiveAlert[]>;
  stop(): Promise<void>;
}

/** The prometheus binary: PROMETHEUS_BIN, or the one on PATH. */
export const prometheusBinary = (): string => process.env.PROMETHEUS_BIN ?? "prometheus";

/** The promtool binary: PROMTOOL_BIN, or the one on PATH. */
export const promtoolBinary = (): string => process.env.PROMTOOL_BIN ?? "promtool";

/** Runs promtool with `args` and returns its exit status and output. */
export function promtool(args: readonly string[]): { status: number | null; output: string } {
  const run = spawnSync(promtoolBinary(), args, { encoding: "utf8", env: childEnv() });
  return { status: run.status, output: `${run.stdout}${run.stderr}${run.error ?? ""}` };
}

interface ApiAnswer<T> {
  readonly status: "success" | "error";
  readonly data: T;
  readonly error?: string;
}

/**
 * Starts Prometheus and waits until it is ready. Without a runnable prometheus the test fails (it is
 * installed by scripts/setup.sh like redis-server): a test that did not run is never reported as a pass.
 */
export async function startPrometheus(options: PrometheusOptions): Promise<Prometheus> {
  const version = spawnSync(prometheusBinary(), ["--version"], { encoding: "utf8" });
  if (version.status !== 0)
    throw new Error(
      `${prometheusBinary()} cannot run (scripts/setup.sh installs the Debian package; or set PROMETHEUS_BIN): ${version.error ?? version.stderr}`,
    );
  const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-prometheus-"));
  const port = await freePort();
  const configFile = path.join(dir, "prometheus.yml");
  const config = {
    global: { scrape_interval: options.interval, evaluation_interval: options.interval },
    rule_files: options.ruleFiles,
    scrape_configs: options.jobs.map((j) => ({
      job_name: j.job,
      metrics_path: j.metricsPath,
      scrape_timeout: options.interval,
      static_configs: [{ targets: j.targets }],
    })),
  };
  writeFileSync(configFile, yaml.dump(config));
  const output: string[] = [];
  const launched: Launched = launch(
    "prometheus",
    prometheusBinary(),
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=warn",
    ],
    { env: childEnv(), output },
  );
  const url = `http://127.0.0.1:${port}`;
  const exited = launched.exited.then(() => {
    throw new Error(`prometheus exited during start-up: ${output.join("")}`);
  });
  try {
    await Promise.race([
      waitFor("prometheus", async () => (await fetch(`${url}/-/ready`)).ok, 20_000),
      exited,
    ]);
  } catch (err) {
    await terminate(launched);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const answer = (await (await fetch(`${url}${pathAndQuery}`)).json()) as ApiAnswer<T>;
    if (answer.status !== "success") throw new Error(`${pathAndQuery}: ${answer.error}`);
    return answer.data;
  };
  return {
    url,
    configFile,
    query: async (expr) => {
      const data = await api<{ resultType: string; result: Sample[] | [number, string] }>(
        `/api/v1/query?query=${encodeURIComponent(expr)}`,
      );
      // A scalar result (an expression over numbers only) reads as one sample without labels.
      return data.resultType === "scalar"
        ? [{ metric: {}, value: data.result as [number, string] }]
        : (data.result as Sample[]);
    },
    series: (metric) => api(`/api/v1/series?match[]=${encodeURIComponent(metric)}`),
    alerts: async () => (await api<{ alerts: ActiveAlert[] }>("/api/v1/alerts")).alerts,
    stop: async () => {
      await terminate(launched);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
