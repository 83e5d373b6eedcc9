/**
 * PII scan throughput (`npm run bench:pii`; benchmarks/README.md, "PII scan throughput"). Measures
 * PiiSession.redactRequest with the sample policy's PII section (deploy/policy.yaml: every built-in detector
 * plus its custom word-list and regex detectors, as the support team gets them) on generated, realistic
 * prompts of 1 KB, 32 KB and 1 MB: prose in several languages with some PII, code, JSON, CSV and log lines.
 * Each size runs several times; the table shows the median throughput (MB = 10^6 UTF-8 bytes) and the range.
 *
 * A second table shows what one large prompt's request-path scan (guardrail deny patterns and injection
 * rules, then PII detection, then the actions) does to everything else on the event loop, before (inline,
 * as extproc did without worker threads) and after (WorkerPool): a 5 ms timer stands in for other
 * requests; each tick also scans a 1 KB prompt inline. Reported: the longest event-loop stall and the
 * slowest such small request (its delay plus its own scan).
 *
 *   node dist/benchmarks/pii.js [--runs N] [--min-run-ms MS] [--json]
 */
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import type { Identity } from "../extproc/auth/index.js";
import { applicableGuardrails } from "../extproc/guardrails/index.js";
import { PiiSession, resolvePii, type ResolvedPii } from "../extproc/pii/index.js";
import { loadPolicy, type Policy } from "../extproc/policy/index.js";
import { WorkerPool } from "../extproc/workers/index.js";
import { seededRandom } from "../test/harness/random.js";
import { ROOT } from "../deploy/render/files.js";

const SAMPLE_POLICY = path.join(ROOT, "deploy/policy.yaml");
const IDENTITY: Identity = { keyId: "support-bot", team: "support", allowedModels: new Set() };
const MODEL = "llama-3.1-8b-instruct";

/** Text without PII: prose, code, JSON, logs. */
const PLAIN = [
  "Please review the design below and list the three biggest risks. The service receives events from the " +
    "queue, validates them against the schema, enriches them with account data from the cache and writes " +
    "them to the warehouse in batches of 500. Failed events go to a dead-letter queue and are retried " +
    "with exponential backoff. We expect about 2,000 events per second at peak, with bursts of 10x during " +
    "the end-of-month billing run. Latency is not critical, but ordering per account must be preserved.\n\n",
  "```go\nfunc (s *Store) Get(ctx context.Context, key string) ([]byte, error) {\n" +
    "\ts.mu.RLock()\n\tdefer s.mu.RUnlock()\n\tv, ok := s.items[key]\n\tif !ok {\n" +
    "\t\treturn nil, ErrNotFound\n\t}\n\treturn v, nil\n}\n```\n\n",
  '{"model": "llama-3.1-8b-instruct", "temperature": 0.2, "max_tokens": 512, "stream": true, ' +
    '"messages": [{"role": "system", "content": "You are a concise assistant."}, {"role": "user", ' +
    '"content": "List the differences between TCP and UDP in a table."}]}\n\n',
  "| Metric | Q1 | Q2 | Q3 |\n|---|---|---|---|\n| Revenue (M EUR) | 12.1 | 13.4 | 14.0 |\n" +
    "| Active users | 81,200 | 86,950 | 90,100 |\n| Churn | 2.4% | 2.2% | 2.1% |\n\n",
  "Kun je deze tekst samenvatten in drie zinnen? De gemeente wil de binnenstad autoluw maken en investeert " +
    "de komende vijf jaar in fietspaden, openbaar vervoer en groen. Ondernemers maken zich zorgen over de " +
    "bereikbaarheid, bewoners zijn overwegend positief.\n\n",
  "¿Puedes traducir este párrafo al inglés? El equipo terminó la migración de la base de datos durante el " +
    "fin de semana y no hubo incidencias. El lunes revisaremos el rendimiento de las consultas más lentas.\n\n",
];

