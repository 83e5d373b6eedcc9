/**
 * Priority classes and fair-share weights (policy `priority`, docs/scheduling.md): which class a request
 * belongs to, by the first rule whose scope matches its key, team, model or environment.
 */
import type { DocumentProblem } from "../errors/document.js";
import { checkScope, scopeMatches, type Scope, type ScopeNames, type ScopeSubject } from "../scope/index.js";

/** One priority class, compiled. */
export interface PriorityClass {
  readonly name: string;
  /** 0 is the highest class; a lower rank is always served first. */
  readonly rank: number;
  /** Refused with 429 and Retry-After (rather than 503) when it cannot be served in time. */
  readonly sheddable: boolean;
  /** Share of a pool's maxInFlight this class may fill: the rest is headroom for higher classes. */
  readonly maxShare: number;
  /** Longest wait in a queue; undefined: the pool's. */
  readonly maxWaitMs: number | undefined;
}

/** The policy's `priority` section, as the schema validated it. */
export interface PrioritySection {
  readonly classes: ReadonlyArray<{
    readonly name: string;
    readonly sheddable: boolean;
    readonly maxShare: number;
    readonly maxWaitMs?: number | undefined;
  }>;
  readonly default: string;
  readonly rules: ReadonlyArray<{ readonly scope: Scope; readonly class: string }>;
  readonly weights: Readonly<Record<string, number>>;
}

/** Classes, the rules that assign them, and teams' fair-share weights. */
export interface Priorities {
  readonly classes: readonly PriorityClass[];
  /** The class of `subject`'s request to served model `model`. */
  classOf(subject: ScopeSubject, model: string): PriorityClass;
  /** A team's fair-share weight (1 unless policy says otherwise). */
  weightOf(team: string): number;
}

/** Without a `priority` section every request is of one class, `standard`, and teams weigh alike. */
const STANDARD: PriorityClass = {
  name: "standard",
  rank: 0,
  sheddable: false,
  maxShare: 1,
  maxWaitMs: undefined,
};

/**
 * Compiles the `priority` section (absent: one class for everyone). Problems: duplicate or unknown class
 * names, unknown names in scopes or weights, and a class allowed a larger share than a class above it
 * (the queue serves in class order, so a lower class can never be admitted where a higher one is not).
 */
export function compilePriorities(
  section: PrioritySection | undefined,
  names: ScopeNames,
  problems: DocumentProblem[],
): Priorities {
  if (!section) return { classes: [STANDARD], classOf: () => STANDARD, weightOf: () => 1 };
  const classes = section.classes.map((c, rank): PriorityClass => ({
    name: c.name,
    rank,
    sheddable: c.sheddable,
    maxShare: c.maxShare,
    maxWaitMs: c.maxWaitMs,
  }));
  const byName = new Map<string, PriorityClass>();
  classes.forEach((c, i) => {
    if (byName.has(c.name))
      problems.push({ path: `priority.classes[${i}].name`, message: `class "${c.name}" is listed twice` });
    byName.set(c.name, c);
    const above = classes[i - 1];
    if (above && c.maxShare > above.maxShare)
      problems.push({
        path: `priority.classes[${i}].maxShare`,
        message: `must not exceed the maxShare of "${above.name}" (${above.maxShare}), the class above it`,
      });
  });
  const known = (name: string, path: string): PriorityClass => {
    const found = byName.get(name);
    if (!found) problems.push({ path, message: `unknown priority class "${name}"` });
    return found ?? STANDARD;
  };
  const fallback = known(section.default, "priority.default");
  const rules = section.rules.map((r, i) => {
    checkScope(r.scope, names, `priority.rules[${i}].scope`, problems);
    return { scope: r.scope, cls: known(r.class, `priority.rules[${i}].class`) };
  });
  const weights = new Map(Object.entries(section.weights));
  for (const team of weights.keys()) {
    if (!names.teams.has(team))
      problems.push({ path: `priority.weights.${team}`, message: `unknown team "${team}"` });
  }
  return {
    classes,
    classOf: (subject, model) => rules.find((r) => scopeMatches(r.scope, subject, model))?.cls ?? fallback,
    weightOf: (team) => weights.get(team) ?? 1,
  };
}
