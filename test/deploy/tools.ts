/**
 * The tools an infra team renders and checks deployments with, installed by the project itself
 * (scripts/install-tools.sh: kustomize and helm from their pinned Go modules into .tools/bin, a no-op once
 * built; kubernetes-validate in .venv by scripts/setup.sh), and what they render, parsed as Kubernetes reads
 * it, validated against the official schemas. A tool that cannot be installed fails the tests that need it: nothing here is skipped.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as yaml from "js-yaml";
import { EnvoyFilter } from "@kubernetes-models/istio/networking.istio.io/v1alpha3/EnvoyFilter";
import { DestinationRule } from "@kubernetes-models/istio/networking.istio.io/v1/DestinationRule";
import { Gateway } from "@kubernetes-models/istio/networking.istio.io/v1/Gateway";
import { VirtualService } from "@kubernetes-models/istio/networking.istio.io/v1/VirtualService";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { CHART, ROOT } from "../../deploy/render/index.js";

export type Node = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The Kubernetes minor every object is validated against: the oldest one still maintained upstream. */
export const KUBERNETES_VERSION = "1.35.0";

/** Kubernetes reads manifests as YAML 1.1 (sigs.k8s.io/yaml): unquoted yes/no are booleans, 0555 is octal. */
export const K8S_YAML = { schema: yaml.YAML11_SCHEMA };

let installed: { kustomize: string; helm: string } | undefined;

/** kustomize and helm, built on first use (minutes from a cold Go cache, milliseconds after). */
export function tools(): { kustomize: string; helm: string } {
  if (installed) return installed;
  const run = spawnSync("bash", [path.join(ROOT, "scripts/install-tools.sh")], { encoding: "utf8" });
  assert.equal(run.status, 0, `scripts/install-tools.sh failed:\n${run.stderr}${run.error ?? ""}`);
  const bin = run.stdout.trim().split("\n").at(-1)!;
  installed = { kustomize: path.join(bin, "kustomize"), helm: path.join(bin, "helm") };
  return installed;
}

function runTool(binary: string, args: readonly string[]): string {
  const run = spawnSync(binary, args, { encoding: "utf8", cwd: ROOT, maxBuffer: 64 << 20 });
  assert.equal(run.status, 0, `${path.basename(binary)} ${args.join(" ")}:\n${run.stderr}${run.error ?? ""}`);
  return run.stdout;
}

const parse = (text: string): Node[] =>
  (yaml.loadAll(text, K8S_YAML) as (Node | null)[]).filter((o): o is Node => o !== null);

/** What `kustomize build` renders for a kustomization directory (repository-relative). */
export function kustomizeBuild(dir: string): Node[] {
  return parse(runTool(tools().kustomize, ["build", dir]));
}

/** The release every test renders: named like the chart, in the namespace deploy/kubernetes uses. */
export const RELEASE = { name: "llm-gateway", namespace: "llm-gateway" } as const;

function withValues<T>(values: Node, use: (file: string) => T): T {
  const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-values-"));
  try {
    const file = path.join(dir, "values.yaml");
    writeFileSync(file, yaml.dump(values));
    return use(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What `helm template` renders with these values (for {@link KUBERNETES_VERSION}). */
export function helmTemplate(values: Node): Node[] {
  return withValues(values, (file) =>
    parse(
      runTool(tools().helm, [
        "template",
        RELEASE.name,
        CHART,
        "--namespace",
        RELEASE.namespace,
        "--kube-version",
        KUBERNETES_VERSION,
        "--values",
        file,
      ]),
    ),
  );
}

/** `helm lint --strict` with these values: its output, or a failed assertion with it. */
export function helmLint(values: Node): string {
  return withValues(values, (file) =>
    runTool(tools().helm, [
      "lint",
      "--strict",
      CHART,
      "--kube-version",
      KUBERNETES_VERSION,
      "--values",
      file,
    ]),
  );
}

/** A custom resource's model: takes the object as read (its schema is what validate() checks). */
type CrdModel = new (data: any) => { validate(): void }; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * The custom resources' kinds, by API group: Istio's validated against Istio's own CRD schemas
 * (@kubernetes-models/istio), the Prometheus Operator's against the operator's API types
 * (@kubernetes-models/prometheus-operator).
 */
const CRD_MODELS: Record<string, Record<string, CrdModel>> = {
  "networking.istio.io": {
    "networking.istio.io/v1alpha3/EnvoyFilter": EnvoyFilter,
    "networking.istio.io/v1/DestinationRule": DestinationRule,
    "networking.istio.io/v1/Gateway": Gateway,
    "networking.istio.io/v1/VirtualService": VirtualService,
  },
  "monitoring.coreos.com": {
    "monitoring.coreos.com/v1/PodMonitor": PodMonitor,
    "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
  },
};

/**
 * Validates every object against the official schemas: Kubernetes' own kinds with kubernetes-validate
 * (the API's OpenAPI schemas for {@link KUBERNETES_VERSION}, strict: an unknown field fails, as with
 * `kubectl apply --validate=strict`), Istio's and the Prometheus Operator's with theirs ({@link CRD_MODELS}).
 * A kind none of them knows fails.
 */
export function validateObjects(objects: readonly Node[]): void {
  const core: Node[] = [];
  for (const o of objects) {
    const id = `${o.kind}/${o.metadata?.name}`;
    const group = String(o.apiVersion).split("/")[0]!;
    const models = CRD_MODELS[group];
    if (models) {
      const model = models[`${o.apiVersion}/${o.kind}`];
      assert.ok(model, `${id}: ${o.apiVersion} ${o.kind} is not a ${group} kind the tests validate`);
      assert.doesNotThrow(() => new model(o).validate(), `${id} does not match the ${group} schema`);
    } else core.push(o);
  }
  if (core.length === 0) return;
  const dir = mkdtempSync(path.join(tmpdir(), "llm-gateway-validate-"));
  try {
    const file = path.join(dir, "objects.yaml");
    writeFileSync(file, core.map((o) => yaml.dump(o, { noRefs: true })).join("---\n"));
    const run = spawnSync(
      path.join(ROOT, ".venv/bin/kubernetes-validate"),
      ["--strict", "--kubernetes-version", KUBERNETES_VERSION, "--quiet", file],
      { encoding: "utf8" },
    );
    assert.equal(run.error, undefined, `kubernetes-validate (run scripts/setup.sh): ${run.error}`);
    // --quiet prints warnings (a kind without a schema) and failures only: there must be none.
    assert.equal(`${run.stdout}${run.stderr}`, "", "kubernetes-validate found problems");
    assert.equal(run.status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
