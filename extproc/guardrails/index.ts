import type { Identity } from "../auth/index.js";
import { GatewayError } from "../errors/index.js";
import { mapRequestTexts } from "../openai/prompt.js";
import type { InferenceRequest } from "../openai/schemas.js";
import { injectionScore, scopeMatches } from "../pii/index.js";
import type { Guardrail, Policy } from "../policy/index.js";

/** What the guardrails saw, for the audit record. */
export interface GuardrailReport {
  /** Deny-pattern names that matched, with the action taken. */
  readonly denied: Record<string, "block" | "redact">;
  /** Prompt-injection score and matched rules, when a guardrail asks for the check. */
  injection?: { score: number; rules: string[]; action: "block" | "log" };
  /** Smallest input-token cap that applies (checked once prompt tokens are counted). */
  readonly maxInputTokens: number | undefined;
}

/** The guardrails whose scope matches this request. */
export function applicableGuardrails(policy: Policy, identity: Identity, model: string): Guardrail[] {
  return policy.guardrails.filter((g) => scopeMatches(g.scope, identity, model));
}

/**
 * Applies input caps, deny patterns and the prompt-injection check to a request, in place. Throws a 400
 * GatewayError when one blocks; returns what it saw otherwise.
 */
export function applyGuardrails(
  guardrails: readonly Guardrail[],
  request: InferenceRequest,
): GuardrailReport {
  const report: GuardrailReport = { denied: {}, maxInputTokens: undefined };
  if (guardrails.length === 0) return report;
  const texts: string[] = [];
  mapRequestTexts(request, (text) => {
    texts.push(text);
    return text;
  });
  const chars = texts.reduce((sum, t) => sum + t.length, 0);
  let maxTokens: number | undefined;
  for (const g of guardrails) {
    if (g.maxInputChars !== undefined && chars > g.maxInputChars) {
      throw new GatewayError(
        "input_too_long",
        `The input has ${chars} characters; the limit for this model is ${g.maxInputChars}.`,
        "messages",
      );
    }
    if (g.maxInputTokens !== undefined) maxTokens = Math.min(maxTokens ?? Infinity, g.maxInputTokens);
    for (const deny of g.denyPatterns) {
      const mayMatch = (t: string) => deny.literal === undefined || t.toLowerCase().includes(deny.literal);
      if (!texts.some((t) => mayMatch(t) && new RegExp(deny.regex).test(t))) continue;
      report.denied[deny.name] = deny.action;
      if (deny.action === "block") {
        throw new GatewayError(
          "content_blocked",
          `The request contains content the policy does not allow (${deny.name}).`,
        );
      }
      mapRequestTexts(request, (text) =>
        mayMatch(text) ? text.replace(new RegExp(deny.regex), `<${deny.name}>`) : text,
      );
    }
    if (g.promptInjection) {
      const { score, rules } = injectionScore(texts);
      if (score >= g.promptInjection.threshold) {
        report.injection = { score, rules, action: g.promptInjection.action };
        if (g.promptInjection.action === "block") {
          throw new GatewayError(
            "prompt_injection_detected",
            `The request looks like a prompt-injection attempt (score ${score}, rules: ${rules.join(", ")}).`,
          );
        }
      }
    }
  }
  return { ...report, maxInputTokens: maxTokens };
}
