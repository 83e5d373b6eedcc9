/** What one row of the gateway benchmark is: a way to start something that serves the benchmark request. */
import type { Target } from "./measure.js";
import type { Api, Mode } from "./request.js";
import type { RowEnv } from "./stacks.js";

/** A row, started: where to send, which processes are its proxy, its own check, and how to stop it. */
export interface StartedRow extends Target {
  /**
   * What is wrong with the row before it is measured, beyond answering like the model server (which the
   * driver checks for every row): a row measuring something other than its label makes the comparison
   * meaningless. `modes`: the modes the row is measured in.
   */
  check(modes: readonly Mode[]): Promise<string[]>;
  stop(): Promise<void>;
}

/** One row of the benchmark (one file under benchmarks/scenarios/). */
export interface Scenario {
  /** Short stable name: the row's key in the JSON report. */
  readonly id: string;
  /** The row's name in the tables. */
  readonly label: string;
  /** What runs, in words, for the report's header. */
  readonly description: string;
  /** Why the row cannot run here, with how to make it run (a peer not installed); undefined when it can. */
  unavailable(): string | undefined;
  /** APIs the row does not serve, each with why; the row is left out of those APIs' modes. */
  readonly unsupported?: Readonly<Partial<Record<Api, string>>>;
  start(env: RowEnv): Promise<StartedRow>;
}
