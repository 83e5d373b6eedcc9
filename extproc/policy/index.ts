import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import * as yaml from "js-yaml";
import type { z } from "zod";
import {
  knownEntities,
  requiredLiteral,
  Scanner,
  unsafeRegexReason,
  type PiiConfig,
  type ScopeFilter,
} from "../pii/index.js";
import { DENY_PATTERN_FLAGS, type DenyPattern } from "../guardrails/scan.js";
import type { EncodingName } from "../tokens/count.js";
import {
  policySchema,
  type JwtSettings,
  type LimitDocument,
  type PolicyDocument,
  type QuotaSettings,
  type SecretRef,
} from "./schema.js";
import { SERVED_POOL_FORMAT, SERVED_POOL_HEADER } from "../envoy/headers.js";
import { readEnvoyRouting, type EnvoyRouting } from "./envoy-routing.js";

/** A model server pool: one Envoy cluster, selected by extproc through the routing header. */
export interface Pool {
  readonly name: string;
  /** `Authorization` value to send upstream, or undefined to send none. */
  readonly upstreamAuthorization: string | undefined;
  /** Pools Envoy fails over to, in order, when this one has no healthy host. */
  readonly fallback: readonly string[];
}

/** A model as clients name it, and where it is served. */
export interface Model {
  readonly name: string;
  readonly pool: Pool;
  /** Name written into the forwarded body's `model` field. */
  readonly upstreamModel: string;
  readonly ownedBy: string;
  /** Environments where the model may be used; undefined: all. */
  readonly environments: ReadonlySet<string> | undefined;
  readonly tokenizer: EncodingName;
  /** Completion tokens reserved when a request sets no max_tokens. */
  readonly defaultMaxTokens: number;
  /** Price per token in millionths of the currency (= price per million tokens), if priced. */
  readonly price: { readonly input: number; readonly output: number } | undefined;
}

/** A guardrail: input caps, deny patterns and the prompt-injection tripwire, for a scope. */
export interface Guardrail {
  readonly scope: ScopeFilter;
  readonly maxInputChars: number | undefined;
  readonly maxInputTokens: number | undefined;
  readonly denyPatterns: readonly DenyPattern[];
  readonly promptInjection: { readonly threshold: number; readonly action: "block" | "log" } | undefined;
}

/** A limit rule: which requests it counts, and its caps. See docs/quotas.md. */
export type LimitRule = LimitDocument;

/** A public name that resolves to one of several models by weight (canary, A/B). */
export interface Alias {
  readonly name: string;
  readonly targets: ReadonlyArray<{ readonly model: Model; readonly weight: number }>;
  readonly totalWeight: number;
}

/** An API key, known only by its hash. */
export interface ApiKey {
  readonly id: string;
  readonly team: string;
  /** Model and alias names this key may request. */
  readonly allowedModels: ReadonlySet<string>;
  /** Epoch milliseconds before which the key is refused, if any. */
  readonly notBefore: number | undefined;
  /** Epoch milliseconds after which the key is refused, if any. */
  readonly expiresAt: number | undefined;
  readonly revoked: boolean;
}

/** A validated policy with every cross-reference resolved, ready for lookups on the hot path. */
export interface Policy {
  readonly file: string;
  /** SHA-256 of the policy file's bytes, to tell which policy made a decision. */
  readonly digest: string;
  /** Unix seconds at load; reported as `created` in /v1/models. */
  readonly loadedAtSeconds: number;
  readonly pools: ReadonlyMap<string, Pool>;
  readonly models: ReadonlyMap<string, Model>;
  readonly aliases: ReadonlyMap<string, Alias>;
  readonly keysBySha256: ReadonlyMap<string, ApiKey>;
  readonly limits: readonly LimitRule[];
  readonly quota: QuotaSettings;
  /** The environment a request arrived in, from its host (`:authority` without the port); undefined if none matches. */
  /**
   * The environment a request arriving on `host` belongs to: undefined when the policy defines none; null
   * when the host matches none and there is no `defaultEnvironment` (such a request is refused).
   */
  readonly environmentOf: (host: string) => string | null | undefined;
  /** JWT identity mapping; undefined when the policy accepts API keys only. */
  readonly jwt: JwtSettings | undefined;
  /** Team name → models and aliases it may use (JWT identities get their team's). */
  readonly teamModels: ReadonlyMap<string, ReadonlySet<string>>;
  /** PII detection and actions; undefined when the policy has no `pii` section. */
  readonly pii: PiiConfig | undefined;
  readonly guardrails: readonly Guardrail[];
  readonly currency: string;
  readonly logPrompts: boolean;
}

