/**
 * The text-scanning half of the guardrails: deny patterns and the prompt-injection score. Pure (texts and
 * rules in, result out), so it runs the same inline or on a worker thread; what the results mean for the
 * request (refuse, record) is decided by applyGuardrails on the main thread.
 */
import { injectionScore } from "../pii/injection.js";

/** Flags of every deny pattern: global (redact replaces every match), case-insensitive, Unicode. */
export const DENY_PATTERN_FLAGS = "giu";

/** A deny pattern, compiled. */
export interface DenyPattern {
  readonly name: string;
  readonly regex: RegExp;
  readonly action: "block" | "redact";
  /** Lower-cased text every match contains (the patterns are case-insensitive): a cheap pre-check. */
  readonly literal: string | undefined;
}

/** A deny pattern as plain data (`pattern` is the regex source), for a worker thread to compile. */
export type DenyPatternSpec = Omit<DenyPattern, "regex"> & { readonly pattern: string };

/** What the scan found. */
export interface GuardrailScan {
  /** Indexes of the deny patterns that matched, in order; it stops at the first one that blocks. */
  readonly matched: number[];
  /** The texts with every matching `redact` pattern applied; undefined when none matched. */
  readonly texts: string[] | undefined;
  /** Prompt-injection score of the texts as sent, when asked for. */
  readonly injection: { readonly score: number; readonly rules: string[] } | undefined;
}

/**
 * Matches `denies` against the texts as the client sent them (in order, stopping at the first blocking
 * match: the request is refused then) and applies the redacting ones, each to the previous one's output.
 */
export function scanGuardrailTexts(
  texts: readonly string[],
  denies: readonly DenyPattern[],
  injection: boolean,
): GuardrailScan {
  const matched: number[] = [];
  let redacted: string[] | undefined;
  // Lower-cased once for every pattern's literal pre-check (lower-casing a multi-MB text is not free).
  let lower: string[] | undefined;
  for (const [index, deny] of denies.entries()) {
    const literal = deny.literal;
    const hit = texts.some(
      (text, i) =>
        (literal === undefined || (lower ??= texts.map((t) => t.toLowerCase()))[i]!.includes(literal)) &&
        new RegExp(deny.regex).test(text),
    );
    if (!hit) continue;
    matched.push(index);
    if (deny.action === "block") break;
    redacted = (redacted ?? texts).map((text) => text.replace(new RegExp(deny.regex), `<${deny.name}>`));
  }
  return { matched, texts: redacted, injection: injection ? injectionScore(texts) : undefined };
}
