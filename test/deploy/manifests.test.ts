/**
 * Every manifest under deploy/ is parsed and schema-checked, and the installs are checked as wholes: what
 * the pods reference exists, selectors select the pods, ports line up with the Envoy bootstrap, the Istio
 * EnvoyFilter carries envoy/envoy.yaml's ext_proc settings, the generated copies are up to date, and the real
 * Envoy binary accepts the bootstraps. docker-compose.yml is checked against the same topology (and run by
 * compose.test.ts).
 * No cluster is involved: nothing here applies a manifest (deploy/README.md says what that leaves open).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, test } from "node:test";
import * as yaml from "js-yaml";
import { loadPolicy } from "../../extproc/policy/index.js";
import { readEnvoyRouting } from "../../extproc/policy/envoy-routing.js";
import { envoyBinary } from "../harness/index.js";
import { writeFallbackEnvoyConfig } from "../harness/envoy-config.js";
import { writePolicy } from "../harness/policy.js";
import { skipUnless } from "../harness/skip.js";
import { mountAt, readCompose, repositoryPath } from "./compose.js";
import { JOBS, OPS_FILES } from "./render-ops.js";
import {
  COMPOSE,
  ENVOY_TARGETS,
  FILES,
  gatewayEnvoyConfig,
  mapFilenames,
  POD,
  POD_FILES,
  REDIS_QUOTA,
  renderAll,
  ROOT,
} from "./render-envoy.js";
import {
  checkManifest,
  jsonPatchSchema,
  kustomizationSchema,
  selects,
  type Deployment,
  type DestinationRule,
  type EnvoyFilter,
  type Hpa,
  type IstioGateway,
  type Manifest,
  type NetworkPolicy,
  type Pdb,
  type PodMonitor,
  type PrometheusRule,
  ruleGroupsSchema,
  type Secret,
  type Service,
  type VirtualService,
} from "./schemas.js";

type Node = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const DEPLOY = path.join(ROOT, "deploy");
const rel = (file: string) => path.relative(ROOT, file);
const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8");
/** Kubernetes reads manifests as YAML 1.1 (sigs.k8s.io/yaml): unquoted yes/no are booleans, 0555 is octal. */
const K8S_YAML = { schema: yaml.YAML11_SCHEMA };
const tmp = mkdtempSync(path.join(tmpdir(), "llm-gateway-deploy-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Installs: each a kustomization directory. */
const INSTALLS = {
  base: "deploy/kubernetes",
  redis: "deploy/kubernetes/overlays/redis",
  istio: "deploy/istio",
  monitoring: "deploy/kubernetes/monitoring",
} as const;
/** What the operator creates (deploy/README.md says how); every other reference must resolve. */
const EXTERNAL_SECRETS = ["llm-gateway-tls"];
const EXTERNAL_CONFIGMAPS = ["llm-gateway-jwks"];

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const file = path.join(dir, entry);
    if (statSync(file).isDirectory()) return yamlFiles(file);
    return /\.ya?ml$/.test(entry) ? [file] : [];
  });
}

/** What kind of file a YAML file under deploy/ is. */
function classify(file: string): "kustomization" | "policy" | "envoy" | "rules" | "manifests" {
  const name = path.basename(file);
  if (name === "kustomization.yaml") return "kustomization";
  if (rel(file) === OPS_FILES.alerts) return "rules";
  if (name === "policy.yaml") return "policy";
  if (ENVOY_TARGETS.some((t) => t.file === rel(file))) return "envoy";
  return "manifests";
}

// ---- a small kustomize: resources (files and directories), configMapGenerator, JSON 6902 patches, namespace

interface Built {
  readonly objects: Node[];
  /** Every file a kustomization read, so unreferenced manifests can be found. */
  readonly files: Set<string>;
  /** ConfigMap name → whether kustomize gives it a hash suffix. */
  readonly hashed: Map<string, boolean>;
}

function pointer(doc: Node, ptr: string): { parent: Node; key: string } {
  const parts = ptr.slice(1).split("/");
  let parent = doc;
  for (const part of parts.slice(0, -1)) {
    assert.ok(parent[part] !== undefined, `patch path ${ptr} does not exist`);
    parent = parent[part];
  }
  return { parent, key: parts.at(-1)! };
}

function build(dir: string): Built {
  const file = path.join(ROOT, dir, "kustomization.yaml");
  const k = kustomizationSchema.parse(yaml.load(readFileSync(file, "utf8"), K8S_YAML));
  const out: Built = { objects: [], files: new Set([file]), hashed: new Map() };
  for (const resource of k.resources) {
    const target = path.join(ROOT, dir, resource);
    assert.ok(
      statSync(target, { throwIfNoEntry: false }),
      `${rel(file)}: resource ${resource} does not exist`,
    );
    if (statSync(target).isDirectory()) {
      const inner = build(rel(target));
      out.objects.push(...inner.objects);
      inner.files.forEach((f) => out.files.add(f));
      inner.hashed.forEach((v, name) => out.hashed.set(name, v));
    } else {
      out.files.add(target);
      out.objects.push(...(yaml.loadAll(readFileSync(target, "utf8"), K8S_YAML) as Node[]));
    }
  }
  for (const gen of k.configMapGenerator ?? []) {
    const data: Record<string, string> = {};
    for (const f of gen.files) {
      const source = path.join(ROOT, dir, f);
      assert.ok(statSync(source, { throwIfNoEntry: false }), `${rel(file)}: ${f} does not exist`);
      out.files.add(source);
      data[path.basename(f)] = readFileSync(source, "utf8");
    }
    const metadata = { name: gen.name, ...(gen.namespace ? { namespace: gen.namespace } : {}) };
    const cm = { apiVersion: "v1", kind: "ConfigMap", metadata, data };
    const existing = out.objects.findIndex((o) => o.kind === "ConfigMap" && o.metadata.name === gen.name);
    if (gen.behavior === "replace") {
      assert.ok(existing >= 0, `${rel(file)}: replaces ConfigMap ${gen.name}, which the base lacks`);
      out.objects[existing] = cm;
    } else {
      assert.equal(existing, -1, `${rel(file)}: ConfigMap ${gen.name} defined twice`);
      out.objects.push(cm);
    }
    out.hashed.set(gen.name, !gen.options?.disableNameSuffixHash);
  }
  for (const { target, patch } of k.patches ?? []) {
    const object = out.objects.find((o) => o.kind === target.kind && o.metadata.name === target.name);
    assert.ok(object, `${rel(file)}: patch target ${target.kind}/${target.name} does not exist`);
    for (const op of jsonPatchSchema.parse(yaml.load(patch, K8S_YAML))) {
      const { parent, key } = pointer(object, op.path);
      if (op.op === "replace" || op.op === "remove") {
        assert.ok(key in parent, `${rel(file)}: ${op.op} ${op.path}: nothing there`);
      }
      if (op.op === "remove") delete parent[key];
      else parent[key] = op.value;
    }
  }
  if (k.namespace) {
    for (const o of out.objects) if (o.kind !== "Namespace") o.metadata.namespace = k.namespace;
  }
  return out;
}

function validated(objects: Node[]): Manifest[] {
  return objects.map((o) => {
    const { manifest, problems } = checkManifest(o);
    assert.deepEqual(problems, [], `${o.kind}/${o.metadata?.name}: ${problems.join("; ")}`);
    return manifest!;
  });
}

const ofKind = <K extends Manifest["kind"]>(objects: Manifest[], kind: K) =>
  objects.filter((o): o is Extract<Manifest, { kind: K }> => o.kind === kind);
