import { isIPv6 } from "node:net";
import { entropy, ibanValid, luhnValid, mixedClasses, phoneDigitsValid, ssnValid } from "./validators.js";

/** Entity types the built-in detectors find. */
export const BUILTIN_ENTITIES = [
  "PRIVATE_KEY",
  "JWT",
  "AWS_ACCESS_KEY",
  "API_KEY",
  "EMAIL",
  "IBAN",
  "CREDIT_CARD",
  "US_SSN",
  "PHONE",
  "IPV6",
  "IPV4",
  "HIGH_ENTROPY",
] as const;

/** One of {@link BUILTIN_ENTITIES}. */
export type BuiltinEntity = (typeof BUILTIN_ENTITIES)[number];

/** A value found in text: `text.slice(start, end)` is of type `entity`. */
export interface Finding {
  readonly entity: string;
  readonly start: number;
  readonly end: number;
  /** `text.slice(start, end)`: the characters the action replaces. */
  readonly value: string;
  /**
   * The value as the detectors read it (see normalize.ts): equal to `value` unless the value held
   * invisible, compatibility or separator characters. Placeholders and pseudonyms are keyed on it.
   */
  readonly normalized: string;
}

/**
 * Each built-in detector: a pattern with no nested or overlapping quantifiers and every repeat bounded
 * (linear time, and a bounded backtracking stack even on a multi-MB run without spaces), and a validator
 * for what the pattern alone would over-match. Order matters: earlier alternatives win at the
 * same position (a JWT is not reported as a high-entropy token).
 */
const PATTERNS: Record<BuiltinEntity, string> = {
  // The body stops at the first "--" (a following BEGIN line ends the attempt there): a scan from each
  // BEGIN reaches at most the next marker, not 16 KiB, so a run of BEGIN lines stays linear. Single
  // hyphens remain allowed (Proc-Type / DEK-Info headers of encrypted keys). Without an END line (a key
  // cut short, or its END left out on purpose) the key is its header lines and its run of base64 lines
  // (newlines real or written "\n"; the first one may follow the BEGIN line after spaces instead).
  // Every line starts with a separator that base64 never contains, so the run splits into lines one way.
  PRIVATE_KEY: String.raw`-----BEGIN [A-Z ]{0,30}PRIVATE KEY-----(?:(?:[^-]|-(?!-)){0,16384}-----END [A-Z ]{0,30}PRIVATE KEY-----|(?:\r?\n[A-Za-z-]{1,32}: ?[^\r\n]{1,128}){0,4}(?:\r?\n)?(?:\r?\n|(?:\\r)?\\n|[ \t]{1,4})[A-Za-z0-9+/=]{16,16384}(?:(?:\r?\n|(?:\\r)?\\n)[A-Za-z0-9+/=]{1,16384}){0,255})`,
  // Starts at a token boundary only: otherwise each "eyJ" inside a long run is a new start that scans 4 KiB.
  JWT: String.raw`(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,4096}\.eyJ[A-Za-z0-9_-]{8,4096}\.[A-Za-z0-9_-]{16,1024}`,
  AWS_ACCESS_KEY: String.raw`(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])`,
  API_KEY: String.raw`(?<![A-Za-z0-9_-])(?:sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,256}|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}|xox[abposr]-[A-Za-z0-9-]{10,255}|AIza[0-9A-Za-z_-]{35}|glpat-[A-Za-z0-9_-]{20,255})`,
  // An apostrophe may occur inside the local part (o'neil@…), not first (a quoted 'bob@…' stays outside);
  // no start right after a letter and an apostrophe, or each letter of a run like a'a'a'… would be one.
  EMAIL: String.raw`(?<![A-Za-z0-9._%+-])(?<![A-Za-z0-9]')[A-Za-z0-9._%+-][A-Za-z0-9._%+'-]{0,63}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])`,
  IBAN: String.raw`(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![A-Za-z0-9])`,
  // Digits grouped by spaces or dashes anywhere, or by dots as printed on a card (4-4-4-4, 4-4-4-4-3,
  // 4-6-4, 4-6-5): a dotted number of other groups is a version or a decimal, not a card.
  CREDIT_CARD: String.raw`(?<![\d-])(?:\d(?:[ -]?\d){12,18}(?!\d)|(?<!\d\.)\d{4}\.(?:\d{4}\.\d{4}\.\d{4}(?:\.\d{3})?|\d{6}\.\d{4,5})(?!\d|\.\d))`,
  // 123-45-6789, or 123 45 6789 when no digit group adjoins it (a longer spaced number is something else).
  US_SSN: String.raw`(?<![\d-])\d{3}(?:-\d{2}-\d{4}|(?<!\d \d{3}) \d{2} \d{4}(?! \d))(?![\d-])`,
  // Not followed by ".digit": 10.100.200.1 is an IPv4 address, not the phone number 10.100.200.
  PHONE: String.raw`(?<![\w+])(?:\+[1-9][\d ().-]{6,18}\d|\(?\d{2,4}\)?[ .-]\d{3,4}[ .-]\d{3,5})(?!\d|\.\d)`,
  // Not inside a word (std::cout, Foo::Bar), and an embedded IPv4 tail (::ffff:192.0.2.1) belongs to it.
  IPV6: String.raw`(?<![0-9A-Za-z_:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{0,4})(?![0-9A-Za-z_:])`,
  IPV4: String.raw`(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\d|\.\d)`,
  // Secrets are short: runs over 512 characters are data (base64 payloads), not reported as tokens. "=" is
  // only trailing padding: in NAME=value the value is the token (and NAME=AKIA… is found as what it is).
  HIGH_ENTROPY: String.raw`(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,512}={0,2}(?![A-Za-z0-9+/_=-])`,
};