/** One thing wrong in a policy file, located by its path inside the document. */
export interface PolicyProblem {
  readonly path: string;
  readonly message: string;
}

/** Raised when a policy cannot be used; the message lists every problem as `file: path: problem`. */
export class PolicyError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly PolicyProblem[],
  ) {
    super(problems.map((p) => `${file}: ${p.path ? `${p.path}: ` : ""}${p.message}`).join("\n"));
    this.name = "PolicyError";
  }
}

/** Options for {@link loadPolicy}. */
export interface LoadPolicyOptions {
  /** Envoy bootstrap to check pools against: every pool needs a cluster and a route on the routing header. */
  readonly envoyConfigFile?: string | undefined;
  /** Environment used to resolve `upstreamApiKey: { env }` (defaults to process.env). */
  readonly env?: NodeJS.ProcessEnv;
}

/** Reads, validates and compiles a policy file. Throws {@link PolicyError} listing every problem found. */
export function loadPolicy(file: string, options: LoadPolicyOptions = {}): Policy {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new PolicyError(file, [{ path: "", message: `cannot read file: ${(err as Error).message}` }]);
  }
  return parsePolicy(text, file, options);
}

/** Validates and compiles policy text; `file` is used only in error messages. */
export function parsePolicy(text: string, file: string, options: LoadPolicyOptions = {}): Policy {
  let raw: unknown;
  try {
    raw = yaml.load(text, { filename: file });
  } catch (err) {
    throw new PolicyError(file, [{ path: "", message: `invalid YAML: ${(err as Error).message}` }]);
  }
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) throw new PolicyError(file, parsed.error.issues.map(zodProblem));

  const problems: PolicyProblem[] = [];
  const policy = compile(parsed.data, file, text, options.env ?? process.env, problems);
  if (options.envoyConfigFile !== undefined)
    checkAgainstEnvoy(parsed.data, options.envoyConfigFile, problems);
  if (problems.length > 0) throw new PolicyError(file, problems);
  return policy;
}

/** Hex SHA-256 of an API key, the form keys are stored and looked up in. */
export function sha256Hex(value: string): string {
  return createHash("sha256").update(value, "utf8").digest("hex");
}

function zodProblem(issue: z.core.$ZodIssue): PolicyProblem {
  return { path: formatPath(issue.path), message: issue.message };
}

