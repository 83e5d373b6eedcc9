/**
 * Runs a committed gateway bootstrap (the pod's or docker-compose's) on this machine, as its deployment runs
 * it: a real Envoy with the deployment's flags and the bootstrap (only its addresses moved to loopback ports,
 * its files to the dev ones), extproc listening on a Unix socket (EXTPROC_LISTEN=unix://…, checking its
 * pools against the bootstrap), and demo model servers standing in for the pools. The checks every such
 * deployment must pass are registered here once; each test file adds its own.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import * as yaml from "js-yaml";
import { startModelServer, type ModelServer } from "../model-server/index.js";
import { childEnv, launch, terminate, type Launched } from "../harness/children.js";
import { DEMO_KEYS, DEMO_POOL_B_KEY, envoyBinary, freePort, POOL_MODELS, waitFor } from "../harness/index.js";
import {
  placeEnvoyConfig,
  POD,
  POD_FILES,
  ROOT,
  socketAddress,
  type ClusterPlacement,
} from "../../deploy/render/index.js";

type Node = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The loopback ports a local run listens on, by the bootstrap's listener names, and extproc's metrics. */
export interface Ports {
  readonly listener_http: number;
  readonly listener_https: number;
  readonly listener_ops: number;
  readonly admin: number;
  readonly metrics: number;
}

/** What differs between the deployments run locally. */
export interface LocalGatewayOptions {
  /** The bootstrap the deployment runs: repository-relative, or absolute (one a test rendered). */
  readonly bootstrap: string;
  /** Envoy's arguments in the deployment; --config-path, --concurrency and --log-level are replaced. */
  readonly envoyArgs: readonly string[];
  /**
   * extproc's settings, given where this run's socket is and where its metrics listen (host:port); extproc
   * sees no other variable of this process's environment.
   */
  readonly extprocEnv: (socket: string, metrics: string) => Readonly<Record<string, string | undefined>>;
}

/** A running local gateway, for the tests of one `describe`. */
export interface LocalGateway {
  readonly ports: Ports;
  /** A URL on Envoy's plain API listener. */
  url(p: string): string;
  /** A URL on Envoy's ops listener. */
  ops(p: string): string;
  /** Output of every process, for assertion messages. */
  readonly logs: string[];
}

/** The pod's bootstrap on loopback: same structure, addresses and files moved (deploy/render/placement.ts). */
function localize(doc: Node, ports: Ports, socket: string, pools: Record<string, number>): Node {
  const loopback = (port: number) => socketAddress("127.0.0.1", port);
  const clusters: Record<string, ClusterPlacement> = {
    [POD.adminCluster]: { addresses: [loopback(ports.admin)] },
  };
  for (const cluster of doc.static_resources.clusters as Node[]) {
    if (cluster.cluster_type || cluster.name === POD.adminCluster) continue;
    const endpoint = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint;
    if (cluster.name === "extproc") {
      assert.deepEqual(endpoint.address, { pipe: { path: POD.socketPath } });
      clusters.extproc = { addresses: [{ pipe: { path: socket } }] };
    } else {
      assert.equal(cluster.type, "STRICT_DNS");
      const port = pools[cluster.name];
      assert.ok(port, `no model server for ${cluster.name}`);
      clusters[cluster.name] = { addresses: [loopback(port)] };
    }
  }
  const local = new Map(Object.entries(POD_FILES).map(([repo, inPod]) => [inPod, path.join(ROOT, repo)]));
  return placeEnvoyConfig(doc, {
    listeners: {
      listener_http: loopback(ports.listener_http),
      listener_https: loopback(ports.listener_https),
      [POD.ops.name]: loopback(ports.listener_ops),
    },
    adminPort: ports.admin,
    clusters,
    filename: (filename) => local.get(filename) ?? filename,
  });
}

/** `args` with the value after `flag` replaced (the flag must be there). */
function withFlag(args: readonly string[], flag: string, value: string): string[] {
  const at = args.indexOf(flag);
  assert.ok(at >= 0, `Envoy is started without ${flag}`);
  return [...args.slice(0, at + 1), value, ...args.slice(at + 2)];
}

const chat = (model: string, content: string) =>
  JSON.stringify({ model, messages: [{ role: "user", content }] });

