/** Token-counting worker thread: counts off the event loop for large prompts (see TokenCounter). */
import { parentPort } from "node:worker_threads";
import { countTokensSync, type EncodingName } from "./count.js";

interface Task {
  readonly id: number;
  readonly texts: string[];
  readonly encoding: EncodingName;
}

parentPort!.on("message", (task: Task) => {
  try {
    parentPort!.postMessage({ id: task.id, count: countTokensSync(task.texts, task.encoding) });
  } catch (err) {
    parentPort!.postMessage({ id: task.id, error: (err as Error).message });
  }
});
