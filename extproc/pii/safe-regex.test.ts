import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_REPEAT, requiredLiteral, unsafeRegexReason } from "./safe-regex.js";

const NESTED = "a quantified group contains a quantifier or alternation (catastrophic backtracking)";

describe("unsafeRegexReason", () => {
  it("accepts bounded repeats, optionals, classes, escapes, non-capturing and named groups", () => {
    for (const pattern of [
      "EMP-[0-9]{6}",
      "[a-z0-9-]{1,63}[.]corp[.]example[.]com",
      "colou?r",
      String.raw`\d{3}-\d{2}-\d{4}`,
      String.raw`\(\d{3}\) \d{3}-\d{4}`,
      String.raw`[+*?(){}|]{1,2}`,
      String.raw`\p{L}{2,8}`,
      "(?:ab){1,3}",
      "(?:ab)?",
      "(?<project>[A-Z]{2,4})-(?<number>[0-9]{1,6})",
      "(?:Bluebird|Nightjar)",
      "a{0,5}?b",
      `a{${MAX_REPEAT}}`,
      `a{1,${MAX_REPEAT}}`,
      String.raw`[\]\\]{1,4}`,
    ]) {
      assert.equal(unsafeRegexReason(pattern), undefined, pattern);
    }
  });

  it("refuses quantified groups that contain a quantifier or an alternation", () => {
    for (const pattern of [
      "(a{1,5}){1,5}",
      "(?:a?){2}",
      "((a)?)?",
      "(?:[a-z]{1,3}[.]){1,4}",
      "(a|b){1,5}",
      "(?:foo|bar)?",
      "(?<x>a|b){2}",
    ]) {
      assert.equal(unsafeRegexReason(pattern), NESTED, pattern);
    }
  });

  it("refuses backreferences", () => {
    assert.equal(unsafeRegexReason(String.raw`(a)\1`), "backreferences are not allowed");
    assert.equal(unsafeRegexReason(String.raw`(?<q>['"])x\k<q>`), "backreferences are not allowed");
  });

  it("refuses lookahead and lookbehind", () => {
    for (const pattern of ["(?=a)b", "(?!a)b", "(?<=a)b", "(?<!a)b"]) {
      assert.equal(unsafeRegexReason(pattern), "lookaround is not allowed", pattern);
    }
  });

  it("refuses invalid syntax with the engine's message", () => {
    assert.equal(
      unsafeRegexReason("(abc"),
      "invalid regular expression: Invalid regular expression: /(abc/u: Unterminated group",
    );
    for (const pattern of ["[a-", "a{1,5", ")", "{1,5}", "a{,5}", String.raw`\p{Nope}`]) {
      assert.match(unsafeRegexReason(pattern) ?? "", /^invalid regular expression: /, pattern);
    }
  });

  it("refuses patterns over 1000 characters", () => {
    assert.equal(unsafeRegexReason("a".repeat(1001)), "pattern longer than 1000 characters");
    assert.equal(unsafeRegexReason("a".repeat(1000)), undefined);
  });

  // Unbounded repeats make each start position scan the rest of a run: `a+b` on 100 KB of "a" takes ~12 s.
  it("refuses unbounded quantifiers: +, *, {m,} and {m,n} with n > 256", () => {
    for (const pattern of [
      "a+",
      "[a-z]+[.]corp",
      "a*b",
      String.raw`\d{2,}`,
      `a{1,${MAX_REPEAT + 1}}`,
      "a{300}",
    ]) {
      assert.notEqual(unsafeRegexReason(pattern), undefined, pattern);
    }
  });

  // Adjacent bounded repeats over the same characters backtrack polynomially: each start tries every split
  // of the run between them. a{0,30}a{0,30}a{0,30}a{0,30}b on 2 KB of "a" takes ~12 s.
  it("refuses adjacent overlapping repeats", () => {
    assert.notEqual(unsafeRegexReason("a{0,30}a{0,30}a{0,30}a{0,30}b"), undefined);
  });
});

describe("requiredLiteral", () => {
  it("finds the longest top-level literal every match must contain", () => {
    assert.equal(requiredLiteral("[a-z0-9-]{1,63}[.]corp[.]example[.]com"), ".corp.example.com");
    assert.equal(requiredLiteral("EMP-[0-9]{6}"), "EMP-");
    assert.equal(requiredLiteral("a{0,30}bcd"), "bcd");
    assert.equal(requiredLiteral(String.raw`x\.y\.z`), "x.y.z");
  });

  it("gives none when no literal is certain: alternation, optional or repeated characters, groups", () => {
    for (const pattern of ["foo|bar", "ab?cd", String.raw`\d{3}-\d{2}-\d{4}`, "(?:abcdef){1,2}"]) {
      assert.equal(requiredLiteral(pattern), undefined, pattern);
    }
  });
});
