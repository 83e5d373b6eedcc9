/**
 * The audit log's operational promises, through real Envoy and extproc: chain heads are logged as
 * checkpoints at most once a minute and at shutdown (on a clock the test owns); `EXTPROC_AUDIT_STDOUT`
 * copies every record to stdout byte for byte; `SIGUSR2` after a rename reopens the path and the chain
 * continues there; and a crash loses at most the last `EXTPROC_AUDIT_FSYNC_MS` of records.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, renameSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { lineHash, verifyAuditChain } from "../../extproc/audit/index.js";
import { CLEAR_OF_WINDOW_EDGES, DEMO_KEYS, startStack, waitFor, type Stack } from "../harness/index.js";
import { auditRecordOf, client, extprocMetrics, sampleValue } from "./helpers.js";

/** README's default: records are written and fsynced once a second. */
const FSYNC_MS = 1000;

let stack: Stack;
before(async () => {
  stack = await startStack({
    clockAt: CLEAR_OF_WINDOW_EDGES,
    extprocEnv: { EXTPROC_AUDIT_FSYNC_MS: String(FSYNC_MS), EXTPROC_AUDIT_STDOUT: "true" },
  });
});
after(() => stack?.stop());

/** One chat completion through the gateway; its request id. */
async function request(): Promise<string> {
  const { response } = await client(stack, DEMO_KEYS.research)
    .chat.completions.create({
      model: "llama-3.1-8b-instruct",
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 3,
    })
    .withResponse();
  return response.headers.get("x-request-id")!;
}

/** The non-empty lines of `file` (none when it does not exist). */
const linesOf = (file: string): string[] =>
  existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : [];

/** extproc's operational log (stdout and stderr): every replica start appends to it. */
const extprocLog = (): string[] => linesOf(path.join(stack.workDir, "extproc.log"));

/** The `audit checkpoint` lines' `seq:hash` values, oldest first. */
const checkpoints = (): string[] =>
  extprocLog()
    .filter((line) => line.includes('"audit checkpoint"'))
    .map((line) => (JSON.parse(line) as { audit_checkpoint: string }).audit_checkpoint);

/** Waits until extproc reports every record up to `seq` fsynced. */
async function durableTo(seq: number): Promise<void> {
  await waitFor(
    `audit seq ${seq} durable`,
    async () => sampleValue(await extprocMetrics(stack), "llm_gateway_audit_durable_seq") >= seq,
  );
}

/** The chain head after the last line of `file`, as a checkpoint names it. */
const headOf = (file: string): string => {
  const last = linesOf(file).at(-1)!;
  return `${(JSON.parse(last) as { seq: number }).seq}:${lineHash(last)}`;
};

describe("audit checkpoints", () => {
  it("logs the chain head at most once a minute while records are written, and at shutdown", async () => {
    const before = checkpoints().length;
    // The first durable record after start is checkpointed at once.
    await auditRecordOf(stack, await request());
    await durableTo(linesOf(stack.auditLog).length);
    await waitFor("the first checkpoint", async () => checkpoints().length === before + 1);
    assert.equal(checkpoints().at(-1), headOf(stack.auditLog));
    // More records over several fsync intervals, within the same minute of the owned clock: no new line.
    for (let i = 0; i < 3; i++) {
      await auditRecordOf(stack, await request());
      await durableTo(linesOf(stack.auditLog).length);
    }
    await new Promise((resolve) => setTimeout(resolve, FSYNC_MS));
    assert.equal(checkpoints().length, before + 1, "a checkpoint within a minute of the last one");
    // A minute later on the owned clock, the next durable record is checkpointed.
    await stack.clock!.set(stack.clock!.now() + 61_000);
    await auditRecordOf(stack, await request());
    await durableTo(linesOf(stack.auditLog).length);
    await waitFor("the minute's checkpoint", async () => checkpoints().length === before + 2);
    assert.equal(checkpoints().at(-1), headOf(stack.auditLog));
    // Records made durable within the minute, then a shutdown: the head is checkpointed on the way out.
    await auditRecordOf(stack, await request());
    await durableTo(linesOf(stack.auditLog).length);
    await stack.stopExtProc();
    assert.equal(checkpoints().length, before + 3);
    assert.equal(checkpoints().at(-1), headOf(stack.auditLog));
    await stack.startExtProc();
  });
});

describe("EXTPROC_AUDIT_STDOUT", () => {
  it("copies every record to stdout, byte for byte the line in the audit file", async () => {
    const ids = [await request(), await request()];
    for (const id of ids) {
      await auditRecordOf(stack, id);
      const inFile = linesOf(stack.auditLog).filter((line) => line.includes(`"request_id":"${id}"`));
      assert.equal(inFile.length, 1);
      await waitFor(`the stdout copy of ${id}`, async () => extprocLog().includes(inFile[0]!));
    }
  });
});

describe("SIGUSR2", () => {
  it("reopens the audit path after a rename: the next record lands in a new file, the chain continues", async () => {
    await auditRecordOf(stack, await request());
    const moved = `${stack.auditLog}.1`;
    renameSync(stack.auditLog, moved);
    // Until the signal, records still go to the file extproc has open, now under its new name.
    const beforeSignal = await request();
    await waitFor("a record in the moved file", async () =>
      linesOf(moved).some((line) => line.includes(beforeSignal)),
    );
    assert.equal(existsSync(stack.auditLog), false);
    stack.signalExtProc("SIGUSR2");
    await waitFor("the audit path reopened", async () => existsSync(stack.auditLog));
    const afterSignal = await request();
    await auditRecordOf(stack, afterSignal);
    const fresh = linesOf(stack.auditLog);
    assert.ok(fresh.length >= 1 && fresh.every((line) => !line.includes(beforeSignal)));
    assert.ok(fresh.some((line) => line.includes(afterSignal)));
    assert.ok(!linesOf(moved).some((line) => line.includes(afterSignal)));
    // One chain across both files, rotated file first: the new file's first record follows the old one's last.
    const verdict = verifyAuditChain([...linesOf(moved), ...fresh]);
    assert.ok(
      verdict.ok && verdict.records === linesOf(moved).length + fresh.length,
      JSON.stringify(verdict),
    );
    const first = JSON.parse(fresh[0]!) as { seq: number; prev: string };
    assert.equal(first.prev, lineHash(linesOf(moved).at(-1)!));
  });
});

describe("a crash", () => {
  it(`loses no record written more than EXTPROC_AUDIT_FSYNC_MS (${FSYNC_MS} ms) before a SIGKILL`, async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await request());
    // Longer than one interval, measured from the last answer: every record is written and fsynced by then.
    await new Promise((resolve) => setTimeout(resolve, FSYNC_MS + 500));
    await stack.killExtProc();
    const onDisk = linesOf(stack.auditLog);
    for (const id of ids)
      assert.equal(onDisk.filter((line) => line.includes(`"request_id":"${id}"`)).length, 1, `${id} lost`);
    const verdict = verifyAuditChain(onDisk);
    assert.ok(verdict.ok && verdict.records === onDisk.length, JSON.stringify(verdict));
    await stack.startExtProc();
    // The restarted extproc continues the chain.
    await auditRecordOf(stack, await request());
    const continued = verifyAuditChain(linesOf(stack.auditLog));
    assert.ok(continued.ok && continued.records === onDisk.length + 1, JSON.stringify(continued));
  });
});
