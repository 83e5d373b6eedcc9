/**
 * The Helm chart deploy/helm/llm-gateway, as the real helm (scripts/install-tools.sh) lints and renders it for
 * several value sets. Every rendered object is validated against the official schemas (tools.ts) and checked
 * as a whole like the kustomize installs (objects.ts); the Envoy bootstrap inside is checked by the real
 * Envoy; and the chart's pod is the kustomize one (the drift test). helm-pod.test.ts runs the chart's pod.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import * as yaml from "js-yaml";
import { loadPolicy } from "../../extproc/policy/index.js";
import { FILES, POD } from "../../deploy/render/index.js";
import { withEnvoyTracing } from "../../deploy/render/tracing.js";
import {
  checkGatewayPod,
  checkReferences,
  containerNamed,
  egressTo,
  envOf,
  envoyValidate,
  named,
  ofKind,
  OPERATOR_CREATES,
  podLabels,
  read,
  secretEnv,
  selects,
  withLocalFiles,
} from "./objects.js";
import { helmLint, helmTemplate, kustomizeBuild, RELEASE, validateObjects, type Node } from "./tools.js";

const REDIS_URL = "redis://redis.data.svc.cluster.local:6379/0";
/** A policy of the operator's own: the sample with a longer concurrency lease (any valid policy would do). */
const OWN_POLICY = read(FILES.policySource).replace(
  "quota:\n  store: memory\n",
  "quota:\n  store: memory\n  leaseSeconds: 600\n",
);
assert.notEqual(OWN_POLICY, read(FILES.policySource), "the sample's quota section moved");

/** Both Prometheus Operator objects on, with the label a kube-prometheus-stack release selects on. */
const MONITORING = {
  podMonitor: { enabled: true, labels: { release: "kube-prometheus-stack" } },
  prometheusRule: { enabled: true, labels: { release: "kube-prometheus-stack" } },
} as const;

/** Tracing on, to a collector of the operator's, one request in four traced. */
const TRACING = {
  enabled: true,
  collector: { host: "otel.telemetry.svc.cluster.local", port: 14318, namespace: "telemetry" },
  samplingPercent: 25,
  headersSecret: "collector-token",
} as const;

/** The value sets every test renders; each exercises values the others leave at their defaults. */
const VALUE_SETS = {
  defaults: { values: {} },
  "external Redis": { values: { redis: { url: REDIS_URL }, autoscaling: { minReplicas: 3 } } },
  "inline policy, own images, probes and resources": {
    values: {
      policy: { inline: OWN_POLICY },
      images: {
        envoy: { repository: "registry.example.com/envoyproxy/envoy", tag: "v1.40.0" },
        extproc: {
          repository: "registry.example.com/llm-gateway-extproc",
          tag: "1.0.0",
          pullPolicy: "Always",
        },
      },
      probes: { envoy: { readiness: { periodSeconds: 3, failureThreshold: 3, timeoutSeconds: 2 } } },
      resources: {
        extproc: { requests: { cpu: "1", memory: "512Mi" }, limits: { cpu: "4", memory: "2Gi" } },
      },
    },
  },
  "existing policy ConfigMap and Secret, fixed replicas, no NetworkPolicy": {
    values: {
      policy: { existingConfigMap: "team-policy" },
      secrets: { existingSecret: "team-upstream-keys" },
      autoscaling: { enabled: false },
      replicas: 4,
      podDisruptionBudget: { minAvailable: 2 },
      networkPolicy: { enabled: false },
    },
    external: {
      secrets: [...OPERATOR_CREATES.secrets, "team-upstream-keys"],
      configMaps: [...OPERATOR_CREATES.configMaps, "team-policy"],
    },
  },
  istio: {
    values: { istio: { enabled: true, host: "llm.corp.example", gatewayNamespace: "istio-ingress" } },
  },
  "Prometheus Operator monitoring": { values: { monitoring: MONITORING } },
  tracing: {
    values: { tracing: TRACING },
    external: { ...OPERATOR_CREATES, secrets: [...OPERATOR_CREATES.secrets, "collector-token"] },
  },
  "Istio mode with Prometheus Operator monitoring": {
    values: { istio: { enabled: true }, monitoring: MONITORING },
  },
} as const satisfies Record<string, { values: Node; external?: Node }>;
type ValueSet = keyof typeof VALUE_SETS;

