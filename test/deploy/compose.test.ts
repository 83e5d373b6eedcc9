/**
 * docker-compose.yml run on this machine without Docker (test/deploy/local-gateway.ts): Envoy with the
 * compose file's arguments and its bootstrap deploy/compose/envoy.yaml, extproc with the compose file's
 * environment (container paths followed back to the repository files mounted there) on a Unix socket, and
 * the compose healthchecks run against them. manifests.test.ts checks the file's structure.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { test } from "node:test";
import { repositoryPath, readCompose } from "./compose.js";
import { describeLocalGateway } from "./local-gateway.js";
import { FILES, POD, ROOT } from "../../deploy/render/index.js";

const { services } = readCompose();
const envoy = services.envoy!;
const extproc = services.extproc!;
const environment = extproc.environment as Record<string, string>;
const inRepository = (containerPath: string): string => {
  const file = repositoryPath(extproc, containerPath);
  assert.ok(file, `extproc: nothing of the repository is mounted at ${containerPath}`);
  return path.join(ROOT, file);
};

/**
 * Runs a compose healthcheck (`CMD` form) here, its container address replaced by this run's. `node` is
 * this Node; `bash` and the rest come from PATH.
 */
function healthcheck(service: (typeof services)[string], address: string, local: string): number | null {
  const [form, command, ...args] = service.healthcheck.test as string[];
  assert.equal(form, "CMD");
  assert.ok(
    args.some((a) => a.includes(address)),
    `the healthcheck does not reach ${address}`,
  );
  const run = spawnSync(
    command === "node" ? process.execPath : command!,
    args.map((a) => a.replaceAll(address, local)),
    { encoding: "utf8", timeout: 10_000 },
  );
  return run.status;
}

describeLocalGateway(
  "docker-compose.yml run locally: Envoy and extproc over the Unix socket",
  {
    bootstrap: FILES.envoyCompose,
    envoyArgs: envoy.command,
    extprocEnv: (socket, metrics) => ({
      ...environment,
      EXTPROC_POLICY: inRepository(environment.EXTPROC_POLICY!),
      EXTPROC_ENVOY_CONFIG: inRepository(environment.EXTPROC_ENVOY_CONFIG!),
      EXTPROC_LISTEN: `unix://${socket}`,
      EXTPROC_METRICS_LISTEN: metrics,
    }),
  },
  (gateway) => {
    test("the healthchecks: extproc's /healthz, and Envoy's readiness, which fails once Envoy is draining", async () => {
      const metrics = environment.EXTPROC_METRICS_LISTEN!.replace("0.0.0.0", "127.0.0.1");
      assert.equal(healthcheck(extproc, metrics, `127.0.0.1:${gateway.ports.metrics}`), 0);
      const ops = `127.0.0.1/${POD.ops.port}`;
      const check = () => healthcheck(envoy, ops, `127.0.0.1/${gateway.ports.listener_ops}`);
      assert.equal(check(), 0, gateway.logs.join(""));
      const admin = (p: string) => fetch(`http://127.0.0.1:${gateway.ports.admin}${p}`, { method: "POST" });
      assert.equal((await admin("/healthcheck/fail")).status, 200);
      try {
        assert.notEqual(check(), 0, "Envoy's healthcheck passes while it is failed");
      } finally {
        await admin("/healthcheck/ok");
      }
      assert.equal(check(), 0);
    });
  },
);
