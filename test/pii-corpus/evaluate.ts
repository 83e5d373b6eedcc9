/**
 * Precision and recall of the built-in PII detectors on the labeled corpus (corpus.jsonl beside this file):
 * one JSON object per line, `{"text": "...", "entities": [{"type": "EMAIL", "value": "..."}]}`. Each entity
 * is one occurrence of `value` in `text`, listed in the order they appear (a value that occurs twice is
 * listed twice); occurrences not listed are not entities.
 *
 * A finding counts as a true positive only if its type and its exact span match a labeled entity. A finding
 * that overlaps a labeled entity of its type with other bounds counts as one false positive and one false
 * negative (and is shown in the "partial" column).
 *
 *   node dist/test/pii-corpus/evaluate.js [corpus.jsonl] [--details]
 *
 * Exits 1 if the corpus is malformed (every problem is listed), 0 otherwise.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { BUILTIN_ENTITIES } from "../../extproc/pii/detectors.js";
import { Scanner, type Finding } from "../../extproc/pii/scanner.js";

/** The corpus next to the sources (this file runs from dist/test/pii-corpus). */
export const CORPUS = path.resolve(import.meta.dirname, "../../../test/pii-corpus/corpus.jsonl");

/** One labeled entity occurrence, located in its text. */
export interface Span {
  readonly type: string;
  readonly start: number;
  readonly end: number;
  readonly value: string;
}

/** One corpus line, parsed and located. */
export interface Sample {
  readonly line: number;
  readonly text: string;
  readonly entities: readonly Span[];
}

/** Counts for one entity type (or all of them). */
export interface Counts {
  tp: number;
  fp: number;
  fn: number;
  partial: number;
}

/** A finding that was wrong or an entity that was missed. */
export interface Mistake {
  readonly line: number;
  readonly kind: "FP" | "FN";
  readonly type: string;
  readonly value: string;
}

export interface Evaluation {
  readonly byType: ReadonlyMap<string, Counts>;
  readonly overall: Counts;
  readonly mistakes: readonly Mistake[];
}

export class CorpusError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join("\n"));
  }
}

const TYPES = new Set<string>(BUILTIN_ENTITIES);

/** Parses the corpus; throws {@link CorpusError} listing every malformed line. */
export function parseCorpus(content: string, file = "corpus.jsonl"): Sample[] {
  const samples: Sample[] = [];
  const problems: string[] = [];
  content.split("\n").forEach((raw, i) => {
    const line = i + 1;
    const problem = (message: string) => problems.push(`${file}:${line}: ${message}`);
    if (raw.trim() === "") return;
    let doc: unknown;
    try {
      doc = JSON.parse(raw);
    } catch (err) {
      problem(`invalid JSON: ${(err as Error).message}`);
      return;
    }
    const { text, entities } = (doc ?? {}) as { text?: unknown; entities?: unknown };
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return problem("not a JSON object");
    const extra = Object.keys(doc).filter((k) => k !== "text" && k !== "entities");
    if (extra.length > 0) return problem(`unknown field(s): ${extra.join(", ")}`);
    if (typeof text !== "string" || text === "") return problem('"text" must be a non-empty string');
    if (!Array.isArray(entities)) return problem('"entities" must be an array');
    const spans: Span[] = [];
    const taken = new Set<number>(); // starts already assigned, per value
    const next = new Map<string, number>(); // where to look for the next occurrence of a value
    entities.forEach((entity: unknown, j) => {
      const { type, value } = (entity ?? {}) as { type?: unknown; value?: unknown };
      if (typeof type !== "string" || !TYPES.has(type)) {
        return problem(`entities[${j}].type: must be one of ${[...TYPES].join(", ")}`);
      }
      if (typeof value !== "string" || value === "") {
        return problem(`entities[${j}].value: must be a non-empty string`);
      }
      const start = text.indexOf(value, next.get(value) ?? 0);
      if (start < 0)
        return problem(`entities[${j}].value: ${JSON.stringify(value)} does not occur in the text`);
      next.set(value, start + 1);
      if (taken.has(start)) return problem(`entities[${j}]: two entities at offset ${start}`);
      taken.add(start);
      spans.push({ type, start, end: start + value.length, value });
    });
    spans.sort((a, b) => a.start - b.start);
    for (let k = 1; k < spans.length; k++) {
      if (spans[k]!.start < spans[k - 1]!.end)
        problem(`entities overlap: ${JSON.stringify(spans[k]!.value)}`);
    }
    samples.push({ line, text, entities: spans });
  });
  if (samples.length === 0 && problems.length === 0) problems.push(`${file}: no samples`);
  if (problems.length > 0) throw new CorpusError(problems);
  return samples;
}

