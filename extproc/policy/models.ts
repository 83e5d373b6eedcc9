import type { PolicyProblem } from "./error.js";
import type { PolicyDocument } from "./schema.js";
import type { Alias, Model, Pool } from "./types.js";

/** The policy's models, each with its pool resolved; a model on an unknown pool is left out. */
export function compileModels(
  doc: PolicyDocument,
  pools: ReadonlyMap<string, Pool>,
  problems: PolicyProblem[],
): Map<string, Model> {
  const models = new Map<string, Model>();
  for (const [modelName, spec] of Object.entries(doc.models)) {
    const pool = pools.get(spec.pool);
    if (!pool) {
      problems.push({ path: `models.${modelName}.pool`, message: `unknown pool "${spec.pool}"` });
      continue;
    }
    models.set(modelName, {
      name: modelName,
      pool,
      upstreamModel: spec.upstreamModel ?? modelName,
      ownedBy: spec.ownedBy ?? pool.name,
      environments: spec.environments && new Set(spec.environments),
      tokenizer: spec.tokenizer,
      defaultMaxTokens: spec.defaultMaxTokens,
      price: spec.price,
    });
  }
  return models;
}

/** The policy's aliases, each target resolved to its model. */
export function compileAliases(
  doc: PolicyDocument,
  models: ReadonlyMap<string, Model>,
  problems: PolicyProblem[],
): Map<string, Alias> {
  const aliases = new Map<string, Alias>();
  for (const [aliasName, targets] of Object.entries(doc.aliases)) {
    if (doc.models[aliasName]) {
      problems.push({ path: `aliases.${aliasName}`, message: "an alias cannot have the name of a model" });
      continue;
    }
    const resolved: Array<{ model: Model; weight: number }> = [];
    targets.forEach((target, i) => {
      const model = models.get(target.model);
      if (model) resolved.push({ model, weight: target.weight });
      else
        problems.push({
          path: `aliases.${aliasName}[${i}].model`,
          message: `unknown model "${target.model}"`,
        });
    });
    const totalWeight = resolved.reduce((sum, t) => sum + t.weight, 0);
    if (totalWeight <= 0)
      problems.push({ path: `aliases.${aliasName}`, message: "weights must add up to more than 0" });
    aliases.set(aliasName, { name: aliasName, targets: resolved, totalWeight });
  }
  return aliases;
}