const named = <T extends Manifest>(objects: T[], name: string): T => {
  const found = objects.find((o) => o.metadata.name === name);
  assert.ok(found, `no ${name}`);
  return found;
};

// ---- Envoy helpers

const envoySource = () => yaml.load(read(FILES.envoySource)) as Node;
const hcmOf = (listener: Node): Node => listener.filter_chains[0].filters[0].typed_config;
const listenerNamed = (doc: Node, name: string): Node =>
  (doc.static_resources.listeners as Node[]).find((l) => l.name === name)!;
const clusterNamed = (doc: Node, name: string): Node | undefined =>
  (doc.static_resources.clusters as Node[]).find((c) => c.name === name);
const extProcFilter = (doc: Node): Node =>
  (hcmOf(listenerNamed(doc, "listener_http")).http_filters as Node[]).find(
    (f) => f.name === "envoy.filters.http.ext_proc",
  )!;

function envoyValidate(doc: Node, name: string): void {
  const file = path.join(tmp, name);
  writeFileSync(file, yaml.dump(doc, { noRefs: true, lineWidth: -1 }));
  const run = spawnSync(envoyBinary(), ["--mode", "validate", "-c", file, "-l", "error"], {
    encoding: "utf8",
  });
  assert.equal(run.status, 0, `envoy --mode validate ${name}:\n${run.stdout}${run.stderr}`);
}

/** A bootstrap whose files are the repository's dev files (scripts/setup.sh makes them; validation reads them). */
function withLocalFiles(doc: Node): Node {
  const copy = structuredClone(doc);
  const local = new Map(Object.entries(POD_FILES).map(([source, inPod]) => [inPod, source]));
  mapFilenames(copy, (filename) => path.join(ROOT, local.get(filename) ?? filename));
  return copy;
}

// ---- Pod helpers

type Container = Deployment["spec"]["template"]["spec"]["containers"][number];
const podLabels = (d: Deployment) => d.spec.template.metadata.labels;
const containerNamed = (d: Deployment, name: string): Container => {
  const found = d.spec.template.spec.containers.find((c) => c.name === name);
  assert.ok(found, `${d.metadata.name} has no container ${name}`);
  return found;
};
const envOf = (c: Container, name: string): string | undefined => c.env?.find((e) => e.name === name)?.value;
const mountOf = (d: Deployment, c: Container, path: string) => {
  const mount = c.volumeMounts?.find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `${c.name}: nothing mounted at ${path}`);
  const volume = d.spec.template.spec.volumes?.find((v) => v.name === mount.name);
  assert.ok(volume, `${c.name}: volume ${mount.name} is not defined`);
  return { mount, volume };
};
const resolvePort = (c: Container, port: number | string): number => {
  if (typeof port === "number") return port;
  const found = c.ports?.find((p) => p.name === port)?.containerPort;
  assert.ok(found, `${c.name} has no port named ${port}`);
  return found;
};
const containerPorts = (d: Deployment) =>
  d.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort));

/** Checks every install needs: references resolve, selectors select, ports exist. */
function checkReferences(objects: Manifest[]): void {
  const deployments = ofKind(objects, "Deployment");
  const configMaps = ofKind(objects, "ConfigMap");
  const secrets = ofKind(objects, "Secret");
  const secretKeys = (s: Secret) => [...Object.keys(s.stringData ?? {}), ...Object.keys(s.data ?? {})];
  const names = new Set<string>();
  for (const o of objects) {
    const key = `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
    assert.ok(!names.has(key), `${key} defined twice`);
    names.add(key);
    if (o.kind !== "Namespace")
      assert.ok(o.metadata.namespace, `${o.kind}/${o.metadata.name} has no namespace`);
  }
  for (const d of deployments) {
    const spec = d.spec.template.spec;
    const volumes = spec.volumes ?? [];
    const sameNamespace = <T extends Manifest>(list: T[]) =>
      list.filter((o) => o.metadata.namespace === d.metadata.namespace);
    for (const v of volumes) {
      if (v.configMap && !EXTERNAL_CONFIGMAPS.includes(v.configMap.name)) {
        const cm = sameNamespace(configMaps).find((c) => c.metadata.name === v.configMap!.name);
        assert.ok(cm, `${d.metadata.name}: volume ${v.name}: ConfigMap ${v.configMap.name} is not defined`);
      }
      if (v.secret && !EXTERNAL_SECRETS.includes(v.secret.secretName)) {
        const s = sameNamespace(secrets).find((c) => c.metadata.name === v.secret!.secretName);
        assert.ok(s, `${d.metadata.name}: volume ${v.name}: Secret ${v.secret.secretName} is not defined`);
      }
      const users = spec.containers.filter((c) => c.volumeMounts?.some((m) => m.name === v.name));
      assert.ok(users.length > 0, `${d.metadata.name}: volume ${v.name} is mounted nowhere`);
    }
    for (const c of spec.containers) {
      for (const m of c.volumeMounts ?? []) {
        assert.ok(
          volumes.some((v) => v.name === m.name),
          `${c.name}: mounts undefined volume ${m.name}`,
        );
        assert.equal(m.subPath, undefined, `${c.name}: subPath mounts never see ConfigMap/Secret updates`);
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (!ref) continue;
        const s = sameNamespace(secrets).find((x) => x.metadata.name === ref.name);
        assert.ok(s, `${c.name}: env ${e.name}: Secret ${ref.name} is not defined`);
        assert.ok(
          secretKeys(s).includes(ref.key),
          `${c.name}: env ${e.name}: Secret ${ref.name} lacks ${ref.key}`,
        );
      }
      for (const probe of [c.readinessProbe, c.livenessProbe]) {
        const port = probe.httpGet?.port ?? probe.tcpSocket?.port;
        if (port !== undefined) resolvePort(c, port);
      }
    }
  }
  const podsSelectedBy = (namespace: string | undefined, selector: Parameters<typeof selects>[0]) =>
    deployments.filter((d) => d.metadata.namespace === namespace && selects(selector, podLabels(d)));
  for (const s of ofKind(objects, "Service")) {
    const pods = podsSelectedBy(s.metadata.namespace, { matchLabels: s.spec.selector });
    assert.equal(pods.length, 1, `Service ${s.metadata.name} selects ${pods.length} Deployments' pods`);
    for (const port of s.spec.ports) {
      const resolved = pods[0]!.spec.template.spec.containers.some((c) =>
        (c.ports ?? []).some((p) => p.name === port.targetPort || p.containerPort === port.targetPort),
      );
      assert.ok(resolved, `Service ${s.metadata.name}: targetPort ${port.targetPort} is no container port`);
    }
  }
  for (const h of ofKind(objects, "HorizontalPodAutoscaler")) {
    const target = deployments.find(
      (d) =>
        d.metadata.name === h.spec.scaleTargetRef.name &&
        d.metadata.namespace === h.metadata.namespace &&
        h.spec.scaleTargetRef.kind === "Deployment" &&
        h.spec.scaleTargetRef.apiVersion === d.apiVersion,
    );
    assert.ok(target, `HPA ${h.metadata.name}: scaleTargetRef matches no Deployment`);
    for (const c of target.spec.template.spec.containers) {
      assert.ok(c.resources.requests.cpu, `HPA on CPU needs a CPU request on ${c.name}`);
    }
    const pdb = ofKind(objects, "PodDisruptionBudget").find((p) =>
      selects(p.spec.selector, podLabels(target)),
    );
    assert.ok(pdb, `no PodDisruptionBudget covers ${target.metadata.name}`);
    assert.ok(
      typeof pdb.spec.minAvailable === "number" && pdb.spec.minAvailable < h.spec.minReplicas,
      `PDB ${pdb.metadata.name}: minAvailable must stay below the HPA's minReplicas, or no node drain can proceed`,
    );
  }
  for (const p of ofKind(objects, "PodDisruptionBudget")) {
    const pods = podsSelectedBy(p.metadata.namespace, p.spec.selector);
    assert.equal(pods.length, 1, `PDB ${p.metadata.name} selects ${pods.length} Deployments' pods`);
  }
  for (const n of ofKind(objects, "NetworkPolicy")) {
    const pods = podsSelectedBy(n.metadata.namespace, n.spec.podSelector);
    assert.equal(pods.length, 1, `NetworkPolicy ${n.metadata.name} selects ${pods.length} Deployments' pods`);
    const open = containerPorts(pods[0]!);
    for (const rule of n.spec.ingress ?? []) {
      for (const port of rule.ports ?? []) {
        assert.ok(
          open.includes(port.port),
          `NetworkPolicy ${n.metadata.name}: ingress port ${port.port} is no container port`,
        );
      }
    }
    assert.deepEqual(n.spec.policyTypes, ["Ingress", "Egress"], "default-deny both ways");
  }
}