/** Blocks with PII; `{…}` marks are filled with generated values. */
const WITH_PII = [
  "Could you summarise the following customer thread and draft a polite answer? The customer, {name}, " +
    "wrote to us from {email} on Tuesday about a double charge. She says the card {card} was billed twice " +
    "for the same order and asks for a refund to the same card. Her phone number is {phone}; she prefers a " +
    "call in the afternoon. Please keep the answer short and do not promise a date.\n\n",
  "Hallo zusammen, anbei die Zusammenfassung des Workshops. Wir haben die Architektur des neuen " +
    "Abrechnungssystems besprochen, die Migration der Altdaten und die offenen Punkte zur Barrierefreiheit. " +
    "Rückfragen bitte an {email}. Die Überweisung der Teilnahmegebühr geht an {iban}.\n\n",
  "Bonjour, voici le compte rendu de la réunion de lundi. Les équipes ont validé le calendrier de livraison " +
    "et la liste des fonctionnalités prioritaires. Pour toute question, écrivez à {email} ou appelez le " +
    "{phone}. Le projet Bluebird reste confidentiel jusqu'à l'annonce officielle.\n\n",
  "```python\nimport os\nimport requests\n\nAPI_URL = 'https://api.example.com/v1/orders'\n\n" +
    "def fetch_orders(customer_id: int, page: int = 1) -> list[dict]:\n" +
    "    headers = {'Authorization': f\"Bearer {os.environ['ORDERS_TOKEN']}\"}\n" +
    "    response = requests.get(API_URL, params={'customer': customer_id, 'page': page}, headers=headers)\n" +
    "    response.raise_for_status()\n    return response.json()['items']\n```\n\n",
  "```ts\nexport function total(items: ReadonlyArray<{ price: number; qty: number }>): number {\n" +
    "  return items.reduce((sum, item) => sum + item.price * item.qty, 0);\n}\n\n" +
    "const config = { host: '{ip}', port: 5432, user: 'app', retries: 3, timeoutMs: 2500 };\n```\n\n",
  '{"order": {"id": "A-{n}", "customer": {"name": "{name}", "email": "{email}", "phone": "{phone}"}, ' +
    '"items": [{"sku": "SKU-{n}", "qty": 2, "price": 19.99}, {"sku": "SKU-{n}", "qty": 1, "price": 5.5}], ' +
    '"shipping": {"city": "Rotterdam", "country": "NL"}, "created": "2024-11-22T08:15:02Z"}}\n\n',
  "2024-11-22T08:15:{ss}Z INFO  request id={uuid} path=/api/v1/orders status=200 ms=42 client={ip}\n" +
    "2024-11-22T08:15:{ss}Z WARN  slow query took 1532 ms (orders by customer, page 7)\n" +
    "2024-11-22T08:15:{ss}Z ERROR payment failed for {email}: card declined (code 51)\n\n",
  "id,name,email,city,plan\n{n},{name},{email},Berlin,pro\n{n},{name},{email},Lyon,free\n" +
    "{n},{name},{email},Madrid,team\n\n",
  "The quarterly report shows revenue growth of 12.4% and a churn rate of 2.1%. Version 4.2.1 of the " +
    "mobile app shipped on 2024-10-03; the web client follows in release 4.3.0. Employee EMP-{emp} leads " +
    "the migration; Nightjar remains on hold. Please keep the tone neutral and avoid forward-looking " +
    "statements in the summary.\n\n",
  "Steps to reproduce: open the settings page, change the language to Japanese (日本語), save, and reload. " +
    "The header then shows 設定を保存しました but the menu stays in English. Expected: the whole UI switches. " +
    "Browser: Chrome/120.0.6099.109, OS: macOS 14.1.\n\n",
];

const NAMES = ["Anna Schmidt", "Lucas Martin", "Sofia Garcia", "Daan de Vries", "Yuki Tanaka", "Omar Haddad"];