const renders = new Map<ValueSet, Node[]>();
/** What helm renders for a value set, every object validated against the official schemas. */
function rendered(set: ValueSet): Node[] {
  let objects = renders.get(set);
  if (!objects) {
    objects = helmTemplate(VALUE_SETS[set].values);
    validateObjects(objects);
    renders.set(set, objects);
  }
  return objects;
}

describe("helm lint and helm template, every object valid and every reference resolved", () => {
  for (const [set, { values, ...rest }] of Object.entries(VALUE_SETS) as [ValueSet, Node][]) {
    test(set, (t) => {
      assert.match(helmLint(values), /1 chart\(s\) linted, 0 chart\(s\) failed/);
      const objects = rendered(set);
      t.diagnostic(`${objects.length} objects: ${objects.map((o) => o.kind).join(", ")}`);
      checkReferences(objects, rest.external);
      // The chart's own objects land in the release's namespace (Istio's where the gateway is: checked below).
      for (const o of objects.filter((o) => !o.apiVersion.includes("istio.io")))
        assert.equal(o.metadata.namespace, RELEASE.namespace, `${o.kind}/${o.metadata.name}`);
    });
  }
  test("values the chart refuses: a collector address, port or sampling rate a bootstrap cannot take", () => {
    for (const [tracing, message] of [
      [{ collector: { host: "otel\n  evil: 1" } }, /tracing.collector.host must be/],
      [{ collector: { port: 70000 } }, /tracing.collector.port must be 1-65535/],
      [{ samplingPercent: 100.5 }, /tracing.samplingPercent must be 0-100/],
    ] as const)
      assert.throws(() => helmTemplate({ tracing: { ...TRACING, ...tracing } }), message);
  });
  test("values the chart refuses: a PDB that would block every node drain", () => {
    assert.throws(
      () => helmTemplate({ podDisruptionBudget: { minAvailable: 2 } }),
      /minAvailable must stay below the replicas/,
    );
  });
});