/**
 * A `describe` that starts the gateway before its tests and stops it after them, with the checks every
 * deployment shares; `more` registers the caller's own tests, which may use the gateway once it runs.
 */
export function describeLocalGateway(
  title: string,
  options: LocalGatewayOptions,
  more: (gateway: LocalGateway) => void,
): void {
  describe(title, () => {
    const workDir = mkdtempSync(path.join(tmpdir(), "llm-gateway-local-"));
    const socket = path.join(workDir, "extproc.sock");
    const logs: string[] = [];
    const servers: ModelServer[] = [];
    let ports: Ports | undefined;
    let extproc: Launched | undefined;
    let envoy: Launched | undefined;
    const port = (name: keyof Ports): number => {
      assert.ok(ports, "the gateway is not running");
      return ports[name];
    };
    const gateway: LocalGateway = {
      get ports() {
        assert.ok(ports, "the gateway is not running");
        return ports;
      },
      url: (p) => `http://127.0.0.1:${port("listener_http")}${p}`,
      ops: (p) => `http://127.0.0.1:${port("listener_ops")}${p}`,
      logs,
    };

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
      const env = childEnv(options.extprocEnv(socket, `127.0.0.1:${ports.metrics}`));
      extproc = launch("extproc", process.execPath, [path.join(ROOT, "dist/extproc/main.js")], {
        env,
        output: logs,
      });
      await waitFor("extproc", async () => (await fetch(`http://127.0.0.1:${ports!.metrics}/healthz`)).ok);
      const config = path.join(workDir, "envoy.yaml");
      const doc = yaml.load(readFileSync(path.resolve(ROOT, options.bootstrap), "utf8")) as Node;
      writeFileSync(config, yaml.dump(localize(doc, ports, socket, pools), { noRefs: true, lineWidth: -1 }));
      // The deployment's flags, on one worker and quieter.
      let args = withFlag(options.envoyArgs, "--config-path", config);
      args = withFlag(withFlag(args, "--concurrency", "1"), "--log-level", "warning");
      envoy = launch("envoy", envoyBinary(), args, { env: childEnv(), output: logs });
      await waitFor(
        "envoy's readiness",
        async () => (await fetch(gateway.ops(POD.ops.ready))).status === 200,
      );
    });

    after(async () => {
      await terminate(envoy);
      await terminate(extproc);
      await Promise.all(servers.map((s) => s.close()));
      rmSync(workDir, { recursive: true, force: true });
    });

    test("requests go through Envoy, extproc (over the socket) and the pool extproc picks", async () => {
      for (const [pool, [model]] of Object.entries(POOL_MODELS)) {
        const res = await fetch(gateway.url("/v1/chat/completions"), {
          method: "POST",
          headers: { authorization: `Bearer ${DEMO_KEYS.research}`, "content-type": "application/json" },
          body: chat(model!, "hello over a unix socket"),
        });
        const text = await res.text();
        assert.equal(res.status, 200, text);
        assert.equal(res.headers.get("x-demo-server"), pool);
        assert.ok(res.headers.get("x-request-id"));
      }
    });

    test("extproc is in the path: a request without a key is refused by it", async () => {
      const res = await fetch(gateway.url("/v1/chat/completions"), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chat("llama-3.1-8b-instruct", "hi"),
      });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { error: { code: string } }).error.code, "missing_api_key");
    });

    test("the ops listener: /ready, /live and Envoy's Prometheus metrics, and nothing else of the admin", async () => {
      assert.equal((await fetch(gateway.ops(POD.ops.ready))).status, 200);
      const live = await fetch(gateway.ops(POD.ops.live));
      assert.equal(live.status, 200);
      const metrics = await fetch(gateway.ops(POD.ops.metrics));
      assert.equal(metrics.status, 200);
      assert.match(
        await metrics.text(),
        /envoy_http_downstream_rq_total\{envoy_http_conn_manager_prefix="llm_gateway"\}/,
      );
      for (const adminPath of ["/quitquitquit", "/config_dump", "/drain_listeners", "/"]) {
        const res = await fetch(gateway.ops(adminPath), { method: "POST" });
        assert.equal(res.status, 404, `${adminPath} must not reach the admin`);
      }
    });

    more(gateway);
  });
}
