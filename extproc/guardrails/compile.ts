import type { DocumentProblem } from "../errors/document.js";
import { requiredLiteral, safeRegex } from "../pii/safe-regex.js";
import { checkScope, type Scope, type ScopeNames } from "../scope/index.js";
import { DENY_PATTERN_FLAGS, type DenyPattern } from "./scan.js";

/** A guardrail: input caps, deny patterns and the prompt-injection tripwire, for a scope. */
export interface Guardrail {
  readonly scope: Scope;
  readonly maxInputChars: number | undefined;
  readonly maxInputTokens: number | undefined;
  readonly denyPatterns: readonly DenyPattern[];
  readonly promptInjection: { readonly threshold: number; readonly action: "block" | "log" } | undefined;
}

/** One entry of the policy's `guardrails` section, validated by the policy schema. */
export interface GuardrailSection {
  readonly scope: Scope;
  readonly maxInputChars?: number | undefined;
  readonly maxInputTokens?: number | undefined;
  readonly denyPatterns: ReadonlyArray<Omit<DenyPattern, "regex" | "literal"> & { readonly pattern: string }>;
  readonly promptInjection?: Guardrail["promptInjection"];
}

/**
 * Compiles the `guardrails` section, recording a problem for each unknown name in a scope and each deny
 * pattern that could backtrack catastrophically (that pattern is left out).
 */
export function compileGuardrails(
  sections: readonly GuardrailSection[],
  names: ScopeNames,
  problems: DocumentProblem[],
): Guardrail[] {
  return sections.map((g, i) => {
    checkScope(g.scope, names, `guardrails[${i}].scope`, problems);
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
