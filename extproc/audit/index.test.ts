import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  ChainVerifier,
  chainTail,
  createAuditSink,
  GENESIS,
  lineHash,
  readAuditRecords,
  verifyAuditChain,
  type AuditRecord,
  type ChainHead,
  type ChainTail,
} from "./index.js";

const record = (id: string): AuditRecord => ({
  request_id: id,
  key_id: "k",
  team: "t",
  environment: null,
  api: "chat.completions",
  method: "POST",
  path: "/v1/chat/completions",
  requested_model: "m",
  served_model: "m",
  pool: "p",
  status: 200,
  decision: "allow",
  reason: "ok",
  stream: false,
  usage: null,
  latency_ms: { total: 1, gateway: 0.1, upstream: 0.5 },
  policy_digest: "d",
});

const file = () => path.join(mkdtempSync(path.join(tmpdir(), "audit-test-")), "audit.log");
const lines = (f: string) => readFileSync(f, "utf8").split("\n").filter(Boolean);

async function writeRecords(f: string, ids: string[]): Promise<void> {
  const sink = createAuditSink({ destination: f, fsyncIntervalMs: 0 });
  ids.forEach((id) => sink.write(record(id)));
  await sink.flush();
  sink.close();
}

describe("audit hash chain", () => {
  it("chains every record to the previous line, from the genesis hash", async () => {
    const f = file();
    await writeRecords(f, ["a", "b", "c"]);
    const written = lines(f);
    assert.equal(written.length, 3);
    const parsed = written.map((l) => JSON.parse(l) as { seq: number; prev: string; request_id: string });
    assert.deepEqual(
      parsed.map((r) => r.seq),
      [1, 2, 3],
    );
    assert.equal(parsed[0]!.prev, GENESIS);
    assert.equal(parsed[1]!.prev, lineHash(written[0]!));
    assert.equal(parsed[2]!.prev, lineHash(written[1]!));
    assert.deepEqual(verifyAuditChain(written), {
      ok: true,
      records: 3,
      lastHash: lineHash(written[2]!),
      anchorsChecked: 0,
      tornLines: [],
    });
  });

  it("continues the chain of an existing file after a restart, and across rotation", async () => {
    const f = file();
    await writeRecords(f, ["a", "b"]);
    assert.deepEqual(chainTail(f), {
      seq: 2,
      prev: lineHash(lines(f)[1]!),
      damaged: false,
      unterminated: false,
    });
    await writeRecords(f, ["c"]); // a restarted extproc appending to the same file
    assert.equal(verifyAuditChain(lines(f)).ok, true);

    // Rotation: the file is moved away, the sink reopens its path and carries on the same chain.
    const sink = createAuditSink({ destination: f, fsyncIntervalMs: 0 });
    sink.write(record("d"));
    await sink.flush();
    const rotated = `${f}.1`;
    renameSync(f, rotated);
    sink.reopen();
    sink.write(record("e"));
    await sink.flush();
    sink.close();
    assert.equal(lines(f).length, 1);
    assert.deepEqual(verifyAuditChain([...lines(rotated), ...lines(f)]), {
      ok: true,
      records: 5,
      lastHash: lineHash(lines(f)[0]!),
      anchorsChecked: 0,
      tornLines: [],
    });
  });

  it("goes on after a torn last line (a crash mid-write) on a line of its own; verify names it and checks on", async () => {
    const f = file();
    await writeRecords(f, ["a", "b"]);
    const good = lines(f);
    const torn = good[1]!.slice(0, 25);
    writeFileSync(f, `${good[0]}\n${torn}`); // no newline: the write stopped mid-line
    const damaged: ChainTail[] = [];
    const sink = createAuditSink({
      destination: f,
      fsyncIntervalMs: 0,
      onDamagedTail: (t) => damaged.push(t),
    });
    sink.write(record("c"));
    await sink.flush();
    sink.close();
    assert.deepEqual(damaged, [{ seq: 1, prev: lineHash(torn), damaged: true, unterminated: true }]);
    const after = lines(f);
    assert.equal(after.length, 3);
    assert.equal(after[1], torn);
    const next = JSON.parse(after[2]!) as { seq: number; prev: string; request_id: string };
    assert.deepEqual([next.seq, next.prev, next.request_id], [2, lineHash(torn), "c"]);
    // The chain runs through the torn line: verify names it and checks everything after it.
    assert.deepEqual(verifyAuditChain(after), {
      ok: true,
      records: 2,
      lastHash: lineHash(after[2]!),
      anchorsChecked: 0,
      tornLines: [2],
    });
    // A bad line the next record does not chain to is still a break (an edit, not a crash).
    const edited = [after[0]!, `${torn}x`, after[2]!];
    assert.deepEqual(verifyAuditChain(edited), {
      ok: false,
      records: 1,
      line: 2,
      problem: "not a JSON record (torn or edited line)",
    });
  });

  it("names the first changed, removed, reordered or torn record", async () => {
    const f = file();
    await writeRecords(f, ["a", "b", "c", "d"]);
    const good = lines(f);
    const edited = [...good];
    edited[1] = edited[1]!.replace('"decision":"allow"', '"decision":"deny"');
    assert.deepEqual(verifyAuditChain(edited), {
      ok: false,
      records: 2,
      line: 3,
      problem: "record seq 3: prev hash does not match the previous line (it was changed or removed)",
    });
    const removed = [good[0]!, good[2]!, good[3]!];
    assert.match((verifyAuditChain(removed) as { problem: string }).problem, /records 2–2 are missing/);
    const reordered = [good[0]!, good[2]!, good[1]!, good[3]!];
    assert.equal((verifyAuditChain(reordered) as { line: number }).line, 2);
    const torn = [good[0]!, good[1]!.slice(0, 40)];
    assert.deepEqual(verifyAuditChain(torn), {
      ok: false,
      records: 1,
      line: 2,
      problem: "not a JSON record (torn or edited line)",
    });
  });

  it("publishes each flush's newest durable record, and anchors catch a re-chained rewrite or a cut tail", async () => {
    const f = file();
    const heads: ChainHead[] = [];
    const sink = createAuditSink({ destination: f, fsyncIntervalMs: 0, onDurable: (h) => heads.push(h) });
    for (const batch of [["a", "b"], [], ["c", "d"]]) {
      batch.forEach((id) => sink.write(record(id)));
      await sink.flush();
    }
    sink.close();
    const good = lines(f);
    // Once per flush that made something new durable: the second flush had nothing new.
    assert.deepEqual(heads, [
      { seq: 2, hash: lineHash(good[1]!) },
      { seq: 4, hash: lineHash(good[3]!) },
    ]);
    assert.deepEqual(verifyAuditChain(good, heads), {
      ok: true,
      records: 4,
      lastHash: lineHash(good[3]!),
      anchorsChecked: 2,
      tornLines: [],
    });

    // Someone with write access edits record 2 and recomputes every later prev: the chain alone is intact.
    const rewritten = [good[0]!];
    for (const line of good.slice(1)) {
      const r = JSON.parse(line) as Record<string, unknown>;
      if (r.seq === 2) r.decision = "deny";
      rewritten.push(JSON.stringify({ ...r, prev: lineHash(rewritten.at(-1)!) }));
    }
    assert.equal(verifyAuditChain(rewritten).ok, true);
    assert.deepEqual(verifyAuditChain(rewritten, heads), {
      ok: false,
      records: 1,
      line: 2,
      problem: `record seq 2 is not the record anchored when it was written (its hash was ${heads[0]!.hash})`,
    });
    // The newest records removed: the chain alone is intact, the anchor shows the cut.
    assert.equal(verifyAuditChain(good.slice(0, 3)).ok, true);
    assert.match(
      (verifyAuditChain(good.slice(0, 3), heads) as { problem: string }).problem,
      /^the chain ends at seq 3 but seq 4 was anchored: records 4–4 were cut off$/,
    );
  });

  it("verifies files written by the sink through the CLI", async () => {
    const { runCli } = await import("../cli/main.js");
    const f = file();
    await writeRecords(f, ["a", "b"]);
    const out: string[] = [];
    const io = { out: { write: (s: string) => out.push(s) }, err: { write: (s: string) => out.push(s) } };
    assert.equal(await runCli(["audit", "verify", f], io as never), 0);
    assert.match(out.join(""), /^OK: 2 records, hash chain intact/);
    const anchor = `2:${lineHash(lines(f)[1]!)}`;
    assert.equal(await runCli(["audit", "verify", f, "--anchor", anchor], io as never), 0);
    assert.match(out.at(-1)!, /^OK: 2 records, hash chain intact, 1 of 1 anchors matched/);
    assert.equal(await runCli(["audit", "verify", f, "--anchor", `3:${"0".repeat(64)}`], io as never), 1);
    assert.match(out.at(-1)!, /BROKEN .*records 3–3 were cut off/);
    assert.equal(await runCli(["audit", "verify", f, "--anchor", "2:nothex"], io as never), 2);
    writeFileSync(f, lines(f).reverse().join("\n"));
    assert.equal(await runCli(["audit", "verify", f], io as never), 1);
    assert.match(out.join(""), /BROKEN at line 2/);
  });
});

