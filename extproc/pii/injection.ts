/**
 * Prompt-injection heuristic: documented phrase rules, each with a weight; the score of a text is the sum of
 * the weights of the rules it matches, capped at 1. Policy sets the threshold and the action (block or log).
 * It catches the common, unsophisticated attempts; it is a tripwire, not a classifier.
 */
export const INJECTION_RULES: ReadonlyArray<{
  readonly id: string;
  readonly weight: number;
  readonly pattern: RegExp;
}> = [
  {
    id: "ignore_instructions",
    weight: 0.6,
    pattern:
      /\b(?:ignore|disregard|forget|override)\s{1,10}(?:all\s{1,10}|any\s{1,10}|the\s{1,10}|your\s{1,10})?(?:previous|prior|above|earlier|preceding|system)\s{1,10}(?:instructions|prompts?|rules|directions)/i,
  },
  {
    id: "reveal_system_prompt",
    weight: 0.5,
    pattern:
      /\b(?:reveal|print|show|repeat|output|leak)\s{1,10}(?:me\s{1,10})?(?:your|the)\s{1,10}(?:system|hidden|initial|original)\s{1,10}(?:prompt|instructions|message)/i,
  },
  {
    id: "new_persona",
    weight: 0.3,
    pattern: /\byou\s{1,10}are\s{1,10}now\s{1,10}(?:a|an|the|in)?\s{0,10}\w{1,30}/i,
  },
  {
    id: "jailbreak_terms",
    weight: 0.4,
    pattern: /\b(?:jailbreak|DAN\s{1,10}mode|do\s{1,10}anything\s{1,10}now|developer\s{1,10}mode)\b/i,
  },
  {
    id: "no_restrictions",
    weight: 0.3,
    pattern:
      /\b(?:without|no)\s{1,10}(?:any\s{1,10})?(?:restrictions|filters|limitations|guardrails|censorship)\b/i,
  },
  {
    id: "fake_system_turn",
    weight: 0.4,
    pattern: /(?:^|\n)\s{0,10}(?:system|assistant)\s{0,10}:|<\|im_start\|>|\[\/?INST\]/i,
  },
  { id: "pretend", weight: 0.2, pattern: /\b(?:pretend|act\s{1,10}as\s{1,10}if|roleplay\s{1,10}as)\b/i },
];

/** Score in [0, 1] and the rules that matched. */
export function injectionScore(texts: readonly string[]): { score: number; rules: string[] } {
  const rules: string[] = [];
  let score = 0;
  for (const rule of INJECTION_RULES) {
    if (texts.some((t) => rule.pattern.test(t))) {
      rules.push(rule.id);
      score += rule.weight;
    }
  }
  return { score: Math.min(1, Math.round(score * 100) / 100), rules };
}
