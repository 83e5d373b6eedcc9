import { ANY, checkScope, type ScopeNames } from "../scope/index.js";
import type { PolicyProblem } from "./error.js";
import type { PolicyDocument } from "./schema.js";

/**
 * Limit ids are unique, scopes name what the policy defines, budgets count only priced models, every limit
 * sets a cap, and a Redis store says where Redis is.
 */
export function checkLimits(doc: PolicyDocument, names: ScopeNames, problems: PolicyProblem[]): void {
  const seen = new Set<string>();
  doc.limits.forEach((limit, i) => {
    const path = `limits[${i}]`;
    if (seen.has(limit.id))
      problems.push({ path: `${path}.id`, message: `duplicate limit id "${limit.id}"` });
    seen.add(limit.id);
    checkScope(limit.scope, names, `${path}.scope`, problems, " (limits count served models, not aliases)");
    const { model } = limit.scope;
    if (limit.budgetPerMonth !== undefined) {
      const models = model === undefined || model === ANY ? Object.keys(doc.models) : [model];
      for (const m of models) {
        if (doc.models[m] && !doc.models[m].price) {
          problems.push({
            path: `${path}.budgetPerMonth`,
            message: `model "${m}" has no price, so spend on it cannot be counted`,
          });
        }
      }
    }
    const caps = [
      limit.requestsPerMinute,
      limit.tokensPerMinute,
      limit.tokensPerDay,
      limit.tokensPerMonth,
      limit.concurrentRequests,
      limit.budgetPerMonth,
    ];
    if (caps.every((c) => c === undefined)) problems.push({ path, message: "sets no limit" });
  });
  const redis = doc.quota.redis;
  if (doc.quota.store === "redis" && !redis?.url && !redis?.sentinels && !redis?.cluster) {
    problems.push({
      path: "quota.redis",
      message: "store redis needs redis.url, redis.sentinels or redis.cluster",
    });
  }
}
