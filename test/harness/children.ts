/**
 * The one way test code starts a process: a known environment, output captured, every child killed when
 * this process exits, and a promise of how it ended.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { ROOT } from "../../deploy/render/files.js";

/**
 * What a child takes from this process's environment: finding programs (PATH) and a home and temporary
 * directory. Nothing else: a developer's EXTPROC_*, LOG_LEVEL, REDIS_PASSWORD or NODE_OPTIONS (a heap
 * limit, a preloaded module) would change what is tested. Every setting a child needs is given explicitly.
 */
const INHERITED = ["PATH", "HOME", "TMPDIR"] as const;

/** The allow-listed part of this process's environment plus `explicit` (which wins). */
export function childEnv(explicit: Readonly<Record<string, string | undefined>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of INHERITED) if (process.env[name] !== undefined) env[name] = process.env[name];
  return { ...env, ...explicit };
}

/** How a child process ended: its exit code, or the signal that killed it. */
export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A started child. */
export interface Launched {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves once the process has exited and all of its output has been read. */
  readonly exited: Promise<ExitStatus>;
}

/** Where a child's output goes. */
export interface LaunchOptions {
  /** Its environment, from {@link childEnv}. */
  readonly env: NodeJS.ProcessEnv;
  /** Appends stdout and stderr to this file. */
  readonly logFile?: string;
  /** Pushes each piece of stdout and stderr onto this array (for assertion messages). */
  readonly output?: string[];
  /** Also forwards its output to this process's stderr. */
  readonly inherit?: boolean;
}

const live = new Set<ChildProcess>();
process.on("exit", () => live.forEach((child) => child.kill("SIGKILL")));

/** Starts `command` in the repository root; with no sink for its output, that output is discarded. */
export function launch(
  name: string,
  command: string,
  args: readonly string[],
  options: LaunchOptions,
): Launched {
  const captured = options.logFile !== undefined || options.output !== undefined || options.inherit === true;
  const child = spawn(command, args, {
    cwd: ROOT,
    env: options.env,
    stdio: captured ? ["ignore", "pipe", "pipe"] : "ignore",
  });
  if (captured) {
    const streams = [child.stdout!, child.stderr!];
    if (options.logFile !== undefined) {
      const log = createWriteStream(options.logFile, { flags: "a" });
      for (const s of streams) s.pipe(log, { end: false });
      // Two sources share one log: end it once both are closed, not when the first one ends.
      child.once("close", () => log.end());
    }
    const output = options.output;
    if (output) for (const s of streams) s.on("data", (d: Buffer) => output.push(d.toString()));
    if (options.inherit) for (const s of streams) s.pipe(process.stderr);
  }
  live.add(child);
  const exited = new Promise<ExitStatus>((resolve, reject) => {
    child.once("error", reject);
    // "close", not "exit": only then has all of the child's output been read.
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  void exited.then(
    () => live.delete(child),
    () => live.delete(child),
  );
  return { name, child, exited };
}

/** Whether `launched` has not exited yet. */
export const running = (launched: Launched | undefined): launched is Launched =>
  launched !== undefined && launched.child.exitCode === null && launched.child.signalCode === null;

/** SIGTERMs `launched` (SIGKILL after 10 s) and waits until it is gone. */
export async function terminate(launched: Launched | undefined): Promise<void> {
  if (!running(launched)) return;
  launched.child.kill("SIGTERM");
  const timer = setTimeout(() => launched.child.kill("SIGKILL"), 10_000);
  await launched.exited.catch(() => undefined);
  clearTimeout(timer);
}
