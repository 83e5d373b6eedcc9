/**
 * An extproc row (Envoy + extproc with a benchmark policy) started, and its check: that the row does what
 * its label says and nothing more.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import type { StackOptions } from "../../test/harness/index.js";
import type { PolicyDoc } from "../../test/harness/policy.js";
import { MODE_LABELS, readAnswer, sendOnce, type Mode } from "./request.js";
import type { StartedRow } from "./scenario.js";
import { startGateway, writeBenchPolicy, type RowEnv } from "./stacks.js";

/** What an extproc row's check expects of its answers. */
export interface Expectations {
  /** Answers carry `x-ratelimit-limit-requests` with this value (null: no such header). */
  readonly rateLimitRequests: string | null;
  /** PII is scanned in requests and responses: audit records carry `pii`, emails come back redacted. */
  readonly pii: boolean;
}

/** How an extproc row differs from the core gateway. */
export interface ExtprocRowSpec {
  /** Changes the core policy (see {@link writeBenchPolicy}); `sample` is deploy/policy.yaml as read. */
  readonly edit?: (doc: PolicyDoc, sample: PolicyDoc) => void;
  readonly expect: Expectations;
  /** Further problems with the written policy file (e.g. checked with extproc's own code). */
  readonly policyProblems?: (file: string) => Promise<string[]>;
  /** Traces on in Envoy and extproc, sent to this collector (see startStack's `traces`). */
  readonly traces?: StackOptions["traces"];
  /** Further problems with the row once its check requests are answered (by their x-request-id). */
  readonly requestProblems?: (requestIds: readonly string[]) => Promise<string[]>;
}

/**
 * Addresses the check puts in its prompt and has the model server answer with (`x-demo-reply`), streamed
 * in two pieces cut inside the address (`x-demo-split`).
 */
const CHECK = {
  prompt: " Please reply to jane.doe@example.com.",
  reply: "Sure, I will write to ops.team@example.org today.",
  replyEmail: "ops.team@example.org",
  splitAt: "27",
} as const;

/** Starts Envoy + extproc with the core policy changed by `spec.edit`. */
export async function startExtprocRow(env: RowEnv, spec: ExtprocRowSpec): Promise<StartedRow> {
  const policyFile = writeBenchPolicy(env.workDir, spec.edit);
  const { stack, proxies } = await startGateway(env, policyFile, spec.traces);
  const origin = `http://127.0.0.1:${stack.ports.http}`;
  return {
    origin,
    proxies,
    extproc: {
      metricsUrl: `http://127.0.0.1:${stack.ports.metrics}/metrics`,
      adminUrl: `http://127.0.0.1:${stack.ports.admin}`,
    },
    check: async (modes) => {
      const problems = spec.policyProblems ? await spec.policyProblems(policyFile) : [];
      const requestIds: string[] = [];
      for (const mode of modes)
        problems.push(
          ...(await checkRequest(origin, stack.auditLog, mode, spec.expect, requestIds)).map(
            (x) => `${MODE_LABELS[mode]}: ${x}`,
          ),
        );
      if (spec.requestProblems) problems.push(...(await spec.requestProblems(requestIds)));
      return problems;
    },
    stop: () => stack.stop(),
  };
}

/**
 * One request with an email address in its prompt and one in the model server's answer: rows with quotas
 * answer with the limit's `x-ratelimit-*` headers, others without; rows with PII redact both addresses
 * (the audit record counts an EMAIL redacted in the request and in the response, and the answer reaches
 * the client with a placeholder even when the address is streamed in two pieces), others leave both alone
 * and write no `pii` into the audit record.
 */
async function checkRequest(
  origin: string,
  auditLog: string,
  mode: Mode,
  expect: Expectations,
  requestIds: string[],
): Promise<string[]> {
  const headers = { "x-demo-reply": encodeURIComponent(CHECK.reply), "x-demo-split": CHECK.splitAt };
  const res = await sendOnce(origin, mode, headers, CHECK.prompt);
  if (res.status !== 200) return [`HTTP ${res.status}: ${res.body.slice(0, 300)}`];
  const problems: string[] = [];
  const limit = res.headers.get("x-ratelimit-limit-requests");
  if (limit !== expect.rateLimitRequests)
    problems.push(
      `x-ratelimit-limit-requests ${limit ?? "absent"}, expected ${expect.rateLimitRequests ?? "absent"}`,
    );
  const answer = readAnswer(mode, res.body).text;
  if (expect.pii ? answer.includes(CHECK.replyEmail) || !/<EMAIL_\w+>/.test(answer) : answer !== CHECK.reply)
    problems.push(
      `answer ${JSON.stringify(answer)}, expected ${expect.pii ? "<EMAIL_…> in it" : "it unchanged"}`,
    );
  const requestId = res.headers.get("x-request-id");
  if (requestId) requestIds.push(requestId);
  const record = requestId ? await auditRecord(auditLog, requestId) : undefined;
  if (!record) return [...problems, `no audit record for x-request-id ${requestId ?? "(absent)"}`];
  const pii = record.pii as Record<"request" | "response", Record<string, { action?: string }>> | undefined;
  if (!expect.pii && pii !== undefined) problems.push(`audit record has pii ${JSON.stringify(pii)}`);
  if (expect.pii && (pii?.request.EMAIL?.action !== "redact" || pii.response.EMAIL?.action !== "redact"))
    problems.push(
      `audit record has pii ${JSON.stringify(pii)}, expected EMAIL redacted in request and response`,
    );
  return problems;
}

/** The audit record of `requestId` in `file`, waiting up to 5 s for extproc's buffered writes. */
async function auditRecord(file: string, requestId: string): Promise<Record<string, unknown> | undefined> {
  const deadline = performance.now() + 5000;
  for (;;) {
    let text = "";
    try {
      text = readFileSync(file, "utf8");
    } catch {
      // not written yet
    }
    for (const line of text.split("\n")) {
      if (!line.includes(requestId)) continue;
      const record = JSON.parse(line) as Record<string, unknown>;
      if (record.request_id === requestId) return record;
    }
    if (performance.now() > deadline) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
