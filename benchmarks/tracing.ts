/**
 * What tracing costs extproc itself, without Envoy, gRPC or the network (`node dist/benchmarks/tracing.js`):
 * an Exchange over the unit tier's real parts (in-memory quota store, inline workers, real metrics) handles a
 * chat request of four ext_proc messages, in blocks alternating tracing off and on (the real exporter,
 * encoding every batch, its post answering at once), and the process's CPU time per exchange is compared.
 * Alternating blocks on one process keep a busy machine's drift out of the comparison.
 */
import pino from "pino";
import { Exchange } from "../extproc/processor/index.js";
import { MemoryQuotaStore, QuotaService } from "../extproc/quota/index.js";
import { BatchSpanExporter, Tracer } from "../extproc/tracing/index.js";
import {
  requestBody,
  requestHeaders,
  responseBody,
  responseHeaders,
  T0,
  unitDeps,
} from "../test/unit/ext-proc.js";

const BLOCKS = 8;
const PER_BLOCK = 2000;
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const CHAT = {
  model: "m1",
  messages: [{ role: "user", content: "Say hello in five words please." }],
  max_tokens: 20,
};
const ANSWER = JSON.stringify({
  id: "c1",
  object: "chat.completion",
  created: 1,
  model: "m1",
  choices: [{ index: 0, message: { role: "assistant", content: "hello there" }, finish_reason: "stop" }],
  usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 },
});

const unit = unitDeps();
let clock = T0;
let exported = 0;
// The clock moves a minute per reading, so the unit policy's tokens-per-minute limit never refuses one.
const quota = new QuotaService({
  store: new MemoryQuotaStore(),
  shared: false,
  metrics: unit.metrics,
  logger: pino({ level: "silent" }),
  now: () => (clock += 60_000),
});
const exporter = new BatchSpanExporter({
  post: async () => 200,
  resource: { "service.name": "benchmark" },
  queueSpans: 100_000,
  flushMs: 50,
  counters: { exported: (n) => (exported += n), dropped: () => {} },
});
const off = { ...unit.deps, quota };
const on = { ...off, tracer: new Tracer(exporter) };

async function exchange(deps: typeof off): Promise<void> {
  const ex = new Exchange(deps, TRACEPARENT);
  await ex.handle(requestHeaders());
  await ex.handle(requestBody(CHAT));
  await ex.handle(responseHeaders({ ":status": "200", "content-type": "application/json" }));
  await ex.handle(responseBody(ANSWER, true));
}

/** CPU µs per exchange over `n` exchanges, the exporter's encoding of their spans included. */
async function block(deps: typeof off, n: number): Promise<number> {
  const before = process.cpuUsage();
  for (let i = 0; i < n; i++) await exchange(deps);
  await new Promise((resolve) => setTimeout(resolve, 60));
  const records = await unit.audit.records();
  unit.audit.written.length = 0;
  if (records.some((r) => r.status !== 200))
    throw new Error("an exchange was refused: the comparison is void");
  const used = process.cpuUsage(before);
  return (used.user + used.system) / n;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
// Warm-up: both paths compiled before anything is measured.
for (let i = 0; i < 3; i++) {
  await block(off, 500);
  await block(on, 500);
}
const results = { off: [] as number[], on: [] as number[] };
for (let i = 0; i < BLOCKS; i++) {
  results.off.push(await block(off, PER_BLOCK));
  results.on.push(await block(on, PER_BLOCK));
}
await exporter.shutdown();
for (const [name, xs] of Object.entries(results))
  console.log(
    `tracing ${name.padEnd(3)}: ${median(xs).toFixed(0)} µs CPU per exchange (median of ${BLOCKS} blocks of ${PER_BLOCK}: ${xs.map((x) => x.toFixed(0)).join(" ")})`,
  );
console.log(
  `spans exported: ${exported} (${(exported / (BLOCKS * PER_BLOCK + 1500)).toFixed(1)} per traced exchange)`,
);
