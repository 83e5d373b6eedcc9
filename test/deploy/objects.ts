/**
 * Checks of rendered Kubernetes objects (what kustomize and helm render) that no schema expresses: what the
 * pods reference exists, selectors select the pods, ports line up with the Envoy bootstrap, the pod shares its
 * socket, probes hit the ops listener, draining fits the grace period. Shared by the kustomize tests
 * (manifests.test.ts) and the Helm chart's (helm.test.ts).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after } from "node:test";
import * as yaml from "js-yaml";
import { FILES, mapFilenames, POD, POD_FILES, ROOT } from "../../deploy/render/index.js";
import { envoyBinary } from "../harness/index.js";
import type { Node } from "./tools.js";

/** A repository file's text. */
export const read = (file: string): string => readFileSync(path.join(ROOT, file), "utf8");
const tmp = mkdtempSync(path.join(tmpdir(), "llm-gateway-deploy-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The objects of one kind. */
export const ofKind = (objects: readonly Node[], kind: string): Node[] =>
  objects.filter((o) => o.kind === kind);
/** The object named `name` (there must be one). */
export const named = (objects: readonly Node[], name: string): Node => {
  const found = objects.find((o) => o.metadata.name === name);
  assert.ok(found, `no ${name}`);
  return found;
};

// ---- Envoy helpers

/** envoy/envoy.yaml, parsed. */
export const envoySource = (): Node => yaml.load(read(FILES.envoySource)) as Node;
/** The HTTP connection manager of a listener. */
export const hcmOf = (listener: Node): Node => listener.filter_chains[0].filters[0].typed_config;
/** A bootstrap's listener by name. */
export const listenerNamed = (doc: Node, name: string): Node =>
  (doc.static_resources.listeners as Node[]).find((l) => l.name === name)!;
/** A bootstrap's cluster by name. */
export const clusterNamed = (doc: Node, name: string): Node | undefined =>
  (doc.static_resources.clusters as Node[]).find((c) => c.name === name);
/** The ext_proc filter of a bootstrap's plain listener. */
export const extProcFilter = (doc: Node): Node =>
  (hcmOf(listenerNamed(doc, "listener_http")).http_filters as Node[]).find(
    (f) => f.name === "envoy.filters.http.ext_proc",
  )!;

/** The real Envoy accepts this bootstrap (`envoy --mode validate`). */
export function envoyValidate(doc: Node, name: string): void {
  const file = path.join(tmp, name);
  writeFileSync(file, yaml.dump(doc, { noRefs: true, lineWidth: -1 }));
  const run = spawnSync(envoyBinary(), ["--mode", "validate", "-c", file, "-l", "error"], {
    encoding: "utf8",
  });
  assert.equal(run.status, 0, `envoy --mode validate ${name}:\n${run.stdout}${run.stderr}`);
}

/** A bootstrap whose files are the repository's dev files (scripts/setup.sh makes them; validation reads them). */
export function withLocalFiles(doc: Node): Node {
  const copy = structuredClone(doc);
  const local = new Map(Object.entries(POD_FILES).map(([source, inPod]) => [inPod, source]));
  mapFilenames(copy, (filename) => path.join(ROOT, local.get(filename) ?? filename));
  return copy;
}

// ---- Pod helpers

/** The labels of a Deployment's pods. */
export const podLabels = (d: Node): Record<string, string> => d.spec.template.metadata.labels;
/** The container `name` of a Deployment's pod (there must be one). */
export const containerNamed = (d: Node, name: string): Node => {
  const found = (d.spec.template.spec.containers as Node[]).find((c) => c.name === name);
  assert.ok(found, `${d.metadata.name} has no container ${name}`);
  return found;
};
/** A container's plain environment value. */
export const envOf = (c: Node, name: string): string | undefined =>
  (c.env as Node[] | undefined)?.find((e) => e.name === name)?.value;
/** The mount of `c` that holds `path`, and its volume. */
export const mountOf = (d: Node, c: Node, path: string): { mount: Node; volume: Node } => {
  const mount = (c.volumeMounts as Node[] | undefined)?.find(
    (m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`),
  );
  assert.ok(mount, `${c.name}: nothing mounted at ${path}`);
  const volume = (d.spec.template.spec.volumes as Node[] | undefined)?.find((v) => v.name === mount.name);
  assert.ok(volume, `${c.name}: volume ${mount.name} is not defined`);
  return { mount, volume };
};
/** A container port by number or name. */
export const resolvePort = (c: Node, port: number | string): number => {
  if (typeof port === "number") return port;
  const found = (c.ports as Node[] | undefined)?.find((p) => p.name === port)?.containerPort;
  assert.ok(found, `${c.name} has no port named ${port}`);
  return found;
};
const containerPorts = (d: Node): number[] =>
  (d.spec.template.spec.containers as Node[]).flatMap((c) =>
    ((c.ports ?? []) as Node[]).map((p) => p.containerPort),
  );

/** What the operator creates outside an install (deploy/README.md says how); every other reference must resolve. */
export interface External {
  readonly secrets?: readonly string[];
  readonly configMaps?: readonly string[];
}

/** The Secret and ConfigMap every gateway pod reads that the operator creates (TLS, the IdP's JWKS). */
export const OPERATOR_CREATES = { secrets: ["llm-gateway-tls"], configMaps: ["llm-gateway-jwks"] } as const;

/** Whether a label selector (matchLabels, matchExpressions) selects pods with these labels. */
export function selects(selector: Node, podLabels: Readonly<Record<string, string>>): boolean {
  const byLabels = Object.entries((selector.matchLabels ?? {}) as Record<string, string>).every(
    ([k, v]) => podLabels[k] === v,
  );
  const byExpressions = ((selector.matchExpressions ?? []) as Node[]).every((e) => {
    const value = podLabels[e.key];
    const values = (e.values ?? []) as string[];
    switch (e.operator) {
      case "In":
        return value !== undefined && values.includes(value);
      case "NotIn":
        return value === undefined || !values.includes(value);
      case "Exists":
        return value !== undefined;
      case "DoesNotExist":
        return value === undefined;
      default:
        throw new Error(`unknown selector operator ${e.operator}`);
    }
  });
  return byLabels && byExpressions;
}

/** Checks every install needs: references resolve, selectors select, ports exist. */
export function checkReferences(objects: readonly Node[], external: External = OPERATOR_CREATES): void {
  const EXTERNAL_SECRETS = external.secrets ?? [];
  const EXTERNAL_CONFIGMAPS = external.configMaps ?? [];
  const deployments = ofKind(objects, "Deployment");
  const configMaps = ofKind(objects, "ConfigMap");
  const secrets = ofKind(objects, "Secret");
  const secretKeys = (s: Node) => [...Object.keys(s.stringData ?? {}), ...Object.keys(s.data ?? {})];
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
    const sameNamespace = (list: Node[]) => list.filter((o) => o.metadata.namespace === d.metadata.namespace);
    for (const v of volumes) {
      if (v.configMap && !EXTERNAL_CONFIGMAPS.includes(v.configMap.name)) {
        const cm = sameNamespace(configMaps).find((c) => c.metadata.name === v.configMap!.name);
        assert.ok(cm, `${d.metadata.name}: volume ${v.name}: ConfigMap ${v.configMap.name} is not defined`);
      }
      if (v.secret && !EXTERNAL_SECRETS.includes(v.secret.secretName)) {
        const s = sameNamespace(secrets).find((c) => c.metadata.name === v.secret!.secretName);
        assert.ok(s, `${d.metadata.name}: volume ${v.name}: Secret ${v.secret.secretName} is not defined`);
      }
      const users = spec.containers.filter((c: Node) => c.volumeMounts?.some((m: Node) => m.name === v.name));
      assert.ok(users.length > 0, `${d.metadata.name}: volume ${v.name} is mounted nowhere`);
    }
    for (const c of spec.containers) {
      for (const m of c.volumeMounts ?? []) {
        assert.ok(
          volumes.some((v: Node) => v.name === m.name),
          `${c.name}: mounts undefined volume ${m.name}`,
        );
        assert.equal(m.subPath, undefined, `${c.name}: subPath mounts never see ConfigMap/Secret updates`);
      }
      for (const e of c.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef;
        if (!ref || EXTERNAL_SECRETS.includes(ref.name)) continue;
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
      const resolved = pods[0]!.spec.template.spec.containers.some((c: Node) =>
        (c.ports ?? []).some((p: Node) => p.name === port.targetPort || p.containerPort === port.targetPort),
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

const ingressPorts = (n: Node, fromAnywhere: boolean): Node[] =>
  (n.spec.ingress ?? [])
    .filter((r: Node) => (r.from === undefined) === fromAnywhere)
    .flatMap((r: Node) => r.ports ?? []);
/** The egress rules of a NetworkPolicy that allow this port. */
export const egressTo = (n: Node, port: number, protocol = "TCP"): Node[] =>
  (n.spec.egress ?? []).filter((r: Node) =>
    r.ports?.some((p: Node) => p.port === port && p.protocol === protocol),
  );

/**
 * The gateway pod of the base and Redis installs and of the Helm chart: Envoy + extproc over the Unix socket. */
export function checkGatewayPod(
  objects: readonly Node[],
  options: { readonly redisEgress: boolean },
): { policyFile: string; envoyFile: string; envoy: Node } {
  const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");
  const spec = deployment.spec.template.spec;
  const envoy = containerNamed(deployment, "envoy");
  const extproc = containerNamed(deployment, "extproc");
  assert.deepEqual(spec.containers.map((c: Node) => c.name).sort(), ["envoy", "extproc"]);
  const configMaps = ofKind(objects, "ConfigMap");
  const dataOf = (volumeName: string | undefined, key: string): string => {
    const volume = spec.volumes?.find((v: Node) => v.name === volumeName);
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
      (c: Node) => c.securityContext.runAsUser === undefined || c.securityContext.runAsUser === uid,
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
  const envoyPorts = (envoy.ports ?? []).map((p: Node) => p.containerPort).sort();
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
  assert.equal(egressTo(netpol, 6379).length > 0, options.redisEgress, "egress to Redis");

  const policyFile = path.join(tmp, `policy-${Math.random().toString(36).slice(2)}.yaml`);
  const envoyFile = path.join(tmp, `envoy-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(policyFile, policyText);
  writeFileSync(envoyFile, envoyText);
  return { policyFile, envoyFile, envoy: envoyDoc };
}

/** The environment the install's Secrets give extproc. */
export function secretEnv(objects: readonly Node[]): NodeJS.ProcessEnv {
  return Object.assign({}, ...ofKind(objects, "Secret").map((s) => s.stringData ?? {}));
}
