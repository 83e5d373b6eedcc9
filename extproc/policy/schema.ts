import { z } from "zod";

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

const pool = z
  .object({
    description: z.string().optional(),
    /** Credential the model server expects (vLLM `--api-key`); sent as `Authorization: Bearer …`. */
    upstreamApiKey: secretRef.optional(),
  })
  .strict();

const model = z
  .object({
    /** Pool (= Envoy cluster) that serves this model. */
    pool: name,
    /** Name the model server knows the model by, when it differs from the public name. */
    upstreamModel: z.string().min(1).optional(),
    ownedBy: z.string().min(1).optional(),
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

const apiKey = z
  .object({
    id: name,
    team: name,
    /** Hex SHA-256 of the key; the key itself is never stored (`llm-gateway key create` prints both). */
    sha256: z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lowercase hex characters (SHA-256 of the key)"),
    /** Narrows the team's models for this key; omitted means everything the team may use. */
    models: modelList.optional(),
    expiresAt: z.iso.datetime({ offset: true }).optional(),
    revoked: z.boolean().default(false),
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
    audit,
  })
  .strict();

/** Parsed policy file, before cross-references are resolved. */
export type PolicyDocument = z.infer<typeof policySchema>;
/** Where a pool's upstream credential comes from. */
export type SecretRef = z.infer<typeof secretRef>;
