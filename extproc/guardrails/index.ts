import type { z } from "zod";
import { GatewayError } from "../errors/index.js";
import { mapRequestTexts, requestTexts } from "../openai/prompt.js";
import type { InferenceRequest } from "../openai/schemas.js";
import { scopeMatches, type ScopeSubject } from "../scope/index.js";
import type { Guardrail } from "./compile.js";
import type { DenyPattern, GuardrailScan } from "./scan.js";

/** A guardrail that fired, as the `llm_gateway_guardrail_triggers_total` metric labels it. */
export interface GuardrailTrigger {
  /** `input_too_long`, `content_blocked` (a blocking deny pattern), `content_blocked:<name>` (a redacting one), `prompt_injection`. */
  readonly guardrail: string;
  readonly action: "block" | "redact" | "log";
}

/** A refusal by a guardrail (400): the GatewayError, and the trigger it counts as. */
export class GuardrailBlocked extends GatewayError {
  constructor(
    code: "input_too_long" | "content_blocked" | "prompt_injection_detected",
    message: string,
    param: string | null,
    readonly trigger: GuardrailTrigger,
  ) {
    super(code, message, param);
  }
}

const INPUT_TOO_LONG: GuardrailTrigger = { guardrail: "input_too_long", action: "block" };

/** What the guardrails saw, for the audit record. */
export interface GuardrailReport {
  /** Deny-pattern names that matched, with the action taken. */
  readonly denied: Record<string, "block" | "redact">;
  /** Prompt-injection score and matched rules, when a guardrail asks for the check. */
  injection?: { score: number; rules: string[]; action: "block" | "log" };
  /** Smallest input-token cap that applies (checked once prompt tokens are counted). */
  readonly maxInputTokens: number | undefined;
}

/**
 * Runs the text scan (see scan.ts), inline or on a worker thread: workers/WorkerPool is one. Declared here
 * so the guardrails do not depend on the pool that runs their scan.
 */
export interface GuardrailScanner {
  scanGuardrails(
    texts: readonly string[],
    denies: readonly DenyPattern[],
    injection: boolean,
  ): Promise<GuardrailScan>;
}

/** The guardrails whose scope matches this request. */
export function applicableGuardrails(
  policy: { readonly guardrails: readonly Guardrail[] },
  identity: ScopeSubject,
  model: string,
): Guardrail[] {
  return policy.guardrails.filter((g) => scopeMatches(g.scope, identity, model));
}

/**
 * Applies input caps, deny patterns and the prompt-injection check to every model-read text of a request
 * validated by `schema` (see openai/model-text.ts), in place. Rejects with a 400 GatewayError when one
 * blocks; resolves to what it saw otherwise. The character caps are checked first (no scan of what is refused anyway); the text scan runs on `workers` when the input is large.
 */
export async function applyGuardrails(
  guardrails: readonly Guardrail[],
  request: InferenceRequest,
  schema: z.ZodType,
  workers: GuardrailScanner,
): Promise<GuardrailReport> {
  const report: GuardrailReport = { denied: {}, maxInputTokens: undefined };
  if (guardrails.length === 0) return report;
  const texts = requestTexts(request, schema);
  const chars = texts.reduce((sum, t) => sum + t.length, 0);
  let maxTokens: number | undefined;
  for (const g of guardrails) {
    if (g.maxInputChars !== undefined && chars > g.maxInputChars) {
      throw new GuardrailBlocked(
        "input_too_long",
        `The input has ${chars} characters; the limit for this model is ${g.maxInputChars}.`,
        "messages",
        INPUT_TOO_LONG,
      );
    }
    if (g.maxInputTokens !== undefined) maxTokens = Math.min(maxTokens ?? Infinity, g.maxInputTokens);
  }
  const denies = guardrails.flatMap((g) => g.denyPatterns);
  const injection = guardrails.some((g) => g.promptInjection !== undefined);
  if (denies.length === 0 && !injection) return { ...report, maxInputTokens: maxTokens };

  const scan = await workers.scanGuardrails(texts, denies, injection);
  let index = 0;
  for (const g of guardrails) {
    for (const deny of g.denyPatterns) {
      if (!scan.matched.includes(index++)) continue;
      report.denied[deny.name] = deny.action;
      if (deny.action === "block") {
        throw new GuardrailBlocked(
          "content_blocked",
          `The request contains content the policy does not allow (${deny.name}).`,
          null,
          { guardrail: "content_blocked", action: "block" },
        );
      }
    }
    const { score, rules } = scan.injection ?? { score: 0, rules: [] };
    if (g.promptInjection && score >= g.promptInjection.threshold) {
      report.injection = { score, rules, action: g.promptInjection.action };
      if (g.promptInjection.action === "block") {
        throw new GuardrailBlocked(
          "prompt_injection_detected",
          `The request looks like a prompt-injection attempt (score ${score}, rules: ${rules.join(", ")}).`,
          null,
          { guardrail: "prompt_injection", action: "block" },
        );
      }
    }
  }
  if (scan.texts) {
    const redacted = scan.texts;
    let i = 0;
    mapRequestTexts(request, schema, () => redacted[i++]!);
  }
  return { ...report, maxInputTokens: maxTokens };
}

/**
 * Refuses (400 `input_too_long`) a request whose prompt has more tokens than the smallest token cap that
 * applies; `promptTokens` is only called when a cap applies (counting costs time on large inputs).
 */
export async function checkInputTokens(
  report: GuardrailReport,
  promptTokens: () => Promise<number>,
): Promise<void> {
  const max = report.maxInputTokens;
  if (max === undefined) return;
  const tokens = await promptTokens();
  if (tokens > max) {
    throw new GuardrailBlocked(
      "input_too_long",
      `The input has ${tokens} tokens; the limit for this model is ${max}.`,
      "messages",
      INPUT_TOO_LONG,
    );
  }
}

/** The guardrails that fired without refusing the request (redacting deny patterns, a logged injection). */
export function reportedTriggers(report: GuardrailReport | undefined): GuardrailTrigger[] {
  if (!report) return [];
  const triggers: GuardrailTrigger[] = Object.entries(report.denied).map(([name, action]) => ({
    guardrail: `content_blocked:${name}`,
    action,
  }));
  if (report.injection) triggers.push({ guardrail: "prompt_injection", action: report.injection.action });
  return triggers;
}
