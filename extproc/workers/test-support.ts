/** Unit-test support (imported by tests only): watching what the worker pool hands to its threads. */
import type { TestContext } from "node:test";
import { Worker } from "node:worker_threads";
import type { TaskKind } from "./protocol.js";

/** The tasks handed to worker threads since {@link watchHandOffs}, oldest first. */
export interface HandOffs {
  /** How many tasks went to a worker thread. */
  count(): number;
  /** The kind of each task handed off. */
  kinds(): TaskKind[];
  /** The worker thread each task went to. */
  workers(): Worker[];
}

/** Watches every task posted to a worker thread for the rest of test `t` (the posts still happen). */
export function watchHandOffs(t: TestContext): HandOffs {
  const posted = t.mock.method(Worker.prototype, "postMessage");
  return {
    count: () => posted.mock.callCount(),
    kinds: () => posted.mock.calls.map((call) => (call.arguments[0] as { kind: TaskKind }).kind),
    workers: () => posted.mock.calls.map((call) => call.this as Worker),
  };
}
