import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import fc from "fast-check";
import { ChainVerifier, GENESIS, lineHash } from "../audit/index.js";
import { Aggregator } from "./aggregate.js";
import { buildReport, type Report } from "./index.js";

const root = mkdtempSync(path.join(tmpdir(), "report-ranges-"));
after(() => rmSync(root, { recursive: true, force: true }));
let runs = 0;

const TEXT = fc.constantFrom(
  "research",
  "sales",
  'qu"ote',
  "back\\slash",
  "new\nline",
  "ünï",
  "日本",
  "😀",
  "",
);
const MOMENTS = ["2026-10-31T23:00:00.000Z", "2026-11-01T00:00:00.000Z", "2026-11-02T12:00:00.000Z"];

/** A record body as extproc writes it (its writer's key order), some fields absent or null. */
const body = fc.record({
  team: fc.option(TEXT),
  key_id: fc.option(TEXT),
  served_model: fc.option(TEXT),
  decision: fc.constantFrom("allow", "deny"),
  reason: fc.constantFrom("ok", "rate_limit_exceeded", "closed_during_response"),
  usage: fc.option(fc.record({ prompt_tokens: fc.nat(5000), completion_tokens: fc.nat(900) })),
  cost: fc.option(fc.record({ micros: fc.nat(2 ** 40), currency: fc.constant("EUR") }), { nil: undefined }),
  moment: fc.constantFrom(...MOMENTS),
});

/** What is done to the chained lines: none, or a break of each kind the chain check names. */
const damage = fc.record({
  kind: fc.constantFrom(
    "none",
    "edit",
    "drop",
    "swap",
    "torn",
    "torn-utf8",
    "blank",
    "garbage",
    "double-torn",
  ),
  at: fc.nat(),
  byte: fc.nat(255),
});

type Body = typeof body extends fc.Arbitrary<infer T> ? T : never;
type Damage = typeof damage extends fc.Arbitrary<infer T> ? T : never;

/** Chained audit lines for `bodies`, with `harm` done to them. */
function chainLines(bodies: Body[], harm: Damage): Buffer[] {
  const lines: Buffer[] = [];
  let prev = GENESIS;
  const push = (bytes: Buffer) => {
    lines.push(bytes);
    prev = lineHash(bytes.toString("utf8"));
  };
  const at = bodies.length === 0 ? 0 : harm.at % bodies.length;
  bodies.forEach(({ moment, ...fields }, i) => {
    const line = JSON.stringify({ seq: i + 1, prev, time: moment, kind: "llm_request", ...fields });
    if (i === at && harm.kind.startsWith("torn")) {
      // A write cut by a crash, then the record extproc writes on restart, chained to the torn bytes.
      const bytes = Buffer.from(harm.kind === "torn-utf8" ? `${line.slice(0, 20)}😀` : line);
      push(bytes.subarray(0, Math.max(1, bytes.length - 3)));
      if (harm.kind === "double-torn") push(Buffer.from("{not json"));
    }
    push(Buffer.from(JSON.stringify({ seq: i + 1, prev, time: moment, kind: "llm_request", ...fields })));
  });
  if (lines.length === 0) return lines;
  const i = harm.at % lines.length;
  if (harm.kind === "edit")
    lines[i] = Buffer.from(lines[i]!.map((b, j) => (j === harm.byte % lines[i]!.length ? b ^ 1 : b)));
  if (harm.kind === "drop") lines.splice(i, 1);
  if (harm.kind === "swap" && i + 1 < lines.length) [lines[i], lines[i + 1]] = [lines[i + 1]!, lines[i]!];
  if (harm.kind === "blank") lines.splice(i, 0, Buffer.alloc(0));
  if (harm.kind === "garbage") lines.splice(i, 0, Buffer.from(`garbage ${harm.byte}`));
  return lines;
}

/**
 * The sequential path the ranges must match: each file's text split at "\n" and checked by one
 * ChainVerifier, its records added up by one Aggregator.
 */