const ingressPorts = (n: NetworkPolicy, fromAnywhere: boolean) =>
  (n.spec.ingress ?? []).filter((r) => (r.from === undefined) === fromAnywhere).flatMap((r) => r.ports ?? []);
const egressTo = (n: NetworkPolicy, port: number, protocol = "TCP") =>
  (n.spec.egress ?? []).filter((r) => r.ports?.some((p) => p.port === port && p.protocol === protocol));

/** The gateway pod of the base and Redis installs: Envoy + extproc over the Unix socket. */
function checkGatewayPod(objects: Manifest[]): { policyFile: string; envoyFile: string; envoy: Node } {
  const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");
  const spec = deployment.spec.template.spec;
  const envoy = containerNamed(deployment, "envoy");
  const extproc = containerNamed(deployment, "extproc");
  assert.deepEqual(spec.containers.map((c) => c.name).sort(), ["envoy", "extproc"]);
  const configMaps = ofKind(objects, "ConfigMap");
  const dataOf = (volumeName: string | undefined, key: string): string => {
    const volume = spec.volumes?.find((v) => v.name === volumeName);
    const cm = configMaps.find((c) => c.metadata.name === volume?.configMap?.name);
    assert.ok(cm?.data[key] !== undefined, `ConfigMap of volume ${volumeName} has no ${key}`);
    return cm.data[key];
  };

  // The socket: one emptyDir mounted in both containers; extproc listens where Envoy's cluster dials.
  const envoySocket = mountOf(deployment, envoy, POD.socketPath);
  const extprocSocket = mountOf(deployment, extproc, POD.socketPath);
  assert.equal(
    envoySocket.volume.name,
    extprocSocket.volume.name,
    "both containers mount the same socket volume",
  );
  assert.ok(envoySocket.volume.emptyDir, "the socket lives in an emptyDir");
  assert.equal(envoySocket.mount.mountPath, POD.socketDir);
  assert.equal(envOf(extproc, "EXTPROC_LISTEN"), `unix://${POD.socketPath}`);
  // The image's command, no shell in front: extproc gets SIGTERM itself and clears a stale socket itself.
  assert.equal(extproc.command, undefined);
  const uid = spec.securityContext.runAsUser;
  assert.ok(
    spec.containers.every(
      (c) => c.securityContext.runAsUser === undefined || c.securityContext.runAsUser === uid,
    ),
    "both containers run as the same user (the socket is 0755)",
  );

  // Envoy's bootstrap: from the ConfigMap, at the path Envoy is started with; extproc checks pools against it.
  const configArg = envoy.args?.[(envoy.args?.indexOf("--config-path") ?? -2) + 1];
  assert.ok(configArg, "envoy is started with --config-path");
  const envoyMount = mountOf(deployment, envoy, configArg);
  const envoyText = dataOf(envoyMount.volume.name, path.basename(configArg));
  assert.equal(
    envoyText,
    read(FILES.envoyK8s),
    "the Envoy ConfigMap carries deploy/kubernetes/base/envoy.yaml",
  );
  assert.equal(
    envOf(extproc, "EXTPROC_ENVOY_CONFIG"),
    configArg,
    "extproc checks its pools against Envoy's bootstrap",
  );
  assert.equal(mountOf(deployment, extproc, configArg).volume.name, envoyMount.volume.name);
  const envoyDoc = yaml.load(envoyText) as Node;
  const extprocEndpoint = clusterNamed(envoyDoc, "extproc")!.load_assignment.endpoints[0].lb_endpoints[0]
    .endpoint;
  assert.deepEqual(extprocEndpoint.address, { pipe: { path: POD.socketPath } });
  assert.deepEqual(envoyDoc.admin.address.socket_address.address, "127.0.0.1", "the admin stays on loopback");
  mapFilenames(envoyDoc, (filename) => {
    const { volume } = mountOf(deployment, envoy, filename);
    if (volume.secret) {
      assert.ok(
        ["tls.crt", "tls.key"].includes(path.basename(filename)),
        `${filename}: a kubernetes.io/tls key`,
      );
    } else assert.ok(volume.configMap, `${filename} comes from a ConfigMap or a Secret`);
    return filename;
  });

  // The policy: a stable-named ConfigMap, mounted as a directory, hot-reloadable.
  const policyPath = envOf(extproc, "EXTPROC_POLICY")!;
  const policyMount = mountOf(deployment, extproc, policyPath);
  assert.equal(
    path.dirname(policyPath),
    policyMount.mount.mountPath,
    "the policy's directory is the mount itself",
  );
  const policyText = dataOf(policyMount.volume.name, path.basename(policyPath));

  // Ports: every Envoy listener on 0.0.0.0 is a container port, and the probes hit the ops listener.
  const listeners = envoyDoc.static_resources.listeners as Node[];
  const envoyPorts = (envoy.ports ?? []).map((p) => p.containerPort).sort();
  assert.deepEqual(envoyPorts, listeners.map((l) => l.address.socket_address.port_value).sort());
  for (const l of listeners)
    assert.equal(l.address.socket_address.address, "0.0.0.0", `${l.name} on 0.0.0.0`);
  const ops = listenerNamed(envoyDoc, POD.ops.name);
  const opsHcm = hcmOf(ops);
  assert.equal(resolvePort(envoy, envoy.readinessProbe.httpGet!.port), ops.address.socket_address.port_value);
  const healthCheck = (opsHcm.http_filters as Node[]).find(
    (f) => f.name === "envoy.filters.http.health_check",
  );
  assert.equal(healthCheck?.typed_config.headers[0].string_match.exact, envoy.readinessProbe.httpGet!.path);
  assert.equal(resolvePort(envoy, envoy.livenessProbe.httpGet!.port), ops.address.socket_address.port_value);
  const opsRoutes = opsHcm.route_config.virtual_hosts[0].routes as Node[];
  assert.ok(
    opsRoutes.some(
      (r) => r.match.path === envoy.livenessProbe.httpGet!.path && r.direct_response?.status === 200,
    ),
  );
  const metricsPort = resolvePort(extproc, extproc.readinessProbe.httpGet!.port);
  assert.equal(envOf(extproc, "EXTPROC_METRICS_LISTEN"), `0.0.0.0:${metricsPort}`);
  assert.equal(extproc.readinessProbe.httpGet!.path, "/healthz");
  assert.equal(extproc.livenessProbe.httpGet!.path, "/healthz");

  // Draining: both preStop hooks run drain.sh, within the grace period; Envoy keeps listening throughout.
  const scripts = mountOf(deployment, envoy, "/etc/llm-gateway/scripts/drain.sh");
  assert.equal(dataOf(scripts.volume.name, "drain.sh"), read("deploy/kubernetes/base/drain.sh"));
  assert.deepEqual(envoy.lifecycle?.preStop?.exec?.command, [
    "/bin/bash",
    "/etc/llm-gateway/scripts/drain.sh",
    "envoy",
  ]);
  assert.deepEqual(extproc.lifecycle?.preStop?.exec?.command, [
    "/bin/bash",
    "/etc/llm-gateway/scripts/drain.sh",
    "wait",
  ]);
  assert.equal(
    mountOf(deployment, extproc, "/etc/llm-gateway/scripts/drain.sh").volume.name,
    scripts.volume.name,
  );
  const maxWait = Number(
    /max_wait=\$\{DRAIN_MAX_WAIT_S:-(\d+)\}/.exec(read("deploy/kubernetes/base/drain.sh"))![1],
  );
  const grace = spec.terminationGracePeriodSeconds!;
  assert.ok(
    maxWait + Number(envOf(extproc, "EXTPROC_SHUTDOWN_GRACE_MS")) / 1000 <= grace,
    "drain + shutdown fit the grace period",
  );
  const drainTime = Number(envoy.args?.[envoy.args.indexOf("--drain-time-s") + 1]);
  assert.ok(drainTime >= grace, "Envoy's listeners stay open while the pod drains");
  assert.equal(envoy.args?.[envoy.args.indexOf("--drain-strategy") + 1], "immediate");
  assert.equal(envoy.image, "envoyproxy/envoy:v1.40.0");
  assert.equal(extproc.image, "llm-gateway-extproc:dev");

  // NetworkPolicy: clients reach the API listeners only; egress to the pools, DNS and Redis.
  const netpol = ofKind(objects, "NetworkPolicy").find((n) =>
    selects(n.spec.podSelector, podLabels(deployment)),
  )!;
  const apiPorts = Object.values(POD.listeners).sort();
  assert.deepEqual(
    ingressPorts(netpol, true)
      .map((p) => p.port)
      .sort(),
    apiPorts,
  );
  assert.deepEqual(
    ingressPorts(netpol, false)
      .map((p) => p.port)
      .sort(),
    [POD.ops.port, metricsPort].sort(),
    "only metrics ports from the monitoring namespace",
  );
  for (const name of Object.keys(POD.pools)) {
    const cluster = clusterNamed(envoyDoc, name)!;
    const endpoint = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    assert.equal(cluster.type, "STRICT_DNS");
    assert.ok(
      egressTo(netpol, endpoint.port_value).length > 0,
      `egress to ${name}'s port ${endpoint.port_value}`,
    );
  }
  assert.ok(
    egressTo(netpol, 53, "UDP").length > 0 && egressTo(netpol, 53, "TCP").length > 0,
    "egress to DNS",
  );
  assert.ok(egressTo(netpol, 6379).length > 0, "egress to Redis");

  const policyFile = path.join(tmp, `policy-${Math.random().toString(36).slice(2)}.yaml`);
  const envoyFile = path.join(tmp, `envoy-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(policyFile, policyText);
  writeFileSync(envoyFile, envoyText);
  return { policyFile, envoyFile, envoy: envoyDoc };
}

function secretEnv(objects: Manifest[]): NodeJS.ProcessEnv {
  return Object.assign({}, ...ofKind(objects, "Secret").map((s) => s.stringData ?? {}));
}

// ---- the tests

describe("deploy/: every YAML file parses, and every object is a known kind with a valid shape", () => {
  const files = yamlFiles(DEPLOY);
  test("there are manifests to check", () => {
    assert.ok(files.length >= 15, `found ${files.length} YAML files`);
  });
  for (const file of files) {
    test(rel(file), () => {
      const text = readFileSync(file, "utf8");
      switch (classify(file)) {
        case "kustomization":
          kustomizationSchema.parse(yaml.load(text, K8S_YAML));
          break;
        case "policy":
          // Policies are read by extproc (YAML 1.2); the schema check is extproc's own.
          loadPolicy(file, { env: { POOL_B_API_KEY: "x" } });
          break;
        case "envoy":
          assert.ok(yaml.load(text));
          break;
        case "rules":
          // Prometheus reads rule files as YAML 1.2; promtool checks the expressions (test/ops/).
          ruleGroupsSchema.parse(yaml.load(text));
          break;
        case "manifests": {
          const docs = yaml.loadAll(text, K8S_YAML);
          assert.ok(docs.length > 0);
          validated(docs as Node[]);
          // YAML 1.1 and 1.2 must agree, so the file means the same to every reader.
          assert.deepEqual(yaml.loadAll(text), docs, "YAML 1.1 and 1.2 read this file differently: quote it");
        }
      }
    });
  }
  test("every manifest file is part of an install", () => {
    const used = new Set<string>();
    for (const dir of Object.values(INSTALLS)) build(dir).files.forEach((f) => used.add(f));
    // The sample policy is their source, the compose bootstrap docker-compose.yml's (checked below).
    // The alert rules' source is deploy/prometheus/ (the PrometheusRule is rendered from it).
    const outside: string[] = [FILES.policySource, FILES.envoyCompose, OPS_FILES.alerts];
    const unused = files.filter((f) => !used.has(f) && !outside.includes(rel(f)));
    assert.deepEqual(unused.map(rel), []);
  });
});

describe("deploy/kubernetes: the base install", () => {
  const built = build(INSTALLS.base);
  const objects = validated(built.objects);

  test("references resolve, selectors select the pods, ports exist", () => checkReferences(objects));

  test("the gateway pod: Envoy + extproc over the Unix socket, probes, draining, network policy", () => {
    const { policyFile, envoyFile } = checkGatewayPod(objects);
    // extproc would start with this policy against this bootstrap (its own start-up check).
    loadPolicy(policyFile, { envoyConfigFile: envoyFile, env: secretEnv(objects) });
  });

  test("the policy ConfigMap keeps a stable name (hot reload); Envoy's and the script's are hashed (rollout)", () => {
    assert.equal(built.hashed.get("llm-gateway-policy"), false);
    assert.equal(built.hashed.get("llm-gateway-envoy"), true);
    assert.equal(built.hashed.get("llm-gateway-scripts"), true);
  });

  test("everything lands in the llm-gateway namespace, which enforces the restricted Pod Security Standard", () => {
    const ns = named(ofKind(objects, "Namespace"), "llm-gateway");
    assert.equal(ns.metadata.labels?.["pod-security.kubernetes.io/enforce"], "restricted");
    for (const o of objects) if (o.kind !== "Namespace") assert.equal(o.metadata.namespace, "llm-gateway");
  });

  test("the upstream key Secret is a clearly marked placeholder", () => {
    const secret = named(ofKind(objects, "Secret"), "llm-gateway-upstream-keys");
    assert.equal(secret.metadata.annotations?.["llm-gateway/placeholder"], "true");
    assert.match(secret.stringData?.POOL_B_API_KEY ?? "", /^REPLACE-ME/);
    assert.match(read("deploy/kubernetes/base/secret.yaml"), /^# PLACEHOLDER/);
  });

  test("HPA, PDB and Service target the gateway", () => {
    const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");
    const hpa: Hpa = named(ofKind(objects, "HorizontalPodAutoscaler"), "llm-gateway");
    assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
    assert.equal(hpa.spec.metrics[0]!.resource.name, "cpu");
    const pdb: Pdb = named(ofKind(objects, "PodDisruptionBudget"), "llm-gateway");
    assert.ok(selects(pdb.spec.selector, podLabels(deployment)));
    const service: Service = named(ofKind(objects, "Service"), "llm-gateway");
    assert.deepEqual(
      service.spec.ports.map((p) => p.targetPort),
      ["http", "https"],
    );
  });
});

describe("deploy/kubernetes/overlays/redis: several replicas with a shared quota store", () => {
  const objects = validated(build(INSTALLS.redis).objects);

  test("references resolve, selectors select the pods, ports exist", () => checkReferences(objects));

  test("the gateway pod is the base's, with the Redis policy", () => {
    const { policyFile, envoyFile } = checkGatewayPod(objects);
    const policy = loadPolicy(policyFile, { envoyConfigFile: envoyFile, env: secretEnv(objects) });
    const { store, redis, onStoreFailure, replicas } = policy.quota;
    assert.deepEqual({ store, redis: { url: redis?.url }, onStoreFailure, replicas }, REDIS_QUOTA);
    const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");
    assert.equal(
      deployment.spec.template.metadata.annotations?.["llm-gateway/quota-store"],
      "redis",
      "the overlay changes the pod template, so pods restart onto the Redis store",
    );
    const hpa = named(ofKind(objects, "HorizontalPodAutoscaler"), "llm-gateway");
    assert.ok(hpa.spec.minReplicas >= REDIS_QUOTA.replicas);
  });

  test("Redis: a Service at the policy's URL, reachable from the gateway pods only", () => {
    const url = new URL(REDIS_QUOTA.redis.url);
    const service = named(ofKind(objects, "Service"), url.hostname);
    assert.equal(service.spec.ports[0]!.port, Number(url.port));
    const redis = named(ofKind(objects, "Deployment"), url.hostname);
    const gateway = named(ofKind(objects, "Deployment"), "llm-gateway");
    const netpol = ofKind(objects, "NetworkPolicy").find((n) =>
      selects(n.spec.podSelector, podLabels(redis)),
    )!;
    const peers = (netpol.spec.ingress ?? []).flatMap((r) => r.from ?? []);
    assert.ok(
      peers.length > 0 && peers.every((p) => p.podSelector && selects(p.podSelector, podLabels(gateway))),
    );
    assert.deepEqual(netpol.spec.egress ?? [], [], "Redis needs no egress");
    const gatewayNetpol = ofKind(objects, "NetworkPolicy").find((n) =>
      selects(n.spec.podSelector, podLabels(gateway)),
    )!;
    const toRedis = egressTo(gatewayNetpol, Number(url.port)).flatMap((r) => r.to ?? []);
    assert.ok(toRedis.some((p) => p.podSelector && selects(p.podSelector, podLabels(redis))));
    const args = containerNamed(redis, "redis").args ?? [];
    assert.equal(args[args.indexOf("--maxmemory-policy") + 1], "noeviction", "quota keys are never evicted");
  });
});

describe("deploy/istio: ext_proc in an existing Istio ingress gateway", () => {
  const objects = validated(build(INSTALLS.istio).objects);
  const filter: EnvoyFilter = named(ofKind(objects, "EnvoyFilter"), "llm-gateway-ext-proc");
  const patches = (applyTo: string) => filter.spec.configPatches.filter((p) => p.applyTo === applyTo);
  const patch = (applyTo: string) => {
    const [only, ...rest] = patches(applyTo);
    assert.ok(only && rest.length === 0, `exactly one ${applyTo} patch`);
    return only;
  };
  const value = (applyTo: string) => patch(applyTo).patch.value as Node;
  const source = envoySource();
  const gateway: IstioGateway = named(ofKind(objects, "Gateway"), "llm-gateway");
  const vs: VirtualService = named(ofKind(objects, "VirtualService"), "llm-gateway");
  const host = vs.spec.hosts[0]!;

  test("references resolve, selectors select the pods, ports exist", () => checkReferences(objects));

  test("the EnvoyFilter targets the ingress gateway, in its namespace, gateway context only", () => {
    assert.deepEqual(filter.spec.workloadSelector.labels, { istio: "ingressgateway" });
    assert.equal(filter.metadata.namespace, "istio-system");
    assert.ok(filter.spec.configPatches.every((p) => p.match.context === "GATEWAY"));
    assert.deepEqual(gateway.spec.selector, filter.spec.workloadSelector.labels);
  });

  test("ext_proc goes right before the router, with envoy/envoy.yaml's settings", () => {
    const p = patch("HTTP_FILTER");
    assert.equal(p.patch.operation, "INSERT_BEFORE");
    assert.equal(p.match.listener?.filterChain?.filter?.subFilter?.name, "envoy.filters.http.router");
    const inserted = p.patch.value as Node;
    const expected = structuredClone(extProcFilter(source));
    expected.typed_config.grpc_service.envoy_grpc.cluster_name = value("CLUSTER").name;
    assert.deepEqual({ ...inserted, disabled: undefined }, { ...expected, disabled: undefined });
    assert.equal(inserted.disabled, true, "off unless the LLM host switches it on");
  });

  test("ext_proc is switched on for the LLM host's virtual host only", () => {
    const p = patch("VIRTUAL_HOST");
    const server = gateway.spec.servers.find((s) => s.hosts.includes(host))!;
    assert.equal(p.match.routeConfiguration?.vhost?.name, `${host}:${server.port.number}`);
    assert.deepEqual((p.patch.value as Node).typed_per_filter_config["envoy.filters.http.ext_proc"], {
      "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
      overrides: {},
    });
  });

  test("the extproc cluster: HTTP/2 like envoy/envoy.yaml's, to the headless extproc Service", () => {
    const cluster = value("CLUSTER");
    const reference = clusterNamed(source, "extproc")!;
    assert.deepEqual(cluster.typed_extension_protocol_options, reference.typed_extension_protocol_options);
    assert.equal(cluster.connect_timeout, reference.connect_timeout);
    const address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    const [svcName, namespace] = String(address.address).split(".");
    const service = named(ofKind(objects, "Service"), svcName!);
    assert.equal(service.metadata.namespace, namespace);
    assert.equal(address.address, `${svcName}.${namespace}.svc.cluster.local`);
    assert.equal(service.spec.clusterIP, "None", "headless: the gateway balances over every extproc pod");
    const port = service.spec.ports.find((p) => p.port === address.port_value);
    assert.ok(port, `Service ${svcName} has no port ${address.port_value}`);
    const deployment = ofKind(objects, "Deployment").find((d) =>
      selects({ matchLabels: service.spec.selector }, podLabels(d)),
    )!;
    const extproc = containerNamed(deployment, "extproc");
    assert.equal(envOf(extproc, "EXTPROC_LISTEN"), `0.0.0.0:${resolvePort(extproc, port.targetPort)}`);
    assert.equal(deployment.spec.template.metadata.labels["sidecar.istio.io/inject"], "false");
    const netpol = ofKind(objects, "NetworkPolicy").find((n) =>
      selects(n.spec.podSelector, podLabels(deployment)),
    )!;
    const fromGateway = (netpol.spec.ingress ?? []).find((r) =>
      r.from?.some(
        (peer) => peer.podSelector && selects(peer.podSelector, filter.spec.workloadSelector.labels),
      ),
    );
    assert.deepEqual(
      fromGateway?.ports?.map((p) => p.port),
      [resolvePort(extproc, port.targetPort)],
    );
  });

  test("body limit and local replies match envoy/envoy.yaml (the replies scoped to the LLM host)", () => {
    const listener = patch("LISTENER");
    assert.equal(
      (listener.patch.value as Node).per_connection_buffer_limit_bytes,
      listenerNamed(source, "listener_https").per_connection_buffer_limit_bytes,
    );
    const hcm = value("NETWORK_FILTER").typed_config;
    const unwrapped = (hcm.local_reply_config.mappers as Node[]).map((m) => {
      const [hostFilter, filter, ...rest] = m.filter.and_filter.filters as Node[];
      assert.equal(rest.length, 0);
      assert.deepEqual(hostFilter!.header_filter.header, {
        name: ":authority",
        string_match: { prefix: host },
      });
      return { ...m, filter };
    });
    const expected = hcmOf(listenerNamed(source, "listener_http")).local_reply_config.mappers;
    assert.deepEqual(unwrapped, expected);
    assert.equal(hcm.always_set_request_id_in_response, true);
  });

  test("the VirtualService routes on x-gateway-pool like envoy/envoy.yaml's routes", () => {
    const routing = readEnvoyRouting(path.join(ROOT, FILES.envoySource));
    const routes = hcmOf(listenerNamed(source, "listener_http")).route_config.virtual_hosts[0]
      .routes as Node[];
    assert.equal(vs.spec.http.length, routes.length);
    assert.deepEqual(vs.spec.gateways, [gateway.metadata.name]);
    // Istio's accepted retryOn values (pilot's validation).
    const retryOn = new Set(["5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers", "envoy-ratelimited"]); // prettier-ignore
    for (const [pool, { cluster: clusterName }] of routing.routes) {
      const route = vs.spec.http.find((r) => r.match?.[0]?.headers?.[routing.header]?.exact === pool);
      assert.ok(route, `no VirtualService route for ${routing.header}: ${pool}`);
      const envoyRoute = routes.find((r) => r.route?.cluster === clusterName)!;
      assert.deepEqual(route.headers?.request?.remove, envoyRoute.request_headers_to_remove);
      const target = POD.pools[clusterName]!;
      assert.deepEqual(route.route?.[0]?.destination, {
        host: target.address,
        port: { number: target.port },
      });
      assert.equal(route.timeout, envoyRoute.route.timeout);
      assert.equal(route.retries?.attempts, envoyRoute.route.retry_policy.num_retries);
      assert.equal(route.retries?.retryOn, envoyRoute.route.retry_policy.retry_on);
      for (const r of route.retries?.retryOn?.split(",") ?? [])
        assert.ok(retryOn.has(r), `Istio rejects retryOn ${r}`);

      const rule: DestinationRule = ofKind(objects, "DestinationRule").find(
        (d) => d.spec.host === target.address,
      )!;
      assert.ok(rule, `no DestinationRule for ${target.address}`);
      assert.equal(rule.metadata.namespace, filter.metadata.namespace, "in the gateway's namespace");
      const cluster = clusterNamed(source, clusterName)!;
      const outlier = cluster.outlier_detection;
      const breakers = cluster.circuit_breakers.thresholds[0];
      assert.equal(cluster.lb_policy, rule.spec.trafficPolicy.loadBalancer.simple);
      assert.deepEqual(rule.spec.trafficPolicy.outlierDetection, {
        consecutive5xxErrors: outlier.consecutive_5xx,
        consecutiveGatewayErrors: outlier.consecutive_gateway_failure,
        interval: outlier.interval,
        baseEjectionTime: outlier.base_ejection_time,
        maxEjectionPercent: outlier.max_ejection_percent,
      });
      assert.deepEqual(rule.spec.trafficPolicy.connectionPool, {
        tcp: { connectTimeout: cluster.connect_timeout, maxConnections: breakers.max_connections },
        http: {
          http1MaxPendingRequests: breakers.max_pending_requests,
          http2MaxRequests: breakers.max_requests,
          maxRetries: breakers.max_retries,
        },
      });
    }
    const last = vs.spec.http.at(-1)!;
    const noPool = routes.at(-1)!;
    assert.equal(last.directResponse?.status, noPool.direct_response.status);
    assert.equal(last.directResponse?.body?.string, noPool.direct_response.body.inline_string);
  });

  test("Envoy accepts the patches (envoy --mode validate on a bootstrap assembled from them)", () => {
    const doc = withLocalFiles(envoySource());
    const listener = listenerNamed(doc, "listener_https");
    Object.assign(listener, { ...value("LISTENER") });
    const hcm = hcmOf(listener);
    const { "@type": _type, ...hcmPatch } = value("NETWORK_FILTER").typed_config;
    Object.assign(hcm, hcmPatch);
    hcm.http_filters = [value("HTTP_FILTER"), { ...hcm.http_filters.at(-1) }];
    const toEnvoyRoute = (r: VirtualService["spec"]["http"][number]): Node =>
      r.directResponse
        ? {
            match: { prefix: "/" },
            direct_response: {
              status: r.directResponse.status,
              body: { inline_string: r.directResponse.body?.string },
            },
            response_headers_to_add: Object.entries(r.headers?.response?.set ?? {}).map(([key, v]) => ({
              header: { key, value: v },
            })),
          }
        : {
            match: {
              prefix: "/",
              headers: Object.entries(r.match?.[0]?.headers ?? {}).map(([name, m]) => ({
                name,
                string_match: m,
              })),
            },
            request_headers_to_remove: r.headers?.request?.remove,
            route: {
              cluster: r.route![0]!.destination.host,
              timeout: r.timeout,
              retry_policy: { retry_on: r.retries?.retryOn, num_retries: r.retries?.attempts },
            },
          };
    hcm.route_config = {
      name: "istio-like",
      virtual_hosts: [
        {
          name: patch("VIRTUAL_HOST").match.routeConfiguration!.vhost!.name,
          domains: [host],
          ...value("VIRTUAL_HOST"),
          routes: vs.spec.http.map(toEnvoyRoute),
        },
        {
          name: "other-apps",
          domains: ["*"],
          routes: [{ match: { prefix: "/" }, direct_response: { status: 200 } }],
        },
      ],
    };
    doc.static_resources.listeners = [listener];
    const pools = vs.spec.http.flatMap((r) => r.route ?? []).map((r) => r.destination);
    doc.static_resources.clusters = [
      value("CLUSTER"),
      ...pools.map((d) => ({
        name: d.host,
        type: "STRICT_DNS",
        connect_timeout: "2s",
        load_assignment: {
          cluster_name: d.host,
          endpoints: [
            {
              lb_endpoints: [
                {
                  endpoint: { address: { socket_address: { address: d.host, port_value: d.port?.number } } },
                },
              ],
            },
          ],
        },
      })),
    ];
    envoyValidate(doc, "istio-like.yaml");
  });
});

describe("generated files are up to date (npm run render:deploy)", () => {
  test("every rendered file equals the committed one", async () => {
    for (const [file, text] of Object.entries(await renderAll())) {
      assert.equal(read(file), text, `${file} is stale: run npm run render:deploy`);
    }
  });

  for (const target of ENVOY_TARGETS) {
    test(`${target.file} differs from envoy/envoy.yaml only where the pod's topology needs it`, () => {
      const rendered = yaml.load(read(target.file)) as Node;
      const source = envoySource();
      // Files: the pod's paths, which POD_FILES maps from the repository's.
      const inRepository = new Map(Object.entries(POD_FILES).map(([repo, inPod]) => [inPod, repo]));
      mapFilenames(rendered, (filename) => inRepository.get(filename) ?? filename);
      assert.deepEqual(rendered.admin, source.admin);
      assert.deepEqual(rendered.layered_runtime, source.layered_runtime);
      for (const name of ["listener_http", "listener_https"]) {
        const a = listenerNamed(rendered, name);
        const b = listenerNamed(source, name);
        assert.deepEqual(hcmOf(a), hcmOf(b), `${name}: same filters, routes, timeouts, local replies`);
        assert.equal(a.per_connection_buffer_limit_bytes, b.per_connection_buffer_limit_bytes);
      }
      for (const cluster of source.static_resources.clusters as Node[]) {
        const { type: _a, load_assignment: _b, ...rest } = clusterNamed(rendered, cluster.name)!;
        const { type: _c, load_assignment: _d, ...expected } = cluster;
        assert.deepEqual(rest, expected, `cluster ${cluster.name}: same settings`);
      }
      // And the function renders what the committed file says.
      assert.deepEqual(
        gatewayEnvoyConfig(read(FILES.envoySource), target.pools),
        yaml.load(read(target.file)),
      );
    });
  }

  test("the compose bootstrap is the pod's but for the pools' addresses", () => {
    const withoutPools = (file: string) => {
      const doc = yaml.load(read(file)) as Node;
      for (const cluster of doc.static_resources.clusters as Node[])
        if (cluster.name in POD.pools) delete cluster.load_assignment;
      return doc;
    };
    assert.deepEqual(withoutPools(FILES.envoyCompose), withoutPools(FILES.envoyK8s));
  });
});

