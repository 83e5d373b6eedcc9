/** Shared helpers for the end-to-end tests: SDK clients, audit records and metric values. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import type { AuditRecord } from "../../extproc/audit/index.js";
import { RECORDED_REQUESTS, waitFor, type Stack } from "../harness/index.js";
import type { ReceivedRequest } from "../model-server/index.js";

/** A chat completion request body: one user message with `content`, and the `extra` fields. */
export function userChat<Extra extends object = Record<never, never>>(
  model: string,
  content: string,
  extra?: Extra,
): { model: string; messages: Array<{ role: "user"; content: string }> } & Extra {
  return { model, messages: [{ role: "user", content }], ...(extra as Extra) };
}

/** An OpenAI SDK client pointed at the gateway, no retries (every status must surface as is). */
export function client(stack: Stack, apiKey: string, defaultHeaders: Record<string, string> = {}): OpenAI {
  return new OpenAI({ apiKey, baseURL: stack.baseURL, maxRetries: 0, timeout: 20_000, defaultHeaders });
}

/** A request a demo model server received, and the pool that server stands in for. */
export interface Forwarded {
  readonly pool: string;
  readonly req: ReceivedRequest;
}

/** Envoy's active health checks reach the model servers too; they are not requests anyone forwarded. */
const isHealthCheck = (req: ReceivedRequest): boolean => req.path === "/health";

/** Every request the stack's model servers still hold (health checks left out), pool by pool, oldest first. */
export function forwarded(stack: Stack): Forwarded[] {
  return Object.entries(stack.pools).flatMap(([pool, server]) =>
    server.received.filter((req) => !isHealthCheck(req)).map((req) => ({ pool, req })),
  );
}

/** What reached the model servers after a {@link markForwarded}. */
export interface ForwardedSince {
  /** Requests received since the mark (health checks left out), pool by pool, oldest first. */
  all(): Forwarded[];
  /** The one request received since the mark; fails unless exactly one arrived. */
  one(): Forwarded;
}

/**
 * Marks what the model servers have received so far, to tell later arrivals apart by identity: each server
 * keeps only its last {@link RECORDED_REQUESTS}, so lengths and indexes stop meaning anything once it is
 * full. Fails, rather than under-count, when more arrived since the mark than a server keeps.
 */
export function markForwarded(stack: Stack): ForwardedSince {
  // The newest entry each server holds, health checks included: everything after it is new.
  const newest = new Map(Object.entries(stack.pools).map(([pool, server]) => [pool, server.received.at(-1)]));
  const all = (): Forwarded[] =>
    Object.entries(stack.pools).flatMap(([pool, server]) => {
      const mark = newest.get(pool);
      const at = mark === undefined ? -1 : server.received.indexOf(mark);
      const lost = mark === undefined ? server.received.length >= RECORDED_REQUESTS : at < 0;
      assert.ok(
        !lost,
        `${pool} received more than the ${RECORDED_REQUESTS} requests it keeps since the mark`,
      );
      return server.received
        .slice(at + 1)
        .filter((req) => !isHealthCheck(req))
        .map((req) => ({ pool, req }));
    });
  return {
    all,
    one: () => {
      const since = all();
      assert.equal(
        since.length,
        1,
        `expected exactly one forwarded request, got ${since.map((f) => `${f.pool} ${f.req.path}`).join(", ")}`,
      );
      return since[0]!;
    },
  };
}

/** Audit records written so far. */
export function auditRecords(stack: Stack): Array<AuditRecord & { time: string; kind: string }> {
  let text = "";
  for (const file of stack.auditLogs) {
    try {
      text += readFileSync(file, "utf8");
    } catch {
      // not written yet
    }
  }
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as AuditRecord & { time: string; kind: string });
}

/** Waits for (audit writes are asynchronous) and returns the audit record of `requestId`. */
export async function auditRecordOf(
  stack: Stack,
  requestId: string | null,
): Promise<AuditRecord & { time: string }> {
  if (!requestId) throw new Error("response has no x-request-id");
  let found: (AuditRecord & { time: string }) | undefined;
  await waitFor(
    `audit record ${requestId}`,
    async () => {
      found = auditRecords(stack).find((r) => r.request_id === requestId);
      return found !== undefined;
    },
    5_000,
  );
  return found!;
}

/** Waits for (Envoy flushes every 250 ms) and returns Envoy's JSON access-log line of `requestId`. */
export async function accessLogLine(
  stack: Stack,
  requestId: string | null,
): Promise<Record<string, unknown>> {
  if (!requestId) throw new Error("response has no x-request-id");
  let line: Record<string, unknown> | undefined;
  await waitFor(`envoy access log line ${requestId}`, async () => {
    line = readFileSync(stack.envoyAccessLog, "utf8")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.request_id === requestId);
    return line !== undefined;
  });
  return line!;
}

/** Prometheus text from extproc's /metrics (every replica's, concatenated: sampleValue sums them). */
export async function extprocMetrics(stack: Stack): Promise<string> {
  const texts = await Promise.all(
    stack.metricsPorts.map(async (port) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text()),
  );
  return texts.join("\n");
}

/** Value of one sample (`name{labels}`), 0 when absent. Labels are matched as a subset. */
export function sampleValue(metricsText: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of metricsText.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const wanted = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (wanted) total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}

