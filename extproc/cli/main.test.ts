import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { PassThrough, Readable } from "node:stream";
import { describe, it } from "node:test";
import { GENESIS, lineHash } from "../audit/index.js";
import { loadPolicy, sha256Hex } from "../policy/index.js";
import { runCli } from "./main.js";

const ROOT = path.resolve(import.meta.dirname, "../../..");

async function run(args: string[], stdin = ""): Promise<{ code: number; out: string; err: string }> {
  const out = new PassThrough();
  const err = new PassThrough();
  let outText = "";
  let errText = "";
  out.on("data", (d: Buffer) => (outText += d.toString()));
  err.on("data", (d: Buffer) => (errText += d.toString()));
  const code = await runCli(args, {
    out,
    err,
    stdin: Readable.from([Buffer.from(stdin)]) as NodeJS.ReadStream & Readable,
  } as never);
  return { code, out: outText, err: errText };
}

describe("cli", () => {
  it("creates a key whose printed hash matches it", async () => {
    const { code, out } = await run(["key", "create", "--id", "ci-bot", "--team", "research"]);
    assert.equal(code, 0);
    const key = /API key \(shown once, store it now\): (sk-gw-[A-Za-z0-9_-]{43})\n/.exec(out)?.[1];
    assert.ok(key, out);
    assert.ok(out.includes(`  - id: ci-bot\n    team: research\n    sha256: ${sha256Hex(key)}\n`));
  });

  it("hashes a key from stdin", async () => {
    const { code, out } = await run(["key", "hash"], "sk-demo-research\n");
    assert.equal(code, 0);
    assert.equal(out, `${sha256Hex("sk-demo-research")}\n`);
  });

  it("validates a policy with extproc's rules", async () => {
    process.env.POOL_B_API_KEY ??= "x";
    const file = path.join(ROOT, "deploy/policy.yaml");
    const ok = await run(["policy", "validate", file, "--envoy-config", path.join(ROOT, "envoy/envoy.yaml")]);
    assert.equal(ok.code, 0, ok.err);
    const policy = loadPolicy(file);
    assert.equal(
      ok.out,
      `${file}: OK (2 pools, ${policy.models.size} models, 1 aliases, ${policy.keysBySha256.size} keys)\n`,
    );
    const bad = await run(["policy", "validate", path.join(ROOT, "package.json")]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /package\.json: version: /);
  });

  it("prints usage for anything else", async () => {
    const { code, err } = await run(["key"]);
    assert.equal(code, 2);
    assert.match(err, /^usage:/);
  });
});

