import type { PolicyProblem } from "./error.js";
import type { PolicyDocument } from "./schema.js";

/** Models' environments and `defaultEnvironment` name environments the policy defines. */
export function checkEnvironments(doc: PolicyDocument, problems: PolicyProblem[]): void {
  for (const [modelName, spec] of Object.entries(doc.models)) {
    spec.environments?.forEach((env, i) => {
      if (!doc.environments[env])
        problems.push({
          path: `models.${modelName}.environments[${i}]`,
          message: `unknown environment "${env}"`,
        });
    });
  }
  if (doc.defaultEnvironment !== undefined && !doc.environments[doc.defaultEnvironment]) {
    problems.push({
      path: "defaultEnvironment",
      message: `unknown environment "${doc.defaultEnvironment}"`,
    });
  }
}

/** Host → environment: exact names first, then the longest `*.suffix` that matches. */
export function environmentMatcher(
  environments: PolicyDocument["environments"],
  fallback: string | undefined,
): (host: string) => string | null | undefined {
  if (Object.keys(environments).length === 0) return () => undefined;
  const exact = new Map<string, string>();
  const suffixes: Array<[string, string]> = [];
  for (const [env, { hosts }] of Object.entries(environments)) {
    for (const host of hosts) {
      if (host.startsWith("*.")) suffixes.push([host.slice(1).toLowerCase(), env]);
      else exact.set(host.toLowerCase(), env);
    }
  }
  suffixes.sort((a, b) => b[0].length - a[0].length);
  return (raw) => {
    const host = raw
      .toLowerCase()
      .replace(/:\d+$/, "")
      .replace(/^\[(.*)\]$/, "$1");
    return exact.get(host) ?? suffixes.find(([suffix]) => host.endsWith(suffix))?.[1] ?? fallback ?? null;
  };
}