const zero = (): Counts => ({ tp: 0, fp: 0, fn: 0, partial: 0 });

/** Runs every built-in detector (entropy threshold 4, as in the sample policy) over the samples. */
export function evaluate(samples: readonly Sample[], entropyThreshold = 4): Evaluation {
  const scanner = new Scanner({ custom: [], entropyThreshold });
  const enabled = new Set<string>(BUILTIN_ENTITIES);
  const byType = new Map<string, Counts>(BUILTIN_ENTITIES.map((t) => [t, zero()]));
  const overall = zero();
  const mistakes: Mistake[] = [];
  const count = (type: string, field: keyof Counts) => {
    byType.get(type)![field]++;
    overall[field]++;
  };
  for (const sample of samples) {
    const matched = new Set<Span>();
    const unmatched: Finding[] = [];
    for (const f of scanner.scan(sample.text, enabled)) {
      const gold = sample.entities.find((g) => g.type === f.entity && g.start === f.start && g.end === f.end);
      if (gold) {
        matched.add(gold);
        count(f.entity, "tp");
      } else {
        unmatched.push(f);
      }
    }
    for (const f of unmatched) {
      count(f.entity, "fp");
      mistakes.push({ line: sample.line, kind: "FP", type: f.entity, value: f.value });
      const overlaps = sample.entities.some(
        (g) => !matched.has(g) && g.type === f.entity && g.start < f.end && f.start < g.end,
      );
      if (overlaps) count(f.entity, "partial");
    }
    for (const g of sample.entities) {
      if (matched.has(g)) continue;
      count(g.type, "fn");
      mistakes.push({ line: sample.line, kind: "FN", type: g.type, value: g.value });
    }
  }
  return { byType, overall, mistakes };
}

/** Precision and recall; 1 when there is nothing to be wrong about. */
export const precision = (c: Counts): number => (c.tp + c.fp === 0 ? 1 : c.tp / (c.tp + c.fp));
export const recall = (c: Counts): number => (c.tp + c.fn === 0 ? 1 : c.tp / (c.tp + c.fn));

/** The result as a text table. */
export function formatTable(result: Evaluation): string {
  const rows = [
    ["entity", "TP", "FP", "FN", "precision", "recall", "partial"],
    ...[...result.byType, ["overall", result.overall] as const].map(([type, c]) => [
      type,
      String(c.tp),
      String(c.fp),
      String(c.fn),
      precision(c).toFixed(3),
      recall(c).toFixed(3),
      String(c.partial),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) =>
    r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join("  ");
  return [line(rows[0]!), ...rows.slice(1, -1).map(line), line(rows.at(-1)!)].join("\n");
}

function main(argv: readonly string[]): number {
  const details = argv.includes("--details");
  const file = argv.find((a) => !a.startsWith("--")) ?? CORPUS;
  let samples: Sample[];
  try {
    samples = parseCorpus(readFileSync(file, "utf8"), path.basename(file));
  } catch (err) {
    console.error(
      err instanceof CorpusError ? err.message : `cannot read ${file}: ${(err as Error).message}`,
    );
    return 1;
  }
  const result = evaluate(samples);
  const entities = samples.reduce((n, s) => n + s.entities.length, 0);
  const negatives = samples.filter((s) => s.entities.length === 0).length;
  console.log(
    `${path.basename(file)}: ${samples.length} texts, ${entities} entities, ${negatives} texts without any`,
  );
  console.log("");
  console.log(formatTable(result));
  if (details) {
    console.log("");
    for (const m of result.mistakes)
      console.log(`line ${m.line}: ${m.kind} ${m.type} ${JSON.stringify(m.value)}`);
  } else if (result.mistakes.length > 0) {
    console.log(`\n${result.mistakes.length} mistakes; --details lists them`);
  }
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = main(process.argv.slice(2));
}
