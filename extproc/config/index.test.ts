import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { readLogLevel, readProtoDir, readSettings, secretEnvironment, type Settings } from "./index.js";

const DEFAULTS: Settings = {
  policyFile: "deploy/policy.yaml",
  envoyConfigFile: undefined,
  listen: "unix:.run/extproc.sock",
  metricsHost: "127.0.0.1",
  metricsPort: 9464,
  auditLog: "stdout",
  auditStdout: false,
  auditFsyncMs: 1000,
  maxMessageBytes: 16 * 1024 * 1024,
  shutdownGraceMs: 30_000,
  workers: 1,
  logLevel: "info",
  redisPassword: undefined,
  traces: undefined,
};

describe("readSettings", () => {
  it("has a default for every setting", () => {
    assert.deepEqual(readSettings({}), DEFAULTS);
  });

  it("reads each variable", () => {
    const settings = readSettings({
      EXTPROC_POLICY: "/etc/gw/policy.yaml",
      EXTPROC_ENVOY_CONFIG: "/etc/envoy/envoy.yaml",
      EXTPROC_LISTEN: "127.0.0.1:50051",
      EXTPROC_METRICS_LISTEN: "0.0.0.0:9500",
      EXTPROC_AUDIT_LOG: "/var/log/gw/audit.jsonl",
      EXTPROC_AUDIT_STDOUT: "true",
      EXTPROC_AUDIT_FSYNC_MS: "250",
      EXTPROC_MAX_MESSAGE_BYTES: "33554432",
      EXTPROC_SHUTDOWN_GRACE_MS: "5000",
      EXTPROC_WORKERS: "3",
      LOG_LEVEL: "debug",
      REDIS_PASSWORD: "s3cret",
      EXTPROC_TRACES_ENDPOINT: "https://collector.observability:4318/v1/traces",
      EXTPROC_TRACES_SERVICE_NAME: "gateway-eu",
      EXTPROC_TRACES_FLUSH_MS: "500",
      EXTPROC_TRACES_QUEUE_SPANS: "100",
      EXTPROC_TRACES_HEADERS: "Authorization=Bearer%20t0ken, x-scope-orgid=gw",
      EXTPROC_TRACES_CA_FILE: "/etc/gw/collector-ca.pem",
    });
    assert.deepEqual(settings, {
      policyFile: "/etc/gw/policy.yaml",
      envoyConfigFile: "/etc/envoy/envoy.yaml",
      listen: "127.0.0.1:50051",
      metricsHost: "0.0.0.0",
      metricsPort: 9500,
      auditLog: "/var/log/gw/audit.jsonl",
      auditStdout: true,
      auditFsyncMs: 250,
      maxMessageBytes: 33554432,
      shutdownGraceMs: 5000,
      workers: 3,
      logLevel: "debug",
      redisPassword: "s3cret",
      traces: {
        endpoint: "https://collector.observability:4318/v1/traces",
        serviceName: "gateway-eu",
        flushMs: 500,
        queueSpans: 100,
        headers: { authorization: "Bearer t0ken", "x-scope-orgid": "gw" },
        caFile: "/etc/gw/collector-ca.pem",
      },
    });
  });

  it("never shows a bad collector header's value, and wants https:// for a CA file", () => {
    assert.throws(
      () => readSettings({ EXTPROC_TRACES_HEADERS: "authorization=Bearer%ZZsecret-token" }),
      (err: Error) => err.message.startsWith("EXTPROC_TRACES_HEADERS: ") && !err.message.includes("secret"),
    );
    assert.throws(
      () =>
        readSettings({
          EXTPROC_TRACES_ENDPOINT: "http://collector:4318/v1/traces",
          EXTPROC_TRACES_CA_FILE: "/ca.pem",
        }),
      /^Error: EXTPROC_TRACES_CA_FILE: needs an https:\/\//,
    );
  });

  it("keeps tracing off unless a collector is named, whatever else is set", () => {
    assert.equal(
      readSettings({ EXTPROC_TRACES_SERVICE_NAME: "x", EXTPROC_TRACES_FLUSH_MS: "50" }).traces,
      undefined,
    );
  });

  it("reads the former name of EXTPROC_WORKERS, which wins when both are set", () => {
    assert.equal(readSettings({ EXTPROC_TOKENIZER_WORKERS: "2" }).workers, 2);
    assert.equal(readSettings({ EXTPROC_TOKENIZER_WORKERS: "2", EXTPROC_WORKERS: "0" }).workers, 0);
  });

  it("ignores variables that are not its own", () => {
    assert.deepEqual(readSettings({ HOME: "/root", EXTPROC_SOMETHING_ELSE: "x" }), DEFAULTS);
  });

  const bad: Array<[string, string]> = [
    ["EXTPROC_POLICY", ""],
    ["EXTPROC_ENVOY_CONFIG", ""],
    ["EXTPROC_LISTEN", ""],
    ["EXTPROC_METRICS_LISTEN", "9464"],
    ["EXTPROC_AUDIT_LOG", ""],
    ["EXTPROC_AUDIT_STDOUT", "yes"],
    ["EXTPROC_AUDIT_FSYNC_MS", "-1"],
    ["EXTPROC_AUDIT_FSYNC_MS", "soon"],
    ["EXTPROC_MAX_MESSAGE_BYTES", "512"],
    ["EXTPROC_MAX_MESSAGE_BYTES", "16MiB"],
    ["EXTPROC_SHUTDOWN_GRACE_MS", "2.5"],
    ["EXTPROC_WORKERS", "-1"],
    ["EXTPROC_TOKENIZER_WORKERS", "many"],
    ["LOG_LEVEL", "verbose"],
    ["EXTPROC_TRACES_ENDPOINT", "collector:4318"],
    ["EXTPROC_TRACES_ENDPOINT", "grpc://collector:4317"],
    ["EXTPROC_TRACES_SERVICE_NAME", ""],
    ["EXTPROC_TRACES_FLUSH_MS", "5"],
    ["EXTPROC_TRACES_QUEUE_SPANS", "0"],
    ["EXTPROC_TRACES_HEADERS", "no-equals-sign"],
    ["EXTPROC_TRACES_HEADERS", "bad name=1"],
    ["EXTPROC_TRACES_HEADERS", "x=line%0Abreak"],
    ["EXTPROC_TRACES_CA_FILE", ""],
  ];
  for (const [name, value] of bad) {
    it(`refuses ${name}=${JSON.stringify(value)}, naming the variable`, () => {
      assert.throws(
        () => readSettings({ [name]: value }),
        (err: Error) => err.message.split("\n").length === 1 && err.message.startsWith(`${name}: `),
      );
    });
  }

  it("names every bad variable at once", () => {
    assert.throws(
      () => readSettings({ EXTPROC_AUDIT_STDOUT: "1", LOG_LEVEL: "loud" }),
      (err: Error) => /^EXTPROC_AUDIT_STDOUT: .*\nLOG_LEVEL: /.test(err.message),
    );
  });
});

