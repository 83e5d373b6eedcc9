import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { loadPolicy, parsePolicy, PolicyError, sha256Hex } from "./index.js";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const SAMPLE = path.join(ROOT, "deploy/policy.yaml");
const ENVOY = path.join(ROOT, "envoy/envoy.yaml");
const ENV = { POOL_B_API_KEY: "secret-b" };

const minimal = (extra = "") => `
version: 1
pools: { pool-a: {} }
models: { m1: { pool: pool-a } }
teams: { t: { models: [m1] } }
keys:
  - { id: k1, team: t, sha256: ${sha256Hex("key-1")} }
${extra}`;

function problemsOf(text: string): string[] {
  try {
    parsePolicy(text, "p.yaml", { env: ENV });
  } catch (err) {
    assert.ok(err instanceof PolicyError);
    return err.message.split("\n");
  }
  assert.fail("policy was accepted");
}

describe("policy", () => {
  it("loads the sample policy and checks it against the Envoy config", () => {
    const policy = loadPolicy(SAMPLE, { envoyConfigFile: ENVOY, env: ENV });
    assert.deepEqual([...policy.pools.keys()], ["pool-a", "pool-b"]);
    assert.equal(policy.pools.get("pool-b")!.upstreamAuthorization, "Bearer secret-b");
    assert.equal(policy.pools.get("pool-a")!.upstreamAuthorization, undefined);
    const research = policy.keysBySha256.get(sha256Hex("sk-demo-research"))!;
    assert.equal(research.team, "research");
    assert.ok(research.allowedModels.has("chat-default") && research.allowedModels.has("bge-small-en-v1.5"));
    const support = policy.keysBySha256.get(sha256Hex("sk-demo-support"))!;
    assert.deepEqual([...support.allowedModels], ["chat-default"]);
    assert.equal(policy.aliases.get("chat-default")!.totalWeight, 100);
    assert.equal(
      policy.keysBySha256.get(sha256Hex("sk-demo-expired"))!.expiresAt,
      Date.parse("2025-01-01T00:00:00Z"),
    );
  });

  it("names the file, the path and the problem for schema errors", () => {
    const problems = problemsOf(minimal().replace(`sha256: ${sha256Hex("key-1")}`, "sha256: ABC"));
    assert.deepEqual(problems, [
      "p.yaml: keys[0].sha256: must be 64 lowercase hex characters (SHA-256 of the key)",
    ]);
    assert.deepEqual(problemsOf(minimal().replace("version: 1", "version: 2")), [
      "p.yaml: version: Invalid input: expected 1",
    ]);
  });

  it("reports every broken cross-reference", () => {
    const text = minimal(`
aliases:
  a1: [{ model: nope, weight: 1 }]
  m1: [{ model: m1, weight: 1 }]
`)
      .replace("models: { m1: { pool: pool-a } }", "models: { m1: { pool: pool-a }, m2: { pool: pool-x } }")
      .replace("teams: { t: { models: [m1] } }", "teams: { t: { models: [m1, ghost] } }")
      .replace("team: t,", "team: t2,");
    assert.deepEqual(problemsOf(text), [
      'p.yaml: models.m2.pool: unknown pool "pool-x"',
      'p.yaml: aliases.a1[0].model: unknown model "nope"',
      "p.yaml: aliases.a1: weights must add up to more than 0",
      "p.yaml: aliases.m1: an alias cannot have the name of a model",
      'p.yaml: teams.t.models[1]: unknown model or alias "ghost"',
      'p.yaml: keys[0].team: unknown team "t2"',
    ]);
  });

  it("refuses key models outside the team's, duplicate ids and unset credentials", () => {
    const text = minimal(`  - { id: k1, team: t, sha256: ${sha256Hex("key-2")}, models: [m2] }`)
      .replace("models: { m1: { pool: pool-a } }", "models: { m1: { pool: pool-a }, m2: { pool: pool-a } }")
      .replace("pools: { pool-a: {} }", "pools: { pool-a: { upstreamApiKey: { env: MISSING_VAR } } }");
    assert.deepEqual(problemsOf(text), [
      "p.yaml: pools.pool-a.upstreamApiKey: environment variable MISSING_VAR is not set",
      'p.yaml: keys[1].id: duplicate key id "k1"',
      'p.yaml: keys[1].models[0]: "m2" is not allowed for team "t"',
    ]);
  });

  it("checks limits: scopes, wildcards, prices for budgets, a cap set, the Redis address", () => {
    const text = minimal(`
limits:
  - { id: per-team, scope: { team: "*" }, tokensPerDay: 1000 }
  - { id: per-team, scope: { key: nobody, model: m9 }, requestsPerMinute: 1 }
  - { id: spend, scope: { team: t }, budgetPerMonth: 5 }
  - { id: nothing, scope: { team: t } }
quota: { store: redis }
`);
    assert.deepEqual(problemsOf(text), [
      'p.yaml: limits[1].id: duplicate limit id "per-team"',
      'p.yaml: limits[1].scope.key: unknown key id "nobody"',
      'p.yaml: limits[1].scope.model: unknown model "m9" (limits count served models, not aliases)',
      'p.yaml: limits[2].budgetPerMonth: model "m1" has no price, so spend on it cannot be counted',
      "p.yaml: limits[3]: sets no limit",
      "p.yaml: quota.redis: store redis needs redis.url, redis.sentinels or redis.cluster",
    ]);
    const ok = parsePolicy(
      minimal("limits: [{ id: l, scope: { team: '*', model: m1 }, requestsPerMinute: 5 }]"),
      "p.yaml",
    );
    assert.deepEqual(ok.limits[0]!.scope, { team: "*", model: "m1" });
    assert.equal(ok.quota.store, "memory");
  });

  it("reports YAML syntax errors with their position", () => {
    const [problem] = problemsOf("version: 1\npools: [\n");
    assert.match(problem!, /^p\.yaml: invalid YAML: .*\(3:1\)/s);
  });

  it("refuses pools Envoy does not route", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "policy-test-"));
    const file = path.join(dir, "p.yaml");
    writeFileSync(file, minimal().replace("pools: { pool-a: {} }", "pools: { pool-a: {}, pool-z: {} }"));
    assert.throws(
      () => loadPolicy(file, { envoyConfigFile: ENVOY, env: ENV }),
      (err: Error) =>
        err.message === `${file}: pools.pool-z: ${ENVOY}: no route matches x-gateway-pool: pool-z`,
    );
  });

  describe("fallback pools", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "policy-fallback-"));
    const endpoint = (pool: string | undefined, port: number) =>
      `{ ${pool ? `metadata: { filter_metadata: { llm_gateway: { pool: ${pool} } } }, ` : ""}endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }`;
    const listener = (name: string, routes: string) => `
    - name: ${name}
      filter_chains:
        - filters:
            - name: hcm
              typed_config:
                route_config:
                  virtual_hosts:
                    - name: v
                      routes:${routes}`;
    /** pool-a's route; by default as docs/fallback-pools.md says: to the aggregate, retry on the next pool. */
    const poolARoute = (o: { cluster?: string; retry?: boolean; header?: boolean } = {}) => `
                        - match: { prefix: /, headers: [{ name: x-gateway-pool, string_match: { exact: pool-a } }] }
                          ${o.header === false ? "" : 'response_headers_to_add: [{ header: { key: x-gateway-served-pool, value: "%UPSTREAM_METADATA(llm_gateway:pool)%" }, append_action: OVERWRITE_IF_EXISTS_OR_ADD }]'}
                          route:
                            cluster: ${o.cluster ?? "pool-a-failover"}
                            retry_policy:
                              retry_on: connect-failure
                              ${o.retry === false ? "" : "retry_priority: { name: envoy.retry_priorities.previous_priorities }"}`;
    /** A second listener (TLS, say) whose pool-a route goes to `cluster` without retry_priority. */
    const secondListener = (cluster: string) => listener("l2", poolARoute({ cluster, retry: false }));
    /** The smallest bootstrap with pool-a failing over to pool-c. */
    const envoy = (
      o: { members?: string; retry?: boolean; header?: boolean; metadataA?: string; second?: string } = {},
    ) => `
static_resources:
  listeners:${o.second ?? ""}${listener("l", poolARoute(o))}
                        - match: { prefix: /, headers: [{ name: x-gateway-pool, string_match: { exact: pool-c } }] }
                          route: { cluster: pool-c }
  clusters:
    - name: pool-a-failover
      cluster_type: { name: envoy.clusters.aggregate, typed_config: { clusters: [${o.members ?? "pool-a, pool-c"}] } }
    - name: pool-a
      load_assignment: { endpoints: [{ lb_endpoints: [${endpoint(o.metadataA ?? "pool-a", 1)}, ${endpoint(o.metadataA ?? "pool-a", 2)}] }] }
    - name: pool-c
      load_assignment: { endpoints: [{ lb_endpoints: [${endpoint("pool-c", 3)}] }] }
`;
    const load = (pools: string, envoyYaml: string) => {
      const file = path.join(dir, "p.yaml");
      const envoyConfigFile = path.join(dir, "envoy.yaml");
      writeFileSync(file, minimal().replace("pools: { pool-a: {} }", `pools: ${pools}`));
      writeFileSync(envoyConfigFile, envoyYaml);
      try {
        return loadPolicy(file, { envoyConfigFile, env: ENV });
      } catch (err) {
        assert.ok(err instanceof PolicyError);
        return err.problems.map(
          (p) =>
            `${p.path}: ${p.message.replace(`${envoyConfigFile}: `, "").replace(envoyConfigFile, "ENVOY")}`,
        );
      }
    };
    const FALLBACK = "{ pool-a: { fallback: [pool-c] }, pool-c: {} }";

    it("accepts a pool whose route fails over to its fallback pool", () => {
      const policy = load(FALLBACK, envoy());
      assert.ok(!Array.isArray(policy), String(policy));
      assert.deepEqual(policy.pools.get("pool-a")!.fallback, ["pool-c"]);
      assert.deepEqual(policy.pools.get("pool-c")!.fallback, []);
    });

    it("refuses fallbacks that are unknown, itself, repeated, chained or take another credential", () => {
      const pools = `{
        pool-a: { fallback: [pool-x, pool-a, pool-c, pool-c, pool-d] },
        pool-c: { upstreamApiKey: { env: POOL_B_API_KEY } },
        pool-d: { fallback: [pool-c] } }`;
      assert.deepEqual(
        problemsOf(minimal().replace("pools: { pool-a: {} }", `pools: ${pools}`)).slice(0, 5),
        [
          'p.yaml: pools.pool-a.fallback[0]: unknown pool "pool-x"',
          "p.yaml: pools.pool-a.fallback[1]: a pool cannot fall back to itself",
          'p.yaml: pools.pool-a.fallback[2]: "pool-c" takes a different upstreamApiKey: Envoy picks the fallback after extproc has set the credential, so a pool and its fallbacks must share one',
          'p.yaml: pools.pool-a.fallback[3]: "pool-c" is listed twice',
          'p.yaml: pools.pool-a.fallback[4]: "pool-d" has fallbacks of its own; Envoy cannot nest aggregate clusters',
        ],
      );
    });

    it("refuses an Envoy config that does not fail over the way the policy says", () => {
      assert.deepEqual(load(FALLBACK, envoy({ members: "pool-c, pool-a" })), [
        'pools.pool-a: pool-a falls back to pool-c: its route must go to an aggregate cluster of [<its own cluster>, pool-c], not "pool-a-failover"',
      ]);
      assert.deepEqual(load(FALLBACK, envoy({ retry: false, header: false, metadataA: "pool-b" })), [
        "pools.pool-a: the route for pool-a needs retry_priority envoy.retry_priorities.previous_priorities, or requests fail until health checks mark the pool down",
        'pools.pool-a: the route for pool-a must set the response header x-gateway-served-pool: "%UPSTREAM_METADATA(llm_gateway:pool)%" (append_action: OVERWRITE_IF_EXISTS_OR_ADD) so the audit names the pool that answered',
        'pools.pool-a: every endpoint of cluster "pool-a" needs metadata filter_metadata.llm_gateway.pool: pool-a',
      ]);
      // Every listener's route must fail over the same way (here the first one lacks the retry priority).
      assert.deepEqual(load(FALLBACK, envoy({ second: secondListener("pool-a-failover") })), [
        "pools.pool-a: the route for pool-a needs retry_priority envoy.retry_priorities.previous_priorities, or requests fail until health checks mark the pool down",
      ]);
      assert.deepEqual(load(FALLBACK, envoy({ second: secondListener("pool-a") })), [
        ": cannot check pools against Envoy config listeners route x-gateway-pool: pool-a to different clusters (pool-a, pool-a-failover)",
      ]);
      assert.deepEqual(load("{ pool-a: {}, pool-c: {} }", envoy()), [
        'pools.pool-a: pool-a is routed to aggregate cluster "pool-a-failover" but has no fallback in the policy',
      ]);
    });
  });

  describe("scheduling", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "policy-scheduling-"));
    const load = (scheduling: string, envoyYaml: string | undefined) => {
      const file = path.join(dir, "p.yaml");
      writeFileSync(
        file,
        minimal().replace("pools: { pool-a: {} }", `pools: { pool-a: { scheduling: ${scheduling} } }`),
      );
      const envoyConfigFile = envoyYaml === undefined ? undefined : path.join(dir, "envoy.yaml");
      if (envoyConfigFile) writeFileSync(envoyConfigFile, envoyYaml!);
      try {
        return loadPolicy(file, { envoyConfigFile, env: ENV });
      } catch (err) {
        assert.ok(err instanceof PolicyError);
        return err.problems.map((p) => `${p.path}: ${p.message.replace(`${envoyConfigFile}: `, "")}`);
      }
    };
    const envoyYaml = readFileSync(ENVOY, "utf8");

    it("compiles a pool's scheduling with vLLM's names and defaults, its endpoints from Envoy's cluster", () => {
      const policy = load("{}", envoyYaml);
      assert.ok(!Array.isArray(policy), String(policy));
      assert.deepEqual(policy.pools.get("pool-a")!.scheduling, {
        pool: "pool-a",
        metricNames: {
          waiting: "vllm:num_requests_waiting",
          running: "vllm:num_requests_running",
          kvUsage: "vllm:kv_cache_usage_perc",
          completions: "vllm:request_success_total",
        },
        metricsPath: "/metrics",
        intervalMs: 100,
        timeoutMs: 80,
        staleAfterMs: 300,
        speedWindowMs: 10_000,
        endpoints: { kind: "envoy" },
        affinity: { prefixChars: 1024, queueMargin: 2 },
        maxSequences: undefined,
        queue: undefined,
      });
      assert.equal(policy.pools.get("pool-a")!.scheduling!.pool, "pool-a");
    });

    it("refuses a cluster without the override-host policy, and Envoy endpoints without a bootstrap", () => {
      const plain = envoyYaml
        .replace(
          /load_balancing_policy: &pool_load_balancing[\s\S]*?LeastRequest\n/,
          "lb_policy: LEAST_REQUEST\n",
        )
        .replace("load_balancing_policy: *pool_load_balancing", "lb_policy: LEAST_REQUEST");
      assert.notEqual(plain, envoyYaml);
      assert.deepEqual(load("{}", plain), [
        "pools.pool-a: pool-a has scheduling: its cluster needs load_balancing_policy envoy.load_balancing_policies.override_host reading the header x-gateway-endpoint (with a least-request fallback_policy), or the endpoint hint is ignored",
      ]);
      assert.deepEqual(load("{}", undefined), [
        "pools.pool-a.scheduling.endpoints: endpoints come from the Envoy bootstrap, but none is configured (EXTPROC_ENVOY_CONFIG): set it, or list the endpoints (static) or a DNS name (dns)",
      ]);
      assert.ok(
        !Array.isArray(load('{ endpoints: { static: [10.0.0.5:8000, "[fd00::5]:8000"] } }', undefined)),
      );
      const bad = load(
        "{ endpoints: { static: [vllm:8000] }, intervalMs: 5, metricNames: { waiting: 'a b' } }",
        undefined,
      );
      assert.ok(Array.isArray(bad) && bad.length === 3, String(bad));
    });

    it("refuses Envoy endpoints given by host name: override-host would never match a hint", () => {
      const named = envoyYaml.replace(
        "socket_address: { address: 127.0.0.1, port_value: 8000 }",
        "socket_address: { address: vllm-a.models, port_value: 8000 }",
      );
      assert.notEqual(named, envoyYaml);
      const problems = load("{}", named);
      assert.ok(Array.isArray(problems) && problems.length === 1, String(problems));
      assert.match(problems[0]!, /names hosts, not IP addresses \(vllm-a\.models:8000\)/);
      assert.ok(!Array.isArray(load("{ endpoints: { dns: vllm-a.models, port: 8000 } }", named)));
    });
  });
});
