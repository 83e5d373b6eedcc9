/**
 * The load generator's process: `node load-generator-process.js <LoadSpec JSON>` runs one load and writes
 * {@link LoadMessage}s to stdout, one JSON object per line (started by `runGenerator`).
 */
import { runLoad, type LoadMessage, type LoadSpec } from "./load-generator.js";

const spec = JSON.parse(process.argv[2] ?? "{}") as LoadSpec;
const emit = (message: LoadMessage): void => void process.stdout.write(`${JSON.stringify(message)}\n`);
const result = await runLoad(spec, () => emit({ event: "measuring" }));
emit({ event: "done", result });