describe("audit durability", () => {
  it("keeps every record, in order, while the disk does not keep up (a FIFO nobody reads yet)", async () => {
    const { execFileSync } = await import("node:child_process");
    const { createReadStream } = await import("node:fs");
    const fifo = path.join(mkdtempSync(path.join(tmpdir(), "audit-fifo-")), "audit.pipe");
    execFileSync("mkfifo", [fifo]);
    const sink = createAuditSink({ destination: fifo, fsyncIntervalMs: 0 });
    const started = performance.now();
    for (let i = 0; i < 20_000; i++) sink.write(record(`r${i}`));
    // Writing never waits for the device: the records queue in memory, in order.
    assert.ok(performance.now() - started < 5000);
    await new Promise((resolve) => setTimeout(resolve, 500));
    let text = "";
    const reader = createReadStream(fifo, { encoding: "utf8" });
    reader.on("data", (chunk) => (text += chunk));
    await sink.flush();
    sink.close();
    await new Promise<void>((resolve) => reader.once("close", () => resolve()));
    const written = text.split("\n").filter(Boolean);
    assert.equal(written.length, 20_000);
    assert.equal((JSON.parse(written[19_999]!) as { request_id: string }).request_id, "r19999");
    assert.deepEqual(verifyAuditChain(written), {
      ok: true,
      records: 20_000,
      lastHash: lineHash(written[19_999]!),
      anchorsChecked: 0,
      tornLines: [],
    });
  });

  it("says how far the durable point trails: 0 once fsynced, the time since the last fsync began while records wait", async () => {
    const sink = createAuditSink({ destination: file(), fsyncIntervalMs: 0 });
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    assert.equal(sink.durabilityLagSeconds(), 0, "nothing written yet");
    await sleep(100);
    assert.equal(sink.durabilityLagSeconds(), 0, "no record waits: time alone is no lag");
    sink.write(record("a"));
    // Waiting since the sink opened (its starting point counts as durable), not since the write.
    assert.ok(sink.durabilityLagSeconds() >= 0.1, `lag ${sink.durabilityLagSeconds()}`);
    await sink.flush();
    assert.equal(sink.durabilityLagSeconds(), 0);
    const flushedAt = performance.now();
    await sleep(150);
    sink.write(record("b"));
    await sleep(50);
    const lag = sink.durabilityLagSeconds();
    assert.ok(lag >= 0.2 && lag <= (performance.now() - flushedAt) / 1000 + 0.05, `lag ${lag}`);
    await sleep(50);
    assert.ok(sink.durabilityLagSeconds() > lag, "grows while the record waits");
    await sink.flush();
    assert.equal(sink.durabilityLagSeconds(), 0);
    sink.close();
  });

  it("copies every record to stdout as well when asked (second sink for a log shipper)", async () => {
    const { execFileSync } = await import("node:child_process");
    const f = file();
    const script = `
      import { createAuditSink } from ${JSON.stringify(new URL("./index.js", import.meta.url).href)};
      const sink = createAuditSink({ destination: ${JSON.stringify(f)}, alsoStdout: true, fsyncIntervalMs: 0 });
      for (const id of ["a", "b", "c"]) sink.write({ ...${JSON.stringify(record("x"))}, request_id: id });
      await sink.flush();
      sink.close();
    `;
    const stdout = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
    });
    assert.deepEqual(stdout.split("\n").filter(Boolean), lines(f));
    assert.equal(lines(f).length, 3);
  });
});

