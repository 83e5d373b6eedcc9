import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import { createAuditSink, type AuditRecord } from "../audit/index.js";
import {
  buildReport,
  formatCsv,
  formatHtml,
  formatMicros,
  formatTable,
  MixedCurrencyError,
  parseDimensions,
  parseInstant,
  ReportUsageError,
  type Report,
} from "./index.js";

const dir = () => mkdtempSync(path.join(tmpdir(), "report-test-"));

/** A request record; `over` sets what a case is about. */
const record = (over: Partial<AuditRecord> = {}): AuditRecord => ({
  request_id: "r",
  key_id: "k1",
  team: "research",
  environment: null,
  api: "chat.completions",
  method: "POST",
  path: "/v1/chat/completions",
  requested_model: "m1",
  served_model: "m1",
  pool: "p",
  status: 200,
  decision: "allow",
  reason: "ok",
  stream: false,
  usage: null,
  latency_ms: { total: 1, gateway: 0.1, upstream: 0.5 },
  policy_digest: "d",
  ...over,
});

const used = (input: number, output: number, micros?: number, currency = "EUR"): Partial<AuditRecord> => ({
  usage: { prompt_tokens: input, completion_tokens: output, total_tokens: input + output },
  usage_source: "server",
  ...(micros !== undefined && { cost: { micros, currency } }),
});

/** Writes `records` through the real audit sink, each at its time (ISO), appending to `file`. */
async function writeChain(file: string, records: readonly [string, AuditRecord][]): Promise<void> {
  let at = 0;
  const sink = createAuditSink({ destination: file, fsyncIntervalMs: 0, now: () => at });
  for (const [time, r] of records) {
    at = Date.parse(time);
    sink.write(r);
  }
  await sink.flush();
  sink.close();
  await new Promise((resolve) => setTimeout(resolve, 20));
}

const SAMPLE: [string, AuditRecord][] = [
  ["2026-10-31T23:59:59.999Z", record(used(1000, 1000, 9_000_000))], // before the period
  ["2026-11-01T00:00:00.000Z", record(used(10, 5, 150))],
  ["2026-11-01T12:00:00.000Z", record({ ...used(20, 7, 270), stream: true })],
  ["2026-11-02T08:00:00.000Z", record({ team: "sales", key_id: "k2", ...used(3, 4, 1_234_567) })],
  ["2026-11-02T09:00:00.000Z", record({ team: "sales", key_id: "k2", served_model: "m2", ...used(8, 0) })],
  ["2026-11-03T09:00:00.000Z", record({ decision: "deny", status: 429, reason: "rate_limit_exceeded" })],
  ["2026-11-03T09:00:01.000Z", record({ decision: "deny", status: 429, reason: "rate_limit_exceeded" })],
  [
    "2026-11-03T10:00:00.000Z",
    record({ decision: "deny", status: 404, reason: "model_not_found", served_model: null }),
  ],
  ["2026-11-04T10:00:00.000Z", record({ reason: "closed_during_response", ...used(6, 2, 80) })],
  [
    "2026-11-04T11:00:00.000Z",
    record({ team: null, key_id: null, decision: "deny", status: 401, reason: "invalid_api_key" }),
  ],
  ["2026-12-01T00:00:00.000Z", record(used(1000, 1000, 9_000_000))], // the end is exclusive
];

const NOVEMBER = { from: "2026-11-01T00:00:00.000Z", to: "2026-12-01T00:00:00.000Z" };