/** Options of the built-in detectors. */
export interface BuiltinOptions {
  /** Minimum Shannon entropy (bits per character) for HIGH_ENTROPY. */
  readonly entropyThreshold: number;
}

/**
 * Text just before an IPv4-looking match that marks it as a version number instead (also `version: `,
 * `version=` and JSON's `"version": "`).
 */
const VERSION_CONTEXT = /(?:\bv|version|release|build|\bver\.?)["':=\s]*$/i;

function validate(
  entity: BuiltinEntity,
  value: string,
  text: string,
  start: number,
  options: BuiltinOptions,
): boolean {
  switch (entity) {
    case "CREDIT_CARD": {
      const digits = value.replace(/[ .-]/g, "");
      return digits.length >= 13 && digits.length <= 19 && luhnValid(digits) && !/[ -]{2}/.test(value);
    }
    case "IBAN":
      return ibanValid(value);
    case "US_SSN":
      return ssnValid(value);
    case "PHONE":
      return phoneDigitsValid(value) && !/[ ().-]{3}/.test(value);
    case "IPV6":
      return /[0-9A-Fa-f]/.test(value) && value.split(":").length >= 3 && isIPv6(value);
    case "IPV4":
      return !VERSION_CONTEXT.test(text.slice(Math.max(0, start - 12), start));
    case "HIGH_ENTROPY":
      return mixedClasses(value) && entropy(value) >= options.entropyThreshold;
    default:
      return true;
  }
}

/** The combined pattern: one pass of the regex engine over the text for every built-in detector. */
const COMBINED = new RegExp(
  BUILTIN_ENTITIES.map((entity) => `(?<${entity}>${PATTERNS[entity]})`).join("|"),
  "g",
);

/** Finds built-in entities in `text`, in order, non-overlapping. */
export function findBuiltin(text: string, enabled: ReadonlySet<string>, options: BuiltinOptions): Finding[] {
  const findings: Finding[] = [];
  const regex = new RegExp(COMBINED); // own lastIndex: safe for concurrent use
  for (let match = regex.exec(text); match !== null; match = regex.exec(text)) {
    const groups = match.groups!;
    const entity = BUILTIN_ENTITIES.find((e) => groups[e] !== undefined)!;
    const value = match[0];
    if (enabled.has(entity) && validate(entity, value, text, match.index, options)) {
      findings.push({
        entity,
        start: match.index,
        end: match.index + value.length,
        value,
        normalized: value,
      });
    } else if (entity === "HIGH_ENTROPY") {
      // A run not reported (card_number_4111…, /orders/4111…) may hold a value that starts inside it:
      // look again from the next character. The run's own pattern cannot restart inside it (its
      // lookbehind) and no position is tried twice, so the scan stays linear.
      regex.lastIndex = match.index + 1;
    }
  }
  return findings;
}