describe("cli as a process", () => {
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [path.join(import.meta.dirname, "main.js"), ...args], { encoding: "utf8" });
  const noStackTrace = (text: string) => assert.doesNotMatch(text, /^\s+at |node:internal|Error:/m);

  for (const args of [["--help"], ["-h"], ["help"], ["audit", "verify", "--help"]]) {
    it(`prints usage on stdout and exits 0 for ${args.join(" ")}`, () => {
      const { status, stdout, stderr } = cli(...args);
      assert.equal(status, 0, stderr);
      assert.ok(stdout.startsWith("usage:\n  llm-gateway key create"), stdout);
      assert.equal(stderr, "");
    });
  }

  it("prints usage on stderr and exits 2 without arguments or with an unknown option", () => {
    const bare = cli();
    assert.equal(bare.status, 2);
    assert.match(bare.stderr, /^usage:\n/);
    noStackTrace(bare.stderr);
    const unknown = cli("audit", "verify", "--bogus", "x");
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /^Unknown option '--bogus'\nusage:\n/);
    noStackTrace(unknown.stderr);
  });

  it("names an unreadable audit file in one line and exits 1", () => {
    const missing = path.join(import.meta.dirname, "no-such-audit.log");
    const { status, stdout, stderr } = cli("audit", "verify", missing);
    assert.equal(status, 1);
    assert.equal(stdout, "");
    assert.equal(stderr, `audit verify: cannot read ${missing}: no such file\n`);
    const dir = cli("audit", "verify", import.meta.dirname);
    assert.equal(dir.status, 1);
    assert.equal(dir.stderr, `audit verify: cannot read ${import.meta.dirname}: is a directory\n`);
  });

  it("report: exit 0 on an intact chain, 1 on a broken one (still reported, the verdict on stderr), 2 on misuse", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "cli-report-"));
    const file = path.join(dir, "audit.log");
    const line = (seq: number, prev: string) =>
      JSON.stringify({
        seq,
        prev,
        time: `2026-11-0${seq}T00:00:00.000Z`,
        kind: "llm_request",
        team: "t",
        decision: "allow",
        reason: "ok",
        usage: { prompt_tokens: 2, completion_tokens: 3 },
        cost: { micros: 7, currency: "EUR" },
      });
    const first = line(1, GENESIS);
    writeFileSync(file, `${first}\n${line(2, lineHash(first))}\n`);
    const ok = cli(
      "report",
      file,
      "--from",
      "2026-11-01",
      "--to",
      "2026-11-03",
      "--by",
      "team",
      "--format",
      "json",
    );
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout) as { total: { cost: string } }).total.cost, "0.000014");
    assert.equal(ok.stderr, "Audit chain verified: 2 records in 1 file, hash chain intact.\n");
    const oneJob = cli(
      "report",
      file,
      "--from",
      "2026-11-01",
      "--to",
      "2026-11-03",
      "--by",
      "team",
      "--format",
      "json",
      "--jobs",
      "1",
    );
    assert.equal(oneJob.stdout, ok.stdout);
    writeFileSync(file, `${first}\n${line(2, GENESIS)}\n`);
    const broken = cli("report", file, "--by", "team", "--format", "csv");
    assert.equal(broken.status, 1);
    assert.match(broken.stdout, /^row,team,/);
    assert.match(broken.stderr, new RegExp(`^AUDIT CHAIN BROKEN at ${file}:2: `));
    for (const args of [
      ["--from", "2026-11-31"],
      ["--by", "colour"],
      ["--format", "pdf"],
      ["--from", "2026-11-02", "--to", "2026-11-01"],
      ["--jobs", "0"],
      ["--jobs", "two"],
    ]) {
      const misuse = cli("report", file, ...args);
      assert.equal(misuse.status, 2, args.join(" "));
      assert.match(misuse.stderr, /^report: /);
      noStackTrace(misuse.stderr);
    }
    const missing = cli("report", path.join(dir, "nope.log"));
    assert.equal(missing.status, 1);
    assert.equal(missing.stderr, `report: cannot read ${path.join(dir, "nope.log")}: no such file\n`);
  });

  it("reports an unreachable Redis for key revoke in one line and exits 1", () => {
    // Port 1 on loopback: nothing listens there, the connection is refused at once.
    const { status, stderr } = cli("key", "revoke", "--id", "x", "--redis", "redis://127.0.0.1:1");
    assert.equal(status, 1);
    assert.equal(stderr, "key revoke: cannot reach redis://127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1\n");
    noStackTrace(stderr);
  });
});

describe("policy diff", () => {
  it("summarises keys added and revoked, models, aliases, limits and sections changed", async () => {
    process.env.POOL_B_API_KEY ??= "x";
    const { mkdtempSync, readFileSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const dir = mkdtempSync(path.join(tmpdir(), "diff-test-"));
    const before = readFileSync(path.join(ROOT, "deploy/policy.yaml"), "utf8");
    const after = before
      .replace(
        "    sha256: 15b184c4c9b35a2f9a98a5d7c9120c45b6d2e759ed8bc2adc2ed744378a3e983 # sk-demo-support",
        "    sha256: 15b184c4c9b35a2f9a98a5d7c9120c45b6d2e759ed8bc2adc2ed744378a3e983 # sk-demo-support\n    revoked: true",
      )
      .replace(
        "- { model: llama-3.1-8b-instruct, weight: 90 }",
        "- { model: llama-3.1-8b-instruct, weight: 50 }",
      )
      .replace(
        "- { model: llama-3.1-8b-instruct-v2, weight: 10 }",
        "- { model: llama-3.1-8b-instruct-v2, weight: 50 }",
      )
      .replace("  logPrompts: false", "  logPrompts: true")
      .replace("keys:\n", `keys:\n  - id: new-bot\n    team: support\n    sha256: ${sha256Hex("sk-new")}\n`);
    writeFileSync(path.join(dir, "a.yaml"), before);
    writeFileSync(path.join(dir, "b.yaml"), after);
    const { code, out } = await run(["policy", "diff", path.join(dir, "a.yaml"), path.join(dir, "b.yaml")]);
    assert.equal(code, 0);
    assert.deepEqual(out.trim().split("\n"), [
      "+ key new-bot (team support)",
      "~ key support-bot: revoked",
      "~ alias chat-default: llama-3.1-8b-instruct:90 llama-3.1-8b-instruct-v2:10 → llama-3.1-8b-instruct:50 llama-3.1-8b-instruct-v2:50",
      "~ audit.logPrompts changed",
    ]);
    const same = await run(["policy", "diff", path.join(dir, "a.yaml"), path.join(dir, "a.yaml")]);
    assert.equal(same.out, "no changes\n");
  });
});
