import type { DocumentProblem } from "../errors/document.js";

/** One thing wrong in a policy file, located by its path inside the document. */
export type PolicyProblem = DocumentProblem;

/** Raised when a policy cannot be used; the message lists every problem as `file: path: problem`. */
export class PolicyError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly PolicyProblem[],
  ) {
    super(problems.map((p) => `${file}: ${p.path ? `${p.path}: ` : ""}${p.message}`).join("\n"));
    this.name = "PolicyError";
  }
}
