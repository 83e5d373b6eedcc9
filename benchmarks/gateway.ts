/**
 * Gateway benchmark (`npm run bench`; benchmarks/README.md explains the method and the output). In one run
 * on loopback it starts one demo model server and every row of scenarios/ in front of it (the peers only
 * when installed), checks that each row answers as it should, then measures them one at a time, side by
 * side: latency at low concurrency (non-streaming, and first and last byte streamed), throughput at
 * saturation, each proxy's CPU per request and memory. It prints the tables, the ratios between rows and
 * the verdicts on the bars.
 */
import { spawnSync } from "node:child_process";
import { cpus, loadavg } from "node:os";
import { envoyBinary } from "../test/harness/index.js";
import { addedRows, latencyVerdict, notes, throughputVerdict, type Latency, type Runs } from "./lib/judge.js";
import { killGenerators } from "./lib/load-generator.js";
import { measure, type MeasureContext, type Phase } from "./lib/measure.js";
import { parseOptions, USAGE, type Options } from "./lib/options.js";
import { decidePlacement, type Placement } from "./lib/placement.js";
import { humanReport, type Report } from "./lib/report.js";
import {
  ANSWER_TOKENS,
  MODE_LABELS,
  modesOf,
  readAnswer,
  sendOnce,
  type Answer,
  type Mode,
} from "./lib/request.js";
import type { Scenario, StartedRow } from "./lib/scenario.js";
import { freshWorkDir, startDemoModelServer, type DemoModelServer } from "./lib/stacks.js";
import { fmt } from "./lib/tables.js";
import { BASELINE, OURS, SCENARIOS } from "./scenarios/index.js";

const progress = (line: string): void => void process.stderr.write(`bench: ${line}\n`);

function environment(): Report["environment"] {
  const version = spawnSync(envoyBinary(), ["--version"], { encoding: "utf8" }).stdout ?? "";
  return {
    envoy: /\/(\d+\.\d+\.\d+)\//.exec(version)?.[1] ?? "unknown",
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model.trim() ?? "unknown",
    loadAverage: fmt(loadavg()[0] ?? NaN),
    startedAt: new Date().toISOString(),
  };
}

/** A row that started, and the modes it is measured in. */
interface Running {
  readonly scenario: Scenario;
  readonly row: StartedRow;
  readonly modes: readonly Mode[];
}

/**
 * Every row must answer each of its modes' requests as the model server does (same text, and the
 * {@link ANSWER_TOKENS} output tokens in the API's usage wherever the model server reports usage: not in a
 * chat stream, which asks for none), and pass its own check; a row measuring something else would make the
 * comparison meaningless.
 */
async function checkRows(
  rows: readonly Running[],
  modes: readonly Mode[],
  modelServer: DemoModelServer,
): Promise<void> {
  const direct = `http://127.0.0.1:${modelServer.port}`;
  const expected = {} as Record<Mode, Answer>;
  for (const mode of modes) {
    expected[mode] = readAnswer(mode, (await sendOnce(direct, mode)).body);
    const tokens = expected[mode].completionTokens;
    if (tokens !== undefined && tokens !== ANSWER_TOKENS)
      throw new Error(
        `the model server's ${MODE_LABELS[mode]} answer has ${tokens} output tokens, not ${ANSWER_TOKENS}`,
      );
  }
  for (const { scenario, row, modes: rowModes } of rows) {
    const problems: string[] = [];
    for (const mode of rowModes) {
      const res = await sendOnce(row.origin, mode, row.headers?.(mode));
      if (res.status !== 200) {
        problems.push(`${MODE_LABELS[mode]}: HTTP ${res.status}: ${res.body.slice(0, 300)}`);
        continue;
      }
      const answer = readAnswer(mode, res.body);
      if (answer.text !== expected[mode].text)
        problems.push(
          `${MODE_LABELS[mode]}: answer differs from the model server's: ${res.body.slice(0, 300)}`,
        );
      if (expected[mode].completionTokens !== undefined && answer.completionTokens !== ANSWER_TOKENS)
        problems.push(
          `${MODE_LABELS[mode]}: usage says ${answer.completionTokens ?? "nothing"} output tokens, expected ${ANSWER_TOKENS}`,
        );
    }
    problems.push(...(await row.check(rowModes)));
    if (problems.length > 0) throw new Error(`${scenario.label} fails its check: ${problems.join("; ")}`);
  }
}

