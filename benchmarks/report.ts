/**
 * Chargeback report throughput (`npm run bench:report`; benchmarks/README.md, "Report throughput"). Writes a
 * hash-chained audit file of realistic records (default 10 million, about a month of a busy site: 8 teams,
 * 40 keys, 4 models, 2 environments, 3 APIs, 30 days, 5 % refusals, 1 % cut streams) to a temporary
 * directory, then runs `llm-gateway report` over it in a child process, as an operator would (`--jobs`
 * workers, default one per CPU), and reports wall time, records/s and the child's peak RSS. Three more
 * passes over the same file, on one thread, show where a record's CPU goes: reading the lines alone, plus
 * the SHA-256 of each line (the chain check's hash), plus JSON.parse.
 *
 *   node dist/benchmarks/report.js [--records N] [--jobs N] [--keep] [--json]
 */
import { spawn } from "node:child_process";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { Writable } from "node:stream";
import { parseArgs } from "node:util";
import { forEachLine, GENESIS, lineHash } from "../extproc/audit/index.js";
import { runCli } from "../extproc/cli/main.js";
import { seededRandom } from "../test/harness/random.js";

const TEAMS = ["research", "support", "sales", "finance", "legal", "platform", "marketing", "data"];
const MODELS = [
  { name: "llama-3.1-8b-instruct", pool: "small", input: 0.2, output: 0.6 },
  { name: "llama-3.1-70b-instruct", pool: "large", input: 0.9, output: 2.7 },
  { name: "qwen2.5-coder-32b", pool: "large", input: 0.6, output: 1.8 },
  { name: "bge-m3", pool: "small", input: 0.02, output: 0 },
];
const APIS = [
  { api: "chat.completions", path: "/v1/chat/completions" },
  { api: "responses", path: "/v1/responses" },
  { api: "messages", path: "/v1/messages" },
];
const MONTH_START = Date.UTC(2026, 10, 1);
const MONTH_MS = 30 * 86_400_000;

/** Writes `records` chained audit lines to `file`, in 4 MiB writes; returns the bytes written. */
function generate(file: string, records: number): number {
  const random = seededRandom(12);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const fd = openSync(file, "w");
  let prev = GENESIS;
  let chunk: string[] = [];
  let chunkBytes = 0;
  let bytes = 0;
  for (let seq = 1; seq <= records; seq++) {
    const team = pick(TEAMS);
    const key = `${team}-key-${Math.floor(random() * 5)}`;
    const model = pick(MODELS);
    const { api, path: urlPath } = pick(APIS);
    const time = new Date(MONTH_START + Math.floor((seq / records) * MONTH_MS)).toISOString();
    const environment = random() < 0.8 ? "prod" : "staging";
    const roll = random();
    const stream = random() < 0.6;
    const id = (seq * 2654435761).toString(16).padStart(12, "0").slice(-12);
    const requestId = `${Math.floor(random() * 2 ** 32)
      .toString(16)
      .padStart(8, "0")}-4e2a-4b1c-9d3f-${id}`;
    let outcome: string;
    if (roll < 0.05) {
      const reason = roll < 0.03 ? "rate_limit_exceeded" : roll < 0.04 ? "pii_blocked" : "model_not_found";
      const status = reason === "rate_limit_exceeded" ? 429 : reason === "pii_blocked" ? 400 : 404;
      outcome = `"status":${status},"decision":"deny","reason":"${reason}","stream":${stream},"usage":null`;
    } else {
      const input = 20 + Math.floor(random() * 4000);
      const output = 1 + Math.floor(random() * 800);
      const micros = Math.ceil(Number((input * model.input + output * model.output).toFixed(6)));
      const reason = roll < 0.06 ? "closed_during_response" : "ok";
      outcome =
        `"status":200,"decision":"allow","reason":"${reason}","stream":${stream},` +
        `"usage":{"prompt_tokens":${input},"completion_tokens":${output},"total_tokens":${input + output}},` +
        `"usage_source":"${reason === "ok" ? "server" : "counted"}","cost":{"micros":${micros},"currency":"EUR"}`;
    }
    const line =
      `{"seq":${seq},"prev":"${prev}","time":"${time}","kind":"llm_request","request_id":"${requestId}",` +
      `"key_id":"${key}","team":"${team}","environment":"${environment}","api":"${api}","method":"POST",` +
      `"path":"${urlPath}","requested_model":"${model.name}","served_model":"${model.name}","pool":"${model.pool}",` +
      `${outcome},"latency_ms":{"total":${(random() * 900).toFixed(3)},"gateway":0.412,"upstream":${(random() * 400).toFixed(3)}},` +
      `"policy_digest":"3f9a1c0d7e5b2a64"}`;
    prev = lineHash(line);
    chunk.push(line);
    chunkBytes += line.length + 1;
    if (chunkBytes >= 4 << 20 || seq === records) {
      const buffer = Buffer.from(`${chunk.join("\n")}\n`);
      writeSync(fd, buffer);
      bytes += buffer.length;
      chunk = [];
      chunkBytes = 0;
    }
  }
  closeSync(fd);
  return bytes;
}