describe("a bootstrap with a fallback pool (docs/fallback-pools.md) renders for the pod", () => {
  test("the aggregate cluster and the endpoints' pool tags survive, and extproc accepts the result", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "render-fallback-"));
    const source = path.join(dir, "envoy.yaml");
    writeFallbackEnvoyConfig(path.join(ROOT, FILES.envoySource), source, "pool-a", "pool-c");
    const pools = { ...POD.pools, "pool-c": { address: "vllm-c.models.svc.cluster.local", port: 8000 } };
    const rendered = path.join(dir, "pod.yaml");
    writeFileSync(
      rendered,
      yaml.dump(gatewayEnvoyConfig(readFileSync(source, "utf8"), pools), { noRefs: true }),
    );
    const policy = writePolicy(dir, (doc) => {
      doc.pools["pool-a"].fallback = ["pool-c"];
      doc.pools["pool-c"] = {};
    });
    const loaded = loadPolicy(policy, { envoyConfigFile: rendered, env: { POOL_B_API_KEY: "k" } });
    assert.deepEqual(loaded.pools.get("pool-a")!.fallback, ["pool-c"]);
  });
});

describe("Envoy accepts the generated bootstraps (envoy --mode validate)", () => {
  for (const { file } of ENVOY_TARGETS) {
    test(file, () => {
      envoyValidate(
        withLocalFiles(yaml.load(read(file)) as Node),
        `${path.basename(path.dirname(file))}-envoy.yaml`,
      );
    });
  }
});

