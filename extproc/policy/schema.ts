import { z } from "zod";
import { MAX_QUEUE_WAIT_MS, MODEL_SERVERS } from "../scheduling/compile.js";
import { ENCODINGS } from "../tokens/count.js";

/** Names used as map keys and ids: what Envoy cluster names and OpenAI model ids may contain. */
const name = z
  .string()
  .min(1)
  .max(256)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._:/@-]*$/,
    "must start with a letter or digit and contain only A-Z a-z 0-9 . _ : / @ -",
  );

const secretRef = z.union([
  z.object({ env: z.string().min(1) }).strict(),
  z.object({ file: z.string().min(1) }).strict(),
]);

/** A Prometheus metric name. */
const metricName = z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]*$/, "a Prometheus metric name");

/** An endpoint as Envoy's override-host policy reads it: `ip:port` or `[ipv6]:port`. */
const endpointAddress = z
  .string()
  .regex(
    /^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}$/,
    "an IP address and port: 10.0.0.5:8000 or [fd00::5]:8000",
  );

/** Model-server-aware endpoint choice for one pool (docs/scheduling.md). */
const scheduling = z
  .object({
    /** Which server's metric names to read. */
    server: z.enum(MODEL_SERVERS).default("vllm"),
    /** Names that differ from the server's (a Triton ensemble, a renamed exporter). */
    metricNames: z
      .object({
        waiting: metricName.optional(),
        running: metricName.optional(),
        kvUsage: metricName.optional(),
        completions: metricName.optional(),
      })
      .strict()
      .optional(),
    metricsPath: z
      .string()
      .regex(/^\/[A-Za-z0-9._~/-]*$/, "an absolute path")
      .default("/metrics"),
    /** How often each endpoint is read. */
    intervalMs: z.number().int().min(10).max(10_000).default(100),
    /** Bound on one read (default 80 % of the interval). */
    timeoutMs: z.number().int().min(5).max(10_000).optional(),
    /** A read older than this many intervals counts as unknown. */
    staleAfterIntervals: z.number().int().min(1).max(100).default(3),
    /**
     * Sequences each server runs at once (vLLM `--max-num-seqs`): an endpoint with that many is full, and
     * gets a request only when every endpoint is full.
     */
    maxSequences: z.number().int().min(1).max(100_000).optional(),
    /** Time constant of each endpoint's speed estimate (completions per running-request second). */
    speedWindowMs: z.number().int().min(20).max(600_000).default(10_000),
    /**
     * Where the endpoints come from: `envoy` (the pool cluster's static endpoints in the Envoy bootstrap),
     * a static list, or a DNS name with every address it resolves to (a Kubernetes headless Service).
     */
    endpoints: z
      .union([
        z.literal("envoy"),
        z.object({ static: z.array(endpointAddress).min(1).max(1024) }).strict(),
        z
          .object({
            dns: z.string().regex(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i, "a DNS name"),
            port: z.number().int().min(1).max(65_535),
            refreshMs: z.number().int().min(100).max(600_000).default(5000),
          })
          .strict(),
      ])
      .default("envoy"),
    /**
     * Prefix affinity: requests whose first `prefixChars` characters of prompt agree go to one endpoint
     * while its queue is at most `queueMargin` longer than the shortest; `false` turns it off.
     */
    affinity: z
      .union([
        z.literal(false),
        z
          .object({
            prefixChars: z.number().int().min(16).max(1_000_000).default(1024),
            queueMargin: z.number().int().min(0).max(10_000).default(2),
          })
          .strict(),
      ])
      .default({ prefixChars: 1024, queueMargin: 2 }),
    /**
     * Admission: at most `maxInFlight` requests of the pool run at once (all replicas together when quotas
     * are in Redis); the rest wait, highest priority class first and fairly between teams, at most
     * `maxDepth` of them and each at most `maxWaitMs`.
     */
    queue: z
      .object({
        maxInFlight: z.number().int().min(1).max(100_000),
        maxDepth: z.number().int().min(0).max(100_000).default(256),
        maxWaitMs: z.number().int().min(0).max(MAX_QUEUE_WAIT_MS).default(10_000),
      })
      .strict()
      .optional(),
  })
  .strict();