function sequential(files: string[], by: Report["by"]) {
  const verifier = new ChainVerifier();
  const aggregator = new Aggregator(by, "2026-11-01T00:00:00.000Z", undefined);
  const lines: number[] = [];
  for (const file of files) {
    const pieces = readFileSync(file).toString("utf8").split("\n");
    if (pieces.at(-1) === "") pieces.pop();
    for (const piece of pieces) {
      const record = verifier.check(piece);
      if (record) aggregator.add(record);
    }
    lines.push(pieces.length);
  }
  return { verdict: verifier.end(), lines, ...aggregator.result() };
}

/** The report's integrity, its file:line places as lines counted over all the files. */
function flatten(report: Report, files: string[]) {
  const first = (file: string) => {
    const i = files.indexOf(file);
    return report.integrity.files.slice(0, i).reduce((n, f) => n + f.lines, 0);
  };
  const { broken } = report.integrity;
  return {
    ok: report.integrity.intact,
    records: report.integrity.records,
    line: broken ? first(broken.file) + broken.line : undefined,
    torn: report.integrity.torn_lines.map((t) => first(t.file) + t.line),
    lines: report.integrity.files.map((f) => f.lines),
  };
}

const scenario = fc.record({
  bodies: fc.array(body, { maxLength: 40 }),
  harm: damage,
  // Where the lines are cut into rotated files, and whether the last one ends without a newline.
  fileCuts: fc.array(fc.nat(), { maxLength: 2 }),
  unterminated: fc.boolean(),
  swapFiles: fc.boolean(),
  rangeBytes: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 300, max: 5000 })),
  by: fc.constantFrom<Report["by"]>(["team", "model"], ["key"], ["team", "key", "environment"]),
});

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

/** Writes the scenario's files; returns their paths, in the order the report is given them. */
function writeFiles(s: Scenario): string[] {
  const lines = chainLines(s.bodies, s.harm);
  const cuts = [...new Set(s.fileCuts.map((c) => (lines.length ? c % lines.length : 0)))].sort(
    (a, b) => a - b,
  );
  const bounds = [0, ...cuts, lines.length];
  const dir = path.join(root, String(runs++));
  const files = bounds.slice(1).map((end, i) => {
    const file = path.join(dir + `.${i}`);
    const part = lines.slice(bounds[i], end).flatMap((l) => [l, Buffer.from("\n")]);
    if (s.unterminated && i === bounds.length - 2 && part.length > 0) part.pop();
    writeFileSync(file, Buffer.concat(part));
    return file;
  });
  if (s.swapFiles && files.length > 1) [files[0], files[1]] = [files[1]!, files[0]!];
  return files;
}

describe("report ranges", () => {
  it("ranges cut anywhere, joined at the seams, report what one sequential pass does (in this thread)", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const files = writeFiles(s);
        const options = { by: s.by, from: "2026-11-01T00:00:00.000Z" };
        const whole = await buildReport(files, { ...options, jobs: 1 });
        const cut = await buildReport(files, { ...options, jobs: 1, rangeBytes: s.rangeBytes });
        assert.deepEqual(cut, whole);
        const reference = sequential(files, s.by);
        const { verdict } = reference;
        assert.deepEqual(flatten(whole, files), {
          ok: verdict.ok,
          records: verdict.records,
          line: verdict.ok ? undefined : verdict.line,
          torn: verdict.ok ? verdict.tornLines : [],
          lines: reference.lines,
        });
        if (!verdict.ok)
          assert.match(
            whole.integrity.broken!.problem,
            new RegExp(verdict.problem.slice(0, 12).replace(/[()]/g, ".")),
          );
        assert.deepEqual(
          { groups: whole.groups, total: whole.total, days: whole.days },
          { groups: reference.groups, total: reference.total, days: reference.days },
        );
      }),
      { numRuns: 400 },
    );
  });

  it("on worker threads, the report is the same as in this thread", async () => {
    await fc.assert(
      fc.asyncProperty(scenario, fc.integer({ min: 2, max: 3 }), async (s, jobs) => {
        const files = writeFiles(s);
        const options = { by: s.by, rangeBytes: s.rangeBytes };
        assert.deepEqual(
          await buildReport(files, { ...options, jobs }),
          await buildReport(files, { ...options, jobs: 1 }),
        );
      }),
      { numRuns: 40 },
    );
  });
});
