import type { Identity } from "../auth/index.js";
import { GatewayError } from "../errors/index.js";
import type { Model, Policy } from "../policy/index.js";

/**
 * Authorises `requested` (a model or alias name) for `identity` and picks the model that will serve it.
 * Unknown names are 404, known ones the key may not use are 403. Aliases pick a target by weight
 * with `random` ∈ [0, 1).
 */
export function resolveModel(
  policy: Policy,
  identity: Identity,
  requested: string,
  random: () => number,
): Model {
  const model = policy.models.get(requested);
  const alias = model ? undefined : policy.aliases.get(requested);
  if (!model && !alias) {
    throw new GatewayError("model_not_found", `The model '${requested}' does not exist.`, "model");
  }
  if (!identity.allowedModels.has(requested)) {
    throw new GatewayError(
      "model_not_allowed",
      `API key ${identity.keyId} (team ${identity.team}) is not allowed to use model '${requested}'.`,
      "model",
    );
  }
  if (model) return model;
  // An alias with weights adding up to > 0 is guaranteed by policy validation.
  let point = random() * alias!.totalWeight;
  for (const target of alias!.targets) {
    point -= target.weight;
    if (point < 0) return target.model;
  }
  return alias!.targets.findLast((t) => t.weight > 0)!.model;
}

/** Names of the models and aliases `identity` may use, sorted, for /v1/models. */
export function listAllowedModels(policy: Policy, identity: Identity): string[] {
  return [...identity.allowedModels].filter((n) => policy.models.has(n) || policy.aliases.has(n)).sort();
}
