/**
 * Start-up of what the rows run: the one demo model server every row sends to, our gateway (the harness's
 * stack, with its proxies pinned) and a peer's processes, each stopped again by the benchmark.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { launch, terminate, type Launched } from "../../test/harness/children.js";
import {
  childEnv,
  freePort,
  POOL_MODELS,
  ROOT,
  startStack,
  waitFor,
  type Stack,
  type StackOptions,
} from "../../test/harness/index.js";
import { writePolicy, type PolicyDoc } from "../../test/harness/policy.js";
import type { Tracked } from "./measure.js";
import { pinned, type Placement } from "./placement.js";
import { childrenOf, environOf, type ChildInfo } from "./process-cpu.js";

/** What every row is started with. */
export interface RowEnv {
  /** The demo model server every row sends to. */
  readonly modelServerPort: number;
  readonly placement: Placement;
  /** A fresh directory for the row's configuration and logs. */
  readonly workDir: string;
}

/** A fresh working directory under the system's temporary directory. */
export const freshWorkDir = (): string => mkdtempSync(path.join(tmpdir(), "llm-gateway-bench-"));

/** A process the benchmark started, as a {@link Tracked} with a way to stop it. */
export interface StartedProcess extends Tracked {
  stop(): Promise<void>;
}

/** Resolves once `url` answers 2xx (and its body contains `expect`, if given). */
export const answers = (url: string, expect?: string) => async (): Promise<boolean> => {
  const res = await fetch(url);
  const text = await res.text();
  return res.ok && (expect === undefined || text.includes(expect));
};

/**
 * Starts `command` (a proxy: pinned to the proxies' CPU), output to `workDir/<name>.log`, and waits until
 * `ready` resolves true; throws, with the log's path, if it exits first or is not ready in `timeoutMs`.
 */
export async function startProcess(
  env: Pick<RowEnv, "placement" | "workDir">,
  name: string,
  command: string,
  args: readonly string[],
  options: { readonly pin: boolean; readonly env?: Record<string, string>; readonly timeoutMs?: number },
  ready: () => Promise<boolean>,
): Promise<StartedProcess> {
  const [cmd, cmdArgs] = options.pin ? pinned(env.placement, command, args) : [command, [...args]];
  const logFile = path.join(env.workDir, `${name}.log`);
  const launched: Launched = launch(name, cmd, cmdArgs, { env: childEnv(options.env), logFile });
  const stop = (): Promise<void> => terminate(launched);
  const exitedEarly = launched.exited.then((status) => {
    throw new Error(`${name} exited during start-up (${status.signal ?? status.code}); see ${logFile}`);
  });
  try {
    await Promise.race([waitFor(name, ready, options.timeoutMs), exitedEarly]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { label: name, pid: launched.child.pid!, stop };
}

/** The demo model server every row sends to. */
export interface DemoModelServer extends StartedProcess {
  readonly port: number;
}

/** Starts the demo model server (not pinned: it runs with the driver) serving every pool's models. */
export async function startDemoModelServer(
  env: Pick<RowEnv, "placement" | "workDir">,
): Promise<DemoModelServer> {
  const port = await freePort();
  const models = Object.values(POOL_MODELS).flat();
  const args = [
    path.join(ROOT, "dist/test/model-server/main.js"),
    ...["--name", "demo", "--port", String(port), "--models", models.join(",")],
  ];
  const server = await startProcess(
    env,
    "model server",
    process.execPath,
    args,
    { pin: false },
    answers(`http://127.0.0.1:${port}/health`),
  );
  return { ...server, port };
}

/**
 * The policy of an extproc row, written into `dir`: the core gateway (the sample policy with no limits, no
 * `pii` section and no guardrails), then `edit` (given the sample as read) for a row that adds features.
 */
export function writeBenchPolicy(dir: string, edit?: (doc: PolicyDoc, sample: PolicyDoc) => void): string {
  return writePolicy(dir, (doc) => {
    const sample = structuredClone(doc);
    doc.limits = [];
    delete doc.pii;
    doc.guardrails = [];
    edit?.(doc, sample);
  });
}

/** Our gateway as a row runs it. */
export interface GatewayStack {
  readonly stack: Stack;
  /** Envoy, and extproc when it runs. */
  readonly proxies: readonly Tracked[];
}

const argAfter = (argv: readonly string[], flag: string): string | undefined => argv[argv.indexOf(flag) + 1];

/**
 * Starts Envoy (the rendered envoy/envoy.yaml) in front of the demo model server, with extproc and
 * `policyFile` unless `policyFile` is undefined (then Envoy runs without the ext_proc filter); both pinned
 * to the proxies' CPU.
 */
export async function startGateway(
  env: RowEnv,
  policyFile: string | undefined,
  traces?: StackOptions["traces"],
): Promise<GatewayStack> {
  const cpus = env.placement.proxyCpus;
  const stack = await startStack({
    modelServerPort: env.modelServerPort,
    workDir: env.workDir,
    envoyCpus: cpus,
    ...(policyFile ? { extprocCpus: cpus, policyFile } : { withoutExtProc: true }),
    ...(traces && { traces }),
  });
  const children = childrenOf(process.pid);
  const envoyConfig = path.join(stack.workDir, "envoy.yaml");
  // Every stack's extproc has the same command line; its environment names its listen address.
  const listen = `EXTPROC_LISTEN=unix:${stack.extprocSockets[0]}`;
  const roles: Array<[string, (c: ChildInfo) => boolean]> = [
    ["envoy", (c) => argAfter(c.argv, "-c") === envoyConfig],
  ];
  if (policyFile)
    roles.push([
      "extproc",
      (c) =>
        c.argv.some((a) => a.endsWith(path.join("extproc", "main.js"))) &&
        (environOf(c.pid)?.includes(listen) ?? false),
    ]);
  const proxies = roles.map(([label, matches]) => {
    const child = children.find(matches);
    if (!child) throw new Error(`cannot find the ${label} process of the stack in ${stack.workDir}`);
    return { label, pid: child.pid };
  });
  return { stack, proxies };
}
