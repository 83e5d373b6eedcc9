/**
 * The installs under deploy/kubernetes and deploy/istio as the real kustomize builds them
 * (scripts/install-tools.sh), every object validated against the official schemas (tools.ts), then checked
 * as wholes (objects.ts): what the pods reference exists, selectors select the pods, ports line up with the
 * Envoy bootstrap, the Istio EnvoyFilter carries envoy/envoy.yaml's ext_proc settings, the generated copies
 * are up to date, and the real Envoy binary accepts the bootstraps. docker-compose.yml is checked against the
 * same topology (and run by compose.test.ts); the Helm chart by helm.test.ts.
 * No cluster is involved: nothing here applies a manifest (deploy/README.md says what that leaves open).
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";
import * as yaml from "js-yaml";
import { loadPolicy } from "../../extproc/policy/index.js";
import { readEnvoyRouting } from "../../extproc/policy/envoy-routing.js";
import {
  CHART,
  COMPOSE,
  ENVOY_TARGETS,
  FILES,
  gatewayEnvoyConfig,
  JOBS,
  mapFilenames,
  OVERLAY_TRACING,
  OPS_FILES,
  POD,
  POD_FILES,
  REDIS_QUOTA,
  renderAll,
  ROOT,
  SAMPLE_SCHEDULING,
  scheduledPolicy,
} from "../../deploy/render/index.js";
import { withEnvoyTracing } from "../../deploy/render/tracing.js";
import { writeFallbackEnvoyConfig } from "../harness/envoy-config.js";
import { writePolicy } from "../harness/policy.js";
import { mountAt, readCompose, repositoryPath } from "./compose.js";
import {
  checkGatewayPod,
  checkReferences,
  clusterNamed,
  containerNamed,
  egressTo,
  envOf,
  envoySource,
  envoyValidate,
  extProcFilter,
  hcmOf,
  listenerNamed,
  mountOf,
  named,
  ofKind,
  OPERATOR_CREATES,
  podLabels,
  read,
  resolvePort,
  secretEnv,
  selects,
  withLocalFiles,
} from "./objects.js";
import { K8S_YAML, kustomizeBuild, validateObjects, type Node } from "./tools.js";

const DEPLOY = path.join(ROOT, "deploy");
const rel = (file: string) => path.relative(ROOT, file);

/** Installs: each a kustomization directory. */
const INSTALLS = {
  base: "deploy/kubernetes",
  redis: "deploy/kubernetes/overlays/redis",
  tracing: "deploy/kubernetes/overlays/tracing",
  istio: "deploy/istio",
  monitoring: "deploy/kubernetes/monitoring",
} as const;

/** What kustomize renders for an install, every object validated against the official schemas. */
const builds = new Map<string, Node[]>();
function built(dir: string): Node[] {
  let objects = builds.get(dir);
  if (!objects) {
    objects = kustomizeBuild(dir);
    validateObjects(objects);
    builds.set(dir, objects);
  }
  return objects;
}

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const file = path.join(dir, entry);
    // The chart's templates are Go templates, not YAML: helm.test.ts renders and checks them.
    if (rel(file) === `${CHART}/templates`) return [];
    if (statSync(file).isDirectory()) return yamlFiles(file);
    return /\.ya?ml$/.test(entry) ? [file] : [];
  });
}

/** What kind of file a YAML file under deploy/ is. */
function classify(file: string): "kustomization" | "policy" | "envoy" | "rules" | "manifests" | "chart" {
  const name = path.basename(file);
  if (name === "kustomization.yaml") return "kustomization";
  if (rel(file) === OPS_FILES.alerts) return "rules";
  if (name === "policy.yaml") return "policy";
  const bootstraps: string[] = [`${CHART}/files/envoy.yaml`, FILES.envoyTracing, FILES.envoyChartTracing];
  if (ENVOY_TARGETS.some((t) => t.file === rel(file)) || bootstraps.includes(rel(file))) return "envoy";
  if (rel(file).startsWith(`${CHART}/`) && !rel(file).startsWith(`${CHART}/files/`)) return "chart";
  return "manifests";
}

