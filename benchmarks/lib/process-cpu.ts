/**
 * Linux process accounting for the benchmark: CPU affinity through `taskset`, and CPU time and resident
 * memory per process tree from /proc, so a result can say what each proxy costs and which process ran out
 * of CPU first. Everything degrades to "unknown" where /proc or taskset is missing.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** A direct child of this process, with its command line. */
export interface ChildInfo {
  readonly pid: number;
  readonly argv: readonly string[];
}

/** Clock ticks per second of /proc CPU times (USER_HZ); 100 on practically every Linux. */
const CLOCK_TICKS = ((): number => {
  const out = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  return Number(out.stdout?.trim()) || 100;
})();

/** Fields of /proc/<pid>/stat after the parenthesised command name (which may contain spaces). */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** User + system CPU seconds `pid` has used so far (all its threads), or undefined if unreadable. */
function cpuSeconds(pid: number): number | undefined {
  const fields = statFields(pid);
  // After the name: state(0) ppid(1) ... utime(11) stime(12), per proc(5).
  if (!fields || fields.length < 13) return undefined;
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** `pid` and every process below it (a proxy that forks workers or helpers is one tree). */
function processTree(pid: number): number[] {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) tree.push(...childrenOf(tree[i]!).map((c) => c.pid));
  return tree;
}

/** User + system CPU seconds of `pid` and its descendants so far, or undefined if `pid` is unreadable. */
export function treeCpuSeconds(pid: number): number | undefined {
  const own = cpuSeconds(pid);
  if (own === undefined) return undefined;
  return processTree(pid)
    .slice(1)
    .reduce((sum, child) => sum + (cpuSeconds(child) ?? 0), own);
}

/** Resident memory (VmRSS) of `pid` and its descendants in bytes, or undefined if `pid` is unreadable. */
export function treeResidentBytes(pid: number): number | undefined {
  const rss = (p: number): number | undefined => {
    try {
      const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1];
      return kb === undefined ? undefined : Number(kb) * 1024;
    } catch {
      return undefined;
    }
  };
  const own = rss(pid);
  if (own === undefined) return undefined;
  return processTree(pid)
    .slice(1)
    .reduce((sum, child) => sum + (rss(child) ?? 0), own);
}

/** Direct children of `ppid` (empty without /proc). */
export function childrenOf(ppid: number): ChildInfo[] {
  let entries: string[];
  try {
    entries = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
  } catch {
    return [];
  }
  const children: ChildInfo[] = [];
  for (const entry of entries) {
    const pid = Number(entry);
    if (statFields(pid)?.[1] !== String(ppid)) continue;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
      children.push({ pid, argv });
    } catch {
      // Exited between the two reads: nothing to account.
    }
  }
  return children;
}

/** The environment `pid` was started with (`NAME=value` strings), or undefined if unreadable. */
export function environOf(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
  } catch {
    return undefined;
  }
}

/** Expands a taskset CPU list such as `0-2,5` into CPU numbers. */
export function parseCpuList(list: string): number[] {
  return list.split(",").flatMap((part) => {
    const [from, to] = part.trim().split("-").map(Number) as [number, number | undefined];
    if (!Number.isInteger(from)) return [];
    return Array.from({ length: (to ?? from) - from + 1 }, (_, i) => from + i);
  });
}

/** CPUs this process may run on, per `taskset`; undefined when taskset is unavailable. */
export function allowedCpus(): number[] | undefined {
  const out = spawnSync("taskset", ["-c", "-p", String(process.pid)], { encoding: "utf8" });
  if (out.status !== 0) return undefined;
  const list = out.stdout.split(":").pop() ?? "";
  return parseCpuList(list);
}

/**
 * Restricts every thread of this process to `cpus`. Processes started afterwards (the model server, the
 * load generator) inherit it; the proxies are started on their own CPU with taskset.
 */
export function pinSelf(cpus: readonly number[]): void {
  const out = spawnSync("taskset", ["-a", "-c", "-p", cpus.join(","), String(process.pid)], {
    encoding: "utf8",
  });
  if (out.status !== 0) throw new Error(`taskset failed: ${out.stderr.trim()}`);
}

/** Busy and total clock ticks per CPU since boot, from /proc/stat (empty without /proc). */
export function cpuTicks(): Map<number, { busy: number; total: number }> {
  const ticks = new Map<number, { busy: number; total: number }>();
  let stat: string;
  try {
    stat = readFileSync("/proc/stat", "utf8");
  } catch {
    return ticks;
  }
  for (const line of stat.split("\n")) {
    const match = /^cpu(\d+) (.*)$/.exec(line);
    if (!match) continue;
    // user nice system idle iowait irq softirq steal ...: idle and iowait are the not-busy ones.
    const values = match[2]!.trim().split(/\s+/).map(Number);
    const total = values.slice(0, 8).reduce((a, b) => a + b, 0);
    ticks.set(Number(match[1]), { busy: total - values[3]! - values[4]!, total });
  }
  return ticks;
}
