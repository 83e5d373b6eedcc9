import type { DocumentProblem } from "../errors/document.js";
import { checkScope, type ScopeNames } from "../scope/index.js";
import { BUILTIN_ENTITIES } from "./detectors.js";
import type { PiiConfig } from "./index.js";
import { safeRegex } from "./safe-regex.js";
import { Scanner, type CustomDetectorSpec } from "./scanner.js";

/** The policy's `pii` section, validated by the policy schema. */
export interface PiiSection {
  readonly entropyThreshold: number;
  readonly holdBackChars: number;
  readonly custom: readonly CustomDetectorSpec[];
  readonly rules: PiiConfig["rules"];
}

/**
 * Compiles the `pii` section, recording a problem for each unsafe regex, unknown entity type, unknown name
 * in a rule's scope, and a `hash` action without a key. `readHmacKey` reads the section's `hmacKey` secret;
 * undefined when the section sets none.
 */
export function compilePii(
  spec: PiiSection,
  readHmacKey: (() => string | undefined) | undefined,
  names: ScopeNames,
  problems: DocumentProblem[],
): PiiConfig {
  const custom = spec.custom.filter(
    (c, i) => !("regex" in c) || safeRegex(c.regex, "gu", `pii.custom[${i}].regex`, problems),
  );
  const entities = knownEntities(spec.custom);
  let usesHash = false;
  spec.rules.forEach((rule, i) => {
    for (const [entity, action] of Object.entries(rule.actions)) {
      if (!entities.has(entity))
        problems.push({
          path: `pii.rules[${i}].actions.${entity}`,
          message: `unknown entity type "${entity}"`,
        });
      if (action === "hash") usesHash = true;
    }
    checkScope(rule.scope, names, `pii.rules[${i}].scope`, problems);
  });
  const hmacKey = readHmacKey?.();
  if (usesHash && !readHmacKey)
    problems.push({ path: "pii.hmacKey", message: "the hash action needs an hmacKey" });
  return {
    scanner: new Scanner({ custom, entropyThreshold: spec.entropyThreshold }),
    hmacKey: hmacKey ? Buffer.from(hmacKey, "utf8") : undefined,
    holdBackChars: spec.holdBackChars,
    rules: spec.rules,
  };
}

/** Every entity name the policy may use in actions: built-ins plus its custom detectors. */
function knownEntities(custom: ReadonlyArray<{ entity: string }>): Set<string> {
  return new Set([...BUILTIN_ENTITIES, ...custom.map((c) => c.entity)]);
}