/** One pass over `file`'s lines as the report reads them, doing `each` to every line; its wall time in ms. */
async function pass(file: string, each: (line: string) => void): Promise<number> {
  const started = performance.now();
  await forEachLine(file, each);
  return performance.now() - started;
}

/** What the child measured: wall time, CPU time (user + system, start-up included), peak RSS, the report. */
interface ChildResult {
  readonly wallMs: number;
  readonly cpuSeconds: number;
  readonly maxRssMb: number;
  readonly output: string;
}

/** `llm-gateway report` in a child process (this file with `--child`): its wall time and peak RSS. */
function reportInChild(file: string, jobs: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [import.meta.filename, "--child", file, "--jobs", String(jobs)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) return reject(new Error(`report child exited ${code}`));
      resolve(JSON.parse(stdout) as ChildResult);
    });
  });
}

/** The child: the CLI in this process (its output counted, not kept), then what it cost. */
async function child(file: string, jobs: number): Promise<void> {
  let output = "";
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      output += chunk.toString();
      done();
    },
  });
  const err = new Writable({ write: (_chunk, _encoding, done) => done() });
  const started = performance.now();
  const code = await runCli(
    ["report", file, "--by", "team,model", "--format", "json", "--jobs", String(jobs)],
    {
      out,
      err,
      stdin: process.stdin,
    } as never,
  );
  const wallMs = performance.now() - started;
  if (code !== 0) throw new Error(`report exited ${code}`);
  const usage = process.resourceUsage();
  const cpuSeconds = (usage.userCPUTime + usage.systemCPUTime) / 1e6;
  process.stdout.write(JSON.stringify({ wallMs, cpuSeconds, maxRssMb: usage.maxRSS / 1024, output }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      records: { type: "string", default: "10000000" },
      keep: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      jobs: { type: "string", default: String(os.availableParallelism()) },
      child: { type: "string" },
    },
  });
  const jobs = Number(values.jobs);
  if (values.child) return child(values.child, jobs);
  const records = Number(values.records);
  const dir = mkdtempSync(path.join(os.tmpdir(), "bench-report-"));
  const file = path.join(dir, "audit.log");
  try {
    const started = performance.now();
    const bytes = generate(file, records);
    const generateMs = performance.now() - started;
    const report = await reportInChild(file, jobs);
    const parsed = JSON.parse(report.output) as {
      integrity: { intact: boolean; records: number };
      groups: unknown[];
    };
    if (!parsed.integrity.intact || parsed.integrity.records !== records)
      throw new Error(`the report did not verify ${records} records: ${JSON.stringify(parsed.integrity)}`);
    const readMs = await pass(file, () => {});
    const hashMs = await pass(file, (line) => void lineHash(line));
    const parseMs = await pass(file, (line) => JSON.parse(line));
    const result = {
      records,
      jobs,
      fileMb: Math.round(bytes / 1e6),
      generateSeconds: generateMs / 1000,
      reportSeconds: report.wallMs / 1000,
      reportCpuSeconds: report.cpuSeconds,
      recordsPerSecond: Math.round(records / (report.wallMs / 1000)),
      peakRssMb: Math.round(report.maxRssMb),
      groups: parsed.groups.length,
      readLinesSeconds: readMs / 1000,
      readAndHashSeconds: hashMs / 1000,
      readAndParseSeconds: parseMs / 1000,
      cpus: os.cpus().length,
      loadAverage: os.loadavg()[0],
    };
    if (values.json) return void process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    const s = (x: number) => `${x.toFixed(1)} s`;
    const share = (ms: number) => `${Math.round((ms / (report.cpuSeconds * 1000)) * 100)} % of its CPU time`;
    process.stdout.write(
      [
        `records                  ${records} (${result.fileMb} MB, ${result.groups} groups by team,model)`,
        `generate                 ${s(result.generateSeconds)}`,
        `report (json, ${jobs} jobs)  ${s(result.reportSeconds)}, ${result.recordsPerSecond} records/s, peak RSS ${result.peakRssMb} MB`,
        `  CPU time               ${s(report.cpuSeconds)} (${((report.cpuSeconds / records) * 1e6).toFixed(2)} µs per record)`,
        `1 thread: read lines     ${s(readMs / 1000)} (${share(readMs)})`,
        `  read + SHA-256         ${s(hashMs / 1000)} (hash alone ≈ ${s((hashMs - readMs) / 1000)}, ${share(hashMs - readMs)})`,
        `  read + JSON.parse      ${s(parseMs / 1000)} (parse alone ≈ ${s((parseMs - readMs) / 1000)}, ${share(parseMs - readMs)})`,
        `machine                  ${result.cpus} CPUs, load average ${(result.loadAverage ?? 0).toFixed(1)} (shared: figures vary)`,
        "",
      ].join("\n"),
    );
  } finally {
    if (!values.keep) rmSync(dir, { recursive: true, force: true });
  }
}

await main();