const pool = z
  .object({
    description: z.string().optional(),
    /** Credential the model server expects (vLLM `--api-key`); sent as `Authorization: Bearer …`. */
    upstreamApiKey: secretRef.optional(),
    /**
     * Pools Envoy fails over to, in order, when this pool has no healthy host. Envoy decides after extproc
     * has rewritten the request, so every fallback pool must serve the same model names (the operator's
     * job) and take the same upstream credential (checked at load).
     */
    fallback: z.array(name).min(1).max(8).optional(),
    /**
     * Whether the pool's model servers speak each agent API themselves (`native`, vLLM: the default) or
     * only chat completions (`translated`, TGI, Ollama, Triton: the gateway converts both ways).
     */
    apis: z
      .object({
        responses: z.enum(["native", "translated"]).optional(),
        messages: z.enum(["native", "translated"]).optional(),
      })
      .strict()
      .optional(),
    /** Choose the endpoint by model-server state (docs/scheduling.md); Envoy balances alone without it. */
    scheduling: scheduling.optional(),
  })
  .strict();

const model = z
  .object({
    /** Pool (= Envoy cluster) that serves this model. */
    pool: name,
    /** Name the model server knows the model by, when it differs from the public name. */
    upstreamModel: z.string().min(1).optional(),
    ownedBy: z.string().min(1).optional(),
    /** Environments where the model may be used; omitted means all. */
    environments: z.array(name).min(1).optional(),
    /** BPE encoding used to count prompt tokens for admission. */
    tokenizer: z.enum(ENCODINGS).default("cl100k_base"),
    /** Completion tokens reserved when a request sets no max_tokens. */
    defaultMaxTokens: z.number().int().min(1).default(1024),
    /** Price per million tokens, in `pricing.currency`. Required for budgets to apply. */
    price: z
      .object({ input: z.number().min(0), output: z.number().min(0) })
      .strict()
      .optional(),
  })
  .strict();

const aliasTarget = z
  .object({
    model: name,
    weight: z.number().int().min(0).max(1_000_000),
  })
  .strict();

/** A list of model names or aliases; `"*"` grants every model and alias. */
const modelList = z.array(z.union([z.literal("*"), name]));

const team = z
  .object({
    description: z.string().optional(),
    models: modelList,
  })
  .strict();

const sha256 = z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex characters (SHA-256 of the key)");
const instant = z.iso.datetime({ offset: true });

/** One secret of an identity: rotation keeps several, each valid from `notBefore` until `expiresAt`. */
const credential = z
  .object({
    sha256,
    notBefore: instant.optional(),
    expiresAt: instant.optional(),
    revoked: z.boolean().default(false),
  })
  .strict();

const apiKey = z
  .object({
    /** The identity: audit records, metrics and limits name it; its secrets can rotate underneath. */
    id: name,
    team: name,
    /** Hex SHA-256 of the key; the key itself is never stored (`llm-gateway key create` prints both). */
    sha256: sha256.optional(),
    /** Several keys for one identity (rotation without downtime), instead of `sha256`. */
    credentials: z.array(credential).min(1).optional(),
    /** Narrows the team's models for this key; omitted means everything the team may use. */
    models: modelList.optional(),
    notBefore: instant.optional(),
    expiresAt: instant.optional(),
    revoked: z.boolean().default(false),
  })
  .strict()
  .refine(
    (k) => (k.sha256 === undefined) !== (k.credentials === undefined),
    "set either sha256 or credentials",
  );

/** The fields of a scope (see scope/): `value` is what a key, team or model may be written as. */
const scopeFields = <T extends z.ZodType>(value: T) => ({
  key: value.optional(),
  team: value.optional(),
  model: value.optional(),
  /** Only requests that came in through this environment's hosts. */
  environment: name.optional(),
});

/** Who a limit counts for: "*" keeps a separate counter per value, a name restricts to that value. */
const limitScope = z
  .object(scopeFields(z.union([z.literal("*"), name])))
  .strict()
  .refine(
    (s) => s.key !== undefined || s.team !== undefined || s.model !== undefined,
    "set key, team and/or model",
  );