describe("docker-compose.yml: the same topology as the pod", () => {
  const { services, volumes } = readCompose();
  const envoy = services.envoy!;
  const extproc = services.extproc!;
  const env = extproc.environment as Record<string, string>;
  const base = validated(build(INSTALLS.base).objects);
  const deployment = named(ofKind(base, "Deployment"), "llm-gateway");
  const podEnvoy = containerNamed(deployment, "envoy");
  const podExtproc = containerNamed(deployment, "extproc");
  const bootstrap = yaml.load(read(FILES.envoyCompose)) as Node;
  const configPath = (envoy.command as string[])[(envoy.command as string[]).indexOf("--config-path") + 1]!;
  const mounted = (service: Node, at: string) => {
    const mount = mountAt(service, at);
    assert.ok(mount, `nothing mounted at ${at}`);
    return mount;
  };

  test("services: envoy, extproc and one model server per pool", () => {
    assert.deepEqual(
      Object.keys(services).sort(),
      ["envoy", "extproc", ...Object.keys(COMPOSE.pools)].sort(),
    );
  });

  test("Envoy and extproc: the pod's images, commands and arguments, as one hardened non-root user", () => {
    assert.equal(envoy.image, podEnvoy.image);
    assert.equal(extproc.image, podExtproc.image);
    // A Kubernetes command is the image's entrypoint; its args are compose's command.
    assert.deepEqual(envoy.entrypoint, podEnvoy.command);
    assert.deepEqual(envoy.command, podEnvoy.args);
    assert.deepEqual(extproc.entrypoint, podExtproc.command);
    assert.equal(extproc.command, undefined);
    assert.equal(envoy.user, extproc.user, "one user: the socket is 0755");
    assert.match(envoy.user, /^\$\{GATEWAY_UID:-\d+\}:\$\{GATEWAY_GID:-\d+\}$/);
    for (const service of [envoy, extproc]) {
      assert.equal(service.read_only, true);
      assert.deepEqual(service.cap_drop, ["ALL"]);
      assert.deepEqual(service.security_opt, ["no-new-privileges:true"]);
    }
    mountOf(deployment, podExtproc, "/tmp");
    assert.deepEqual(extproc.tmpfs, ["/tmp"], "a writable /tmp, as the pod's emptyDir");
  });

  test("extproc listens on the pod's socket, in an in-memory volume of that user both mount", () => {
    assert.equal(env.EXTPROC_LISTEN, `unix://${POD.socketPath}`);
    assert.equal(env.EXTPROC_LISTEN, envOf(podExtproc, "EXTPROC_LISTEN"));
    const endpoint = clusterNamed(bootstrap, "extproc")!.load_assignment.endpoints[0].lb_endpoints[0]
      .endpoint;
    assert.deepEqual(endpoint.address, { pipe: { path: POD.socketPath } });
    const [a, b] = [mounted(envoy, POD.socketPath), mounted(extproc, POD.socketPath)];
    assert.deepEqual(a, b, "the same named volume at the same place");
    assert.deepEqual(a, { source: a.source, target: POD.socketDir, bind: false, readOnly: false });
    const options = volumes[a.source]?.driver_opts;
    assert.equal(options?.type, "tmpfs");
    const o = new Map((options.o as string).split(",").map((kv) => kv.split("=") as [string, string]));
    assert.equal(`${o.get("uid")}:${o.get("gid")}`, envoy.user, "the volume belongs to the containers' user");
    assert.equal(o.get("mode"), "0700");
  });

  test("Envoy runs the compose bootstrap; extproc checks the sample policy against the same file", () => {
    assert.equal(configPath, podEnvoy.args?.[podEnvoy.args.indexOf("--config-path") + 1]);
    assert.equal(repositoryPath(envoy, configPath), FILES.envoyCompose);
    assert.equal(env.EXTPROC_ENVOY_CONFIG, configPath);
    assert.equal(repositoryPath(extproc, env.EXTPROC_ENVOY_CONFIG), FILES.envoyCompose);
    assert.equal(repositoryPath(extproc, env.EXTPROC_POLICY!), FILES.policySource);
    for (const file of [configPath, env.EXTPROC_POLICY!]) {
      for (const service of [envoy, extproc]) {
        const mount = mountAt(service, file);
        assert.ok(!mount || mount.readOnly, `${file}: mounted read-only`);
      }
    }
    // extproc would start with this policy against this bootstrap (its own start-up check).
    loadPolicy(path.join(ROOT, FILES.policySource), {
      envoyConfigFile: path.join(ROOT, FILES.envoyCompose),
      env: { POOL_B_API_KEY: env.POOL_B_API_KEY },
    });
  });

  test("the files the bootstrap names: bind-mounted where the pod has them, from the repository's", () => {
    const fromRepository = new Map(Object.entries(POD_FILES).map(([repo, inPod]) => [inPod, repo]));
    const files = new Set<string>();
    mapFilenames(structuredClone(bootstrap), (filename) => {
      assert.equal(repositoryPath(envoy, filename), fromRepository.get(filename), filename);
      assert.ok(mounted(envoy, filename).readOnly, `${filename}: read-only`);
      files.add(filename);
      return filename;
    });
    assert.equal(files.size, Object.keys(POD_FILES).length);
  });

  test("ports: the listeners, ops and metrics published on loopback only; the probes as healthchecks", () => {
    const listeners = bootstrap.static_resources.listeners as Node[];
    const published = (ports: number[]) => ports.map((p) => `127.0.0.1:${p}:${p}`);
    assert.deepEqual(envoy.ports, published(listeners.map((l) => l.address.socket_address.port_value)));
    const metricsPort = Number(env.EXTPROC_METRICS_LISTEN!.split(":")[1]);
    assert.equal(env.EXTPROC_METRICS_LISTEN, envOf(podExtproc, "EXTPROC_METRICS_LISTEN"));
    assert.deepEqual(extproc.ports, published([metricsPort]));
    // What the healthchecks reach (compose.test.ts runs them against a local Envoy and extproc).
    const envoyCheck = (envoy.healthcheck.test as string[]).join(" ");
    assert.ok(
      envoyCheck.includes(`/dev/tcp/127.0.0.1/${POD.ops.port}`) &&
        envoyCheck.includes(`GET ${POD.ops.ready} `),
    );
    const extprocCheck = (extproc.healthcheck.test as string[]).join(" ");
    assert.ok(
      extprocCheck.includes(`http://127.0.0.1:${metricsPort}${podExtproc.readinessProbe.httpGet!.path}`),
    );
    // Envoy starts once extproc's socket listens (extproc serves /healthz only after its gRPC server is up).
    assert.deepEqual(envoy.depends_on.extproc, { condition: "service_healthy" });
    for (const pool of Object.keys(COMPOSE.pools)) assert.ok(envoy.depends_on[pool]);
    for (const service of Object.values(services))
      assert.equal(service.network_mode, undefined, "the compose network");
  });

  test("stopping: drain.sh where the pod has it; stop_grace_period covers extproc's shutdown", () => {
    const hook = podEnvoy.lifecycle!.preStop!.exec!.command;
    const script = hook.find((arg) => arg.endsWith("/drain.sh"))!;
    assert.equal(repositoryPath(envoy, script), "deploy/kubernetes/base/drain.sh");
    // docker-compose.yml says how to run it by hand (compose has no preStop hook).
    const byHand = [path.basename(hook[0]!), ...hook.slice(1)].join(" ");
    assert.ok(
      read("docker-compose.yml").includes(`envoy ${byHand}\n`),
      `no "docker compose exec … envoy ${byHand}"`,
    );
    const grace = /^(\d+)s$/.exec(extproc.stop_grace_period)?.[1];
    assert.ok(
      Number(grace) * 1000 > Number(env.EXTPROC_SHUTDOWN_GRACE_MS),
      "docker kills extproc mid-shutdown",
    );
  });

  test("each pool's model server: the service its cluster names, on its port, with its models and key", () => {
    const policy = loadPolicy(path.join(ROOT, FILES.policySource), {
      env: { POOL_B_API_KEY: env.POOL_B_API_KEY },
    });
    for (const [pool, { address, port }] of Object.entries(COMPOSE.pools)) {
      const command = services[address]!.command as string[];
      const arg = (flag: string) => command[command.indexOf(flag) + 1];
      const endpoint = clusterNamed(bootstrap, pool)!.load_assignment.endpoints[0].lb_endpoints[0].endpoint;
      assert.deepEqual(endpoint.address.socket_address, { address, port_value: port });
      const npmStart = clusterNamed(envoySource(), pool)!.load_assignment.endpoints[0].lb_endpoints[0]
        .endpoint;
      assert.equal(port, npmStart.address.socket_address.port_value, "the port envoy/envoy.yaml gives it");
      assert.equal(Number(arg("--port")), port);
      assert.equal(arg("--host"), "0.0.0.0", "reachable on the compose network");
      const models = [...policy.models.values()]
        .filter((m) => m.pool.name === pool)
        .map((m) => m.upstreamModel);
      assert.deepEqual(arg("--models")?.split(",").sort(), models.sort());
      const authorization = policy.pools.get(pool)?.upstreamAuthorization;
      assert.equal(command.includes("--api-key") ? `Bearer ${arg("--api-key")}` : undefined, authorization);
    }
  });
});