/** An object's identity, up to the hash suffix kustomize gives generated ConfigMaps. */
const identity = (o: Node) => `${o.kind}/${o.metadata.name.replace(/-[a-z0-9]{10}$/, "")}`;

/**
 * deploy/prometheus/alerts.yaml: the spec of the PrometheusRule rendered from it, so valid by the operator's
 * schema; every alert waits (`for`) and carries what Alertmanager routes on and deploy/prometheus/README.md
 * explains: a severity (critical or warning), a summary and a description.
 */
function checkAlertRules(groups: Node): void {
  const rule = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: { name: "alerts" },
  };
  validateObjects([{ ...rule, spec: groups }]);
  const rules = (groups.groups as Node[]).flatMap((g) => g.rules as Node[]);
  assert.ok(rules.length > 0);
  for (const r of rules.filter((r) => r.alert !== undefined)) {
    assert.match(r.alert, /^[A-Za-z][A-Za-z0-9]*$/);
    assert.ok(r.for, `${r.alert}: no for`);
    assert.deepEqual(Object.keys(r.labels), ["severity"], `${r.alert}: labels`);
    assert.ok(["critical", "warning"].includes(r.labels.severity), `${r.alert}: severity`);
    assert.deepEqual(
      Object.keys(r.annotations).sort(),
      ["description", "summary"],
      `${r.alert}: annotations`,
    );
  }
}

// ---- the tests

describe("deploy/: every YAML file parses, and means the same to every YAML reader", () => {
  const files = yamlFiles(DEPLOY);
  test("there are manifests to check", () => {
    assert.ok(files.length >= 15, `found ${files.length} YAML files`);
  });
  for (const file of files) {
    test(rel(file), () => {
      const text = readFileSync(file, "utf8");
      switch (classify(file)) {
        case "kustomization":
        case "chart":
          // kustomize and helm read these themselves (the builds below, helm.test.ts).
          assert.ok(yaml.load(text, K8S_YAML));
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
          checkAlertRules(yaml.load(text) as Node);
          break;
        case "manifests": {
          const docs = yaml.loadAll(text, K8S_YAML);
          assert.ok(docs.length > 0);
          // YAML 1.1 and 1.2 must agree, so the file means the same to every reader.
          assert.deepEqual(yaml.loadAll(text), docs, "YAML 1.1 and 1.2 read this file differently: quote it");
        }
      }
    });
  }
  test("every manifest under deploy/kubernetes and deploy/istio is part of an install", () => {
    const installed = new Set(Object.values(INSTALLS).flatMap((dir) => built(dir).map(identity)));
    const manifests = files.filter(
      (f) => classify(f) === "manifests" && /^deploy\/(kubernetes|istio)\//.test(rel(f)),
    );
    assert.ok(manifests.length >= 10, `found ${manifests.length} manifest files`);
    const unused = manifests.flatMap((f) =>
      (yaml.loadAll(readFileSync(f, "utf8"), K8S_YAML) as Node[])
        .filter((o) => !installed.has(identity(o)))
        .map((o) => `${rel(f)}: ${identity(o)}`),
    );
    assert.deepEqual(unused, []);
  });
});

