import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { pino } from "pino";
import { Counter, Gauge, Registry } from "prom-client";
import { sha256Hex } from "./index.js";
import { PolicyStore } from "./store.js";

const policyText = (keyId: string) => `
version: 1
pools: { pool-a: {} }
models: { m1: { pool: pool-a } }
teams: { t: { models: [m1] } }
keys:
  - { id: ${keyId}, team: t, sha256: ${sha256Hex(keyId)} }
`;

interface LogLine {
  level: number;
  msg: string;
  digest?: string;
  rejected_reloads?: number;
}

/** A store on a real file, watched, with a logger whose lines the test reads. */
function watchedStore(text: string) {
  const dir = mkdtempSync(path.join(tmpdir(), "policy-store-"));
  const file = path.join(dir, "policy.yaml");
  writeFileSync(file, text);
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean))
        lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const registry = new Registry();
  const metrics = {
    reloads: new Counter({ name: "reloads", help: "h", labelNames: ["result"], registers: [registry] }),
    lastSuccess: new Gauge({ name: "last_success", help: "h", registers: [registry] }),
    info: new Gauge({ name: "info", help: "h", labelNames: ["digest"], registers: [registry] }),
    price: new Gauge({
      name: "price",
      help: "h",
      labelNames: ["model", "type", "currency"],
      registers: [registry],
    }),
  };
  const store = new PolicyStore(file, {}, metrics, pino({ level: "info" }, sink));
  store.watch();
  return { file, store, lines, registry };
}

/** Waits until the logger has written `count` lines at or above warn (the watcher reloads asynchronously). */
async function warnings(lines: LogLine[], count: number): Promise<LogLine[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const found = lines.filter((l) => l.level >= 40);
    if (found.length >= count) return found;
    if (Date.now() > deadline) assert.fail(`expected ${count} warnings, got ${JSON.stringify(lines)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("policy store", () => {
  it("logs, at warn, that a policy is valid again when the file is put back as it was", async () => {
    const good = policyText("k1");
    const { file, store, lines, registry } = watchedStore(good);
    const digest = store.current.digest;
    try {
      writeFileSync(file, "version: 1\npools: [");
      await warnings(lines, 1);
      writeFileSync(file, "version: 2\n");
      await warnings(lines, 2);
      writeFileSync(file, good);
      const [firstRejection, , recovery] = await warnings(lines, 3);
      assert.equal(firstRejection!.level, 50);
      assert.match(firstRejection!.msg, /^policy reload rejected/);
      assert.equal(recovery!.level, 40);
      assert.equal(
        recovery!.msg,
        `policy valid again after 2 rejected reload(s); applied ${digest.slice(0, 16)}`,
      );
      assert.equal(recovery!.digest, digest.slice(0, 16));
      assert.equal(recovery!.rejected_reloads, 2);
      assert.equal(store.current.digest, digest);
      const reloads = await registry.getSingleMetricAsString("reloads");
      assert.match(reloads, /reloads\{result="success"\} 2/);
      assert.match(reloads, /reloads\{result="failure"\} 2/);
    } finally {
      store.close();
    }
  });

  it("logs recovery with the new digest when a different valid policy follows a rejected one", async () => {
    const { file, store, lines } = watchedStore(policyText("k1"));
    const first = store.current.digest;
    try {
      writeFileSync(file, "not: [valid");
      await warnings(lines, 1);
      writeFileSync(file, policyText("k2"));
      const [, recovery] = await warnings(lines, 2);
      const applied = store.current.digest;
      assert.notEqual(applied, first);
      assert.equal(
        recovery!.msg,
        `policy valid again after 1 rejected reload(s); applied ${applied.slice(0, 16)}`,
      );
      assert.equal(recovery!.digest, applied.slice(0, 16));

      // A further ordinary reload is an info line again, not a recovery.
      writeFileSync(file, policyText("k3"));
      const deadline = Date.now() + 5_000;
      while (!lines.some((l) => l.msg === "policy reloaded") && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 20));
      const reloaded = lines.find((l) => l.msg === "policy reloaded");
      assert.equal(reloaded?.level, 30);
      assert.equal(lines.filter((l) => l.level >= 40).length, 2);
    } finally {
      store.close();
    }
  });

  it("publishes the prices in force, by model and token type, and only those after a reload", async () => {
    const priced = (m1: string, m2: string) => `
version: 1
pools: { pool-a: {} }
models:
  m1: { pool: pool-a${m1} }
  m2: { pool: pool-a${m2} }
teams: { t: { models: [m1, m2] } }
pricing: { currency: EUR }
`;
    const { file, store, registry } = watchedStore(priced(", price: { input: 0.1, output: 0.3 }", ""));
    const prices = async () =>
      (await registry.getSingleMetricAsString("price")).split("\n").filter((l) => !l.startsWith("#"));
    try {
      assert.deepEqual(await prices(), [
        'price{model="m1",type="prompt",currency="EUR"} 0.1',
        'price{model="m1",type="completion",currency="EUR"} 0.3',
      ]);
      writeFileSync(file, priced("", ", price: { input: 2, output: 0 }"));
      store.reload("test");
      assert.deepEqual(await prices(), [
        'price{model="m2",type="prompt",currency="EUR"} 2',
        'price{model="m2",type="completion",currency="EUR"} 0',
      ]);
    } finally {
      store.close();
    }
  });
});
