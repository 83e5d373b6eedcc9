/**
 * Runs one demo model server: `node dist/test/model-server/main.js --name pool-a --port 8000 \
 *   --models llama-3.1-8b-instruct [--api-key KEY] [--token-delay-ms 20] [--chat-only] [--capacity JSON]`
 */
import { parseArgs } from "node:util";
import { startModelServer } from "./index.js";

const { values } = parseArgs({
  options: {
    name: { type: "string", default: "demo" },
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "8000" },
    models: { type: "string", default: "demo-model" },
    "api-key": { type: "string" },
    "token-delay-ms": { type: "string", default: "0" },
    // Chat completions only: /v1/responses and /v1/messages answer 404 (a pool the gateway translates for).
    "chat-only": { type: "boolean", default: false },
    /** JSON of CapacityOptions (capacity.ts), e.g. '{"maxSequences":4,"speed":2}'; off without it. */
    capacity: { type: "string" },
  },
});

const server = await startModelServer({
  name: values.name,
  host: values.host,
  port: Number(values.port),
  models: values.models.split(","),
  apiKey: values["api-key"] ?? process.env.DEMO_API_KEY,
  tokenDelayMs: Number(values["token-delay-ms"]),
  chatOnly: values["chat-only"],
  ...(values.capacity !== undefined && { capacity: JSON.parse(values.capacity) as object }),
});
console.error(
  `demo model server ${values.name} listening on ${values.host}:${server.port} (${values.models})`,
);
const stop = () => void server.close().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
