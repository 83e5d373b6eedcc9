import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { DocumentProblem } from "../errors/document.js";
import { ANY, checkScope, scopeMatches, type Scope, type ScopeNames, type ScopeSubject } from "./index.js";

const SEED = Number(process.env.FC_SEED ?? 0x5c0e_2026) | 0;
const NUM_RUNS = Number(process.env.FC_RUNS ?? 1000);

const ALICE: ScopeSubject = { keyId: "k1", team: "t1", environment: "prod" };

describe("scopeMatches", () => {
  it("an empty scope applies to every request", () => {
    assert.equal(scopeMatches({}, ALICE, "m1"), true);
    assert.equal(scopeMatches({}, { keyId: "k2", team: "t2" }, "m2"), true);
  });

  it("each field narrows to its value", () => {
    assert.equal(scopeMatches({ key: "k1" }, ALICE, "m1"), true);
    assert.equal(scopeMatches({ key: "k2" }, ALICE, "m1"), false);
    assert.equal(scopeMatches({ team: "t1", model: "m1" }, ALICE, "m1"), true);
    assert.equal(scopeMatches({ team: "t1", model: "m2" }, ALICE, "m1"), false);
    assert.equal(scopeMatches({ environment: "prod" }, ALICE, "m1"), true);
    assert.equal(scopeMatches({ environment: "dev" }, ALICE, "m1"), false);
  });

  it("a scope naming an environment does not apply where the policy defines none", () => {
    assert.equal(scopeMatches({ environment: "prod" }, { keyId: "k1", team: "t1" }, "m1"), false);
  });

  it('"*" matches any value', () => {
    assert.equal(scopeMatches({ key: ANY, team: ANY, model: ANY }, ALICE, "m9"), true);
    assert.equal(scopeMatches({ key: ANY, team: "t2" }, ALICE, "m1"), false);
  });

  it("agrees with a field-by-field reading of the scope, over random scopes and requests", () => {
    const value = fc.constantFrom("a", "b", "c");
    const wanted = fc.option(fc.constantFrom("a", "b", "c", ANY), { nil: undefined });
    const scope = fc.record(
      { key: wanted, team: wanted, model: wanted, environment: wanted },
      { requiredKeys: [] },
    );
    const request = fc.record({
      keyId: value,
      team: value,
      model: value,
      environment: fc.option(value, { nil: undefined }),
    });
    fc.assert(
      fc.property(scope, request, (s, r) => {
        // The reading a policy author has: every field the scope sets is "*" or the request's value.
        const values: Record<keyof Scope, string | undefined> = {
          key: r.keyId,
          team: r.team,
          model: r.model,
          environment: r.environment,
        };
        const expected = (Object.keys(s) as Array<keyof Scope>).every(
          (field) => s[field] === undefined || s[field] === "*" || s[field] === values[field],
        );
        assert.equal(scopeMatches(s, r, r.model), expected);
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
  });
});

describe("checkScope", () => {
  const names: ScopeNames = {
    keys: new Set(["k1"]),
    teams: new Set(["t1"]),
    models: new Set(["m1"]),
    environments: new Set(["prod"]),
  };
  const problemsOf = (scope: Scope, modelNote?: string): DocumentProblem[] => {
    const problems: DocumentProblem[] = [];
    checkScope(scope, names, "rules[0].scope", problems, modelNote);
    return problems;
  };

  it("accepts names the policy defines, omitted fields and wildcards", () => {
    assert.deepEqual(problemsOf({ key: "k1", team: "t1", model: "m1", environment: "prod" }), []);
    assert.deepEqual(problemsOf({}), []);
    assert.deepEqual(problemsOf({ key: ANY, team: ANY, model: ANY }), []);
  });

  it("names every unknown name, in field order environment, key, team, model", () => {
    assert.deepEqual(
      problemsOf({ model: "m2", team: "t2", key: "k2", environment: "dev" }, " (served models)"),
      [
        { path: "rules[0].scope.environment", message: 'unknown environment "dev"' },
        { path: "rules[0].scope.key", message: 'unknown key id "k2"' },
        { path: "rules[0].scope.team", message: 'unknown team "t2"' },
        { path: "rules[0].scope.model", message: 'unknown model "m2" (served models)' },
      ],
    );
  });

  it("does not take names inherited by every object for defined ones", () => {
    assert.deepEqual(problemsOf({ team: "constructor" }), [
      { path: "rules[0].scope.team", message: 'unknown team "constructor"' },
    ]);
  });
});
