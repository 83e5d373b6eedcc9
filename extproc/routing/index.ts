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
  if ((!model && !alias) || (model && !availableIn(model, identity.environment))) {
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
  // Only the alias's targets available in this environment take part in the draw.
  const targets = alias!.targets.filter((t) => t.weight > 0 && availableIn(t.model, identity.environment));
  if (targets.length === 0)
    throw new GatewayError("model_not_found", `The model '${requested}' does not exist.`, "model");
  let point = random() * targets.reduce((sum, t) => sum + t.weight, 0);
  for (const target of targets) {
    point -= target.weight;
    if (point < 0) return target.model;
  }
  return targets.at(-1)!.model;
}

/** Whether `model` may be used in `environment` (models without `environments` are everywhere). */
function availableIn(model: Model, environment: string | undefined): boolean {
  return !model.environments || (environment !== undefined && model.environments.has(environment));
}

/** Names of the models and aliases `identity` may use, sorted, for /v1/models. */
export function listAllowedModels(policy: Policy, identity: Identity): string[] {
  const env = identity.environment;
  return [...identity.allowedModels]
    .filter((n) => {
      const model = policy.models.get(n);
      if (model) return availableIn(model, env);
      return policy.aliases.get(n)?.targets.some((t) => t.weight > 0 && availableIn(t.model, env)) ?? false;
    })
    .sort();
}