describe("the chart's gateway pod (defaults)", () => {
  const objects = rendered("defaults");
  const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");

  test("Envoy + extproc over the Unix socket, probes, draining, network policy; extproc accepts the policy", () => {
    const { policyFile, envoyFile } = checkGatewayPod(objects, { redisEgress: false });
    loadPolicy(policyFile, { envoyConfigFile: envoyFile, env: secretEnv(objects) });
  });

  test("the real Envoy accepts the bootstrap of the chart's ConfigMap", () => {
    const configMap = named(ofKind(objects, "ConfigMap"), "llm-gateway-envoy");
    envoyValidate(withLocalFiles(yaml.load(configMap.data["envoy.yaml"]) as Node), "helm-envoy.yaml");
  });

  test("the policy ConfigMap keeps a stable name (hot reload); a changed bootstrap or script rolls the pods", () => {
    const volumes = deployment.spec.template.spec.volumes as Node[];
    assert.equal(volumes.find((v) => v.name === "policy")?.configMap?.name, "llm-gateway-policy");
    const annotations = deployment.spec.template.metadata.annotations;
    assert.match(annotations["checksum/envoy"], /^[0-9a-f]{64}$/);
    assert.match(annotations["checksum/scripts"], /^[0-9a-f]{64}$/);
    assert.equal(annotations["checksum/policy"], undefined, "a policy change must not restart the pods");
    const changed = helmTemplate({ policy: { inline: OWN_POLICY } });
    assert.deepEqual(
      named(ofKind(changed, "Deployment"), "llm-gateway").spec.template,
      deployment.spec.template,
      "a new policy reaches the running pods through the ConfigMap, not by a rollout",
    );
  });

  test("the upstream key Secret is the same clearly marked placeholder", () => {
    const secret = named(ofKind(objects, "Secret"), "llm-gateway-upstream-keys");
    assert.equal(secret.metadata.annotations?.["llm-gateway/placeholder"], "true");
    assert.match(secret.stringData?.POOL_B_API_KEY ?? "", /^REPLACE-ME/);
  });

  test("HPA, PDB and Service target the gateway; the PDB stays below the HPA's minimum", () => {
    const hpa = named(ofKind(objects, "HorizontalPodAutoscaler"), "llm-gateway");
    assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
    assert.equal(deployment.spec.replicas, undefined, "the HPA owns the replica count");
    const pdb = named(ofKind(objects, "PodDisruptionBudget"), "llm-gateway");
    assert.ok(selects(pdb.spec.selector, podLabels(deployment)));
    const service = named(ofKind(objects, "Service"), "llm-gateway");
    assert.deepEqual(
      (service.spec.ports as Node[]).map((p) => [p.port, p.targetPort]),
      [
        [80, "http"],
        [443, "https"],
      ],
    );
    assert.deepEqual(deployment.spec.strategy.rollingUpdate, { maxSurge: 1, maxUnavailable: 0 });
  });
});

describe("drift: helm and kustomize render the same pod", () => {
  const withoutHash = (name: string) => name.replace(/-[a-z0-9]{10}$/, "");
  /**
   * The pod spec with generated ConfigMap names unhashed (kustomize hashes, helm annotates checksums) and
   * without the anti-affinity, whose selector is each install's own labels (checked to select its pods).
   */
  const podOf = (objects: Node[]) => {
    const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");
    const { affinity, ...spec } = structuredClone(deployment.spec.template.spec);
    for (const term of affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution as Node[])
      assert.ok(
        selects(term.podAffinityTerm.labelSelector, podLabels(deployment)),
        "anti-affinity to itself",
      );
    for (const v of spec.volumes as Node[]) if (v.configMap) v.configMap.name = withoutHash(v.configMap.name);
    return spec;
  };
  const configMaps = (objects: Node[]) =>
    Object.fromEntries(ofKind(objects, "ConfigMap").map((c) => [withoutHash(c.metadata.name), c.data]));

  test("base install and defaults: containers, args, env, ports, probes, hooks, volumes, security, spread", () => {
    const kustomize = podOf(kustomizeBuild("deploy/kubernetes"));
    const helm = podOf(rendered("defaults"));
    // One assertion per container first, for a readable difference.
    for (const c of kustomize.containers as Node[]) {
      assert.deepEqual(
        (helm.containers as Node[]).find((h) => h.name === c.name),
        c,
        `container ${c.name}`,
      );
    }
    assert.deepEqual(helm, kustomize);
  });

  test("the pod's files: the same bootstrap, drain script and policy", () => {
    assert.deepEqual(configMaps(rendered("defaults")), configMaps(kustomizeBuild("deploy/kubernetes")));
  });

  test("Redis overlay and external Redis: the same quota section but the URL", () => {
    const policyOf = (objects: Node[]) =>
      (yaml.load(named(ofKind(objects, "ConfigMap"), "llm-gateway-policy").data["policy.yaml"]) as Node)
        .quota;
    const overlay = policyOf(kustomizeBuild("deploy/kubernetes/overlays/redis"));
    assert.deepEqual(policyOf(rendered("external Redis")), { ...overlay, redis: { url: REDIS_URL } });
    const redisPod = podOf(rendered("external Redis"));
    assert.deepEqual(redisPod.containers, podOf(rendered("defaults")).containers);
  });
});

