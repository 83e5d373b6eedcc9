/** One thing wrong in a document (a policy file, a request body), located by its path inside it. */
export interface DocumentProblem {
  readonly path: string;
  readonly message: string;
}

/** Formats a document path as `keys[2].team`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}
