import { createHash } from "node:crypto";
import { BUILTIN_ENTITIES, findBuiltin, type Finding } from "./detectors.js";
import { DetectionView } from "./normalize.js";
import { requiredLiteral } from "./safe-regex.js";

export type { Finding } from "./detectors.js";

/** A policy-defined detector as policy states it (a load-time checked regex, or a word list): plain data. */
export type CustomDetectorSpec =
  | { readonly entity: string; readonly regex: string }
  | { readonly entity: string; readonly words: readonly string[] };

/**
 * Everything a {@link Scanner} is built from. Plain data, so it can be posted to a worker thread, which
 * compiles it there (RegExp objects do not cross threads with their compiled state).
 */
export interface ScannerSpec {
  readonly custom: readonly CustomDetectorSpec[];
  /** Minimum Shannon entropy (bits per character) for HIGH_ENTROPY. */
  readonly entropyThreshold: number;
}

interface CustomDetector {
  readonly entity: string;
  readonly regex: RegExp;
  /** Text every match contains: texts without it are skipped without running the regex. */
  readonly literal?: string | undefined;
}

const escape = (word: string): string => word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Compiles a word list to one case-insensitive, whole-word pattern (letters/digits on neither side). */
export function wordListRegex(words: readonly string[]): RegExp {
  const alternatives = [...new Set(words.map((w) => w.trim()).filter(Boolean))]
    .sort((a, b) => b.length - a.length)
    .map(escape);
  return new RegExp(`(?<![\\p{L}\\p{N}_])(?:${alternatives.join("|")})(?![\\p{L}\\p{N}_])`, "giu");
}

function compileDetector(spec: CustomDetectorSpec): CustomDetector {
  if ("words" in spec) return { entity: spec.entity, regex: wordListRegex(spec.words) };
  return { entity: spec.entity, regex: new RegExp(spec.regex, "gu"), literal: requiredLiteral(spec.regex) };
}

/**
 * Finds entities in text: all built-in detectors in one regex pass, then each custom detector. Results are
 * sorted and non-overlapping (at equal starts the longer finding wins, then the earlier detector).
 * Detection only: what happens to a finding (placeholders, hashes) is PiiSession's business, on the main
 * thread, so a scan gives the same findings wherever it runs.
 */
export class Scanner {
  /** Identifies the spec by content: workers cache compiled scanners under it across policy reloads. */
  readonly key: string;
  private readonly custom: readonly CustomDetector[];
  private readonly builtins = new Set<string>(BUILTIN_ENTITIES);

  constructor(readonly spec: ScannerSpec) {
    this.custom = spec.custom.map(compileDetector);
    this.key = createHash("sha256").update(JSON.stringify(spec)).digest("hex");
  }

  /** Every entity type this scanner can report. */
  get entities(): string[] {
    return [...BUILTIN_ENTITIES, ...this.custom.map((c) => c.entity)];
  }

  /**
   * Findings of the `enabled` entity types in `text`. Detection runs on the text's normalized view
   * (normalize.ts); each finding's span and value are those of the original characters it came from.
   */
  scan(text: string, enabled: ReadonlySet<string>): Finding[] {
    const view = DetectionView.of(text);
    const found = this.detect(view.text, enabled);
    if (view.unchanged) return found;
    const out: Finding[] = [];
    let covered = 0;
    for (const f of found) {
      const [start, end] = view.originalSpan(f.start, f.end);
      // Two values that meet inside one changed character (the two letters of `ﬁ`) both map to all of it:
      // the later one keeps what the earlier does not already cover.
      const from = Math.max(start, covered);
      if (from >= end) continue;
      out.push({
        entity: f.entity,
        start: from,
        end,
        value: text.slice(from, end),
        normalized: f.normalized,
      });
      covered = end;
    }
    return out;
  }

  /** Findings in `text` as it is: sorted, non-overlapping. */
  private detect(text: string, enabled: ReadonlySet<string>): Finding[] {
    let findings = findBuiltin(text, enabled, { entropyThreshold: this.spec.entropyThreshold });
    let merged = false;
    for (const detector of this.custom) {
      if (!enabled.has(detector.entity)) continue;
      if (detector.literal !== undefined && !text.includes(detector.literal)) continue;
      const regex = new RegExp(detector.regex);
      for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
        if (m[0].length === 0) {
          regex.lastIndex++;
          continue;
        }
        const value = m[0];
        findings.push({
          entity: detector.entity,
          start: m.index,
          end: m.index + value.length,
          value,
          normalized: value,
        });
        merged = true;
      }
    }
    if (!merged) return findings;
    findings = findings.sort((a, b) => a.start - b.start || b.end - a.end);
    const out: Finding[] = [];
    for (const f of findings) if (out.length === 0 || f.start >= out[out.length - 1]!.end) out.push(f);
    return out;
  }

  /** {@link scan} of each text: one entry per text, in order. */
  scanAll(texts: readonly string[], enabled: ReadonlySet<string>): Finding[][] {
    return texts.map((text) => this.scan(text, enabled));
  }

  /** Whether `entity` is built in (not defined by policy). */
  isBuiltin(entity: string): boolean {
    return this.builtins.has(entity);
  }
}
