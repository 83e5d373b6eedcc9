import { readFileSync } from "node:fs";
import * as yaml from "js-yaml";
import type { z } from "zod";
import { secretEnvironment } from "../config/index.js";
import { formatPath } from "../errors/document.js";
import { compile } from "./compile.js";
import { checkAgainstEnvoy } from "./envoy-check.js";
import { PolicyError, type PolicyProblem } from "./error.js";
import { policySchema } from "./schema.js";
import type { Policy } from "./types.js";

/** Options for {@link loadPolicy}. */
export interface LoadPolicyOptions {
  /** Envoy bootstrap to check pools against: every pool needs a cluster and a route on the routing header. */
  readonly envoyConfigFile?: string | undefined;
  /** Environment used to resolve `upstreamApiKey: { env }` (defaults to the process's, see config/). */
  readonly env?: NodeJS.ProcessEnv;
}

/** Reads, validates and compiles a policy file. Throws {@link PolicyError} listing every problem found. */
export function loadPolicy(file: string, options: LoadPolicyOptions = {}): Policy {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new PolicyError(file, [{ path: "", message: `cannot read file: ${(err as Error).message}` }]);
  }
  return parsePolicy(text, file, options);
}

/** Validates and compiles policy text; `file` is used only in error messages. */
export function parsePolicy(text: string, file: string, options: LoadPolicyOptions = {}): Policy {
  let raw: unknown;
  try {
    raw = yaml.load(text, { filename: file });
  } catch (err) {
    throw new PolicyError(file, [{ path: "", message: `invalid YAML: ${(err as Error).message}` }]);
  }
  const parsed = policySchema.safeParse(raw);
  if (!parsed.success) throw new PolicyError(file, parsed.error.issues.map(zodProblem));

  const problems: PolicyProblem[] = [];
  const policy = compile(parsed.data, file, text, options.env ?? secretEnvironment(), problems);
  if (options.envoyConfigFile !== undefined)
    checkAgainstEnvoy(parsed.data, options.envoyConfigFile, problems);
  else {
    for (const [pool, spec] of Object.entries(parsed.data.pools))
      if (spec.scheduling?.endpoints === "envoy")
        problems.push({
          path: `pools.${pool}.scheduling.endpoints`,
          message:
            "endpoints come from the Envoy bootstrap, but none is configured (EXTPROC_ENVOY_CONFIG): set it, or list the endpoints (static) or a DNS name (dns)",
        });
  }
  if (problems.length > 0) throw new PolicyError(file, problems);
  return policy;
}

function zodProblem(issue: z.core.$ZodIssue): PolicyProblem {
  return { path: formatPath(issue.path), message: issue.message };
}
