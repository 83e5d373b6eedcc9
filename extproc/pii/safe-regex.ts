import type { DocumentProblem } from "../errors/document.js";

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

/**
 * The longest piece of literal text every match of `source` must contain (at least 3 characters), or
 * undefined. Scanning a text that lacks it can be skipped: a quick `includes` instead of a regex pass.
 * Conservative: only top-level literals outside any group, class or alternation count (`[.]` as `.`).
 */
export function requiredLiteral(source: string): string | undefined {
  if (/(^|[^\\])\|/.test(source.replace(/\[[^\]]*\]/g, ""))) return undefined; // top-level alternation
  let best = "";
  let run = "";
  let depth = 0;
  const end = () => {
    if (run.length > best.length) best = run;
    run = "";
  };
  for (let i = 0; i < source.length; i++) {
    const ch = source[i]!;
    let literal: string | undefined;
    let width = 1;
    if (ch === "{" && /^\{\d+(,\d*)?\}/.test(source.slice(i))) {
      end();
      i = source.indexOf("}", i);
      continue;
    }
    if (ch === "(") {
      depth++;
      end();
      continue;
    }
    if (ch === ")") {
      depth--;
      end();
      continue;
    }
    if (ch === "\\" && /[.\\/\-[\](){}*+?^$|]/.test(source[i + 1] ?? "")) {
      literal = source[i + 1];
      width = 2;
    } else if (/^\[(\\?.)\]/.test(source.slice(i))) {
      const m = /^\[(\\?.)\]/.exec(source.slice(i))!;
      literal = m[1]!.length === 2 ? m[1]![1] : m[1];
      width = m[0].length;
    } else if (/[A-Za-z0-9 _@:,;'"%&=<>!#~-]/.test(ch)) {
      literal = ch;
    }
    const next = source[i + width] ?? "";
    const quantified = next === "?" || next === "*" || next === "+" || next === "{";
    if (literal === undefined || depth > 0 || quantified) {
      end();
      if (literal === undefined && ch === "[") i = source.indexOf("]", i + 1);
      else if (literal === undefined && ch === "\\") i++;
      else i += width - 1;
      continue;
    }
    run += literal;
    i += width - 1;
  }
  end();
  return best.length >= 3 ? best : undefined;
}

/** A policy regex compiled with `flags`; undefined, with a problem at `path`, if it could backtrack catastrophically. */
export function safeRegex(
  pattern: string,
  flags: string,
  path: string,
  problems: DocumentProblem[],
): RegExp | undefined {
  const reason = unsafeRegexReason(pattern);
  if (reason) {
    problems.push({ path, message: `regex refused: ${reason}` });
    return undefined;
  }
  return new RegExp(pattern, flags);
}
