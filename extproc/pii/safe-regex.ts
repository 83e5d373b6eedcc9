/** Largest repeat count a policy regex may use. */
export const MAX_REPEAT = 256;
/** Most ways a run of adjacent repeats may split one stretch of text. */
const MAX_ADJACENT_CHOICES = 4096;

/**
 * Load-time check for policy regexes. JavaScript's engine backtracks: `(a+)+$` takes exponential time on a
 * crafted input, and even `[a-z]+\.corp` takes quadratic time on a long run of letters (each start
 * position scans the whole run, then gives it back). We accept only patterns that cannot do either: every
 * quantifier bounded (`{m,n}` with n ≤ 256, or `?`; no `*`, `+`, `{m,}`), no quantified group containing a
 * quantifier or an alternation, no backreferences, no lookaround. Each start position then costs a bounded
 * amount of work, so a scan is linear in the input. Returns why a pattern is refused, or undefined.
 */
export function unsafeRegexReason(source: string): string | undefined {
  if (source.length > 1000) return "pattern longer than 1000 characters";
  try {
    new RegExp(source, "u");
  } catch (err) {
    return `invalid regular expression: ${(err as Error).message}`;
  }
  // Stack of open groups: does each contain a quantifier or an alternation?
  const groups: Array<{ risky: boolean }> = [];
  let lastGroupRisky = false;
  let inClass = false;
  let runChoices = 1;
  let prevQuantified = false;
  /** A new atom: a run of adjacent repeats continues only if the previous atom was repeated too. */
  const startAtom = () => {
    if (!prevQuantified) runChoices = 1;
    prevQuantified = false;
  };
  for (let i = 0; i < source.length; i++) {
    const ch = source[i]!;
    if (ch === "\\") {
      const next = source[i + 1] ?? "";
      if (/[1-9]/.test(next) || next === "k") return "backreferences are not allowed";
      startAtom();
      i++;
      lastGroupRisky = false;
      continue;
    }
    if (inClass) {
      if (ch === "]") inClass = false;
      continue;
    }
    if (ch === "[") {
      startAtom();
      inClass = true;
      lastGroupRisky = false;
      continue;
    }
    if (ch === "(") {
      if (
        source.startsWith("(?=", i) ||
        source.startsWith("(?!", i) ||
        source.startsWith("(?<=", i) ||
        source.startsWith("(?<!", i)
      ) {
        return "lookaround is not allowed";
      }
      startAtom();
      groups.push({ risky: false });
      lastGroupRisky = false;
      // Skip the group's modifier: (?: or (?<name>
      if (source.startsWith("(?:", i)) i += 2;
      else if (source.startsWith("(?<", i)) i = source.indexOf(">", i);
      continue;
    }
    if (ch === ")") {
      const group = groups.pop();
      if (!group) return "unbalanced parenthesis";
      lastGroupRisky = group.risky;
      if (group.risky && groups.length > 0) groups[groups.length - 1]!.risky = true;
      continue;
    }
    if (ch === "|") {
      if (groups.length > 0) groups[groups.length - 1]!.risky = true;
      continue;
    }
    const bounded = ch === "{" ? /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i)) : null;
    if (ch === "*" || ch === "+") return `unbounded quantifier "${ch}": use {m,n} with n ≤ ${MAX_REPEAT}`;
    if (bounded && bounded[2] !== undefined && bounded[3] === "") {
      return `unbounded quantifier "${bounded[0]}": give an upper bound ≤ ${MAX_REPEAT}`;
    }
    const max = bounded ? Number(bounded[3] ?? bounded[1]) : 1;
    if (max > MAX_REPEAT) return `repeat count in "${bounded![0]}" above ${MAX_REPEAT}`;
    if (ch === "?" || bounded) {
      if (lastGroupRisky)
        return "a quantified group contains a quantifier or alternation (catastrophic backtracking)";
      if (groups.length > 0) groups[groups.length - 1]!.risky = true;
      // Repeats next to each other (no fixed atom between them) can split a run in every possible way.
      runChoices *= bounded ? max - Number(bounded[1]) + 1 : 2;
      if (runChoices > MAX_ADJACENT_CHOICES)
        return "adjacent repeats can split the same text too many ways (slow backtracking)";
      prevQuantified = true;
      if (ch === "{") i = source.indexOf("}", i);
      if (source[i + 1] === "?") i++; // lazy modifier
      lastGroupRisky = false;
      continue;
    }
    startAtom();
    lastGroupRisky = false;
  }
  if (groups.length > 0) return "unbalanced parenthesis";
  return undefined;
}