describe("report aggregation", () => {
  it("adds up requests, tokens, cost and outcomes per group, within [from, to)", async () => {
    const file = path.join(dir(), "audit.log");
    await writeChain(file, SAMPLE);
    const report = await buildReport([file], { by: ["team", "model"], ...NOVEMBER });
    assert.equal(report.currency, "EUR");
    assert.deepEqual(report.integrity, {
      intact: true,
      records: SAMPLE.length,
      files: [{ path: file, lines: SAMPLE.length }],
      torn_lines: [],
      broken: null,
    });
    assert.deepEqual(
      report.groups.map((g) => [
        g.group,
        g.requests,
        g.input_tokens,
        g.output_tokens,
        g.cost,
        g.unpriced_requests,
      ]),
      [
        [{ team: null, model: "m1" }, 1, 0, 0, "0.000000", 0],
        [{ team: "research", model: null }, 1, 0, 0, "0.000000", 0],
        [{ team: "research", model: "m1" }, 5, 36, 14, "0.000500", 0],
        [{ team: "sales", model: "m1" }, 1, 3, 4, "1.234567", 0],
        [{ team: "sales", model: "m2" }, 1, 8, 0, "0.000000", 1],
      ],
    );
    const research = report.groups[2]!;
    assert.deepEqual(research.refusals, { rate_limit_exceeded: 2 });
    assert.deepEqual(research.errors, { closed_during_response: 1 });
    assert.deepEqual(research.daily_cost_micros, { "2026-11-01": 420, "2026-11-04": 80 });
    assert.deepEqual(report.total.refusals, {
      invalid_api_key: 1,
      model_not_found: 1,
      rate_limit_exceeded: 2,
    });
    assert.equal(report.total.requests, 9);
    assert.equal(report.total.cost_micros, 150 + 270 + 1_234_567 + 80);
    assert.deepEqual(report.days, ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]);
  });

  it("groups by any dimension, api included (chat, responses, messages alike)", async () => {
    const file = path.join(dir(), "audit.log");
    await writeChain(file, [
      ["2026-11-01T00:00:00.000Z", record({ api: "responses", environment: "prod", ...used(1, 1, 1) })],
      ["2026-11-01T00:00:01.000Z", record({ api: "messages", environment: "prod", ...used(2, 2, 2) })],
      ["2026-11-01T00:00:02.000Z", record({ api: "messages", environment: "dev", ...used(3, 3, 3) })],
    ]);
    const report = await buildReport([file], { by: ["api", "environment", "key"] });
    assert.deepEqual(
      report.groups.map((g) => [g.group, g.cost_micros]),
      [
        [{ api: "messages", environment: "dev", key: "k1" }, 3],
        [{ api: "messages", environment: "prod", key: "k1" }, 2],
        [{ api: "responses", environment: "prod", key: "k1" }, 1],
      ],
    );
    assert.equal(report.from, null);
  });

  it("totals are the sum of the groups, and the groups partition the records (any records, any dimensions)", async () => {
    const arbitraryRecord = fc.record({
      team: fc.constantFrom("a", "b", null),
      model: fc.constantFrom("m1", "m2", null),
      day: fc.integer({ min: 1, max: 3 }),
      deny: fc.boolean(),
      input: fc.nat(1000),
      output: fc.nat(1000),
      micros: fc.option(fc.nat(10_000_000), { nil: undefined }),
    });
    const base = dir();
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(arbitraryRecord, { maxLength: 30 }),
        fc.subarray(["team", "key", "model", "environment", "api"] as const, { minLength: 1 }),
        async (records, by) => {
          const file = path.join(base, `audit-${n++}.log`);
          await writeChain(
            file,
            records.map((r) => [
              `2026-11-0${r.day}T10:00:00.000Z`,
              record({
                team: r.team,
                served_model: r.model,
                ...(r.deny
                  ? { decision: "deny", reason: "rate_limit_exceeded" }
                  : used(r.input, r.output, r.micros)),
              }),
            ]),
          );
          const report = await buildReport([file], { by });
          const sum = (f: (g: Report["total"]) => number) => report.groups.reduce((a, g) => a + f(g), 0);
          for (const f of [
            (g: Report["total"]) => g.requests,
            (g: Report["total"]) => g.input_tokens,
            (g: Report["total"]) => g.output_tokens,
            (g: Report["total"]) => g.cost_micros,
            (g: Report["total"]) => g.unpriced_requests,
            (g: Report["total"]) => g.refusals.rate_limit_exceeded ?? 0,
          ])
            assert.equal(sum(f), f(report.total));
          assert.equal(report.total.requests, records.length);
          assert.equal(new Set(report.groups.map((g) => JSON.stringify(g.group))).size, report.groups.length);
          assert.equal(
            report.total.cost_micros,
            Object.values(report.total.daily_cost_micros).reduce((a, b) => a + b, 0),
          );
        },
      ),
      { numRuns: 40 },
    );
  });

  it("refuses to add up costs in two currencies", async () => {
    const file = path.join(dir(), "audit.log");
    await writeChain(file, [
      ["2026-11-01T00:00:00.000Z", record(used(1, 1, 1, "EUR"))],
      ["2026-11-02T00:00:00.000Z", record(used(1, 1, 1, "USD"))],
    ]);
    await assert.rejects(buildReport([file], { by: ["team"] }), MixedCurrencyError);
  });
});