const positive = z.number().int().min(1);

const limit = z
  .object({
    id: name,
    scope: limitScope,
    requestsPerMinute: positive.optional(),
    tokensPerMinute: positive.optional(),
    tokensPerDay: positive.optional(),
    tokensPerMonth: positive.optional(),
    /** Which tokens the token limits count. */
    countTokens: z.enum(["total", "input", "output"]).default("total"),
    concurrentRequests: positive.optional(),
    /** Spend per calendar month (UTC) in `pricing.currency`, from the models' prices. */
    budgetPerMonth: z.number().positive().optional(),
  })
  .strict();

const quota = z
  .object({
    store: z.enum(["memory", "redis"]).default("memory"),
    redis: z
      .object({
        /** Single server: redis://host:port/db (password in the URL or REDIS_PASSWORD). */
        url: z.string().min(1).optional(),
        sentinels: z.array(z.object({ host: z.string(), port: z.number().int() }).strict()).optional(),
        sentinelName: z.string().optional(),
        cluster: z.array(z.object({ host: z.string(), port: z.number().int() }).strict()).optional(),
        keyPrefix: z
          .string()
          .regex(/^[A-Za-z0-9_.:-]+$/)
          .default("llm-gateway"),
        commandTimeoutMs: z.number().int().min(1).default(250),
      })
      .strict()
      .optional(),
    /** When Redis is unreachable: refuse with 503, or admit against local limits / replicas. */
    onStoreFailure: z.enum(["fail-closed", "local"]).default("fail-closed"),
    replicas: z.number().int().min(1).default(1),
    /** A concurrency slot whose request vanished (replica crash) is freed after this long. */
    leaseSeconds: z.number().int().min(1).default(900),
  })
  .strict()
  .default({ store: "memory", onStoreFailure: "fail-closed", replicas: 1, leaseSeconds: 900 });

/** What to do with an entity found in text. */
const piiAction = z.enum(["redact", "mask", "hash", "block", "log", "off"]);

/** Entity type names: built-ins (EMAIL, …) and policy-defined ones. */
const entityName = z.string().regex(/^[A-Z][A-Z0-9_]{0,47}$/, "must be UPPER_SNAKE_CASE");

/** Which requests a PII rule or guardrail applies to; omitted fields match any value. */
const scopeFilter = z.object(scopeFields(name)).strict().default({});

const pii = z
  .object({
    /** Key for the `hash` action's HMAC pseudonyms (stable across requests). */
    hmacKey: secretRef.optional(),
    entropyThreshold: z.number().min(0).max(8).default(4),
    /** Characters of streamed output held back so a value split across chunks is still caught. */
    holdBackChars: z.number().int().min(16).max(4096).default(64),
    custom: z
      .array(
        z.union([
          z.object({ entity: entityName, regex: z.string().min(1) }).strict(),
          z.object({ entity: entityName, words: z.array(z.string().min(1)).min(1) }).strict(),
        ]),
      )
      .default([]),
    /** Applied in order; a later matching rule overrides earlier ones per entity. */
    rules: z
      .array(
        z
          .object({
            scope: scopeFilter,
            actions: z.record(entityName, piiAction).default({}),
            /** Swap placeholders the model repeats back to the original values (that request only). */
            restore: z.boolean().optional(),
            /** Also scan model output (non-streaming and streaming). */
            responses: z.boolean().optional(),
          })
          .strict(),
      )
      .default([]),
  })
  .strict();

const guardrail = z
  .object({
    scope: scopeFilter,
    maxInputChars: z.number().int().min(1).optional(),
    maxInputTokens: z.number().int().min(1).optional(),
    denyPatterns: z
      .array(
        z
          .object({ name: entityName, pattern: z.string().min(1), action: z.enum(["block", "redact"]) })
          .strict(),
      )
      .default([]),
    promptInjection: z
      .object({ threshold: z.number().min(0).max(1).default(0.5), action: z.enum(["block", "log"]) })
      .strict()
      .optional(),
  })
  .strict();

