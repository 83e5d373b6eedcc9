/** Largest repeat count a policy regex may use. */
export const MAX_REPEAT = 256;

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
  for (let i = 0; i < source.length; i++) {
    const ch = source[i]!;
    if (ch === "\\") {
      const next = source[i + 1] ?? "";
      if (/[1-9]/.test(next) || next === "k") return "backreferences are not allowed";
      i++;
      lastGroupRisky = false;
      continue;
    }
    if (inClass) {
      if (ch === "]") inClass = false;
      continue;
    }
    if (ch === "[") {
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
    const quantifier =
      ch === "*" || ch === "+" || ch === "?" || (ch === "{" && /^\{\d+(,\d*)?\}/.test(source.slice(i)));
    if (quantifier) {
      if (lastGroupRisky)
        return "a quantified group contains a quantifier or alternation (catastrophic backtracking)";
      if (groups.length > 0) groups[groups.length - 1]!.risky = true;
      if (ch === "{") i = source.indexOf("}", i);
      if (source[i + 1] === "?") i++; // lazy modifier
      lastGroupRisky = false;
      continue;
    }
    lastGroupRisky = false;
  }
  if (groups.length > 0) return "unbalanced parenthesis";
  return undefined;
}