describe("deploy/kubernetes: the base install", () => {
  const objects = built(INSTALLS.base);

  test("references resolve, selectors select the pods, ports exist", () => checkReferences(objects));

  test("the gateway pod: Envoy + extproc over the Unix socket, probes, draining, network policy", () => {
    const { policyFile, envoyFile } = checkGatewayPod(objects, { redisEgress: true });
    // extproc would start with this policy against this bootstrap (its own start-up check).
    loadPolicy(policyFile, { envoyConfigFile: envoyFile, env: secretEnv(objects) });
  });

  test("the policy ConfigMap keeps a stable name (hot reload); Envoy's and the script's are hashed (rollout)", () => {
    const volumes = named(ofKind(objects, "Deployment"), "llm-gateway").spec.template.spec.volumes as Node[];
    const configMapOf = (volume: string) => volumes.find((v) => v.name === volume)?.configMap?.name;
    assert.equal(configMapOf("policy"), "llm-gateway-policy");
    assert.match(configMapOf("envoy-config") ?? "", /^llm-gateway-envoy-[a-z0-9]{10}$/);
    assert.match(configMapOf("scripts") ?? "", /^llm-gateway-scripts-[a-z0-9]{10}$/);
    for (const name of ["policy", "envoy-config", "scripts"].map(configMapOf))
      assert.ok(
        ofKind(objects, "ConfigMap").some((c) => c.metadata.name === name),
        `no ConfigMap ${name}`,
      );
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

  test("the images: Envoy 1.40 and the extproc image built from the Dockerfile", () => {
    const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");
    assert.equal(containerNamed(deployment, "envoy").image, "envoyproxy/envoy:v1.40.0");
    assert.equal(containerNamed(deployment, "extproc").image, "llm-gateway-extproc:dev");
  });

  test("HPA, PDB and Service target the gateway", () => {
    const deployment = named(ofKind(objects, "Deployment"), "llm-gateway");
    const hpa = named(ofKind(objects, "HorizontalPodAutoscaler"), "llm-gateway");
    assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name);
    assert.equal(hpa.spec.metrics[0].resource.name, "cpu");
    const pdb = named(ofKind(objects, "PodDisruptionBudget"), "llm-gateway");
    assert.ok(selects(pdb.spec.selector, podLabels(deployment)));
    const service = named(ofKind(objects, "Service"), "llm-gateway");
    assert.deepEqual(
      (service.spec.ports as Node[]).map((p) => p.targetPort),
      ["http", "https"],
    );
  });
});

describe("deploy/kubernetes/overlays/redis: several replicas with a shared quota store", () => {
  const objects = built(INSTALLS.redis);

  test("references resolve, selectors select the pods, ports exist", () => checkReferences(objects));

  test("the gateway pod is the base's, with the Redis policy", () => {
    const { policyFile, envoyFile } = checkGatewayPod(objects, { redisEgress: true });
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
    const peers = (netpol.spec.ingress ?? []).flatMap((r: Node) => r.from ?? []);
    assert.ok(
      peers.length > 0 &&
        peers.every((p: Node) => p.podSelector && selects(p.podSelector, podLabels(gateway))),
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
  const objects = built(INSTALLS.istio);
  const filter = named(ofKind(objects, "EnvoyFilter"), "llm-gateway-ext-proc");
  const patches = (applyTo: string) => filter.spec.configPatches.filter((p: Node) => p.applyTo === applyTo);
  const patch = (applyTo: string) => {
    const [only, ...rest] = patches(applyTo);
    assert.ok(only && rest.length === 0, `exactly one ${applyTo} patch`);
    return only;
  };
  const value = (applyTo: string) => patch(applyTo).patch.value as Node;
  const source = envoySource();
  const gateway = named(ofKind(objects, "Gateway"), "llm-gateway");
  const vs = named(ofKind(objects, "VirtualService"), "llm-gateway");
  const host = vs.spec.hosts[0]!;

  test("references resolve, selectors select the pods, ports exist", () => checkReferences(objects));

  test("the EnvoyFilter targets the ingress gateway, in its namespace, gateway context only", () => {
    assert.deepEqual(filter.spec.workloadSelector.labels, { istio: "ingressgateway" });
    assert.equal(filter.metadata.namespace, "istio-system");
    assert.ok(filter.spec.configPatches.every((p: Node) => p.match.context === "GATEWAY"));
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
    const server = gateway.spec.servers.find((s: Node) => s.hosts.includes(host))!;
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
    const port = service.spec.ports.find((p: Node) => p.port === address.port_value);
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
    const fromGateway = (netpol.spec.ingress ?? []).find((r: Node) =>
      r.from?.some(
        (peer: Node) => peer.podSelector && selects(peer.podSelector, filter.spec.workloadSelector.labels),
      ),
    );
    assert.deepEqual(
      fromGateway?.ports?.map((p: Node) => p.port),
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
      const route = vs.spec.http.find((r: Node) => r.match?.[0]?.headers?.[routing.header]?.exact === pool);
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

      const rule = ofKind(objects, "DestinationRule").find((d) => d.spec.host === target.address)!;
      assert.ok(rule, `no DestinationRule for ${target.address}`);
      assert.equal(rule.metadata.namespace, filter.metadata.namespace, "in the gateway's namespace");
      const cluster = clusterNamed(source, clusterName)!;
      const outlier = cluster.outlier_detection;
      const breakers = cluster.circuit_breakers.thresholds[0];
      // Envoy balances by the scheduler's hint, else least-request; Istio has the fallback (no hint there).
      const [balancing] = cluster.load_balancing_policy.policies;
      assert.equal(balancing.typed_extension_config.name, "envoy.load_balancing_policies.override_host");
      const [fallback] = balancing.typed_extension_config.typed_config.fallback_policy.policies;
      assert.equal(fallback.typed_extension_config.name, "envoy.load_balancing_policies.least_request");
      assert.equal(rule.spec.trafficPolicy.loadBalancer.simple, "LEAST_REQUEST");
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
    const toEnvoyRoute = (r: Node): Node =>
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
    const pools = vs.spec.http.flatMap((r: Node) => r.route ?? []).map((r: Node) => r.destination);
    doc.static_resources.clusters = [
      value("CLUSTER"),
      ...pools.map((d: Node) => ({
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

describe("deploy/kubernetes/overlays/tracing: the base with traces to one collector", () => {
  const objects = built(INSTALLS.tracing);
  const { address, port } = OVERLAY_TRACING.collector;
  const envoyOf = (install: Node[]) =>
    yaml.load(
      ofKind(install, "ConfigMap").find((c) => c.metadata.name.startsWith("llm-gateway-envoy-"))!.data[
        "envoy.yaml"
      ],
    ) as Node;

  test("references resolve, selectors select the pods, ports exist", () => checkReferences(objects));

  test("its bootstrap is the base's through withEnvoyTracing (one source), and the real Envoy takes it", () => {
    const traced = envoyOf(objects);
    assert.deepEqual(traced, withEnvoyTracing(envoyOf(built(INSTALLS.base)), OVERLAY_TRACING));
    envoyValidate(withLocalFiles(traced), "overlay-tracing-envoy.yaml");
  });

  test("extproc exports to the same collector, which the NetworkPolicy lets the pods reach", () => {
    const extproc = containerNamed(named(ofKind(objects, "Deployment"), "llm-gateway"), "extproc");
    assert.equal(envOf(extproc, "EXTPROC_TRACES_ENDPOINT"), `http://${address}:${port}/v1/traces`);
    const netpol = named(ofKind(objects, "NetworkPolicy"), "llm-gateway");
    const namespace = address.split(".")[1];
    assert.ok(
      egressTo(netpol, port).some((r) =>
        r.to?.some(
          (peer: Node) => peer.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"] === namespace,
        ),
      ),
      `egress to ${namespace}:${port}`,
    );
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
  const base = built(INSTALLS.base);
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

  /** The services a pool's DNS name reaches: the one of that name, and those with it as a network alias. */
  const servicesAt = (address: string) =>
    Object.keys(services).filter(
      (name) => name === address || services[name]!.networks?.default?.aliases?.includes(address),
    );
  const policy = loadPolicy(path.join(ROOT, FILES.policyCompose), {
    envoyConfigFile: path.join(ROOT, FILES.envoyCompose),
    env: { POOL_B_API_KEY: env.POOL_B_API_KEY },
  });

  test("services: envoy, extproc and each pool's model servers (pool A's scheduled two)", () => {
    assert.deepEqual(
      Object.keys(services).sort(),
      ["envoy", "extproc", ...Object.values(COMPOSE.pools).flatMap((p) => servicesAt(p.address))].sort(),
    );
    assert.deepEqual(
      servicesAt(COMPOSE.pools[SAMPLE_SCHEDULING.pool]!.address),
      SAMPLE_SCHEDULING.servers.map((s) => s.name),
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

  test("Envoy runs the compose bootstrap; extproc checks the compose policy against the same file", () => {
    assert.equal(configPath, podEnvoy.args?.[podEnvoy.args.indexOf("--config-path") + 1]);
    assert.equal(repositoryPath(envoy, configPath), FILES.envoyCompose);
    assert.equal(env.EXTPROC_ENVOY_CONFIG, configPath);
    assert.equal(repositoryPath(extproc, env.EXTPROC_ENVOY_CONFIG), FILES.envoyCompose);
    // The policy loaded above: extproc would start with it against this bootstrap (its own start-up check).
    assert.equal(repositoryPath(extproc, env.EXTPROC_POLICY!), FILES.policyCompose);
    for (const file of [configPath, env.EXTPROC_POLICY!]) {
      for (const service of [envoy, extproc]) {
        const mount = mountAt(service, file);
        assert.ok(!mount || mount.readOnly, `${file}: mounted read-only`);
      }
    }
  });

  test("pool A: two servers of different speeds behind its DNS name, scheduled by every address of it", () => {
    const { pool, servers } = SAMPLE_SCHEDULING;
    const { address, port } = COMPOSE.pools[pool]!;
    // Envoy's cluster resolves the name to every server (STRICT_DNS), the scheduler reads the same addresses.
    assert.equal(clusterNamed(bootstrap, pool)!.type, "STRICT_DNS");
    const endpoints = policy.pools.get(pool)?.scheduling?.endpoints;
    assert.ok(endpoints?.kind === "dns", "scheduled, endpoints by DNS name");
    assert.deepEqual([endpoints.host, endpoints.port], [address, port]);
    for (const { name, capacity } of servers) {
      const command = services[name]!.command as string[];
      assert.deepEqual(JSON.parse(command[command.indexOf("--capacity") + 1]!), capacity, name);
    }
    assert.equal(new Set(servers.map((s) => s.capacity.speed)).size, servers.length, "different speeds");
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
    for (const { address } of Object.values(COMPOSE.pools))
      for (const server of servicesAt(address)) assert.ok(envoy.depends_on[server], server);
    for (const service of Object.values(services))
      assert.equal(service.network_mode, undefined, "the compose network");
  });

  test("stopping: drain.sh where the pod has it; stop_grace_period covers extproc's shutdown", () => {
    const hook = podEnvoy.lifecycle!.preStop!.exec!.command;
    const script = hook.find((arg: Node) => arg.endsWith("/drain.sh"))!;
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

  test("each pool's model servers: at the name its cluster names, on its port, with its models and key", () => {
    for (const [pool, { address, port }] of Object.entries(COMPOSE.pools)) {
      const endpoint = clusterNamed(bootstrap, pool)!.load_assignment.endpoints[0].lb_endpoints[0].endpoint;
      assert.deepEqual(endpoint.address.socket_address, { address, port_value: port });
      const npmStart = clusterNamed(envoySource(), pool)!.load_assignment.endpoints[0].lb_endpoints[0]
        .endpoint;
      assert.equal(port, npmStart.address.socket_address.port_value, "the port envoy/envoy.yaml gives it");
      const models = [...policy.models.values()]
        .filter((m) => m.pool.name === pool)
        .map((m) => m.upstreamModel);
      const authorization = policy.pools.get(pool)?.upstreamAuthorization;
      for (const name of servicesAt(address)) {
        const command = services[name]!.command as string[];
        const arg = (flag: string) => command[command.indexOf(flag) + 1];
        assert.equal(arg("--name"), name);
        assert.equal(Number(arg("--port")), port);
        assert.equal(arg("--host"), "0.0.0.0", "reachable on the compose network");
        assert.deepEqual(arg("--models")?.split(",").sort(), models.sort());
        assert.equal(command.includes("--api-key") ? `Bearer ${arg("--api-key")}` : undefined, authorization);
      }
    }
  });
});

describe("npm start's policy: the sample with pool A scheduled (SAMPLE_SCHEDULING)", () => {
  const source = read(FILES.policySource);
  test("reads pool A's endpoints from envoy/envoy.yaml's cluster, which extproc accepts; nothing else differs", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "scheduled-policy-"));
    const file = path.join(dir, "policy.yaml");
    writeFileSync(file, scheduledPolicy(source, "envoy"));
    const policy = loadPolicy(file, {
      envoyConfigFile: path.join(ROOT, FILES.envoySource),
      env: { POOL_B_API_KEY: "x" },
    });
    const scheduling = policy.pools.get(SAMPLE_SCHEDULING.pool)?.scheduling;
    assert.deepEqual(scheduling?.endpoints, { kind: "envoy" });
    assert.equal(scheduling?.intervalMs, SAMPLE_SCHEDULING.scheduling.intervalMs);
    const withoutScheduling = yaml.load(readFileSync(file, "utf8")) as Node;
    delete withoutScheduling.pools[SAMPLE_SCHEDULING.pool].scheduling;
    assert.deepEqual(withoutScheduling, yaml.load(source));
  });
  test("refuses a policy whose pool A is scheduled already", () => {
    const scheduled = scheduledPolicy(source, "envoy");
    assert.throws(() => scheduledPolicy(scheduled, "envoy"), /scheduled already/);
  });
});

describe("deploy/kubernetes/monitoring: scraping and alerting with the Prometheus Operator", () => {
  const objects = built(INSTALLS.monitoring);
  const pod = named(ofKind(built(INSTALLS.base), "Deployment"), "llm-gateway").spec.template;

  test("the PodMonitor selects the gateway pod and scrapes both containers under the rules' job names", () => {
    checkReferences(objects);
    const monitor = named(ofKind(objects, "PodMonitor"), "llm-gateway");
    assert.ok(selects(monitor.spec.selector, pod.metadata.labels ?? {}));
    const ports = new Map<string, string>(
      (pod.spec.containers as Node[]).flatMap((c) =>
        ((c.ports ?? []) as Node[]).map((p) => [p.name, c.name] as const),
      ),
    );
    const scraped = (monitor.spec.podMetricsEndpoints as Node[]).map((e) => ({
      container: ports.get(e.port),
      path: e.path,
      job: (e.relabelings as Node[] | undefined)?.find((r) => r.targetLabel === "job")?.replacement,
    }));
    assert.deepEqual(scraped, [
      { container: "envoy", path: POD.ops.metrics, job: JOBS.envoy },
      { container: "extproc", path: "/metrics", job: JOBS.extproc },
    ]);
  });

  test("the PrometheusRule holds exactly the rule groups of deploy/prometheus/alerts.yaml", () => {
    const rule = named(ofKind(objects, "PrometheusRule"), "llm-gateway");
    assert.deepEqual(rule.spec, yaml.load(read(OPS_FILES.alerts)));
  });
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
    for (const secret of OPERATOR_CREATES.secrets)
      assert.match(readme, new RegExp(`create secret tls ${secret}`));
    for (const cm of OPERATOR_CREATES.configMaps) assert.match(readme, new RegExp(`create configmap ${cm}`));
  });
});