describe("report integrity", () => {
  it("follows the chain across rotated files given in order", async () => {
    const d = dir();
    const [first, second] = [path.join(d, "audit.log.1"), path.join(d, "audit.log")];
    await writeChain(first, SAMPLE.slice(0, 4));
    // A restarted (or SIGUSR2-reopened) sink continues the chain of the file it appends to.
    writeFileSync(second, readFileSync(first));
    await writeChain(second, SAMPLE.slice(4));
    writeFileSync(second, readFileSync(second, "utf8").split("\n").slice(4).join("\n"));
    const report = await buildReport([first, second], { by: ["team"], ...NOVEMBER });
    assert.equal(report.integrity.intact, true);
    assert.equal(report.integrity.records, SAMPLE.length);
    assert.equal(report.total.requests, 9);

    const reversed = await buildReport([second, first], { by: ["team"], ...NOVEMBER });
    assert.equal(reversed.integrity.intact, false);
    assert.equal(reversed.integrity.broken?.file, first);
    assert.equal(reversed.integrity.broken?.line, 1);
    assert.match(
      reversed.integrity.broken!.problem,
      /does not continue the chain of .*audit\.log \(files out of order/,
    );
    // Still reported in full, loudly.
    assert.equal(reversed.total.requests, 9);
    assert.match(formatTable(reversed), /^AUDIT CHAIN BROKEN at .*audit\.log\.1:1: /);
  });

  it("names the edited line as file:line and still reports every record", async () => {
    const file = path.join(dir(), "audit.log");
    await writeChain(file, SAMPLE);
    const lines = readFileSync(file, "utf8").split("\n");
    lines[3] = lines[3]!.replace('"prompt_tokens":3', '"prompt_tokens":2');
    writeFileSync(file, lines.join("\n"));
    const report = await buildReport([file], { by: ["team"], ...NOVEMBER });
    assert.deepEqual(report.integrity.broken, {
      file,
      line: 5,
      problem: "record seq 5: prev hash does not match the previous line (it was changed or removed)",
    });
    assert.equal(report.integrity.records, 4);
    assert.equal(report.total.input_tokens, 10 + 20 + 2 + 8 + 6);
    const html = formatHtml(report);
    assert.match(
      html,
      /<p class="integrity broken" id="integrity" role="alert">⚠ AUDIT CHAIN BROKEN at .*:5: /,
    );
  });
});

describe("report formats", () => {
  const sample = async (): Promise<Report> => {
    const file = path.join(dir(), "audit.log");
    await writeChain(file, [
      ...SAMPLE,
      ["2026-11-05T00:00:00.000Z", record({ team: 'ops, "night"', ...used(1, 1, 5) })],
      ["2026-11-05T00:00:01.000Z", record({ team: "=HYPERLINK(1)", ...used(1, 1, 5) })],
      ["2026-11-05T00:00:02.000Z", record({ team: "<script>alert(1)</script>", ...used(1, 1, 5) })],
    ]);
    return buildReport([file], { by: ["team", "model"], ...NOVEMBER });
  };

  it("formats micros exactly", () => {
    assert.equal(formatMicros(0), "0.000000");
    assert.equal(formatMicros(1_234_567), "1.234567");
    assert.equal(formatMicros(9_007_199_254_740_991), "9007199254.740991");
  });

  it("table: the verdict first, columns aligned, numbers right-aligned, a total row, outcomes by reason", async () => {
    const table = formatTable(await sample()).split("\n");
    assert.match(table[0]!, /^Audit chain verified: 14 records in 1 file, hash chain intact\.$/);
    const header = table.findIndex((l) => l.startsWith("team"));
    const rule = table[header + 1]!;
    const body = table.slice(header + 2, table.indexOf("", header));
    // Every number column ends where its rule ends.
    const ends = [...rule.matchAll(/-+/g)].map((m) => m.index + m[0].length);
    for (const line of body) for (const end of ends.slice(2)) assert.match(line[end - 1]!, /\d/, line);
    assert.match(body.at(-1)!, /^TOTAL\s+12\s+50\s+21\s+1\.235082\s+1\s+4\s+1$/);
    assert.ok(table.some((l) => /^research\s+m1\s+refused\s+rate_limit_exceeded\s+2$/.test(l)));
  });

  it("csv: RFC 4180 quoting and CRLF, a row kind column, a column per reason, no formulas", async () => {
    const csv = formatCsv(await sample());
    assert.ok(csv.endsWith("\r\n") && !/[^\r]\n/.test(csv));
    const rows = csv.split("\r\n");
    assert.equal(
      rows[0],
      "row,team,model,requests,input_tokens,output_tokens,cost,currency,unpriced_requests," +
        "refused:invalid_api_key,refused:model_not_found,refused:rate_limit_exceeded,error:closed_during_response",
    );
    assert.ok(rows.includes('group,"ops, ""night""",m1,1,1,1,0.000005,EUR,0,0,0,0,0'));
    assert.ok(rows.includes("group,'=HYPERLINK(1),m1,1,1,1,0.000005,EUR,0,0,0,0,0"));
    assert.equal(rows.at(-2), "total,,,12,50,21,1.235082,EUR,1,1,1,2,1");
  });

  it("html: self-contained, escaped, a chart bar segment per group and day with spend", async () => {
    const report = await sample();
    const html = formatHtml(report);
    assert.doesNotMatch(html, /<script|\bsrc=|\bhref=|url\(|@import|https?:\/\//i);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
    assert.ok(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
    const segments = report.groups.reduce((n, g) => n + Object.keys(g.daily_cost_micros).length, 0);
    assert.equal([...html.matchAll(/<rect /g)].length, segments);
    assert.match(html, /class="integrity intact"/);
  });

  it("json: the report as is, with its schema name", async () => {
    const report = await sample();
    const parsed = JSON.parse(JSON.stringify(report)) as Report;
    assert.equal(parsed.schema, "llm-gateway.report/1");
    assert.deepEqual(Object.keys(parsed), [
      "schema",
      "from",
      "to",
      "by",
      "currency",
      "integrity",
      "groups",
      "total",
      "days",
    ]);
    assert.deepEqual(Object.keys(parsed.groups[0]!), [
      "group",
      "requests",
      "input_tokens",
      "output_tokens",
      "cost_micros",
      "cost",
      "unpriced_requests",
      "refusals",
      "errors",
      "daily_cost_micros",
    ]);
  });
});

describe("report period and dimensions", () => {
  it("reads ISO dates and date-times as UTC instants", () => {
    assert.equal(parseInstant("2026-11-01", "--from"), "2026-11-01T00:00:00.000Z");
    assert.equal(parseInstant("2026-11-01T08:30", "--from"), "2026-11-01T08:30:00.000Z");
    assert.equal(parseInstant("2026-11-01T08:30:05.5Z", "--from"), "2026-11-01T08:30:05.500Z");
    assert.equal(parseInstant("2026-11-01T01:00+01:00", "--to"), "2026-11-01T00:00:00.000Z");
    for (const bad of ["2026-02-30", "11/01/2026", "2026-11-01 08:00", "yesterday", ""])
      assert.throws(() => parseInstant(bad, "--from"), ReportUsageError, bad);
  });

  it("takes any comma list of known dimensions, each once", () => {
    assert.deepEqual(parseDimensions("model,team"), ["model", "team"]);
    assert.throws(
      () => parseDimensions("team,cost"),
      /"cost" is not one of team, key, model, environment, api/,
    );
    assert.throws(() => parseDimensions("team,team"), /named twice/);
  });
});