/** A gateway answer as {@link rawRequest} reads it. */
export interface RawResponse {
  readonly status: number;
  readonly headers: Headers;
  /** The body parsed as JSON; undefined when it is not JSON. */
  readonly json: unknown;
  readonly text: string;
}

/** An OpenAI error object: what every refusal carries under `error`. */
export interface OpenAIErrorObject {
  readonly message: string;
  readonly type: string;
  readonly param: string | null;
  readonly code: string;
}

/** Asserts `error` is a complete OpenAI error object (message, type, param and code) and returns it. */
export function assertErrorObject(error: unknown, label = JSON.stringify(error)): OpenAIErrorObject {
  assert.ok(error !== null && typeof error === "object", `no OpenAI error object: ${label}`);
  const e = error as Record<string, unknown>;
  assert.equal(typeof e.message, "string", label);
  assert.equal(typeof e.type, "string", label);
  assert.ok("param" in e, label);
  assert.equal(typeof e.code, "string", label);
  return e as unknown as OpenAIErrorObject;
}

/** Asserts an OpenAI-style error answer: the status, a JSON content type and a complete `error` object. */
export function assertOpenAIError(res: RawResponse, status: number, code?: string): OpenAIErrorObject {
  const label = `${res.status} ${res.headers.get("content-type")} ${JSON.stringify(res.text.slice(0, 300))}`;
  assert.equal(res.status, status, label);
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/, label);
  const error = assertErrorObject((res.json as { error?: unknown } | undefined)?.error, label);
  if (code !== undefined) assert.equal(error.code, code, label);
  return error;
}

/** A raw HTTP request to the gateway (for bodies the SDK would never send). */
export async function rawRequest(
  stack: Stack,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<RawResponse> {
  const res = await fetch(`http://127.0.0.1:${stack.ports.http}${path}`, {
    method: init.method ?? "POST",
    headers: init.headers,
    body: init.body,
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, json, text };
}

/** A streamed chat completion under way, opened by {@link openStream}. */
export interface OpenStream {
  readonly requestId: string;
  /** Disconnects, as a client that goes away mid-stream. */
  abort(): void;
}

/**
 * Opens a streamed chat completion with `key` (`body` and `headers` added to the request), checks its 200
 * and reads its first bytes (or, with `until`, until the text received so far includes it), so the stream
 * is under way when this returns.
 */
export async function openStream(
  stack: Stack,
  key: string,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
  until = "",
): Promise<OpenStream> {
  const controller = new AbortController();
  const res = await fetch(`${stack.baseURL}/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
    body: JSON.stringify({ ...body, stream: true }),
    signal: controller.signal,
  });
  assert.equal(res.status, 200);
  const requestId = res.headers.get("x-request-id");
  assert.ok(requestId, "response has no x-request-id");
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let received = "";
  do {
    const { done, value } = await reader.read();
    assert.ok(!done, `the stream ended before ${JSON.stringify(until)} arrived`);
    received += decoder.decode(value, { stream: true });
  } while (!received.includes(until));
  return { requestId, abort: () => controller.abort() };
}

/** extproc's event-loop lag maximum (seconds, every replica's summed) since the last read: reading resets it. */
export async function eventLoopLagMax(stack: Stack): Promise<number> {
  return sampleValue(await extprocMetrics(stack), "nodejs_eventloop_lag_max_seconds");
}

/**
 * The control for "handled off the event loop": extproc's event-loop lag while it handles a chat request
 * carrying as many bytes as `text` in a field nothing scans or counts (numbers: the gateway passes them
 * through), so its loop only parses and forwards the bytes. Measured on this machine, now, it slows down under load as the real
 * request does; compare with {@link allowedLag}.
 */
export async function passThroughLag(
  stack: Stack,
  key: string,
  model: string,
  text: string,
): Promise<number> {
  const body = JSON.stringify({
    model,
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 1,
    // As many bytes as `text`, as numbers: every string in a body is scanned, numbers carry no text.
    note: Array.from({ length: Math.ceil(text.length / 8) }, () => 1234567),
  });
  await eventLoopLagMax(stack);
  const res = await rawRequest(stack, "/v1/chat/completions", {
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body,
  });
  assert.equal(res.status, 200, res.text.slice(0, 300));
  return eventLoopLagMax(stack);
}

/**
 * The most event-loop lag a request may cause, given the {@link passThroughLag} controls: three times the
 * larger control plus 100 ms. Scanning or counting a multi-MB prompt inline costs many times its parse.
 */
export const allowedLag = (...controls: number[]): number => 3 * Math.max(...controls) + 0.1;

/** The digest label of llm_gateway_policy_info: the policy in force on `stack`'s replicas. */
export async function policyDigest(stack: Stack): Promise<string | undefined> {
  return /^llm_gateway_policy_info\{digest="([0-9a-f]+)"\} 1$/m.exec(await extprocMetrics(stack))?.[1];
}

/** Runs `write` (which changes the policy file) and waits until extproc has applied the new policy. */
export async function applyPolicyChange(stack: Stack, write: () => void): Promise<void> {
  const before = await policyDigest(stack);
  write();
  await waitFor("the policy change applied", async () => (await policyDigest(stack)) !== before, 10_000);
}