async function runPhases(
  options: Options,
  rows: readonly Running[],
  modes: readonly Mode[],
  context: MeasureContext,
): Promise<Pick<Report, "latency" | "saturation">> {
  const latencyPhase: Phase = {
    concurrency: options.concurrency,
    warmup: options.warmup,
    requests: options.requests,
    durationS: options.durationS,
  };
  const saturationPhase: Phase = {
    concurrency: options.saturationConcurrency,
    warmup: options.warmup,
    requests: options.saturationRequests,
    durationS: options.saturationDurationS,
  };
  // One row at a time: every other row sits idle meanwhile.
  const runRows = async (mode: Mode, phase: Phase, name: string): Promise<Runs> => {
    const runs: Record<string, Awaited<ReturnType<typeof measure>>> = {};
    for (const { scenario, row } of rows.filter((r) => r.modes.includes(mode))) {
      progress(`${name}, ${MODE_LABELS[mode]}, ${scenario.label} ...`);
      const m = await measure(row, mode, phase, context);
      runs[scenario.id] = m;
      const errors = m.errors > 0 ? `, ${m.errors} errors (first: ${m.firstError})` : "";
      progress(
        `  ${m.ok} ok${errors}, p50 ${fmt(m.latencyMs.p50)} ms, p99 ${fmt(m.latencyMs.p99)} ms, ${fmt(m.requestsPerS, 0)} req/s`,
      );
    }
    return runs;
  };
  const latency: Partial<Record<Mode, Runs>> = {};
  for (const mode of modes) latency[mode] = await runRows(mode, latencyPhase, "latency");
  const saturation = await runRows("chat", saturationPhase, "saturation");
  return { latency, saturation };
}

function buildReport(
  options: Options,
  placement: Placement,
  environmentInfo: Report["environment"],
  rows: readonly Running[],
  skipped: Report["skipped"],
  measured: { latency: Latency; saturation: Runs },
): Report {
  const { latency, saturation } = measured;
  const infos = rows.map(({ scenario: s }) => ({ id: s.id, label: s.label, description: s.description }));
  const added = Object.fromEntries(
    infos.filter((x) => x.id !== BASELINE).map((x) => [x.id, addedRows(latency, BASELINE, x.id)]),
  );
  return {
    environment: environmentInfo,
    options,
    placement,
    rows: infos,
    baseline: BASELINE,
    ours: OURS,
    skipped,
    latency,
    saturation,
    added,
    verdicts: [
      latencyVerdict("p50", latency, BASELINE, OURS),
      latencyVerdict("p99", latency, BASELINE, OURS),
      throughputVerdict(saturation[OURS]!, placement.proxyCpus),
    ],
    notes: notes(latency, saturation, Object.fromEntries(infos.map((x) => [x.id, x.label]))),
  };
}

async function main(argv: string[]): Promise<void> {
  const options = parseOptions(argv);
  if (options === "help") {
    console.log(USAGE);
    return;
  }
  const placement = decidePlacement(options.pin);
  progress(placement.description);
  const environmentInfo = environment();
  const started: Running[] = [];
  let modelServer: DemoModelServer | undefined;
  let stopping: Promise<void> | undefined;
  const stopAll = (): Promise<void> => {
    killGenerators();
    stopping ??= Promise.all(started.map(({ row }) => row.stop())).then(() => modelServer?.stop());
    return stopping;
  };
  const onSignal = (code: number) => () => void stopAll().finally(() => process.exit(code));
  process.once("SIGINT", onSignal(130));
  process.once("SIGTERM", onSignal(143));
  try {
    progress("starting the demo model server ...");
    modelServer = await startDemoModelServer({ placement, workDir: freshWorkDir() });
    const skipped: Array<Report["skipped"][number]> = [];
    const unknown = options.rows?.filter((id) => !SCENARIOS.some((s) => s.id === id)) ?? [];
    if (unknown.length > 0) throw new Error(`unknown rows ${unknown.join(", ")}\n${USAGE}`);
    const chosen = SCENARIOS.filter((s) => !options.rows || [BASELINE, OURS, ...options.rows].includes(s.id));
    for (const scenario of chosen) {
      const why = scenario.unavailable();
      if (why) {
        progress(`skipping ${scenario.label}: ${why}`);
        skipped.push({ id: scenario.id, label: scenario.label, why });
        continue;
      }
      progress(`starting ${scenario.label} ...`);
      const row = await scenario.start({
        modelServerPort: modelServer.port,
        placement,
        workDir: freshWorkDir(),
      });
      const apis = options.apis.filter((api) => {
        const unserved = scenario.unsupported?.[api];
        if (unserved) {
          progress(`skipping ${scenario.label} for ${api}: ${unserved}`);
          skipped.push({ id: scenario.id, label: scenario.label, api, why: unserved });
        }
        return !unserved;
      });
      started.push({ scenario, row, modes: modesOf(apis) });
    }
    const modes = modesOf(options.apis);
    progress("checking every row ...");
    await checkRows(started, modes, modelServer);
    const context: MeasureContext = { others: [modelServer], cpus: placement.cpus };
    const measured = await runPhases(options, started, modes, context);
    const report = buildReport(options, placement, environmentInfo, started, skipped, measured);
    (options.json ? process.stderr : process.stdout).write(`\n${humanReport(report)}`);
    if (options.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } finally {
    await stopAll();
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