describe("deploy/kubernetes/monitoring: scraping and alerting with the Prometheus Operator", () => {
  const objects = validated(build(INSTALLS.monitoring).objects);
  const pod = named(ofKind(validated(build(INSTALLS.base).objects), "Deployment"), "llm-gateway").spec
    .template;

  test("the PodMonitor selects the gateway pod and scrapes both containers under the rules' job names", () => {
    checkReferences(objects);
    const monitor: PodMonitor = named(ofKind(objects, "PodMonitor"), "llm-gateway");
    assert.ok(selects(monitor.spec.selector, pod.metadata.labels ?? {}));
    const ports = new Map(
      pod.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => [p.name, c.name] as const)),
    );
    const scraped = monitor.spec.podMetricsEndpoints.map((e) => ({
      container: ports.get(e.port),
      path: e.path,
      job: e.relabelings?.find((r) => r.targetLabel === "job")?.replacement,
    }));
    assert.deepEqual(scraped, [
      { container: "envoy", path: POD.ops.metrics, job: JOBS.envoy },
      { container: "extproc", path: "/metrics", job: JOBS.extproc },
    ]);
  });

  test("the PrometheusRule holds exactly the rule groups of deploy/prometheus/alerts.yaml", () => {
    const rule: PrometheusRule = named(ofKind(objects, "PrometheusRule"), "llm-gateway");
    assert.deepEqual(rule.spec, ruleGroupsSchema.parse(yaml.load(read(OPS_FILES.alerts))));
  });
});