describe("values", () => {
  test("external Redis: the policy's quota store, a rollout onto it, egress to its port", () => {
    const objects = rendered("external Redis");
    const { policyFile, envoyFile } = checkGatewayPod(objects, { redisEgress: true });
    const policy = loadPolicy(policyFile, { envoyConfigFile: envoyFile, env: secretEnv(objects) });
    assert.equal(policy.quota.store, "redis");
    assert.equal(policy.quota.redis?.url, REDIS_URL);
    assert.equal(policy.quota.replicas, 3, "the replicas the limits are shared over: the HPA's minimum");
    const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");
    assert.equal(deployment.spec.template.metadata.annotations["llm-gateway/quota-store"], "redis");
    assert.equal(named(ofKind(objects, "HorizontalPodAutoscaler"), "llm-gateway").spec.minReplicas, 3);
    const netpol = named(ofKind(objects, "NetworkPolicy"), "llm-gateway");
    assert.ok(egressTo(netpol, Number(new URL(REDIS_URL).port)).length > 0);
  });

  test("inline policy, images, probes and resources come from values", () => {
    const objects = rendered("inline policy, own images, probes and resources");
    const { policyFile, envoyFile } = checkGatewayPod(objects, { redisEgress: false });
    const policy = loadPolicy(policyFile, { envoyConfigFile: envoyFile, env: secretEnv(objects) });
    assert.equal(policy.quota.leaseSeconds, 600);
    const data = named(ofKind(objects, "ConfigMap"), "llm-gateway-policy").data["policy.yaml"];
    assert.equal(data, OWN_POLICY);
    const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");
    const envoy = containerNamed(deployment, "envoy");
    const extproc = containerNamed(deployment, "extproc");
    assert.equal(envoy.image, "registry.example.com/envoyproxy/envoy:v1.40.0");
    assert.equal(extproc.image, "registry.example.com/llm-gateway-extproc:1.0.0");
    assert.equal(extproc.imagePullPolicy, "Always");
    assert.deepEqual(envoy.readinessProbe, {
      httpGet: { path: POD.ops.ready, port: "ops" },
      periodSeconds: 3,
      failureThreshold: 3,
      timeoutSeconds: 2,
    });
    assert.deepEqual(extproc.resources, {
      requests: { cpu: "1", memory: "512Mi" },
      limits: { cpu: "4", memory: "2Gi" },
    });
  });

  test("an existing policy ConfigMap and Secret: the chart creates neither and the pod reads them", () => {
    const objects = rendered("existing policy ConfigMap and Secret, fixed replicas, no NetworkPolicy");
    assert.deepEqual(ofKind(objects, "Secret"), []);
    assert.equal(
      ofKind(objects, "ConfigMap").some((c) => c.metadata.name === "llm-gateway-policy"),
      false,
    );
    const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");
    const volumes = deployment.spec.template.spec.volumes as Node[];
    assert.equal(volumes.find((v) => v.name === "policy")?.configMap?.name, "team-policy");
    const key = (containerNamed(deployment, "extproc").env as Node[]).find(
      (e) => e.name === "POOL_B_API_KEY",
    );
    assert.deepEqual(key?.valueFrom, { secretKeyRef: { name: "team-upstream-keys", key: "POOL_B_API_KEY" } });
    assert.equal(deployment.spec.replicas, 4);
    assert.deepEqual(ofKind(objects, "HorizontalPodAutoscaler"), []);
    assert.deepEqual(ofKind(objects, "NetworkPolicy"), []);
    assert.equal(named(ofKind(objects, "PodDisruptionBudget"), "llm-gateway").spec.minAvailable, 2);
  });

  test("Istio mode: extproc alone on TCP, deploy/istio's EnvoyFilter and routing for this host and namespace", () => {
    const objects = rendered("istio");
    const deployment = named(ofKind(objects, "Deployment"), "llm-gateway-extproc");
    assert.deepEqual(
      (deployment.spec.template.spec.containers as Node[]).map((c) => c.name),
      ["extproc"],
      "no Envoy of ours: the ingress gateway's",
    );
    const extproc = containerNamed(deployment, "extproc");
    assert.equal(envOf(extproc, "EXTPROC_LISTEN"), "0.0.0.0:50051");
    assert.equal(envOf(extproc, "EXTPROC_ENVOY_CONFIG"), undefined);
    assert.equal(deployment.spec.template.metadata.labels["sidecar.istio.io/inject"], "false");
    const service = named(ofKind(objects, "Service"), "llm-gateway-extproc");
    assert.equal(service.spec.clusterIP, "None");
    // deploy/istio's objects with its placeholders set: every other byte is the same.
    const kustomize = kustomizeBuild("deploy/istio").filter((o) => o.apiVersion.includes("istio.io"));
    const expected = JSON.parse(
      JSON.stringify(kustomize)
        .replaceAll("llm.example.com", "llm.corp.example")
        .replaceAll('"istio-system"', '"istio-ingress"')
        .replaceAll(
          '"llm-gateway-extproc.llm-gateway.svc.cluster.local"',
          `"llm-gateway-extproc.${RELEASE.namespace}.svc.cluster.local"`,
        ),
    );
    const istio = objects.filter((o) => o.apiVersion.includes("istio.io"));
    const byName = (list: Node[]) => Object.fromEntries(list.map((o) => [`${o.kind}/${o.metadata.name}`, o]));
    assert.deepEqual(byName(istio), byName(expected));
    const filter = named(ofKind(objects, "EnvoyFilter"), "llm-gateway-ext-proc");
    assert.equal(filter.metadata.namespace, "istio-ingress");
    const netpol = named(ofKind(objects, "NetworkPolicy"), "llm-gateway-extproc");
    const fromGateway = (netpol.spec.ingress as Node[]).find((r) =>
      r.ports?.some((p: Node) => p.port === 50051),
    );
    assert.deepEqual(fromGateway?.from, [
      {
        namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "istio-ingress" } },
        podSelector: { matchLabels: filter.spec.workloadSelector.labels },
      },
    ]);
  });
});

