import { hash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { PolicyProblem } from "./error.js";
import type { SecretRef } from "./schema.js";

/** Hex SHA-256 of an API key, the form keys are stored and looked up in (one-shot: a third cheaper than a Hash object). */
export function sha256Hex(value: string): string {
  return hash("sha256", value, "hex");
}

/**
 * The secret `ref` points to (an environment variable or a file, trimmed); undefined, with a problem at
 * `path`, when it is unset, empty or unreadable.
 */
export function resolveSecret(
  ref: SecretRef,
  env: NodeJS.ProcessEnv,
  path: string,
  problems: PolicyProblem[],
): string | undefined {
  if ("env" in ref) {
    const value = env[ref.env];
    if (!value) problems.push({ path, message: `environment variable ${ref.env} is not set` });
    return value || undefined;
  }
  try {
    const value = readFileSync(ref.file, "utf8").trim();
    if (!value) problems.push({ path, message: `secret file ${ref.file} is empty` });
    return value || undefined;
  } catch (err) {
    problems.push({ path, message: `cannot read secret file: ${(err as Error).message}` });
    return undefined;
  }
}
