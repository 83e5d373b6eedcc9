/**
 * A running gateway with a real Prometheus scraping it every second (extproc's /metrics as
 * llm-gateway-extproc, Envoy's /stats/prometheus as llm-gateway-envoy) and evaluating the shipped rules,
 * every `for:` shortened to 1 s so a test need not wait minutes; plus what the ops tests ask of it.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as yaml from "js-yaml";
import { APIError } from "openai";
import { ROOT, startStack, waitFor, type Stack, type StackOptions } from "../harness/index.js";
import { startPrometheus, type ActiveAlert, type Prometheus } from "../harness/prometheus.js";
import { JOBS, OPS_FILES } from "../../deploy/render/index.js";
import { client } from "../e2e/helpers.js";

/** The shipped rules file. */
export const ALERTS_FILE = path.join(ROOT, OPS_FILES.alerts);

/** A stack and the Prometheus watching it. */
export interface Monitored {
  readonly stack: Stack;
  readonly prometheus: Prometheus;
  /** The rules file the Prometheus loaded: {@link ALERTS_FILE} with 1 s `for:` values. */
  readonly rulesFile: string;
  /** Sends a chat completion with `key`; resolves with the HTTP status it ended with. */
  chat(key: string, model: string, content?: string): Promise<number>;
  /** Alerts named `name` (in `state`, if given) now. */
  alertsNamed(name: string, state?: ActiveAlert["state"]): Promise<ActiveAlert[]>;
  /** Waits until `name` fires (with `labels`, if given); fails with the alerts that are active instead. */
  firing(name: string, labels?: Record<string, string>, timeoutMs?: number): Promise<ActiveAlert>;
  stop(): Promise<void>;
}

/** Sends `request` and returns the HTTP status it ended with (the SDK throws on every refusal). */
export async function statusOf(request: () => Promise<unknown>): Promise<number> {
  try {
    await request();
    return 200;
  } catch (err) {
    if (err instanceof APIError && err.status !== undefined) return err.status;
    throw err;
  }
}

/** {@link ALERTS_FILE} with every alert's `for:` set to 1 s, written into `dir`. */
function testRules(dir: string): string {
  const doc = yaml.load(readFileSync(ALERTS_FILE, "utf8")) as {
    groups: Array<{ rules: Array<{ for?: string }> }>;
  };
  for (const group of doc.groups) for (const rule of group.rules) if (rule.for !== undefined) rule.for = "1s";
  const file = path.join(dir, "alerts.test.yaml");
  writeFileSync(file, yaml.dump(doc));
  return file;
}

/** Starts a stack with `options` and a Prometheus scraping it. */
export async function startMonitored(options: StackOptions = {}): Promise<Monitored> {
  const stack = await startStack(options);
  const rulesFile = testRules(mkdtempSync(path.join(tmpdir(), "llm-gateway-ops-")));
  const prometheus = await startPrometheus({
    interval: "1s",
    ruleFiles: [rulesFile],
    jobs: [
      { job: JOBS.extproc, targets: [`127.0.0.1:${stack.ports.metrics}`], metricsPath: "/metrics" },
      { job: JOBS.envoy, targets: [`127.0.0.1:${stack.ports.admin}`], metricsPath: "/stats/prometheus" },
    ],
  }).catch(async (err: Error) => {
    await stack.stop();
    throw err;
  });
  const alertsNamed = async (name: string, state?: ActiveAlert["state"]) =>
    (await prometheus.alerts()).filter(
      (a) => a.labels.alertname === name && (state === undefined || a.state === state),
    );
  return {
    stack,
    prometheus,
    rulesFile,
    chat: (key, model, content = "hello") =>
      statusOf(() =>
        client(stack, key).chat.completions.create({
          model,
          messages: [{ role: "user", content }],
          max_tokens: 8,
        }),
      ),
    alertsNamed,
    firing: async (name, labels = {}, timeoutMs = 30_000) => {
      let found: ActiveAlert | undefined;
      await waitFor(
        `alert ${name} firing`,
        async () => {
          found = (await alertsNamed(name, "firing")).find((a) =>
            Object.entries(labels).every(([k, v]) => a.labels[k] === v),
          );
          return found !== undefined;
        },
        timeoutMs,
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}; active: ${JSON.stringify(await prometheus.alerts())}`);
      });
      return found!;
    },
    stop: async () => {
      await prometheus.stop();
      await stack.stop();
    },
  };
}