describe("tracing: off by default; on, Envoy's tracer and extproc export to the collector of the values", () => {
  const envoyOf = (objects: Node[]) =>
    yaml.load(named(ofKind(objects, "ConfigMap"), "llm-gateway-envoy").data["envoy.yaml"]) as Node;
  const extprocOf = (objects: Node[]) =>
    containerNamed(named(ofKind(objects, "Deployment"), "llm-gateway"), "extproc");

  test("the defaults trace nothing: no tracer, no collector cluster, no endpoint for extproc", () => {
    const objects = rendered("defaults");
    assert.ok(!JSON.stringify(envoyOf(objects)).includes("envoy.tracers."));
    assert.equal(envOf(extprocOf(objects), "EXTPROC_TRACES_ENDPOINT"), undefined);
  });

  test("the bootstrap is the default one through withEnvoyTracing (one source), and the real Envoy takes it", () => {
    const objects = rendered("tracing");
    const traced = envoyOf(objects);
    const expected = withEnvoyTracing(envoyOf(rendered("defaults")), {
      collector: { address: TRACING.collector.host, port: TRACING.collector.port },
      samplingPercent: TRACING.samplingPercent,
    });
    assert.deepEqual(traced, expected);
    envoyValidate(withLocalFiles(traced), "helm-envoy-tracing.yaml");
    const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");
    assert.notEqual(
      deployment.spec.template.metadata.annotations["checksum/envoy"],
      named(ofKind(rendered("defaults"), "Deployment"), "llm-gateway").spec.template.metadata.annotations[
        "checksum/envoy"
      ],
      "turning tracing on rolls the pods (Envoy reads its bootstrap at start only)",
    );
  });

  test("extproc exports to the same collector, which the NetworkPolicy lets the pods reach", () => {
    const objects = rendered("tracing");
    assert.equal(
      envOf(extprocOf(objects), "EXTPROC_TRACES_ENDPOINT"),
      "http://otel.telemetry.svc.cluster.local:14318/v1/traces",
    );
    assert.deepEqual(
      (extprocOf(objects).env as Node[]).find((e) => e.name === "EXTPROC_TRACES_HEADERS")?.valueFrom,
      { secretKeyRef: { name: "collector-token", key: "headers" } },
      "the token comes from the operator's Secret, never from values",
    );
    const [rule, ...more] = egressTo(named(ofKind(objects, "NetworkPolicy"), "llm-gateway"), 14318);
    assert.equal(more.length, 0);
    assert.deepEqual(rule?.to, [
      { namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "telemetry" } } },
    ]);
  });
});

