/**
 * The deployments' copies of the sample policy deploy/policy.yaml: as is for the base and Istio installs
 * (kustomize reads files only below its own folder), with its quota section switched to Redis for the
 * Redis overlay, and with the sample stack's scheduled pool switched on for docker-compose.yml (and, written
 * at start, for `npm start`).
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import * as yaml from "js-yaml";
import { FILES } from "./files.js";
import { COMPOSE } from "./pod.js";

/** The quota section the Redis overlay's policy gets (deploy/kubernetes/overlays/redis). */
export const REDIS_QUOTA = {
  store: "redis",
  redis: { url: "redis://llm-gateway-redis:6379" },
  onStoreFailure: "fail-closed",
  replicas: 3,
} as const;

const policyHeader = (
  what: string,
  yours = "replace this file through a kustomize overlay (see deploy/README.md)",
) => `# GENERATED from deploy/policy.yaml by \`npm run render:deploy\`: do not edit.${what ? ` ${what}` : ""}
# For your own deployment, ${yours}.
`;

/** deploy/kubernetes/base/policy.yaml (or deploy/istio/policy.yaml) as it should be committed, unformatted. */
export function kubernetesPolicy(root: string): string {
  return policyHeader("") + readFileSync(path.join(root, FILES.policySource), "utf8");
}

/**
 * The Redis overlay's policy, unformatted: deploy/policy.yaml with its top-level `quota` section (and the
 * comment lines right above it) replaced as text, so every other comment stays; the result is checked
 * structurally.
 */
export function redisPolicy(root: string): string {
  const source = readFileSync(path.join(root, FILES.policySource), "utf8");
  const lines = source.split("\n");
  const start = lines.findIndex((line) => /^quota:/.test(line));
  if (start < 0) throw new Error(`${FILES.policySource} has no top-level quota section`);
  let end = start + 1;
  while (end < lines.length && /^\s+\S/.test(lines[end]!)) end++;
  let from = start;
  while (from > 0 && lines[from - 1]!.startsWith("#")) from--;
  const block = [
    "# Several extproc replicas share exact counts through Redis (the llm-gateway-redis Service of this",
    "# overlay). replicas only matters with onStoreFailure: local, where each replica admits against",
    "# limit / replicas while Redis is unreachable; fail-closed answers 503 instead.",
    `quota:`,
    `  store: ${REDIS_QUOTA.store}`,
    `  redis: { url: "${REDIS_QUOTA.redis.url}" }`,
    `  onStoreFailure: ${REDIS_QUOTA.onStoreFailure}`,
    `  replicas: ${REDIS_QUOTA.replicas}`,
  ];
  const text = [...lines.slice(0, from), ...block, ...lines.slice(end)].join("\n");
  const expected = { ...(yaml.load(source) as object), quota: REDIS_QUOTA };
  if (!isDeepStrictEqual(yaml.load(text), expected)) {
    throw new Error(`rendering ${FILES.policyRedis}: replacing the quota section changed something else`);
  }
  return policyHeader("Only `quota` differs.") + text;
}

/**
 * The sample stack's scheduled pool (`npm start`, docker-compose.yml; docs/scheduling.md): pool A is two
 * capacity-modelled demo servers, one twice as fast, and extproc picks between them by their vLLM /metrics.
 * Both serve 4 sequences at a time, at 20 ms per output token at speed 1 (the other demo servers' delay).
 */
export const SAMPLE_SCHEDULING = {
  pool: "pool-a",
  /** The pool's demo servers: its own (the cluster's first endpoint) and a second, faster one (capacity.ts). */
  servers: [
    { name: "pool-a", capacity: { maxSequences: 4, decodeMsPerToken: 20, speed: 1 } },
    { name: "pool-a-fast", capacity: { maxSequences: 4, decodeMsPerToken: 20, speed: 2 } },
  ],
  /** The pool's `scheduling` section but for where its endpoints come from. */
  scheduling: {
    server: "vllm",
    intervalMs: 100,
    maxSequences: 4,
    affinity: { prefixChars: 1024, queueMargin: 2 },
    // The two servers' sequences: the servers never queue, the gateway's queue orders by class and team.
    queue: { maxInFlight: 8, maxDepth: 64, maxWaitMs: 10000 },
  },
} as const;

/** Where the scheduled pool's endpoints come from: `envoy` (`npm start`) or a DNS name (compose). */
export type SampleEndpoints = "envoy" | { readonly dns: string; readonly port: number };

/**
 * deploy/policy.yaml's text (`source`) with {@link SAMPLE_SCHEDULING}'s pool scheduled, its endpoints from
 * `endpoints`, unformatted: a `scheduling` block appended to the pool's as text, so every comment stays; the
 * result is checked structurally.
 */
export function scheduledPolicy(source: string, endpoints: SampleEndpoints): string {
  const { pool } = SAMPLE_SCHEDULING;
  const expected = yaml.load(source) as { pools: Record<string, { scheduling?: unknown }> };
  if (expected.pools[pool]?.scheduling) throw new Error(`${pool} is scheduled already: leave that to this`);
  const lines = source.split("\n");
  const start = lines.findIndex((line) => line === `  ${pool}:`);
  if (start < 0) throw new Error(`the policy has no pool ${pool} (two-space indented under pools)`);
  // The pool's block: every line after it that is blank or indented deeper, but blank lines at its end.
  let end = start + 1;
  while (end < lines.length && (lines[end]!.trim() === "" || /^ {3,}\S/.test(lines[end]!))) end++;
  while (lines[end - 1]!.trim() === "") end--;
  const scheduling = { ...SAMPLE_SCHEDULING.scheduling, endpoints };
  const block = [
    "    # The sample stack's two servers of different speeds (SAMPLE_SCHEDULING, deploy/render/policy.ts):",
    "    scheduling:",
    ...yaml
      .dump(scheduling, { flowLevel: 1 })
      .trimEnd()
      .split("\n")
      .map((line) => `      ${line}`),
  ];
  const text = [...lines.slice(0, end), ...block, ...lines.slice(end)].join("\n");
  expected.pools[pool] = { ...expected.pools[pool], scheduling };
  if (!isDeepStrictEqual(yaml.load(text), expected)) {
    throw new Error(`scheduling ${pool}: appending its scheduling block changed something else`);
  }
  return text;
}

/** docker-compose.yml's policy, unformatted: the sample's, pool A's servers found by their compose DNS name. */
export function composePolicy(root: string): string {
  const { address, port } = COMPOSE.pools[SAMPLE_SCHEDULING.pool]!;
  return (
    policyHeader(
      `Only pools.${SAMPLE_SCHEDULING.pool}.scheduling differs.`,
      "mount your own at EXTPROC_POLICY",
    ) + scheduledPolicy(readFileSync(path.join(root, FILES.policySource), "utf8"), { dns: address, port })
  );
}
