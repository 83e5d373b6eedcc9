/**
 * `llm-gateway report` against traffic sent through real Envoy and extproc with the openai SDK, on a clock
 * the test owns (records fall on known days): two teams, three models, a price change mid-month by policy
 * hot reload, refusals (rate limit, unknown key, unknown model, PII block), upstream errors and aborted
 * streams. Every figure of the JSON report is checked against what the clients were sent (the demo model
 * server's usage, priced by the test at the prices in force when each request ran); the HTML page is
 * rendered in headless Chromium, its screenshot checked, and the numbers on the page read back from the DOM
 * and compared with the JSON.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import OpenAI from "openai";
import { sha256Hex } from "../../extproc/policy/index.js";
import type { Report } from "../../extproc/report/index.js";
import { ROOT, startStack, waitFor, type Stack } from "../harness/index.js";
import { writePolicy, type PolicyDoc } from "../harness/policy.js";
import { applyPolicyChange, auditRecordOf, auditRecords, client, openStream } from "./helpers.js";

const KEYS = { alpha: "sk-test-report-alpha", beta: "sk-test-report-beta" } as const;
const CHAT = "llama-3.1-8b-instruct";
const CANARY = "llama-3.1-8b-instruct-v2";
const EMBED = "bge-small-en-v1.5";
/** 24 words: the demo server then generates exactly max_tokens tokens (≤ 28). */
const PROMPT = Array.from({ length: 24 }, (_, i) => `word${i}`).join(" ");
/** Prices per million tokens (= micros per token) before and after the mid-month change. */
const PRICES_BEFORE = {
  [CHAT]: { input: 1, output: 2 },
  [CANARY]: { input: 3, output: 5 },
  [EMBED]: { input: 1, output: 0 },
};
const PRICES_AFTER = { ...PRICES_BEFORE, [CHAT]: { input: 2, output: 7 } };
const at = (iso: string) => Date.parse(iso);
/** Requests {@link day} sends. */
const PER_DAY = 14;

function reportPolicy(doc: PolicyDoc, prices: typeof PRICES_BEFORE): void {
  doc.teams.alpha = { models: ["*"] };
  doc.teams.beta = { models: ["*"] };
  doc.keys.push({ id: "alpha-app", team: "alpha", sha256: sha256Hex(KEYS.alpha) });
  doc.keys.push({ id: "beta-app", team: "beta", sha256: sha256Hex(KEYS.beta) });
  for (const [model, price] of Object.entries(prices)) doc.models[model].price = price;
  // beta's requests are admitted against a limit (usage settled by quota/); alpha's are not.
  doc.limits = [{ id: "beta-rpm", scope: { key: "beta-app" }, requestsPerMinute: 5 }];
}

/** What the test expects per team and model. */
interface Expected {
  requests: number;
  input: number;
  output: number;
  micros: number;
  refusals: Record<string, number>;
  errors: Record<string, number>;
  daily: Record<string, number>;
}

let stack: Stack;
let dir: string;
let prices = PRICES_BEFORE;
const expected = new Map<string, Expected>();

function expect(
  team: string | null,
  model: string | null,
  day: string,
  outcome: { usage?: { prompt_tokens: number; completion_tokens: number }; refused?: string; error?: string },
): void {
  const key = JSON.stringify({ team, model });
  const e = expected.get(key) ?? {
    requests: 0,
    input: 0,
    output: 0,
    micros: 0,
    refusals: {},
    errors: {},
    daily: {},
  };
  expected.set(key, e);
  e.requests++;
  if (outcome.refused) e.refusals[outcome.refused] = (e.refusals[outcome.refused] ?? 0) + 1;
  if (outcome.error) e.errors[outcome.error] = (e.errors[outcome.error] ?? 0) + 1;
  if (outcome.usage) {
    const price = prices[model as keyof typeof prices];
    const micros = outcome.usage.prompt_tokens * price.input + outcome.usage.completion_tokens * price.output;
    e.input += outcome.usage.prompt_tokens;
    e.output += outcome.usage.completion_tokens;
    e.micros += micros;
    if (micros > 0) e.daily[day] = (e.daily[day] ?? 0) + micros;
  }
}