describe("kubectl kustomize builds every install (a skip without kubectl, a failure in CI)", () => {
  const kubectl = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8" });
  for (const [name, dir] of Object.entries(INSTALLS)) {
    test(dir, { skip: skipUnless(kubectl.status === 0, "kubectl") }, () => {
      assert.equal(kubectl.status, 0, `kubectl version --client: ${kubectl.stderr ?? kubectl.error}`);
      const run = spawnSync("kubectl", ["kustomize", path.join(ROOT, dir)], { encoding: "utf8" });
      assert.equal(run.status, 0, run.stderr);
      const objects = validated(yaml.loadAll(run.stdout, K8S_YAML) as Node[]);
      checkReferences(objects);
      const mine = validated(build(dir).objects);
      // Same objects as the small kustomize above, up to the generated names' hash suffixes.
      const key = (o: Manifest) =>
        `${o.kind}/${o.metadata.namespace}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, "")}`;
      assert.deepEqual(objects.map(key).sort(), mine.map(key).sort());
      if (name === "base" || name === "redis") checkGatewayPod(objects);
    });
  }
});

describe("deploy/README.md", () => {
  const readme = read("deploy/README.md");
  test("names every file under deploy/", () => {
    const files = (dir: string): string[] =>
      readdirSync(dir).flatMap((e) =>
        statSync(path.join(dir, e)).isDirectory() ? files(path.join(dir, e)) : [path.join(dir, e)],
      );
    const missing = files(DEPLOY)
      .map((f) => path.relative(DEPLOY, f))
      .filter((f) => f !== "README.md" && !readme.includes(f));
    assert.deepEqual(missing, []);
  });
  test("says how to create the secrets the manifests expect", () => {
    for (const secret of EXTERNAL_SECRETS) assert.match(readme, new RegExp(`create secret tls ${secret}`));
    for (const cm of EXTERNAL_CONFIGMAPS) assert.match(readme, new RegExp(`create configmap ${cm}`));
  });
});
