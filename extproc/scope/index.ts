import type { DocumentProblem } from "../errors/document.js";

/** In a limit's scope: any value, with a separate counter per value. */
export const ANY = "*";

/**
 * Which requests a policy rule (PII rule, guardrail, limit) applies to. An omitted field matches any value,
 * and so does {@link ANY} (limits only; the policy schema refuses it elsewhere).
 */
export interface Scope {
  readonly key?: string | undefined;
  readonly team?: string | undefined;
  readonly model?: string | undefined;
  readonly environment?: string | undefined;
}

/** Who sent a request and where it arrived: what a {@link Scope} is matched against (auth's Identity is one). */
export interface ScopeSubject {
  readonly keyId: string;
  readonly team: string;
  /** Undefined when the policy defines no environments: then only scopes without one match. */
  readonly environment?: string | undefined;
}

/** Whether `scope` applies to a request from `subject` to served model `model`. */
export function scopeMatches(scope: Scope, subject: ScopeSubject, model: string): boolean {
  return (
    fieldMatches(scope.key, subject.keyId) &&
    fieldMatches(scope.team, subject.team) &&
    fieldMatches(scope.model, model) &&
    fieldMatches(scope.environment, subject.environment)
  );
}

function fieldMatches(want: string | undefined, value: string | undefined): boolean {
  return want === undefined || want === ANY || want === value;
}

/** The names a policy defines, which scopes may refer to. */
export interface ScopeNames {
  readonly keys: ReadonlySet<string>;
  readonly teams: ReadonlySet<string>;
  /** Served models (not aliases): scopes are matched against the model a request is served by. */
  readonly models: ReadonlySet<string>;
  readonly environments: ReadonlySet<string>;
}

/**
 * Records a problem for every name in `scope` (at document path `path`) that the policy does not define.
 * `modelNote` is appended to the unknown-model message.
 */
export function checkScope(
  scope: Scope,
  names: ScopeNames,
  path: string,
  problems: DocumentProblem[],
  modelNote = "",
): void {
  const unknown = (field: keyof Scope, known: ReadonlySet<string>, what: string, note = "") => {
    const value = scope[field];
    if (value !== undefined && value !== ANY && !known.has(value))
      problems.push({ path: `${path}.${field}`, message: `unknown ${what} "${value}"${note}` });
  };
  unknown("environment", names.environments, "environment");
  unknown("key", names.keys, "key id");
  unknown("team", names.teams, "team");
  unknown("model", names.models, "model", modelNote);
}
