import type { Guardrail } from "../guardrails/compile.js";
import type { PiiConfig } from "../pii/index.js";
import type { PoolScheduling } from "../scheduling/compile.js";
import type { Priorities } from "../scheduling/classes.js";
import type { EncodingName } from "../tokens/count.js";
import type { JwtSettings, LimitDocument, QuotaSettings } from "./schema.js";

export type { Guardrail } from "../guardrails/compile.js";

/** A model server pool: one Envoy cluster, selected by extproc through the routing header. */
export interface Pool {
  readonly name: string;
  /** `Authorization` value to send upstream, or undefined to send none. */
  readonly upstreamAuthorization: string | undefined;
  /** Pools Envoy fails over to, in order, when this one has no healthy host. */
  readonly fallback: readonly string[];
  /** How its model servers speak each agent API: natively, or the gateway translates to chat completions. */
  readonly apis: { readonly responses: ApiSupport; readonly messages: ApiSupport };
  /** Endpoint choice by model-server state; undefined: Envoy balances the pool alone. */
  readonly scheduling: PoolScheduling | undefined;
}

/** `native`: the model server serves the API itself; `translated`: it speaks chat completions only. */
export type ApiSupport = "native" | "translated";

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
  /** Priority classes and fair-share weights for pools with a queue (one class when policy sets none). */
  readonly priorities: Priorities;
  readonly currency: string;
  readonly logPrompts: boolean;
}
