/**
 * The deployments' copies of the sample policy deploy/policy.yaml: as is for the base and Istio installs
 * (kustomize reads files only below its own folder), and with its quota section switched to Redis for the
 * Redis overlay.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { isDeepStrictEqual } from "node:util";
import * as yaml from "js-yaml";
import { FILES } from "./files.js";

/** The quota section the Redis overlay's policy gets (deploy/kubernetes/overlays/redis). */
export const REDIS_QUOTA = {
  store: "redis",
  redis: { url: "redis://llm-gateway-redis:6379" },
  onStoreFailure: "fail-closed",
  replicas: 3,
} as const;

const policyHeader = (
  what: string,
) => `# GENERATED from deploy/policy.yaml by \`npm run render:deploy\`: do not edit.${what ? ` ${what}` : ""}
# For your own deployment, replace this file through a kustomize overlay (see deploy/README.md).
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
