import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import * as yaml from "js-yaml";
import { ROOT } from "./index.js";

/** The sample policy as a plain object, for tests to adjust. */
export type PolicyDoc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Writes deploy/policy.yaml, changed by `edit`, to `dir/policy.yaml` and returns the path. */
export function writePolicy(dir: string, edit: (doc: PolicyDoc) => void): string {
  const doc = yaml.load(readFileSync(path.join(ROOT, "deploy/policy.yaml"), "utf8")) as PolicyDoc;
  edit(doc);
  const file = path.join(dir, "policy.yaml");
  writeFileSync(file, yaml.dump(doc));
  return file;
}