describe("monitoring with the Prometheus Operator: deploy/kubernetes/monitoring's objects, off by default", () => {
  /** What a PodMonitor scrapes in a pod: each endpoint's container (by port name), path and job label. */
  const scraped = (monitor: Node, pod: Node) => {
    const containers = new Map<string, string>(
      (pod.spec.containers as Node[]).flatMap((c) =>
        ((c.ports ?? []) as Node[]).map((p) => [p.name, c.name] as const),
      ),
    );
    return (monitor.spec.podMetricsEndpoints as Node[]).map((e) => ({
      container: containers.get(e.port),
      path: e.path,
      interval: e.interval,
      job: (e.relabelings as Node[] | undefined)?.find((r) => r.targetLabel === "job")?.replacement,
    }));
  };
  const kustomize = kustomizeBuild("deploy/kubernetes/monitoring");
  const kustomizePod = named(ofKind(kustomizeBuild("deploy/kubernetes"), "Deployment"), "llm-gateway").spec
    .template;
  const expected = scraped(named(ofKind(kustomize, "PodMonitor"), "llm-gateway"), kustomizePod);

  test("the defaults render neither a PodMonitor nor a PrometheusRule", () => {
    assert.deepEqual(ofKind(rendered("defaults"), "PodMonitor"), []);
    assert.deepEqual(ofKind(rendered("defaults"), "PrometheusRule"), []);
  });

  test("the PodMonitor selects the chart's pod and scrapes both containers as the kustomize one does", () => {
    const objects = rendered("Prometheus Operator monitoring");
    const pod = named(ofKind(objects, "Deployment"), "llm-gateway").spec.template;
    const monitor = named(ofKind(objects, "PodMonitor"), "llm-gateway");
    assert.ok(selects(monitor.spec.selector, pod.metadata.labels));
    assert.equal(monitor.metadata.labels.release, "kube-prometheus-stack");
    assert.deepEqual(scraped(monitor, pod), expected);
  });

  test("the PrometheusRule holds the same rule groups as deploy/kubernetes/monitoring's", () => {
    const rule = named(ofKind(rendered("Prometheus Operator monitoring"), "PrometheusRule"), "llm-gateway");
    assert.equal(rule.metadata.labels.release, "kube-prometheus-stack");
    assert.deepEqual(rule.spec, named(ofKind(kustomize, "PrometheusRule"), "llm-gateway").spec);
  });

  test("Istio mode: the pod is extproc alone, so only its metrics are scraped", () => {
    const objects = rendered("Istio mode with Prometheus Operator monitoring");
    const deployment = named(ofKind(objects, "Deployment"), "llm-gateway-extproc");
    const monitor = named(ofKind(objects, "PodMonitor"), "llm-gateway-extproc");
    assert.ok(selects(monitor.spec.selector, deployment.spec.template.metadata.labels));
    assert.deepEqual(
      scraped(monitor, deployment.spec.template),
      expected.filter((e) => e.container === "extproc"),
    );
  });
});
