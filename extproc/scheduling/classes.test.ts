import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DocumentProblem } from "../errors/document.js";
import type { ScopeNames } from "../scope/index.js";
import { compilePriorities, type PrioritySection } from "./classes.js";

const NAMES: ScopeNames = {
  keys: new Set(["nightly"]),
  teams: new Set(["support", "analytics"]),
  models: new Set(["m1"]),
  environments: new Set(),
};

const section = (fields: Partial<PrioritySection> = {}): PrioritySection => ({
  classes: [
    { name: "critical", sheddable: false, maxShare: 1 },
    { name: "standard", sheddable: false, maxShare: 1 },
    { name: "batch", sheddable: true, maxShare: 0.5, maxWaitMs: 500 },
  ],
  default: "standard",
  rules: [
    { scope: { key: "nightly" }, class: "batch" },
    { scope: { team: "support" }, class: "critical" },
    { scope: { team: "analytics", model: "m1" }, class: "batch" },
  ],
  weights: { support: 2 },
  ...fields,
});

describe("compilePriorities", () => {
  it("gives the class of the first matching rule, else the default; ranks follow the listed order", () => {
    const problems: DocumentProblem[] = [];
    const p = compilePriorities(section(), NAMES, problems);
    assert.deepEqual(problems, []);
    const of = (keyId: string, team: string, model = "m1") => p.classOf({ keyId, team }, model);
    assert.equal(of("bot", "support").name, "critical");
    assert.equal(of("bot", "support").rank, 0);
    // The key's rule comes first, whatever its team.
    assert.equal(of("nightly", "support").name, "batch");
    assert.equal(of("x", "analytics").name, "batch");
    assert.equal(of("x", "analytics", "m2").name, "standard");
    assert.deepEqual(of("x", "analytics"), {
      name: "batch",
      rank: 2,
      sheddable: true,
      maxShare: 0.5,
      maxWaitMs: 500,
    });
    assert.equal(p.weightOf("support"), 2);
    assert.equal(p.weightOf("analytics"), 1);
  });

  it("puts everyone in one standard class without a priority section", () => {
    const p = compilePriorities(undefined, NAMES, []);
    assert.equal(p.classes.length, 1);
    assert.deepEqual(p.classOf({ keyId: "k", team: "t" }, "m1"), p.classes[0]);
    assert.equal(p.classes[0]!.sheddable, false);
  });

  it("refuses unknown or duplicate classes, unknown names, and a lower class with a larger share", () => {
    const problems: DocumentProblem[] = [];
    compilePriorities(
      section({
        classes: [
          { name: "critical", sheddable: false, maxShare: 0.5 },
          { name: "batch", sheddable: true, maxShare: 0.8 },
          { name: "batch", sheddable: true, maxShare: 0.5 },
        ],
        default: "normal",
        rules: [
          { scope: { team: "nobody" }, class: "batch" },
          { scope: { team: "support" }, class: "vip" },
        ],
        weights: { ghosts: 3 },
      }),
      NAMES,
      problems,
    );
    assert.deepEqual(
      problems.map((p) => p.path),
      [
        "priority.classes[1].maxShare",
        "priority.classes[2].name",
        "priority.default",
        "priority.rules[0].scope.team",
        "priority.rules[1].class",
        "priority.weights.ghosts",
      ],
    );
  });
});