describe("records completed later (usage counted after the exchange ended)", () => {
  it("writes a pending record once, when it resolves, in the chain; flush waits for it", async () => {
    const f = file();
    const sink = createAuditSink({ destination: f, fsyncIntervalMs: 0, now: () => Date.UTC(2026, 10, 22) });
    let complete!: (r: AuditRecord) => void;
    sink.write(new Promise<AuditRecord>((resolve) => (complete = resolve)));
    sink.write(record("b"));
    const flushed = sink.flush();
    await new Promise((resolve) => setTimeout(resolve, 20));
    complete({ ...record("a"), usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } });
    await flushed;
    sink.close();
    const written = lines(f);
    const parsed = written.map((l) => JSON.parse(l) as { request_id: string; time: string; usage: unknown });
    assert.deepEqual(
      parsed.map((r) => r.request_id),
      ["b", "a"],
    );
    assert.deepEqual(parsed[1]!.usage, { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
    assert.ok(parsed.every((r) => r.time === "2026-11-22T00:00:00.000Z"));
    assert.equal(verifyAuditChain(written).ok, true);
  });
});

describe("readAuditRecords", () => {
  it("streams the records of a file, skipping torn lines and lines the filter drops", async () => {
    const f = file();
    await writeRecords(f, ["a", "b", "c"]);
    writeFileSync(f, `${readFileSync(f, "utf8")}{"seq":4,"prev":"x","ti\n{"not":"a record"}\n`);
    const all: string[] = [];
    for await (const r of readAuditRecords(f)) all.push(r.request_id);
    assert.deepEqual(all, ["a", "b", "c"]);
    const some: string[] = [];
    for await (const r of readAuditRecords(f, (line) => !line.includes('"b"'))) some.push(r.request_id);
    assert.deepEqual(some, ["a", "c"]);
    const none: unknown[] = [];
    for await (const r of readAuditRecords(path.join(path.dirname(f), "missing.log"))) none.push(r);
    assert.deepEqual(none, []);
  });
});

describe("chain ranges (ChainVerifier midChain + absorb)", () => {
  /** Lines of a chain of `n` records, then edited: a line changed, dropped, torn, blanked or doubled. */
  const damagedChain = (n: number, edit: { kind: number; at: number }): string[] => {
    const lines: string[] = [];
    let prev = GENESIS;
    for (let seq = 1; seq <= n; seq++) {
      const line = JSON.stringify({ seq, prev, time: "2026-11-01T00:00:00.000Z", kind: "llm_request" });
      if (edit.kind === 3 && seq === 1 + (edit.at % n)) {
        // Torn by a crash: the record written on restart chains to the torn bytes.
        const torn = line.slice(0, 25);
        lines.push(torn);
        prev = lineHash(torn);
        const resumed = JSON.stringify({ seq, prev, time: "2026-11-01T00:00:00.000Z", kind: "llm_request" });
        lines.push(resumed);
        prev = lineHash(resumed);
        continue;
      }
      lines.push(line);
      prev = lineHash(line);
    }
    const i = edit.at % Math.max(1, lines.length);
    if (edit.kind === 0 && lines.length > 0) lines[i] = lines[i]!.replace("llm_request", "llm_rEquest");
    if (edit.kind === 1) lines.splice(i, 1);
    if (edit.kind === 2) lines.splice(i, 0, "");
    if (edit.kind === 4) lines.splice(i, 0, "{torn", "{torn too");
    return lines;
  };

  it("ranges cut anywhere and absorbed in order give the verdict of one pass, anchors included", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 12 }),
        fc.record({ kind: fc.integer({ min: 0, max: 5 }), at: fc.nat() }),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        (n, edit, cutsAt, anchorsAt) => {
          const lines = damagedChain(n, edit);
          // Anchors from the intact records' own hashes, one of them possibly wrong or beyond the end.
          const anchors: ChainHead[] = anchorsAt.map((a, i) => {
            const line = lines[a % Math.max(1, lines.length)] ?? "";
            const seq = (
              JSON.parse(line.startsWith('{"seq') && line.endsWith("}") ? line : "{}") as { seq?: number }
            ).seq;
            return i === 2 ? { seq: n + 1, hash: GENESIS } : { seq: seq ?? 1, hash: lineHash(line) };
          });
          const cuts = [...new Set(cutsAt.map((c) => c % (lines.length + 1)))].sort((a, b) => a - b);
          const joined = new ChainVerifier(anchors);
          const bounds = [0, ...cuts, lines.length];
          for (let r = 0; r + 1 < bounds.length; r++) {
            const range = new ChainVerifier(anchors, { midChain: true });
            for (const line of lines.slice(bounds[r], bounds[r + 1])) range.check(line);
            // Posted from a worker thread as a structured clone.
            joined.absorb(structuredClone(range.range()));
          }
          assert.deepEqual(joined.end(), verifyAuditChain(lines, anchors));
          assert.equal(joined.lines, lines.length);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