/** Formats a document path as `keys[2].team`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

function compile(
  doc: PolicyDocument,
  file: string,
  text: string,
  env: NodeJS.ProcessEnv,
  problems: PolicyProblem[],
): Policy {
  const pools = new Map<string, Pool>();
  for (const [poolName, spec] of Object.entries(doc.pools)) {
    const secret =
      spec.upstreamApiKey &&
      resolveSecret(spec.upstreamApiKey, env, `pools.${poolName}.upstreamApiKey`, problems);
    pools.set(poolName, {
      name: poolName,
      upstreamAuthorization: secret ? `Bearer ${secret}` : undefined,
      fallback: spec.fallback ?? [],
    });
  }
  checkFallbacks(doc, problems);

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

  const everyName = [...Object.keys(doc.models), ...Object.keys(doc.aliases)];
  const expand = (list: readonly string[], path: string): Set<string> => {
    const out = new Set<string>();
    list.forEach((entry, i) => {
      if (entry === "*") everyName.forEach((n) => out.add(n));
      else if (doc.models[entry] || doc.aliases[entry]) out.add(entry);
      else problems.push({ path: `${path}[${i}]`, message: `unknown model or alias "${entry}"` });
    });
    return out;
  };

  const teamModels = new Map<string, Set<string>>();
  for (const [teamName, spec] of Object.entries(doc.teams)) {
    teamModels.set(teamName, expand(spec.models, `teams.${teamName}.models`));
  }

  const keysBySha256 = new Map<string, ApiKey>();
  const ids = new Set<string>();
  doc.keys.forEach((key, i) => {
    const path = `keys[${i}]`;
    if (ids.has(key.id)) problems.push({ path: `${path}.id`, message: `duplicate key id "${key.id}"` });
    ids.add(key.id);
    const team = teamModels.get(key.team);
    if (!team) {
      problems.push({ path: `${path}.team`, message: `unknown team "${key.team}"` });
      return;
    }
    let allowedModels = team;
    if (key.models) {
      allowedModels = expand(key.models, `${path}.models`);
      key.models.forEach((entry, j) => {
        if (entry !== "*" && !team.has(entry) && allowedModels.has(entry)) {
          problems.push({
            path: `${path}.models[${j}]`,
            message: `"${entry}" is not allowed for team "${key.team}"`,
          });
        }
      });
      allowedModels = new Set([...allowedModels].filter((m) => team.has(m)));
    }
    const time = (iso: string | undefined) => (iso === undefined ? undefined : Date.parse(iso));
    const credentials = key.credentials ?? [{ sha256: key.sha256!, revoked: false }];
    credentials.forEach((c, j) => {
      if (keysBySha256.has(c.sha256)) {
        const where = key.credentials ? `${path}.credentials[${j}].sha256` : `${path}.sha256`;
        problems.push({ path: where, message: "the same key hash appears twice" });
      }
      // A credential's own validity narrows the identity's.
      const notBefore = [time(key.notBefore), time("notBefore" in c ? c.notBefore : undefined)].filter(
        (t) => t !== undefined,
      );
      const expires = [time(key.expiresAt), time("expiresAt" in c ? c.expiresAt : undefined)].filter(
        (t) => t !== undefined,
      );
      keysBySha256.set(c.sha256, {
        id: key.id,
        team: key.team,
        allowedModels,
        notBefore: notBefore.length > 0 ? Math.max(...notBefore) : undefined,
        expiresAt: expires.length > 0 ? Math.min(...expires) : undefined,
        revoked: key.revoked || c.revoked,
      });
    });
  });

  checkLimits(doc, ids, problems);
  for (const [modelName, spec] of Object.entries(doc.models)) {
    spec.environments?.forEach((env, i) => {
      if (!doc.environments[env])
        problems.push({
          path: `models.${modelName}.environments[${i}]`,
          message: `unknown environment "${env}"`,
        });
    });
  }
  if (doc.defaultEnvironment !== undefined && !doc.environments[doc.defaultEnvironment]) {
    problems.push({
      path: "defaultEnvironment",
      message: `unknown environment "${doc.defaultEnvironment}"`,
    });
  }
  for (const [claim, team] of Object.entries(doc.jwt?.teams ?? {})) {
    if (!doc.teams[team]) problems.push({ path: `jwt.teams.${claim}`, message: `unknown team "${team}"` });
  }
  const pii = compilePii(doc, env, problems);
  const guardrails = compileGuardrails(doc, problems);

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
    currency: doc.pricing.currency,
    logPrompts: doc.audit.logPrompts,
  };
}

/** A policy regex, refused if it could backtrack catastrophically. */
function safeRegex(
  pattern: string,
  flags: string,
  path: string,
  problems: PolicyProblem[],
): RegExp | undefined {
  const reason = unsafeRegexReason(pattern);
  if (reason) {
    problems.push({ path, message: `regex refused: ${reason}` });
    return undefined;
  }
  return new RegExp(pattern, flags);
}

function compilePii(
  doc: PolicyDocument,
  env: NodeJS.ProcessEnv,
  problems: PolicyProblem[],
): PiiConfig | undefined {
  const spec = doc.pii;
  if (!spec) return undefined;
  const custom = spec.custom.filter(
    (c, i) => !("regex" in c) || safeRegex(c.regex, "gu", `pii.custom[${i}].regex`, problems),
  );
  const entities = knownEntities(spec.custom);
  let usesHash = false;
  spec.rules.forEach((rule, i) => {
    for (const [entity, action] of Object.entries(rule.actions)) {
      if (!entities.has(entity))
        problems.push({
          path: `pii.rules[${i}].actions.${entity}`,
          message: `unknown entity type "${entity}"`,
        });
      if (action === "hash") usesHash = true;
    }
    checkScope(doc, rule.scope, `pii.rules[${i}].scope`, problems);
  });
  const hmacKey = spec.hmacKey && resolveSecret(spec.hmacKey, env, "pii.hmacKey", problems);
  if (usesHash && !spec.hmacKey)
    problems.push({ path: "pii.hmacKey", message: "the hash action needs an hmacKey" });
  return {
    scanner: new Scanner({ custom, entropyThreshold: spec.entropyThreshold }),
    hmacKey: hmacKey ? Buffer.from(hmacKey, "utf8") : undefined,
    holdBackChars: spec.holdBackChars,
    rules: spec.rules,
  };
}

