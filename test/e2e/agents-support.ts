/** Shared setup of the agent API end-to-end tests (Responses, Messages): the stack, keys and SDK clients. */
import { createHash } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { startStack, type Stack } from "../harness/index.js";
import { writePolicy } from "../harness/policy.js";
import { recordedBody, sseEvents } from "../vllm-recordings/index.js";

/** A key allowed two requests a minute: the third is refused with 429. */
export const LIMITED_KEY = "sk-agents-limited";
/** A key with a per-minute token limit (so answers carry x-ratelimit-* token headers), on native pool A. */
export const METERED_KEY = "sk-agents-metered";

/**
 * The sample stack with two more keys (team `agents`, native pool A's model only): one allowed two requests
 * a minute, one with a token limit, for rate-limit tests that must not touch the demo keys' counters.
 */
export async function startAgentStack(name: string): Promise<Stack> {
  const dir = mkdtempSync(path.join(tmpdir(), `llm-gateway-${name}-`));
  const policyFile = writePolicy(dir, (doc) => {
    doc.teams.agents = { models: ["llama-3.1-8b-instruct"] };
    doc.keys.push({
      id: "agents-limited",
      team: "agents",
      sha256: createHash("sha256").update(LIMITED_KEY).digest("hex"),
    });
    doc.keys.push({
      id: "agents-metered",
      team: "agents",
      sha256: createHash("sha256").update(METERED_KEY).digest("hex"),
    });
    doc.limits.push({ id: "agents-limited", scope: { key: "agents-limited" }, requestsPerMinute: 2 });
    doc.limits.push({ id: "agents-metered", scope: { key: "agents-metered" }, tokensPerMinute: 100000 });
  });
  return startStack({ policyFile, workDir: dir });
}

/** An Anthropic SDK client pointed at the gateway (key as `x-api-key`), no retries. */
export function anthropic(
  stack: Stack,
  apiKey: string,
  defaultHeaders: Record<string, string> = {},
): Anthropic {
  return new Anthropic({
    apiKey,
    baseURL: `http://127.0.0.1:${stack.ports.http}`,
    maxRetries: 0,
    timeout: 20_000,
    defaultHeaders,
  });
}

/** URI-encoded `x-demo-tool-call` value: the demo model answers with this tool call. */
export const toolCallHeader = (name: string, args: object): string =>
  encodeURIComponent(JSON.stringify({ name, arguments: JSON.stringify(args) }));

/**
 * The byte shape of a JSON value: the same keys in the same order, each leaf replaced by its type (strings
 * by `"s"`, numbers by `0`), so two answers with other ids, texts and counts compare equal when their
 * framing is the same.
 */
export function jsonShape(value: unknown): unknown {
  if (typeof value === "string") return "s";
  if (typeof value === "number") return 0;
  if (Array.isArray(value)) return value.length === 0 ? [] : [jsonShape(value[0])];
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonShape(v)]));
  return value;
}

/**
 * The byte shape of an SSE body: each event's `event:` line and data shape, repeated events of one kind
 * once (a recording's delta count depends on its text), and how the stream ends.
 */
export function sseShape(body: string): string[] {
  const out: string[] = [];
  for (const raw of sseEvents(body)) {
    const name = /^event: (.*)$/m.exec(raw)?.[1] ?? "";
    const data = /^data: (.*)$/m.exec(raw)?.[1] ?? "";
    const shape = `${name} ${JSON.stringify(data.startsWith("{") ? jsonShape(JSON.parse(data)) : data)}`;
    if (out.at(-1) !== shape) out.push(shape);
  }
  out.push(`ends with ${JSON.stringify(body.slice(-2))}`);
  return out;
}

/** A recording's JSON body's shape. */
export const recordedJsonShape = (name: string): unknown => jsonShape(JSON.parse(recordedBody(name)));
