import { compileGuardrails } from "../guardrails/compile.js";
import { compilePii } from "../pii/compile.js";
import { compilePriorities } from "../scheduling/classes.js";
import type { ScopeNames } from "../scope/index.js";
import { checkEnvironments, environmentMatcher } from "./environments.js";
import type { PolicyProblem } from "./error.js";
import { compileAccess } from "./keys.js";
import { checkLimits } from "./limits.js";
import { compileAliases, compileModels } from "./models.js";
import { compilePools } from "./pools.js";
import type { PolicyDocument } from "./schema.js";
import { resolveSecret, sha256Hex } from "./secrets.js";
import type { Policy } from "./types.js";

/**
 * Resolves every cross-reference of a schema-valid policy document into a {@link Policy}, recording each
 * problem in `problems` (the policy returned is unusable when there are any). `text` is the file's content
 * (for the digest); `env` resolves `{ env }` secrets.
 */
export function compile(
  doc: PolicyDocument,
  file: string,
  text: string,
  env: NodeJS.ProcessEnv,
  problems: PolicyProblem[],
): Policy {
  const pools = compilePools(doc, env, problems);
  const models = compileModels(doc, pools, problems);
  const aliases = compileAliases(doc, models, problems);
  const { teamModels, keysBySha256 } = compileAccess(doc, problems);
  const names = scopeNames(doc);
  checkLimits(doc, names, problems);
  checkEnvironments(doc, problems);
  for (const [claim, team] of Object.entries(doc.jwt?.teams ?? {})) {
    if (!doc.teams[team]) problems.push({ path: `jwt.teams.${claim}`, message: `unknown team "${team}"` });
  }
  const { hmacKey } = doc.pii ?? {};
  const pii =
    doc.pii &&
    compilePii(
      doc.pii,
      hmacKey && (() => resolveSecret(hmacKey, env, "pii.hmacKey", problems)),
      names,
      problems,
    );
  const guardrails = compileGuardrails(doc.guardrails, names, problems);
  const priorities = compilePriorities(doc.priority, names, problems);

  return {
    file,
    digest: sha256Hex(text),
    loadedAtSeconds: Math.floor(Date.now() / 1000),
    pools,
    models,
    aliases,
    keysBySha256,
    limits: doc.limits,
    quota: doc.quota,
    environmentOf: environmentMatcher(doc.environments, doc.defaultEnvironment),
    jwt: doc.jwt,
    teamModels,
    pii,
    guardrails,
    priorities,
    currency: doc.pricing.currency,
    logPrompts: doc.audit.logPrompts,
  };
}

/** The names scopes may refer to: key ids, teams, served models and environments. */
function scopeNames(doc: PolicyDocument): ScopeNames {
  return {
    keys: new Set(doc.keys.map((k) => k.id)),
    teams: new Set(Object.keys(doc.teams)),
    models: new Set(Object.keys(doc.models)),
    environments: new Set(Object.keys(doc.environments)),
  };
}
