import type { Policy } from "./index.js";

/**
 * A human summary of what changes between two validated policies, for a policy repository's review:
 * `+` added, `-` removed, `~` changed. Keys are compared by identity id (their hashes are not shown).
 */
export function diffPolicies(before: Policy, after: Policy): string[] {
  const lines: string[] = [];
  const keys = (p: Policy) => {
    const byId = new Map<string, { team: string; revoked: boolean[]; credentials: number; models: string }>();
    for (const k of p.keysBySha256.values()) {
      const entry = byId.get(k.id) ?? {
        team: k.team,
        revoked: [],
        credentials: 0,
        models: [...k.allowedModels].sort().join(","),
      };
      entry.credentials++;
      entry.revoked.push(k.revoked);
      byId.set(k.id, entry);
    }
    return byId;
  };
  const [oldKeys, newKeys] = [keys(before), keys(after)];
  for (const [id, k] of newKeys) {
    const old = oldKeys.get(id);
    const revoked = k.revoked.every(Boolean);
    if (!old) lines.push(`+ key ${id} (team ${k.team}${revoked ? ", revoked" : ""})`);
    else {
      const changes: string[] = [];
      if (revoked && !old.revoked.every(Boolean)) changes.push("revoked");
      if (!revoked && old.revoked.every(Boolean)) changes.push("reinstated");
      if (old.team !== k.team) changes.push(`team ${old.team} → ${k.team}`);
      if (old.credentials !== k.credentials)
        changes.push(`credentials ${old.credentials} → ${k.credentials}`);
      else if (JSON.stringify(old.revoked) !== JSON.stringify(k.revoked) && !changes.length)
        changes.push("a credential revoked or reinstated");
      if (old.models !== k.models) changes.push("models changed");
      if (changes.length) lines.push(`~ key ${id}: ${changes.join(", ")}`);
    }
  }
  for (const id of oldKeys.keys()) if (!newKeys.has(id)) lines.push(`- key ${id}`);

  compareMaps(lines, "model", before.models, after.models, (m) =>
    JSON.stringify({
      pool: m.pool.name,
      upstream: m.upstreamModel,
      price: m.price,
      env: m.environments && [...m.environments],
    }),
  );
  compareMaps(lines, "alias", before.aliases, after.aliases, (a) =>
    a.targets.map((t) => `${t.model.name}:${t.weight}`).join(" "),
  );
  compareMaps(lines, "team", before.teamModels, after.teamModels, (models) => [...models].sort().join(","));
  compareMaps(
    lines,
    "limit",
    new Map(before.limits.map((l) => [l.id, l])),
    new Map(after.limits.map((l) => [l.id, l])),
    (l) => JSON.stringify(l),
  );
  const sections: Array<[string, (p: Policy) => unknown]> = [
    ["quota store settings", (p) => p.quota],
    ["PII rules", (p) => p.pii && { rules: p.pii.rules, hold: p.pii.holdBackChars }],
    [
      "guardrails",
      (p) =>
        p.guardrails.map((g) => ({
          ...g,
          denyPatterns: g.denyPatterns.map((d) => [d.name, d.regex.source, d.action]),
        })),
    ],
    ["JWT identities", (p) => p.jwt],
    ["audit.logPrompts", (p) => p.logPrompts],
  ];
  for (const [label, pick] of sections) {
    if (JSON.stringify(pick(before)) !== JSON.stringify(pick(after))) lines.push(`~ ${label} changed`);
  }
  return lines;
}

function compareMaps<V>(
  lines: string[],
  kind: string,
  before: ReadonlyMap<string, V>,
  after: ReadonlyMap<string, V>,
  describe: (value: V) => string,
): void {
  for (const [name, value] of after) {
    const old = before.get(name);
    if (old === undefined) lines.push(`+ ${kind} ${name}`);
    else if (describe(old) !== describe(value))
      lines.push(`~ ${kind} ${name}: ${describe(old)} → ${describe(value)}`);
  }
  for (const name of before.keys()) if (!after.has(name)) lines.push(`- ${kind} ${name}`);
}
