/**
 * The Kubernetes pod, run on this machine: the committed deploy/kubernetes/base/envoy.yaml (only its
 * addresses moved to loopback ports, its files to the dev ones) with a real Envoy, extproc listening on a
 * Unix socket as in the pod (EXTPROC_LISTEN=unix://…, checking its pools against that bootstrap), demo model
 * servers standing in for the pools, and the preStop script deploy/kubernetes/base/drain.sh draining it.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import * as yaml from "js-yaml";
import { startModelServer, type ModelServer } from "../model-server/index.js";
import { DEMO_KEYS, DEMO_POOL_B_KEY, envoyBinary, freePort, POOL_MODELS, waitFor } from "../harness/index.js";
import { FILES, mapFilenames, POD, POD_FILES, ROOT } from "./render-envoy.js";

type Node = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Ports {
  readonly listener_http: number;
  readonly listener_https: number;
  readonly listener_ops: number;
  readonly admin: number;
  readonly metrics: number;
}

/** The pod's bootstrap on loopback: same structure, addresses and files moved (by name, never by text). */
function localize(doc: Node, ports: Ports, socket: string, pools: Record<string, number>): Node {
  doc.admin.address.socket_address.port_value = ports.admin;
  for (const listener of doc.static_resources.listeners as Node[]) {
    const port = ports[listener.name as keyof Ports];
    assert.ok(port, `unexpected listener ${listener.name}`);
    listener.address.socket_address = { address: "127.0.0.1", port_value: port };
  }
  for (const cluster of doc.static_resources.clusters as Node[]) {
    const endpoint = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint;
    if (cluster.name === "extproc") {
      assert.deepEqual(endpoint.address, { pipe: { path: POD.socketPath } });
      endpoint.address.pipe.path = socket;
    } else if (cluster.name === POD.adminCluster) {
      endpoint.address.socket_address.port_value = ports.admin;
    } else {
      assert.equal(cluster.type, "STRICT_DNS");
      endpoint.address.socket_address = { address: "127.0.0.1", port_value: pools[cluster.name] };
    }
  }
  const local = new Map(Object.entries(POD_FILES).map(([repo, inPod]) => [inPod, path.join(ROOT, repo)]));
  mapFilenames(doc, (filename) => local.get(filename) ?? filename);
  return doc;
}