/** A chat completion that must succeed; the usage the client was sent. */
async function chat(c: OpenAI, model: string, maxTokens: number, stream = false) {
  if (stream) {
    const chunks = await c.chat.completions.create({
      model,
      messages: [{ role: "user", content: PROMPT }],
      max_tokens: maxTokens,
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | undefined;
    for await (const chunk of chunks) usage = chunk.usage ?? usage;
    return usage!;
  }
  const completion = await c.chat.completions.create({
    model,
    messages: [{ role: "user", content: PROMPT }],
    max_tokens: maxTokens,
  });
  return completion.usage!;
}

/** A request the gateway must refuse with `status` and `code`. */
async function refused(send: () => Promise<unknown>, status: number, code: string): Promise<void> {
  await assert.rejects(send, (err: unknown) => {
    assert.ok(err instanceof OpenAI.APIError, String(err));
    assert.equal(err.status, status);
    assert.equal(err.code, code);
    return true;
  });
}

/** Every record written so far is in the file (records are written asynchronously). */
async function settled(count: number): Promise<void> {
  await waitFor(`${count} audit records`, async () => auditRecords(stack).length === count, 10_000);
}

/** Runs the CLI on the stack's audit log; its exit status and output. */
function report(...args: string[]) {
  return spawnSync(
    process.execPath,
    [path.join(ROOT, "dist/extproc/cli/main.js"), "report", stack.auditLog, ...args],
    { encoding: "utf8" },
  );
}

/** Sends one day's traffic at `day` (frozen clock at `time`). */
async function day(time: string): Promise<void> {
  await stack.clock!.set(at(time), { frozen: true });
  const d = time.slice(0, 10);
  const alpha = client(stack, KEYS.alpha);
  const beta = client(stack, KEYS.beta);
  for (const [maxTokens, stream] of [
    [5, false],
    [9, true],
  ] as const) {
    const usage = await chat(alpha, CHAT, maxTokens, stream);
    assert.deepEqual([usage.prompt_tokens, usage.completion_tokens], [24, maxTokens]);
    expect("alpha", CHAT, d, { usage });
  }
  const embedding = await alpha.embeddings.create({ model: EMBED, input: ["one two three", "four five"] });
  expect("alpha", EMBED, d, {
    usage: { prompt_tokens: embedding.usage.prompt_tokens, completion_tokens: 0 },
  });
  // beta: five requests a minute on a frozen clock (four here, a cut stream below); the sixth is refused.
  for (let i = 0; i < 4; i++)
    expect("beta", CANARY, d, { usage: await chat(beta, CANARY, 3 + i, i % 2 === 1) });
  await refused(() => chat(alpha, "no-such-model", 3), 404, "model_not_found");
  expect("alpha", null, d, { refused: "model_not_found" });
  await refused(
    () =>
      alpha.chat.completions.create({
        model: CHAT,
        messages: [{ role: "user", content: "my SSN is 123-45-6789" }],
      }),
    400,
    "pii_blocked",
  );
  expect("alpha", CHAT, d, { refused: "pii_blocked" });
  await refused(() => chat(client(stack, "sk-nobody-knows-this"), CHAT, 3), 401, "invalid_api_key");
  expect(null, null, d, { refused: "invalid_api_key" });
  // The model server fails: let through, charged nothing.
  await assert.rejects(
    alpha.chat.completions.create(
      { model: CHAT, messages: [{ role: "user", content: PROMPT }], max_tokens: 3 },
      { headers: { "x-demo-status": "500" } },
    ),
  );
  expect("alpha", CHAT, d, { error: "upstream_error" });
  // Streams the client walks away from. alpha's is charged nothing (no usage came, no reservation to
  // settle); beta's reservation is settled with what the gateway counted, which its audit record states.
  for (const [key, team, model] of [
    [KEYS.alpha, "alpha", CHAT],
    [KEYS.beta, "beta", CANARY],
  ] as const) {
    const cut = await openStream(
      stack,
      key,
      { model, messages: [{ role: "user", content: PROMPT }], max_tokens: 20 },
      { "x-demo-token-delay-ms": "50" },
      "word",
    );
    cut.abort();
    const record = await auditRecordOf(stack, cut.requestId);
    assert.equal(record.reason, "closed_during_response");
    if (team === "alpha") assert.equal(record.usage, null);
    else assert.equal(record.usage_source, "counted");
    expect(team, model, d, { error: "closed_during_response", ...(record.usage && { usage: record.usage }) });
  }
  await refused(() => chat(beta, CANARY, 3), 429, "rate_limit_exceeded");
  expect("beta", CANARY, d, { refused: "rate_limit_exceeded" });
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-report-"));
  stack = await startStack({
    policyFile: writePolicy(dir, (doc) => reportPolicy(doc, PRICES_BEFORE)),
    workDir: dir,
    clockAt: at("2026-10-31T23:59:59.000Z"),
  });
});
after(() => stack?.stop());

describe("llm-gateway report over gateway traffic", () => {
  let json: Report;

  it("adds up exactly what was sent, at the prices of the day, with every refusal by reason", async () => {
    await stack.clock!.set(at("2026-10-31T23:59:59.999Z"), { frozen: true });
    await chat(client(stack, KEYS.alpha), CHAT, 4); // before the period
    await day("2026-11-03T09:00:00.000Z");
    await day("2026-11-04T16:30:00.000Z");
    // The price of the chat model changes on the 17th (hot reload): later requests cost the new price.
    await applyPolicyChange(stack, () => writePolicy(dir, (doc) => reportPolicy(doc, PRICES_AFTER)));
    prices = PRICES_AFTER;
    await day("2026-11-17T12:00:00.000Z");
    await stack.clock!.set(at("2026-12-01T00:00:00.000Z"), { frozen: true });
    await chat(client(stack, KEYS.alpha), CHAT, 4); // after the period (its end is exclusive)
    const sent = 2 + 3 * PER_DAY;
    await settled(sent);

    const result = report(
      "--from",
      "2026-11-01",
      "--to",
      "2026-12-01",
      "--by",
      "team,model",
      "--format",
      "json",
    );
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stderr, `Audit chain verified: ${sent} records in 1 file, hash chain intact.\n`);
    json = JSON.parse(result.stdout) as Report;
    assert.equal(json.currency, "EUR");
    assert.equal(json.integrity.intact, true);
    assert.equal(json.integrity.records, sent);
    assert.deepEqual(
      json.days,
      [...Array(15)].map((_, i) => `2026-11-${String(i + 3).padStart(2, "0")}`),
    );
    const actual = Object.fromEntries(
      json.groups.map((g) => [
        JSON.stringify(g.group),
        {
          requests: g.requests,
          input: g.input_tokens,
          output: g.output_tokens,
          micros: g.cost_micros,
          refusals: g.refusals,
          errors: g.errors,
          daily: g.daily_cost_micros,
        },
      ]),
    );
    assert.deepEqual(actual, Object.fromEntries(expected));
    const all = [...expected.values()];
    const total = (f: (e: Expected) => number) => all.reduce((a, e) => a + f(e), 0);
    assert.equal(json.total.requests, 3 * PER_DAY);
    assert.equal(
      json.total.cost_micros,
      total((e) => e.micros),
    );
    assert.equal(json.total.unpriced_requests, 0);
    // The price change shows: the same traffic cost more on the 17th.
    const alphaChat = expected.get(JSON.stringify({ team: "alpha", model: CHAT }))!.daily;
    assert.ok(alphaChat["2026-11-17"]! > alphaChat["2026-11-03"]!);
    assert.equal(alphaChat["2026-11-03"], alphaChat["2026-11-04"]);
  });

  it("every record with usage carries its cost at the prices in force when it ran (reserved or not, cut or not)", () => {
    const priced = auditRecords(stack).filter((r) => r.usage);
    assert.equal(priced.length, 2 + 3 * 8);
    for (const r of priced) {
      const price = (r.time < "2026-11-17" ? PRICES_BEFORE : PRICES_AFTER)[r.served_model as typeof CHAT];
      const micros = r.usage!.prompt_tokens * price.input + r.usage!.completion_tokens * price.output;
      assert.deepEqual(r.cost, { micros, currency: "EUR" }, r.request_id);
    }
  });

  it("renders the HTML page in headless Chromium; the page's numbers are the JSON's", () => {
    const html = report(
      "--from",
      "2026-11-01",
      "--to",
      "2026-12-01",
      "--by",
      "team,model",
      "--format",
      "html",
    );
    assert.equal(html.status, 0, html.stderr);
    const page = path.join(dir, "report.html");
    writeFileSync(page, html.stdout);
    const png = path.join(dir, "report.png");
    const chromium = (...args: string[]) =>
      spawnSync(
        process.env.CHROMIUM_BIN ?? "chromium",
        [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--hide-scrollbars",
          `--user-data-dir=${path.join(dir, "chromium")}`,
          ...args,
          `file://${page}`,
        ],
        { encoding: "utf8", timeout: 60_000 },
      );
    const shot = chromium(`--screenshot=${png}`, "--window-size=1280,1400");
    assert.equal(shot.status, 0, shot.stderr);
    const image = readFileSync(png);
    assert.deepEqual([...image.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    assert.deepEqual([image.readUInt32BE(16), image.readUInt32BE(20)], [1280, 1400]);
    assert.ok(image.length > 40_000, `a ${image.length}-byte screenshot is nearly empty`);

    const dom = chromium("--dump-dom");
    assert.equal(dom.status, 0, dom.stderr);
    const text = (cell: string) => cell.replace(/<[^>]+>/g, "").replace(/,/g, "");
    const rows = new Map<string, Record<string, string>>();
    for (const [, row, cells] of dom.stdout.matchAll(/<tr data-row="([^"]+)"[^>]*>(.*?)<\/tr>/gs)) {
      const fields = rows.get(row!) ?? {};
      for (const [, field, value] of cells!.matchAll(/<td class="n[^"]*" data-field="([^"]+)">(.*?)<\/td>/gs))
        fields[field!] = text(value!);
      rows.set(row!, fields);
    }
    const sum = (r: Record<string, number>) => String(Object.values(r).reduce((a, b) => a + b, 0));
    // Both tables, row by row: the figures, and each refusal and error reason the row has (none are zero).
    const shown = (t: Report["total"]) => ({
      requests: String(t.requests),
      input_tokens: String(t.input_tokens),
      output_tokens: String(t.output_tokens),
      cost: t.cost,
      unpriced_requests: String(t.unpriced_requests),
      refused: sum(t.refusals),
      errors: sum(t.errors),
      ...Object.fromEntries(Object.entries(t.refusals).map(([r, n]) => [`refused:${r}`, String(n)])),
      ...Object.fromEntries(Object.entries(t.errors).map(([r, n]) => [`error:${r}`, String(n)])),
    });
    assert.deepEqual(rows.get("total"), shown(json.total));
    json.groups.forEach((g, i) => assert.deepEqual(rows.get(String(i)), shown(g), JSON.stringify(g.group)));
    assert.equal(rows.size, json.groups.length + 1);
    const cards = Object.fromEntries(
      [...dom.stdout.matchAll(/data-total="([^"]+)">(.*?)<\/div>/gs)].map(([, k, v]) => [
        k,
        text(v!).replace(/ EUR$/, "").trim(),
      ]),
    );
    assert.deepEqual(cards, {
      cost: json.total.cost,
      requests: String(json.total.requests),
      input_tokens: String(json.total.input_tokens),
      output_tokens: String(json.total.output_tokens),
      refused: sum(json.total.refusals),
    });
    // One bar segment per group and day with spend.
    const segments = json.groups.reduce((n, g) => n + Object.keys(g.daily_cost_micros).length, 0);
    assert.equal([...dom.stdout.matchAll(/<rect /g)].length, segments);
    assert.match(dom.stdout, /class="integrity intact"/);
  });
});
