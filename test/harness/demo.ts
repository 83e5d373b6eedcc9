/**
 * `npm start`: the whole gateway on the README's default ports, with the sample policy, until Ctrl-C. Pool A
 * is scheduled (SAMPLE_SCHEDULING): its own demo server and a faster second one, both capacity-modelled.
 * `DEMO_OTLP_PORT=4318` turns traces on, sent to an OTLP/HTTP collector on that loopback port.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { DEFAULT_PORTS, DEMO_KEYS, ROOT, startStack } from "./index.js";
import { FILES, SAMPLE_SCHEDULING, scheduledPolicy } from "../../deploy/render/index.js";

/** The second server of pool A, next to pool A's and pool B's (README). */
const FAST_PORT = 8002;

const workDir = path.join(ROOT, ".run");
mkdirSync(workDir, { recursive: true });
// The sample policy with pool A scheduled, its endpoints the Envoy cluster's (both servers'), as written now.
const policyFile = path.join(workDir, "policy.yaml");
writeFileSync(
  policyFile,
  scheduledPolicy(readFileSync(path.join(ROOT, FILES.policySource), "utf8"), "envoy"),
);
const { pool, servers } = SAMPLE_SCHEDULING;
const [own, fast] = servers;
const otlpPort = process.env.DEMO_OTLP_PORT;
const stack = await startStack({
  ports: DEFAULT_PORTS,
  workDir,
  policyFile,
  tokenDelayMs: Number(process.env.DEMO_TOKEN_DELAY_MS ?? 20),
  capacity: { [pool]: own.capacity },
  extraEndpoints: [{ pool, name: fast.name, port: FAST_PORT, capacity: fast.capacity }],
  ...(otlpPort && { traces: { port: Number(otlpPort), flushIntervalMs: 1000 } }),
});
const server = (name: string, port: number, speed: number) =>
  `${name} http://127.0.0.1:${port}/metrics (speed ${speed})`;
console.log(`
LLM gateway is up.
  OpenAI base URL   http://127.0.0.1:${stack.ports.http}/v1   (TLS: https://localhost:${stack.ports.https}/v1, dev certificate envoy/certs/dev.crt)
  Envoy admin       http://127.0.0.1:${stack.ports.admin}   (metrics: /stats/prometheus)
  extproc metrics   http://127.0.0.1:${stack.ports.metrics}/metrics
  demo API keys     ${Object.values(DEMO_KEYS).join(", ")}
  policy            ${policyFile}   (${FILES.policySource} with ${pool} scheduled; restart after editing that)
  ${pool} servers    ${server(own.name, stack.ports.poolA, own.capacity.speed)}, ${server(fast.name, FAST_PORT, fast.capacity.speed)}
  audit log         ${stack.auditLog}
  envoy access log  ${stack.envoyAccessLog}${otlpPort ? `\n  traces            OTLP/HTTP to 127.0.0.1:${otlpPort}` : ""}

Try:
  curl -s http://127.0.0.1:${stack.ports.http}/v1/chat/completions -H 'authorization: Bearer ${DEMO_KEYS.research}' \\
    -H 'content-type: application/json' -d '{"model":"chat-default","messages":[{"role":"user","content":"hello"}]}'
  curl -s http://127.0.0.1:${stack.ports.metrics}/metrics | grep -E '^llm_gateway_endpoint_(picks_total|waiting)'
Ctrl-C stops everything.`);

const shutdown = () => void stack.stop().then(() => process.exit(0));
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