function launch(command: string, args: string[], env: NodeJS.ProcessEnv, log: string[]): ChildProcess {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  child.stdout!.on("data", (d: Buffer) => log.push(d.toString()));
  child.stderr!.on("data", (d: Buffer) => log.push(d.toString()));
  return child;
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

const chat = (content: string) =>
  JSON.stringify({ model: "llama-3.1-8b-instruct", messages: [{ role: "user", content }] });

describe("the Kubernetes pod run locally: Envoy and extproc over the Unix socket", () => {
  const workDir = mkdtempSync(path.join(tmpdir(), "llm-gateway-pod-"));
  const socket = path.join(workDir, "extproc.sock");
  const logs: string[] = [];
  const servers: ModelServer[] = [];
  let ports: Ports;
  let extproc: ChildProcess | undefined;
  let envoy: ChildProcess | undefined;
  const url = (p: string) => `http://127.0.0.1:${ports.listener_http}${p}`;
  const ops = (p: string) => `http://127.0.0.1:${ports.listener_ops}${p}`;

  before(async () => {
    const [http, https, opsPort, admin, metrics] = await Promise.all(
      Array.from({ length: 5 }, () => freePort()),
    );
    ports = {
      listener_http: http!,
      listener_https: https!,
      listener_ops: opsPort!,
      admin: admin!,
      metrics: metrics!,
    };
    const pools: Record<string, number> = {};
    for (const [name, models] of Object.entries(POOL_MODELS)) {
      const apiKey = name === "pool-b" ? DEMO_POOL_B_KEY : undefined;
      const server = await startModelServer({
        name,
        port: await freePort(),
        models,
        apiKey,
        tokenDelayMs: 0,
      });
      servers.push(server);
      pools[name] = server.port;
    }
    extproc = launch(
      process.execPath,
      [path.join(ROOT, "dist/extproc/main.js")],
      {
        ...process.env,
        EXTPROC_POLICY: path.join(ROOT, FILES.policyK8s),
        // The committed pod bootstrap, as in the pod: extproc refuses pools it cannot route.
        EXTPROC_ENVOY_CONFIG: path.join(ROOT, FILES.envoyK8s),
        EXTPROC_LISTEN: `unix://${socket}`,
        EXTPROC_METRICS_LISTEN: `127.0.0.1:${ports.metrics}`,
        EXTPROC_AUDIT_LOG: path.join(workDir, "audit.log"),
        EXTPROC_SHUTDOWN_GRACE_MS: "5000",
        POOL_B_API_KEY: DEMO_POOL_B_KEY,
      },
      logs,
    );
    await waitFor("extproc", async () => (await fetch(`http://127.0.0.1:${ports.metrics}/healthz`)).ok);
    const config = path.join(workDir, "envoy.yaml");
    const doc = yaml.load(readFileSync(path.join(ROOT, FILES.envoyK8s), "utf8")) as Node;
    writeFileSync(config, yaml.dump(localize(doc, ports, socket, pools), { noRefs: true, lineWidth: -1 }));
    // The pod's Envoy flags (deploy/kubernetes/base/deployment.yaml), on one worker.
    const args = ["--config-path", config, "--disable-hot-restart", "--concurrency", "1"];
    args.push("--drain-strategy", "immediate", "--drain-time-s", "300", "--log-level", "warning");
    envoy = launch(envoyBinary(), args, process.env, logs);
    await waitFor("envoy's readiness", async () => (await fetch(ops(POD.ops.ready))).status === 200);
  });

  after(async () => {
    await stop(envoy);
    await stop(extproc);
    await Promise.all(servers.map((s) => s.close()));
    rmSync(workDir, { recursive: true, force: true });
  });

  test("a request goes through Envoy, extproc (over the socket) and the pool extproc picks", async () => {
    const res = await fetch(url("/v1/chat/completions"), {
      method: "POST",
      headers: { authorization: `Bearer ${DEMO_KEYS.research}`, "content-type": "application/json" },
      body: chat("hello over a unix socket"),
    });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal(res.headers.get("x-demo-server"), "pool-a");
    assert.ok(res.headers.get("x-request-id"));
  });

  test("extproc is in the path: a request without a key is refused by it", async () => {
    const res = await fetch(url("/v1/chat/completions"), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chat("hi"),
    });
    assert.equal(res.status, 401);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, "missing_api_key");
  });

  test("the ops listener: /ready, /live and Envoy's Prometheus metrics, and nothing else of the admin", async () => {
    assert.equal((await fetch(ops(POD.ops.ready))).status, 200);
    const live = await fetch(ops(POD.ops.live));
    assert.equal(live.status, 200);
    const metrics = await fetch(ops(POD.ops.metrics));
    assert.equal(metrics.status, 200);
    assert.match(
      await metrics.text(),
      /envoy_http_downstream_rq_total\{envoy_http_conn_manager_prefix="llm_gateway"\}/,
    );
    for (const adminPath of ["/quitquitquit", "/config_dump", "/drain_listeners", "/"]) {
      const res = await fetch(ops(adminPath), { method: "POST" });
      assert.equal(res.status, 404, `${adminPath} must not reach the admin`);
    }
  });

  test("drain.sh: readiness fails, a stream in flight finishes, the hooks return once it has", async () => {
    const tokens = 25;
    const started = Date.now();
    const res = await fetch(url("/v1/chat/completions"), {
      method: "POST",
      headers: {
        authorization: `Bearer ${DEMO_KEYS.research}`,
        "content-type": "application/json",
        "x-demo-token-delay-ms": "100",
      },
      body: JSON.stringify({
        model: "llama-3.1-8b-instruct",
        stream: true,
        max_tokens: tokens,
        // The demo server answers "This is <model> answering:" and echoes the prompt's words.
        messages: [{ role: "user", content: Array.from({ length: tokens }, (_, i) => `w${i}`).join(" ") }],
      }),
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let body = new TextDecoder().decode((await reader.read()).value);

    // Both preStop hooks, as the kubelet runs them (concurrently), against this Envoy's admin.
    const hook = (mode: string) => {
      const env = {
        ...process.env,
        ENVOY_ADMIN_PORT: String(ports.admin),
        DRAIN_MIN_WAIT_S: "1",
        DRAIN_MAX_WAIT_S: "60",
      };
      const output: string[] = [];
      const child = launch("bash", [path.join(ROOT, "deploy/kubernetes/base/drain.sh"), mode], env, output);
      const done = new Promise<{ code: number | null; at: number; output: string }>((resolve) =>
        // "close", not "exit": only then has all of the hook's output been read.
        child.once("close", (code) => resolve({ code, at: Date.now(), output: output.join("") })),
      );
      return done;
    };
    const envoyHook = hook("envoy");
    const extprocHook = hook("wait");

    await waitFor("readiness to fail", async () => (await fetch(ops(POD.ops.ready))).status === 503, 5_000);
    // A late request (the endpoint removal has not reached every client yet) is still answered, told to close.
    const late = await fetch(url("/v1/models"), {
      headers: { authorization: `Bearer ${DEMO_KEYS.research}` },
    });
    assert.equal(late.status, 200);
    assert.equal(late.headers.get("connection"), "close");

    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      body += new TextDecoder().decode(value);
    }
    const finished = Date.now();
    assert.ok(finished - started >= 2_000, "the stream ran on while the pod drained");
    assert.match(body, /data: \[DONE\]/);
    type Choice = { delta?: { content?: string }; finish_reason?: string | null };
    const choices = body
      .split("\n")
      .filter((line) => line.startsWith("data: {"))
      .flatMap((line) => (JSON.parse(line.slice(6)) as { choices: Choice[] }).choices);
    // extproc's PII scan of the output regroups the chunks; the text must be whole.
    const text = choices.map((c) => c.delta?.content ?? "").join("");
    const echoed = Array.from({ length: tokens - 4 }, (_, i) => `w${i}`).join(" ");
    assert.equal(text, `This is llama-3.1-8b-instruct answering: ${echoed}`, "every token arrived");
    assert.equal(choices.at(-1)?.finish_reason, "length");

    for (const result of [await envoyHook, await extprocHook]) {
      assert.equal(result.code, 0, result.output);
      assert.ok(result.at >= finished - 100, `a hook returned before the stream ended:\n${result.output}`);
      assert.match(result.output, /no request in flight/);
    }
    assert.match((await envoyHook).output, /readiness failed, listeners draining/);
  });
});
