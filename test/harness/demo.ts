/**
 * `npm start`: the whole gateway on the README's default ports, with the sample policy, until Ctrl-C.
 * `DEMO_OTLP_PORT=4318` turns traces on, sent to an OTLP/HTTP collector on that loopback port.
 */
import path from "node:path";
import { DEFAULT_PORTS, DEMO_KEYS, ROOT, startStack } from "./index.js";

const workDir = path.join(ROOT, ".run");
const otlpPort = process.env.DEMO_OTLP_PORT;
const stack = await startStack({
  ports: DEFAULT_PORTS,
  workDir,
  tokenDelayMs: Number(process.env.DEMO_TOKEN_DELAY_MS ?? 20),
  ...(otlpPort && { traces: { port: Number(otlpPort), flushIntervalMs: 1000 } }),
});
console.log(`
LLM gateway is up.
  OpenAI base URL   http://127.0.0.1:${stack.ports.http}/v1   (TLS: https://localhost:${stack.ports.https}/v1, dev certificate envoy/certs/dev.crt)
  Envoy admin       http://127.0.0.1:${stack.ports.admin}   (metrics: /stats/prometheus)
  extproc metrics   http://127.0.0.1:${stack.ports.metrics}/metrics
  demo API keys     ${Object.values(DEMO_KEYS).join(", ")}
  audit log         ${stack.auditLog}
  envoy access log  ${stack.envoyAccessLog}${otlpPort ? `\n  traces            OTLP/HTTP to 127.0.0.1:${otlpPort}` : ""}

Try:
  curl -s http://127.0.0.1:${stack.ports.http}/v1/chat/completions -H 'authorization: Bearer ${DEMO_KEYS.research}' \\
    -H 'content-type: application/json' -d '{"model":"chat-default","messages":[{"role":"user","content":"hello"}]}'
Ctrl-C stops everything.`);

const shutdown = () => void stack.stop().then(() => process.exit(0));
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
