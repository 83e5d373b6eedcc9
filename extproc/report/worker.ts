/**
 * A report's worker thread: reads the ranges the main thread sends ({@link readRange}) and posts back what
 * each held, one at a time.
 */
import { parentPort } from "node:worker_threads";
import { readRange, type RangeTask } from "./range.js";

parentPort!.on("message", (task: RangeTask) => {
  parentPort!.postMessage(readRange(task));
});
