/**
 * Where the benchmark's processes run: every proxy (Envoy, extproc, a peer) on one CPU, everything else
 * (the model server, the load generator, the driver) on the others, so each row's proxy has exactly one
 * core and the load never takes time from it.
 */
import { allowedCpus, pinSelf } from "./process-cpu.js";

/** Which CPUs the proxies and everything else run on. */
export interface Placement {
  /** The proxies' CPU list for taskset; absent when not pinning. */
  readonly proxyCpus?: string;
  /** CPUs whose busy time is reported (all the benchmark may use). */
  readonly cpus: readonly number[];
  readonly description: string;
}

/**
 * On 2+ CPUs: the proxies on the first allowed CPU; this driver pinned to the rest, so the processes it
 * starts without taskset (model server, load generator) inherit that.
 */
export function decidePlacement(pin: boolean): Placement {
  const allowed = allowedCpus() ?? [];
  if (!pin || allowed.length < 2) {
    const why = pin ? "fewer than 2 CPUs or no taskset" : "--no-pin";
    return { cpus: allowed, description: `no CPU pinning (${why}); the OS schedules everything` };
  }
  const [proxyCpu, ...others] = allowed as [number, ...number[]];
  pinSelf(others);
  return {
    proxyCpus: String(proxyCpu),
    cpus: allowed,
    description: `every proxy (Envoy, extproc, LiteLLM, AI Gateway's extproc) on CPU ${proxyCpu}; model server, load generator and driver on CPU ${others.join(",")} (taskset)`,
  };
}

/** `command args` started under taskset on the proxies' CPU (as is without pinning). */
export function pinned(placement: Placement, command: string, args: readonly string[]): [string, string[]] {
  return placement.proxyCpus
    ? ["taskset", ["-c", placement.proxyCpus, command, ...args]]
    : [command, [...args]];
}
