import type { PolicyProblem } from "./error.js";
import type { PolicyDocument } from "./schema.js";
import type { ApiKey } from "./types.js";

/** Who may use which models: per team, and per API key hash (each key narrowed to its team's models). */
export interface Access {
  readonly teamModels: Map<string, Set<string>>;
  readonly keysBySha256: Map<string, ApiKey>;
}

/** Resolves teams' and keys' model lists, and each credential's validity, recording every bad reference. */
export function compileAccess(doc: PolicyDocument, problems: PolicyProblem[]): Access {
  const everyName = [...Object.keys(doc.models), ...Object.keys(doc.aliases)];
  const expand = (list: readonly string[], path: string): Set<string> => {
    const out = new Set<string>();
    list.forEach((entry, i) => {
      if (entry === "*") everyName.forEach((n) => out.add(n));
      else if (doc.models[entry] || doc.aliases[entry]) out.add(entry);
      else problems.push({ path: `${path}[${i}]`, message: `unknown model or alias "${entry}"` });
    });
    return out;
  };

  const teamModels = new Map<string, Set<string>>();
  for (const [teamName, spec] of Object.entries(doc.teams)) {
    teamModels.set(teamName, expand(spec.models, `teams.${teamName}.models`));
  }

  const keysBySha256 = new Map<string, ApiKey>();
  const ids = new Set<string>();
  doc.keys.forEach((key, i) => {
    const path = `keys[${i}]`;
    if (ids.has(key.id)) problems.push({ path: `${path}.id`, message: `duplicate key id "${key.id}"` });
    ids.add(key.id);
    const team = teamModels.get(key.team);
    if (!team) {
      problems.push({ path: `${path}.team`, message: `unknown team "${key.team}"` });
      return;
    }
    let allowedModels = team;
    if (key.models) {
      allowedModels = expand(key.models, `${path}.models`);
      key.models.forEach((entry, j) => {
        if (entry !== "*" && !team.has(entry) && allowedModels.has(entry)) {
          problems.push({
            path: `${path}.models[${j}]`,
            message: `"${entry}" is not allowed for team "${key.team}"`,
          });
        }
      });
      allowedModels = new Set([...allowedModels].filter((m) => team.has(m)));
    }
    const time = (iso: string | undefined) => (iso === undefined ? undefined : Date.parse(iso));
    const credentials = key.credentials ?? [{ sha256: key.sha256!, revoked: false }];
    credentials.forEach((c, j) => {
      if (keysBySha256.has(c.sha256)) {
        const where = key.credentials ? `${path}.credentials[${j}].sha256` : `${path}.sha256`;
        problems.push({ path: where, message: "the same key hash appears twice" });
      }
      // A credential's own validity narrows the identity's.
      const notBefore = [time(key.notBefore), time("notBefore" in c ? c.notBefore : undefined)].filter(
        (t) => t !== undefined,
      );
      const expires = [time(key.expiresAt), time("expiresAt" in c ? c.expiresAt : undefined)].filter(
        (t) => t !== undefined,
      );
      keysBySha256.set(c.sha256, {
        id: key.id,
        team: key.team,
        allowedModels,
        notBefore: notBefore.length > 0 ? Math.max(...notBefore) : undefined,
        expiresAt: expires.length > 0 ? Math.min(...expires) : undefined,
        revoked: key.revoked || c.revoked,
      });
    });
  });

  return { teamModels, keysBySha256 };
}