function luhnDigit(partial: string): string {
  let sum = 0;
  for (let i = 0; i < partial.length; i++) {
    let d = Number(partial[partial.length - 1 - i]);
    if (i % 2 === 0) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return String((10 - (sum % 10)) % 10);
}

/** A realistic prompt of `bytes` UTF-8 bytes (cut at a block boundary or inside the last block). */
function makePrompt(bytes: number, seed = 1): string {
  const next = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const digits = (n: number) => Array.from({ length: n }, () => Math.floor(next() * 10)).join("");
  const fill: Record<string, () => string> = {
    name: () => pick(NAMES),
    email: () =>
      `${pick(["anna", "l.martin", "sofia.g", "daan", "yuki_t", "o.haddad"])}${digits(2)}@example.com`,
    phone: () => pick([`+49 30 ${digits(8)}`, `+33 1 ${digits(2)} ${digits(2)} ${digits(2)} ${digits(2)}`]),
    card: () => {
      const partial = `4${digits(14)}`;
      return `${partial}${luhnDigit(partial)}`.replace(/(\d{4})(?=\d)/g, "$1 ");
    },
    iban: () => "DE89 3704 0044 0532 0130 00",
    ip: () => `10.${digits(1)}.${digits(2)}.${1 + Math.floor(next() * 250)}`,
    uuid: () => "9b2f6c1e-4d3a-4f7b-8c2d-" + digits(12),
    n: () => digits(5),
    ss: () => digits(2),
    emp: () => digits(6),
  };
  let text = "";
  while (Buffer.byteLength(text) < bytes) {
    // About one block in three carries PII, the first one always (so that 1 KB has some too).
    const block = text === "" || next() < 0.35 ? pick(WITH_PII) : pick(PLAIN);
    text += block.replace(/\{(\w+)\}/g, (mark, key: string) => fill[key]?.() ?? mark);
  }
  // Trim to the byte size (whole characters).
  const buffer = Buffer.from(text).subarray(0, bytes);
  return buffer.toString("utf8").replace(/\uFFFD+$/, "");
}

interface Row {
  readonly label: string;
  readonly bytes: number;
  readonly promptsPerRun: number;
  readonly findingsPerPrompt: number;
  readonly runsMBps: number[];
  readonly medianMBps: number;
  readonly medianMsPerPrompt: number;
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

function measure(
  label: string,
  prompt: string,
  config: NonNullable<ReturnType<typeof loadPolicy>["pii"]>,
  resolved: ResolvedPii,
  runs: number,
  minRunMs: number,
): Row {
  const bytes = Buffer.byteLength(prompt);
  const once = () => {
    const session = new PiiSession(config, resolved);
    session.redactRequest(prompt);
    return session;
  };
  const sample = once();
  const findingsPerPrompt = Object.values(sample.request).reduce((n, e) => n + e.count, 0);
  // Warm up (JIT) and size a run so that it lasts at least minRunMs.
  let promptsPerRun = 1;
  for (;;) {
    const started = performance.now();
    for (let i = 0; i < promptsPerRun; i++) once();
    const ms = performance.now() - started;
    if (ms >= minRunMs) break;
    promptsPerRun = Math.max(promptsPerRun * 2, Math.ceil((promptsPerRun * minRunMs) / Math.max(ms, 0.01)));
  }
  const runsMBps: number[] = [];
  const msPerPrompt: number[] = [];
  for (let r = 0; r < runs; r++) {
    const started = performance.now();
    for (let i = 0; i < promptsPerRun; i++) once();
    const ms = performance.now() - started;
    runsMBps.push((bytes * promptsPerRun) / 1e6 / (ms / 1000));
    msPerPrompt.push(ms / promptsPerRun);
  }
  return {
    label,
    bytes,
    promptsPerRun,
    findingsPerPrompt,
    runsMBps,
    medianMBps: median(runsMBps),
    medianMsPerPrompt: median(msPerPrompt),
  };
}

interface StallRow {
  readonly label: string;
  readonly mode: "inline (before)" | "worker (after)";
  readonly scanMs: number;
  readonly maxStallMs: number;
  readonly slowestSmallMs: number;
  readonly smallRequests: number;
}

const TICK_MS = 5;

/**
 * The request-path scan of `prompt` (guardrail texts, PII findings, actions) through `pool`, while a
 * timer ticks every 5 ms and scans a small prompt inline each time; how late the ticks came.
 */
async function measureStall(
  label: string,
  mode: StallRow["mode"],
  prompt: string,
  policy: Policy,
  resolved: ResolvedPii,
): Promise<StallRow> {
  const config = policy.pii!;
  const denies = applicableGuardrails(policy, IDENTITY, MODEL).flatMap((g) => g.denyPatterns);
  const small = [makePrompt(1024, 2)];
  const pool = new WorkerPool({ workers: mode === "worker (after)" ? 1 : 0 });
  const scan = async () => {
    const guarded = await pool.scanGuardrails([prompt], denies, true);
    const texts = guarded.texts ?? [prompt];
    const findings = await pool.findPii(config.scanner, texts, resolved.enabled);
    new PiiSession(config, resolved).apply(texts[0]!, findings[0]!, "request");
  };
  let measuring = false;
  let last = performance.now();
  let maxStallMs = 0;
  let slowestSmallMs = 0;
  let smallRequests = 0;
  // Ticks from the start: the timer also keeps the process alive while the (unref'd) worker scans.
  const timer = setInterval(() => {
    const now = performance.now();
    const late = Math.max(0, now - last - TICK_MS);
    last = now;
    config.scanner.scanAll(small, resolved.enabled);
    if (!measuring) return;
    maxStallMs = Math.max(maxStallMs, late);
    slowestSmallMs = Math.max(slowestSmallMs, late + performance.now() - now);
    smallRequests++;
  }, TICK_MS);
  try {
    await scan(); // warm-up: JIT, the worker thread and its compiled detectors
    // Let the timer settle into its rhythm before the large scan starts.
    await new Promise((resolve) => setTimeout(resolve, 50));
    measuring = true;
    const started = performance.now();
    await scan();
    const scanMs = performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 2 * TICK_MS));
    return { label, mode, scanMs, maxStallMs, slowestSmallMs, smallRequests };
  } finally {
    clearInterval(timer);
    await pool.close();
  }
}

