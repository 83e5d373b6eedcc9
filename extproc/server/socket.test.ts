import assert from "node:assert/strict";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { freeUnixSocketPath } from "./socket.js";

const dir = mkdtempSync(path.join(tmpdir(), "socket-test-"));

describe("freeUnixSocketPath", () => {
  it("removes a socket nobody listens on any more, and leaves a missing path alone", async () => {
    const file = path.join(dir, "stale.sock");
    // A listener killed without closing leaves its socket file behind (closing a net.Server removes it).
    const { spawnSync } = await import("node:child_process");
    const listenThenDie = `require("net").createServer().listen(${JSON.stringify(file)}, () => process.kill(process.pid, "SIGKILL"))`;
    assert.equal(spawnSync(process.execPath, ["-e", listenThenDie]).signal, "SIGKILL");
    assert.ok(existsSync(file));
    await freeUnixSocketPath(file);
    assert.ok(!existsSync(file));
    await freeUnixSocketPath(file);
  });

  it("refuses a socket another process is listening on, and a file that is not a socket", async () => {
    const live = path.join(dir, "live.sock");
    const server = createServer().listen(live);
    await new Promise((resolve) => server.once("listening", resolve));
    await assert.rejects(freeUnixSocketPath(live), /another process is listening on/);
    assert.ok(existsSync(live));
    server.close();

    const regular = path.join(dir, "not-a-socket");
    writeFileSync(regular, "data");
    await assert.rejects(freeUnixSocketPath(regular), /exists and is not a socket/);
    assert.ok(existsSync(regular));
  });
});