/**
 * Identities from JWTs that Envoy's jwt_authn filter verified (docs/authentication.md, "JWT identities"): a claim is mapped
 * to teams; the subject claim names the caller in audit records and metrics.
 */
const jwt = z
  .object({
    /** Only tokens from this issuer (Envoy checks the signature against its JWKS). */
    issuer: z.string().min(1),
    subjectClaim: z.string().min(1).default("sub"),
    /** Claim holding the caller's groups (a string or a list of strings). */
    teamClaim: z.string().min(1).default("groups"),
    /** Claim value → team. The first listed mapping a token matches wins. */
    teams: z.record(z.string().min(1), name),
  })
  .strict();

/** Priority classes for pools with a queue (docs/scheduling.md, "Priority and fair share"). */
const priority = z
  .object({
    /** Highest priority first. */
    classes: z
      .array(
        z
          .object({
            name,
            /** Refused with 429 and Retry-After instead of 503 when it cannot be served in time. */
            sheddable: z.boolean().default(false),
            /** Admitted only while the pool's requests in flight are below this share of maxInFlight. */
            maxShare: z.number().gt(0).max(1).default(1),
            /** Longest wait in the queue for this class (default: the pool's maxWaitMs). */
            maxWaitMs: z.number().int().min(0).max(MAX_QUEUE_WAIT_MS).optional(),
          })
          .strict(),
      )
      .min(1)
      .max(16),
    /** The class of requests no rule matches. */
    default: name,
    /** The first rule whose scope matches gives the class. */
    rules: z.array(z.object({ scope: scopeFilter, class: name }).strict()).default([]),
    /** Fair-share weight per team (default 1): a team of weight 2 gets twice the share under contention. */
    weights: z.record(name, z.number().min(0.01).max(1000)).default({}),
  })
  .strict();

const audit = z
  .object({
    /** Write prompts and completions into audit records. Off unless a policy says otherwise. */
    logPrompts: z.boolean().default(false),
  })
  .strict()
  .default({ logPrompts: false });

/** The policy file, as security teams write it (see deploy/policy.yaml). */
export const policySchema = z
  .object({
    version: z.literal(1),
    pools: z.record(name, pool),
    models: z.record(name, model),
    aliases: z.record(name, z.array(aliasTarget).min(1)).default({}),
    teams: z.record(name, team),
    keys: z.array(apiKey).default([]),
    pricing: z
      .object({ currency: z.string().min(1).default("USD") })
      .strict()
      .default({ currency: "USD" }),
    limits: z.array(limit).default([]),
    quota,
    /**
     * Environments (dev, staging, prod, …) by the hosts requests arrive on: `llm.example.com`, `*.dev.corp`.
     * Models, limits, PII rules and guardrails can be scoped to one.
     */
    environments: z
      .record(
        name,
        z
          .object({
            hosts: z
              .array(z.string().regex(/^(\*\.)?[a-z0-9.-]+$/i, "a host name, optionally *.suffix"))
              .min(1),
          })
          .strict(),
      )
      .default({}),
    /**
     * The environment of a request whose host matches none of `environments`. Without it such a request is
     * refused (421 unknown_host): a host nobody listed never escapes environment-scoped controls.
     */
    defaultEnvironment: name.optional(),
    jwt: jwt.optional(),
    pii: pii.optional(),
    guardrails: z.array(guardrail).default([]),
    priority: priority.optional(),
    audit,
  })
  .strict();

/** Parsed policy file, before cross-references are resolved. */
export type PolicyDocument = z.infer<typeof policySchema>;
/** One limit rule as written. */
export type LimitDocument = z.infer<typeof limit>;
/** JWT identity settings as written. */
export type JwtSettings = z.infer<typeof jwt>;
/** PII settings as written. */
export type PiiDocument = z.infer<typeof pii>;
/** The priority section as written. */
export type PriorityDocument = z.infer<typeof priority>;
/** One guardrail rule as written. */
export type GuardrailDocument = z.infer<typeof guardrail>;
/** Quota store settings as written. */
export type QuotaSettings = z.infer<typeof quota>;
/** Where a pool's upstream credential comes from. */
export type SecretRef = z.infer<typeof secretRef>;