describe("readLogLevel", () => {
  it("defaults to info and reads LOG_LEVEL", () => {
    assert.equal(readLogLevel({}), "info");
    assert.equal(readLogLevel({ LOG_LEVEL: "warn" }), "warn");
  });

  it("refuses a level pino does not know, naming LOG_LEVEL", () => {
    assert.throws(
      () => readLogLevel({ LOG_LEVEL: "chatty" }),
      (err: Error) => err.message.startsWith("LOG_LEVEL: "),
    );
  });
});

describe("readProtoDir", () => {
  it("is unset unless EXTPROC_PROTO_DIR says where the protos are", () => {
    assert.equal(readProtoDir({}), undefined);
    assert.equal(readProtoDir({ EXTPROC_PROTO_DIR: "/opt/gw/proto" }), "/opt/gw/proto");
  });
});

describe("secretEnvironment", () => {
  it("is the process environment, which policy secrets name variables of", () => {
    assert.equal(secretEnvironment(), process.env);
  });
});

describe("one config mechanism", () => {
  it("no extproc source outside config/ reads process.env", () => {
    const root = path.resolve(import.meta.dirname, "../../../extproc");
    const sources = readdirSync(root, { recursive: true, encoding: "utf8" }).filter(
      (file) => file.endsWith(".ts") && !file.endsWith(".test.ts"),
    );
    assert.ok(sources.length > 20, `found the sources in ${root}`);
    const readers = sources.filter(
      (file) =>
        !file.startsWith(`config${path.sep}`) &&
        /process\.env\b/.test(readFileSync(path.join(root, file), "utf8")),
    );
    assert.deepEqual(readers, [], "these read the environment themselves instead of through config/");
  });
});
