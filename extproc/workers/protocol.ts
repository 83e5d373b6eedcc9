/**
 * The messages between the main thread and the worker threads of the {@link WorkerPool}: one entry per task
 * kind, each with its input and output. Everything in them is plain data (structured-cloned across threads):
 * detectors and patterns travel as specs, compiled and cached in the worker.
 */
import type { DenyPatternSpec, GuardrailScan } from "../guardrails/scan.js";
import type { Finding, ScannerSpec } from "../pii/scanner.js";
import type { EncodingName } from "../tokens/count.js";

/** Task kind → input and output. Every input carries `texts`: the inline limit is on their total length. */
export interface Tasks {
  /** Tokens in `texts` under `encoding` (countTokensSync). */
  countTokens: {
    input: { readonly texts: readonly string[]; readonly encoding: EncodingName };
    output: number;
  };
  /** PII findings per text (Scanner.scanAll); the worker caches the compiled scanner under `key`. */
  findPii: {
    input: {
      readonly texts: readonly string[];
      readonly scanner: { readonly key: string; readonly spec: ScannerSpec };
      readonly enabled: readonly string[];
    };
    output: Finding[][];
  };
  /** Deny patterns and injection score (scanGuardrailTexts). */
  scanGuardrails: {
    input: {
      readonly texts: readonly string[];
      readonly denies: readonly DenyPatternSpec[];
      readonly injection: boolean;
    };
    output: GuardrailScan;
  };
}

/** One of the task kinds. */
export type TaskKind = keyof Tasks;
/** Input of a task of kind `K`. */
export type TaskInput<K extends TaskKind> = Tasks[K]["input"];
/** Output of a task of kind `K`. */
export type TaskOutput<K extends TaskKind> = Tasks[K]["output"];

/** Main thread → worker. */
export type TaskRequest = {
  [K in TaskKind]: { readonly id: number; readonly kind: K; readonly input: TaskInput<K> };
}[TaskKind];

/** Worker → main thread: the output, or the message of the error the task threw. */
export type TaskReply =
  | { readonly id: number; readonly output: TaskOutput<TaskKind> }
  | { readonly id: number; readonly error: string };