function compileGuardrails(doc: PolicyDocument, problems: PolicyProblem[]): Guardrail[] {
  return doc.guardrails.map((g, i) => {
    checkScope(doc, g.scope, `guardrails[${i}].scope`, problems);
    const denyPatterns = g.denyPatterns.flatMap((d, j) => {
      const regex = safeRegex(
        d.pattern,
        DENY_PATTERN_FLAGS,
        `guardrails[${i}].denyPatterns[${j}].pattern`,
        problems,
      );
      return regex
        ? [{ name: d.name, regex, action: d.action, literal: requiredLiteral(d.pattern)?.toLowerCase() }]
        : [];
    });
    return {
      scope: g.scope,
      maxInputChars: g.maxInputChars,
      maxInputTokens: g.maxInputTokens,
      denyPatterns,
      promptInjection: g.promptInjection,
    };
  });
}

/** Host → environment: exact names first, then the longest `*.suffix` that matches. */
function environmentMatcher(
  environments: PolicyDocument["environments"],
  fallback: string | undefined,
): (host: string) => string | null | undefined {
  if (Object.keys(environments).length === 0) return () => undefined;
  const exact = new Map<string, string>();
  const suffixes: Array<[string, string]> = [];
  for (const [env, { hosts }] of Object.entries(environments)) {
    for (const host of hosts) {
      if (host.startsWith("*.")) suffixes.push([host.slice(1).toLowerCase(), env]);
      else exact.set(host.toLowerCase(), env);
    }
  }
  suffixes.sort((a, b) => b[0].length - a[0].length);
  return (raw) => {
    const host = raw
      .toLowerCase()
      .replace(/:\d+$/, "")
      .replace(/^\[(.*)\]$/, "$1");
    return exact.get(host) ?? suffixes.find(([suffix]) => host.endsWith(suffix))?.[1] ?? fallback ?? null;
  };
}

function checkScope(doc: PolicyDocument, scope: ScopeFilter, path: string, problems: PolicyProblem[]): void {
  if (scope.environment !== undefined && !doc.environments[scope.environment]) {
    problems.push({ path: `${path}.environment`, message: `unknown environment "${scope.environment}"` });
  }
  if (scope.key !== undefined && !doc.keys.some((k) => k.id === scope.key)) {
    problems.push({ path: `${path}.key`, message: `unknown key id "${scope.key}"` });
  }
  if (scope.team !== undefined && !doc.teams[scope.team])
    problems.push({ path: `${path}.team`, message: `unknown team "${scope.team}"` });
  if (scope.model !== undefined && !doc.models[scope.model])
    problems.push({ path: `${path}.model`, message: `unknown model "${scope.model}"` });
}

