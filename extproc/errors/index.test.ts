import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import * as yaml from "js-yaml";
import { anthropicErrorType, ERRORS, GatewayError, type ErrorCode } from "./index.js";

const read = (file: string) => readFileSync(new URL(`../../../${file}`, import.meta.url), "utf8");

/** The Envoy configurations whose own replies (local_reply_config) clients can get. */
const ENVOY_CONFIGS = ["envoy/envoy.yaml", "deploy/istio/envoyfilter.yaml"];

/**
 * Envoy's status for a reply chosen by response flags alone (no healthy upstream, connect failure): the
 * mapper keeps Envoy's status, so it is not in the config to read.
 */
const UPSTREAM_FLAG_STATUS = 503;

/** Every value under `node` (depth first) that sits under a key named `key`. */
function valuesUnder(node: unknown, key: string): unknown[] {
  if (Array.isArray(node)) return node.flatMap((item) => valuesUnder(item, key));
  if (node === null || typeof node !== "object") return [];
  return Object.entries(node).flatMap(([k, v]) => (k === key ? [v] : []).concat(valuesUnder(v, key)));
}

/** The codes Envoy answers itself, each with the statuses its local_reply_config mappers give it. */
function envoyReplyCodes(): Map<string, Set<number>> {
  const codes = new Map<string, Set<number>>();
  for (const file of ENVOY_CONFIGS)
    for (const doc of yaml.loadAll(read(file)))
      for (const config of valuesUnder(doc, "local_reply_config"))
        for (const mapper of valuesUnder(config, "mappers").flat()) {
          const [code] = valuesUnder(valuesUnder(mapper, "body_format_override"), "code");
          assert.equal(typeof code, "string", `${file}: a local reply mapper without an error code`);
          const statuses = valuesUnder(valuesUnder(mapper, "filter"), "status_code_filter").flatMap((f) =>
            valuesUnder(f, "default_value"),
          ) as number[];
          const known = codes.get(code as string) ?? new Set<number>();
          for (const status of statuses.length > 0 ? statuses : [UPSTREAM_FLAG_STATUS]) known.add(status);
          codes.set(code as string, known);
        }
  return codes;
}

/** The rows of docs/errors.md's table: each code listed, with the statuses its row gives. */
function documentedCodes(): Array<{ code: string; statuses: number[] }> {
  return read("docs/errors.md")
    .split("\n")
    .filter((line) => /^\| [0-9]/.test(line))
    .flatMap((line) => {
      const [, status = "", codes = ""] = line.split("|");
      const statuses = status.split(",").map((s) => Number(s.trim()));
      return [...codes.matchAll(/`([a-z_]+)`/g)].map(([, code]) => ({ code: code!, statuses }));
    });
}

describe("the errors page (docs/errors.md)", () => {
  const documented = documentedCodes();
  const envoy = envoyReplyCodes();

  it("finds Envoy's own replies in its configs", () => {
    assert.ok(
      envoy.has("answer_undeliverable") && envoy.has("upstream_unavailable"),
      [...envoy.keys()].join(),
    );
  });

  it("lists each code once: exactly extproc's errors and the replies Envoy gives itself", () => {
    const codes = documented.map((row) => row.code);
    assert.deepEqual(
      codes.filter((code, i) => codes.indexOf(code) !== i),
      [],
      "listed more than once",
    );
    assert.deepEqual([...codes].sort(), [...Object.keys(ERRORS), ...envoy.keys()].sort());
  });

  it("gives each code the status clients get", () => {
    for (const { code, statuses } of documented) {
      const expected =
        code in ERRORS ? [ERRORS[code as keyof typeof ERRORS].status] : [...(envoy.get(code) ?? [])];
      assert.deepEqual(
        statuses,
        expected.sort((a, b) => a - b),
        code,
      );
    }
  });
});

describe("Anthropic's error shape (the Messages API)", () => {
  it("gives every code the type Anthropic documents for its status, beside the stable code", () => {
    const documented: Record<number, string> = {
      400: "invalid_request_error",
      401: "authentication_error",
      402: "billing_error",
      403: "permission_error",
      404: "not_found_error",
      413: "request_too_large",
      429: "rate_limit_error",
      500: "api_error",
      503: "overloaded_error",
      504: "timeout_error",
      529: "overloaded_error",
    };
    for (const code of Object.keys(ERRORS) as ErrorCode[]) {
      const error = new GatewayError(code, "why");
      const body = JSON.parse(error.toBody("anthropic"));
      assert.deepEqual(Object.keys(body), ["type", "error"]);
      assert.equal(body.type, "error");
      assert.equal(body.error.code, code);
      assert.equal(body.error.message, "why");
      const expected =
        documented[error.status] ?? (error.status >= 500 ? "api_error" : "invalid_request_error");
      assert.equal(body.error.type, expected, code);
      assert.equal(anthropicErrorType(error.status), expected);
    }
  });

  it("Envoy's own replies on /v1/messages carry the same codes as their OpenAI-shaped twins", () => {
    for (const doc of yaml.loadAll(read("envoy/envoy.yaml")))
      for (const config of valuesUnder(doc, "local_reply_config")) {
        const formats = valuesUnder(config, "json_format") as Array<Record<string, { code?: string }>>;
        const anthropic = formats.filter((f) => (f as { type?: unknown }).type === "error");
        const openai = formats.filter((f) => (f as { type?: unknown }).type !== "error");
        assert.deepEqual(
          anthropic.map((f) => f.error!.code),
          openai.map((f) => f.error!.code),
        );
      }
  });
});