/** Right-aligned columns (the first left-aligned) under a header. */
function columns(header: readonly string[], body: readonly string[][]): string {
  const all = [header, ...body];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  return all
    .map((row) =>
      row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  "),
    )
    .join("\n");
}

function table(rows: readonly Row[]): string {
  const header = ["prompt", "bytes", "findings", "prompts/run", "median MB/s", "min–max MB/s", "ms/prompt"];
  return columns(
    header,
    rows.map((r) => [
      r.label,
      r.bytes.toLocaleString("en-US"),
      String(r.findingsPerPrompt),
      String(r.promptsPerRun),
      r.medianMBps.toFixed(1),
      `${Math.min(...r.runsMBps).toFixed(1)}–${Math.max(...r.runsMBps).toFixed(1)}`,
      r.medianMsPerPrompt < 1 ? r.medianMsPerPrompt.toFixed(3) : r.medianMsPerPrompt.toFixed(1),
    ]),
  );
}

function stallTable(rows: readonly StallRow[]): string {
  const header = [
    "prompt",
    "scan",
    "large scan ms",
    "max loop stall ms",
    "slowest small ms",
    "small requests",
  ];
  return columns(
    header,
    rows.map((r) => [
      r.label,
      r.mode,
      r.scanMs.toFixed(0),
      r.maxStallMs.toFixed(1),
      r.slowestSmallMs.toFixed(1),
      String(r.smallRequests),
    ]),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: "string", default: "7" },
      "min-run-ms": { type: "string", default: "300" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log("usage: node dist/benchmarks/pii.js [--runs N (7)] [--min-run-ms MS (300)] [--json]");
    return;
  }
  const runs = Math.max(1, Number(values.runs));
  const minRunMs = Math.max(1, Number(values["min-run-ms"]));
  // The sample policy names an environment variable for pool B's key; its value plays no part here.
  const policy = loadPolicy(SAMPLE_POLICY, { env: { ...process.env, POOL_B_API_KEY: "unused" } });
  const config = policy.pii;
  if (!config) throw new Error(`${SAMPLE_POLICY} has no pii section`);
  const resolved = resolvePii(config, IDENTITY, MODEL);
  if (!resolved) throw new Error("no PII handling applies to the benchmark identity");

  const sizes: Array<[string, number]> = [
    ["1 KB", 1024],
    ["32 KB", 32 * 1024],
    ["1 MB", 1024 * 1024],
  ];
  const rows = sizes.map(([label, bytes]) =>
    measure(label, makePrompt(bytes), config, resolved, runs, minRunMs),
  );
  const stalls: StallRow[] = [];
  for (const [label, bytes] of [
    ["1 MB", 1024 * 1024],
    ["4 MB", 4 * 1024 * 1024],
  ] as const) {
    const prompt = makePrompt(bytes);
    for (const mode of ["inline (before)", "worker (after)"] as const)
      stalls.push(await measureStall(label, mode, prompt, policy, resolved));
  }
  const environment = {
    node: process.version,
    cpu: os.cpus()[0]?.model ?? "unknown",
    cpus: os.cpus().length,
    loadAverage1m: os.loadavg()[0]!,
    detectors: [...resolved.enabled],
    runs,
    minRunMs,
  };
  if (values.json) {
    console.log(JSON.stringify({ environment, rows, stalls }, null, 2));
    return;
  }
  console.log(
    `PII scan throughput: PiiSession.redactRequest, sample policy (${resolved.enabled.size} detectors: ` +
      `${environment.detectors.join(", ")})`,
  );
  console.log(
    `node ${environment.node}, ${environment.cpus} × ${environment.cpu}, load average ` +
      `${environment.loadAverage1m.toFixed(2)}; median of ${runs} runs of ≥ ${minRunMs} ms each\n`,
  );
  console.log(table(rows));
  console.log(
    `\nEvent loop during one large prompt's request-path scan (guardrails + PII detection + actions), ` +
      `a ${TICK_MS} ms timer scanning a 1 KB prompt each tick:\n`,
  );
  console.log(stallTable(stalls));
}

await main();