function checkLimits(doc: PolicyDocument, keyIds: ReadonlySet<string>, problems: PolicyProblem[]): void {
  const seen = new Set<string>();
  doc.limits.forEach((limit, i) => {
    const path = `limits[${i}]`;
    if (seen.has(limit.id))
      problems.push({ path: `${path}.id`, message: `duplicate limit id "${limit.id}"` });
    seen.add(limit.id);
    const { key, team, model, environment } = limit.scope;
    if (environment !== undefined && !doc.environments[environment]) {
      problems.push({ path: `${path}.scope.environment`, message: `unknown environment "${environment}"` });
    }
    if (key !== undefined && key !== "*" && !keyIds.has(key)) {
      problems.push({ path: `${path}.scope.key`, message: `unknown key id "${key}"` });
    }
    if (team !== undefined && team !== "*" && !doc.teams[team]) {
      problems.push({ path: `${path}.scope.team`, message: `unknown team "${team}"` });
    }
    if (model !== undefined && model !== "*" && !doc.models[model]) {
      problems.push({
        path: `${path}.scope.model`,
        message: `unknown model "${model}" (limits count served models, not aliases)`,
      });
    }
    if (limit.budgetPerMonth !== undefined) {
      const models = model === undefined || model === "*" ? Object.keys(doc.models) : [model];
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

function resolveSecret(
  ref: SecretRef,
  env: NodeJS.ProcessEnv,
  path: string,
  problems: PolicyProblem[],
): string | undefined {
  if ("env" in ref) {
    const value = env[ref.env];
    if (!value) problems.push({ path, message: `environment variable ${ref.env} is not set` });
    return value || undefined;
  }
  try {
    const value = readFileSync(ref.file, "utf8").trim();
    if (!value) problems.push({ path, message: `secret file ${ref.file} is empty` });
    return value || undefined;
  } catch (err) {
    problems.push({ path, message: `cannot read secret file: ${(err as Error).message}` });
    return undefined;
  }
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

/**
 * Every pool needs a route on the routing header to a defined cluster. A pool with fallbacks needs that route
 * to go to an aggregate cluster of [its own cluster, each fallback's cluster] in policy order, to retry on
 * the next pool (previous_priorities), and to report the answering pool from endpoint metadata; a pool
 * without fallbacks must not be routed to an aggregate cluster (the audit would name the wrong pool).
 */
function checkAgainstEnvoy(doc: PolicyDocument, envoyConfigFile: string, problems: PolicyProblem[]): void {
  let routing: EnvoyRouting;
  try {
    routing = readEnvoyRouting(envoyConfigFile);
  } catch (err) {
    problems.push({
      path: "",
      message: `cannot check pools against Envoy config ${envoyConfigFile}: ${(err as Error).message}`,
    });
    return;
  }
  for (const [poolName, spec] of Object.entries(doc.pools)) {
    const path = `pools.${poolName}`;
    const problem = (message: string) => problems.push({ path, message: `${envoyConfigFile}: ${message}` });
    const route = routing.routes.get(poolName);
    const cluster = route && routing.clusters.get(route.cluster);
    if (!route) {
      problem(`no route matches ${routing.header}: ${poolName}`);
      continue;
    }
    if (!cluster) {
      problem(`the route for ${poolName} goes to cluster "${route.cluster}", which is not defined`);
      continue;
    }
    const fallback = spec.fallback ?? [];
    if (fallback.length === 0) {
      if (cluster.aggregate)
        problem(
          `${poolName} is routed to aggregate cluster "${route.cluster}" but has no fallback in the policy`,
        );
      continue;
    }
    const fallbackClusters = fallback.map((name) => routing.routes.get(name)?.cluster);
    const own = cluster.aggregate?.[0];
    if (
      !cluster.aggregate ||
      cluster.aggregate.length !== fallback.length + 1 ||
      fallbackClusters.some((c, i) => c !== cluster.aggregate![i + 1]) ||
      routing.clusters.get(own!)?.aggregate
    ) {
      problem(
        `${poolName} falls back to ${fallback.join(", ")}: its route must go to an aggregate cluster of [<its own cluster>, ${fallbackClusters.map((c) => c ?? "?").join(", ")}], not "${route.cluster}"`,
      );
      continue;
    }
    if (!route.retriesOtherPools)
      problem(
        `the route for ${poolName} needs retry_priority envoy.retry_priorities.previous_priorities, or requests fail until health checks mark the pool down`,
      );
    if (!route.reportsServedPool)
      problem(
        `the route for ${poolName} must set the response header ${SERVED_POOL_HEADER}: "${SERVED_POOL_FORMAT}" (append_action: OVERWRITE_IF_EXISTS_OR_ADD) so the audit names the pool that answered`,
      );
    for (const [member, pool] of [
      [own!, poolName],
      ...fallback.map((name, i) => [fallbackClusters[i]!, name] as const),
    ] as const) {
      const pools = routing.clusters.get(member)?.endpointPools ?? [];
      if (pools.some((p) => p !== pool))
        problem(
          `every endpoint of cluster "${member}" needs metadata filter_metadata.llm_gateway.pool: ${pool}`,
        );
    }
  }
}
