import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { freePort } from "../test/harness/index.js";

const ROOT = path.resolve(import.meta.dirname, "../..");
const MAIN = path.join(ROOT, "dist/extproc/main.js");

interface Run {
  readonly child: ChildProcess;
  readonly output: string[];
  readonly exited: Promise<number | null>;
}

/** Starts extproc with the sample policy and `env` on top. */
async function startExtProc(env: Record<string, string>): Promise<Run & { metrics: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), "extproc-main-"));
  const metrics = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      EXTPROC_POLICY: path.join(ROOT, "deploy/policy.yaml"),
      POOL_B_API_KEY: "secret-b",
      EXTPROC_LISTEN: "127.0.0.1:0",
      EXTPROC_METRICS_LISTEN: `127.0.0.1:${metrics}`,
      EXTPROC_AUDIT_LOG: path.join(dir, "audit.log"),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  child.stdout!.on("data", (d: Buffer) => output.push(d.toString()));
  child.stderr!.on("data", (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return { child, output, exited, metrics };
}

/** Resolves true once extproc answers /healthz, false if it exits first. */
async function healthy(run: Run & { metrics: number }): Promise<boolean> {
  let gone = false;
  void run.exited.then(() => (gone = true));
  while (!gone) {
    const ok = await fetch(`http://127.0.0.1:${run.metrics}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

/** A failed start: exit code 1 and one fatal line, no second error from a half-open stream. */
async function assertFailsToStart(run: Run, reason: RegExp): Promise<void> {
  assert.equal(await run.exited, 1, run.output.join(""));
  const output = run.output.join("");
  const fatal = output.split("\n").filter((line) => line.includes('"level":60'));
  assert.equal(fatal.length, 1, output);
  assert.match(fatal[0]!, reason);
  assert.doesNotMatch(output, /sonic boom|Unhandled|^\s+at /m, output);
}

describe("extproc start-up", () => {
  it("takes over the Unix socket of an extproc that was killed, but not of one that is running", async () => {
    const socket = path.join(mkdtempSync(path.join(tmpdir(), "extproc-sock-")), "extproc.sock");
    const listen = { EXTPROC_LISTEN: `unix://${socket}` };
    const first = await startExtProc(listen);
    assert.ok(await healthy(first), first.output.join(""));

    // A second one must not steal the socket from the running one.
    await assertFailsToStart(await startExtProc(listen), /another process is listening on/);

    // Killed without a chance to remove its socket (OOM kill, SIGKILL): the restart must still come up.
    first.child.kill("SIGKILL");
    await first.exited;
    const restarted = await startExtProc(listen);
    assert.ok(await healthy(restarted), restarted.output.join(""));
    restarted.child.kill("SIGTERM");
    assert.equal(await restarted.exited, 0);
  });

  it("starts on an audit log whose last line was torn by a crash, and says so", async () => {
    const audit = path.join(mkdtempSync(path.join(tmpdir(), "extproc-torn-")), "audit.log");
    writeFileSync(audit, '{"seq":1,"prev":"x"}\n{"seq":2,"pr');
    const run = await startExtProc({ EXTPROC_AUDIT_LOG: audit });
    assert.ok(await healthy(run), run.output.join(""));
    assert.match(run.output.join(""), /audit log ends with a line that is not a record/);
    run.child.kill("SIGTERM");
    assert.equal(await run.exited, 0);
  });

  it("stops with one clear line when the audit log cannot be written or the policy is invalid", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "extproc-bad-"));
    const notADirectory = path.join(dir, "file");
    writeFileSync(notADirectory, "");
    await assertFailsToStart(
      await startExtProc({ EXTPROC_AUDIT_LOG: path.join(notADirectory, "audit.log") }),
      /extproc failed to start/,
    );
    const policy = path.join(dir, "policy.yaml");
    writeFileSync(policy, "version: 1\npools: {}\nmodels: { m: { pool: nowhere } }\nteams: {}\nkeys: []\n");
    await assertFailsToStart(
      await startExtProc({ EXTPROC_POLICY: policy }),
      /models\.m\.pool: unknown pool \\"nowhere\\"/,
    );
  });
});
