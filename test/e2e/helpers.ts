/** Shared helpers for the end-to-end tests: SDK clients, audit records and metric values. */
import { readFileSync } from "node:fs";
import OpenAI from "openai";
import type { AuditRecord } from "../../extproc/audit/index.js";
import { waitFor, type Stack } from "../harness/index.js";

/** An OpenAI SDK client pointed at the gateway, no retries (every status must surface as is). */
export function client(stack: Stack, apiKey: string, defaultHeaders: Record<string, string> = {}): OpenAI {
  return new OpenAI({ apiKey, baseURL: stack.baseURL, maxRetries: 0, timeout: 20_000, defaultHeaders });
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

/** A raw HTTP request to the gateway (for bodies the SDK would never send). */
export async function rawRequest(
  stack: Stack,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<{ status: number; headers: Headers; json: unknown; text: string }> {
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
