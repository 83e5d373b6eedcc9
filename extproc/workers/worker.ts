/** A worker thread of the {@link WorkerPool}: runs tasks off the event loop (see protocol.ts). */
import { parentPort } from "node:worker_threads";
import { DENY_PATTERN_FLAGS, scanGuardrailTexts } from "../guardrails/scan.js";
import { Scanner, type ScannerSpec } from "../pii/scanner.js";
import { countTokensSync } from "../tokens/count.js";
import type { TaskInput, TaskKind, TaskOutput, TaskReply, TaskRequest } from "./protocol.js";

/**
 * Compiled scanners by spec key. The key is a hash of the spec, so a policy reload that changes detectors
 * brings a new key (never a stale scanner); a few are kept because requests under the previous policy may
 * still be in flight right after a reload.
 */
const scanners = new Map<string, Scanner>();
const MAX_SCANNERS = 4;
/** Compiled deny patterns by source; cleared when policies have churned through many. */
const denyRegexes = new Map<string, RegExp>();
const MAX_DENY_REGEXES = 256;

function scannerFor(key: string, spec: ScannerSpec): Scanner {
  let scanner = scanners.get(key);
  if (scanner) {
    scanners.delete(key); // re-inserted below: most recently used last
  } else {
    scanner = new Scanner(spec);
    if (scanners.size >= MAX_SCANNERS) scanners.delete(scanners.keys().next().value!);
  }
  scanners.set(key, scanner);
  return scanner;
}

function denyRegex(pattern: string): RegExp {
  let regex = denyRegexes.get(pattern);
  if (!regex) {
    if (denyRegexes.size >= MAX_DENY_REGEXES) denyRegexes.clear();
    regex = new RegExp(pattern, DENY_PATTERN_FLAGS);
    denyRegexes.set(pattern, regex);
  }
  return regex;
}

const handlers: { [K in TaskKind]: (input: TaskInput<K>) => TaskOutput<K> } = {
  countTokens: ({ texts, encoding }) => countTokensSync(texts, encoding),
  findPii: ({ texts, scanner, enabled }) =>
    scannerFor(scanner.key, scanner.spec).scanAll(texts, new Set(enabled)),
  scanGuardrails: ({ texts, denies, injection }) =>
    scanGuardrailTexts(
      texts,
      denies.map((d) => ({ ...d, regex: denyRegex(d.pattern) })),
      injection,
    ),
};

function run<K extends TaskKind>(kind: K, input: TaskInput<K>): TaskOutput<K> {
  return handlers[kind](input);
}

parentPort!.on("message", (task: TaskRequest) => {
  let reply: TaskReply;
  try {
    reply = { id: task.id, output: run(task.kind, task.input) };
  } catch (err) {
    reply = { id: task.id, error: (err as Error).message };
  }
  parentPort!.postMessage(reply);
});
