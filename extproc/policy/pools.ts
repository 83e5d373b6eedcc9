import { compileScheduling } from "../scheduling/compile.js";
import type { PolicyProblem } from "./error.js";
import type { PolicyDocument } from "./schema.js";
import { resolveSecret } from "./secrets.js";
import type { Pool } from "./types.js";

/** The policy's pools with their upstream credentials read; fallback lists are checked (see checkFallbacks). */
export function compilePools(
  doc: PolicyDocument,
  env: NodeJS.ProcessEnv,
  problems: PolicyProblem[],
): Map<string, Pool> {
  const pools = new Map<string, Pool>();
  for (const [poolName, spec] of Object.entries(doc.pools)) {
    const secret =
      spec.upstreamApiKey &&
      resolveSecret(spec.upstreamApiKey, env, `pools.${poolName}.upstreamApiKey`, problems);
    pools.set(poolName, {
      name: poolName,
      upstreamAuthorization: secret ? `Bearer ${secret}` : undefined,
      fallback: spec.fallback ?? [],
      apis: apiSupport(spec),
      scheduling:
        spec.scheduling &&
        compileScheduling(poolName, spec.scheduling, `pools.${poolName}.scheduling`, problems),
    });
  }
  checkFallbacks(doc, problems);
  return pools;
}

/** Fallback pools exist, are not chained, and take the same credential as the pool they stand in for. */
function checkFallbacks(doc: PolicyDocument, problems: PolicyProblem[]): void {
  for (const [poolName, spec] of Object.entries(doc.pools)) {
    for (const [i, fallback] of (spec.fallback ?? []).entries()) {
      const path = `pools.${poolName}.fallback[${i}]`;
      const target = doc.pools[fallback];
      if (!target) problems.push({ path, message: `unknown pool "${fallback}"` });
      else if (fallback === poolName) problems.push({ path, message: "a pool cannot fall back to itself" });
      else if (spec.fallback!.indexOf(fallback) !== i)
        problems.push({ path, message: `"${fallback}" is listed twice` });
      else if (JSON.stringify(apiSupport(target)) !== JSON.stringify(apiSupport(spec)))
        problems.push({
          path,
          message: `"${fallback}" speaks the agent APIs differently (apis): Envoy picks the fallback after extproc has shaped the request for this pool`,
        });
      else if (target.fallback)
        problems.push({
          path,
          message: `"${fallback}" has fallbacks of its own; Envoy cannot nest aggregate clusters`,
        });
      else if (JSON.stringify(target.upstreamApiKey) !== JSON.stringify(spec.upstreamApiKey))
        problems.push({
          path,
          message: `"${fallback}" takes a different upstreamApiKey: Envoy picks the fallback after extproc has set the credential, so a pool and its fallbacks must share one`,
        });
    }
  }
}

/** A pool's agent API support with the defaults applied (vLLM, the common case, serves both natively). */
function apiSupport(spec: PolicyDocument["pools"][string]): Pool["apis"] {
  return { responses: spec.apis?.responses ?? "native", messages: spec.apis?.messages ?? "native" };
}
