/**
 * A rendered gateway pod (what kustomize or helm renders) as test/deploy/local-gateway.ts runs it on this
 * machine: Envoy with the pod's arguments and the bootstrap from the pod's ConfigMap, extproc with the pod's
 * environment and the policy from the pod's ConfigMap. Only what cannot be the pod's is replaced: paths and
 * ports become this run's, the upstream key the demo model server's, extproc's shutdown grace a short one.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after } from "node:test";
import { DEMO_POOL_B_KEY } from "../harness/index.js";
import type { LocalGatewayOptions } from "./local-gateway.js";
import { containerNamed, mountOf, named, ofKind } from "./objects.js";
import type { Node } from "./tools.js";

/** The upstream keys the demo model servers expect, by the variable the policy reads them from. */
const DEMO_UPSTREAM_KEYS: Readonly<Record<string, string>> = { POOL_B_API_KEY: DEMO_POOL_B_KEY };

/** The content of the ConfigMap file the container reads at `file`. */
function configMapFile(objects: readonly Node[], deployment: Node, container: Node, file: string): string {
  const { volume } = mountOf(deployment, container, file);
  const configMap = named(ofKind(objects, "ConfigMap"), volume.configMap?.name);
  const text = configMap.data?.[path.basename(file)];
  assert.equal(typeof text, "string", `ConfigMap ${configMap.metadata.name} has no ${path.basename(file)}`);
  return text;
}

/** How to run the Deployment `name` of `objects` locally (its files go to a directory removed after the tests). */
export function localPodOptions(objects: readonly Node[], name: string): LocalGatewayOptions {
  const deployment = named(ofKind(objects, "Deployment"), name);
  const envoy = containerNamed(deployment, "envoy");
  const extproc = containerNamed(deployment, "extproc");
  const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-rendered-pod-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const args = envoy.args as string[];
  const bootstrapPath = args[args.indexOf("--config-path") + 1]!;
  const bootstrap = path.join(dir, "envoy.yaml");
  writeFileSync(bootstrap, configMapFile(objects, deployment, envoy, bootstrapPath));
  const env = new Map<string, string>();
  for (const e of extproc.env as Node[]) {
    if (e.valueFrom) {
      assert.ok(e.valueFrom.secretKeyRef, `${e.name}: only Secret references are expected`);
      const key = DEMO_UPSTREAM_KEYS[e.name];
      assert.ok(key, `${e.name}: no demo value for this Secret key`);
      env.set(e.name, key);
    } else env.set(e.name, e.value);
  }
  const policy = path.join(dir, "policy.yaml");
  writeFileSync(policy, configMapFile(objects, deployment, extproc, env.get("EXTPROC_POLICY")!));
  assert.equal(env.get("EXTPROC_ENVOY_CONFIG"), bootstrapPath, "extproc checks Envoy's own bootstrap");
  return {
    bootstrap,
    envoyArgs: args,
    extprocEnv: (socket, metrics) => ({
      ...Object.fromEntries(env),
      EXTPROC_POLICY: policy,
      // The pod's bootstrap as the pod has it: extproc refuses pools it cannot route.
      EXTPROC_ENVOY_CONFIG: bootstrap,
      EXTPROC_LISTEN: `unix://${socket}`,
      EXTPROC_METRICS_LISTEN: metrics,
      EXTPROC_AUDIT_LOG: path.join(path.dirname(socket), "audit.log"),
      EXTPROC_SHUTDOWN_GRACE_MS: "5000",
    }),
  };
}
