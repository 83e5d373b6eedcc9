import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";

/**
 * Every environment variable extproc reads (documented in docs/configuration.md): this module is the
 * only one that reads the process environment, so each variable is validated in one place, with errors
 * naming it.
 */
const variables = z.object({
  EXTPROC_POLICY: z.string().min(1).default("deploy/policy.yaml"),
  EXTPROC_ENVOY_CONFIG: z.string().min(1).optional(),
  EXTPROC_LISTEN: z.string().min(1).default("unix:.run/extproc.sock"),
  EXTPROC_METRICS_LISTEN: z
    .string()
    .regex(/^[^:]+:\d+$/, "must be host:port")
    .default("127.0.0.1:9464"),
  EXTPROC_AUDIT_LOG: z.string().min(1).default("stdout"),
  EXTPROC_AUDIT_STDOUT: z.enum(["true", "false"]).default("false"),
  EXTPROC_AUDIT_FSYNC_MS: z.coerce.number().int().min(0).default(1000),
  EXTPROC_MAX_MESSAGE_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(16 * 1024 * 1024),
  EXTPROC_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(30_000),
  EXTPROC_WORKERS: z.coerce.number().int().min(0).optional(),
  /** Former name of EXTPROC_WORKERS (the pool only counted tokens then), still read. */
  EXTPROC_TOKENIZER_WORKERS: z.coerce.number().int().min(0).default(1),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Password for the quota store's Redis, when its URL carries none (Sentinel and Cluster too). */
  REDIS_PASSWORD: z.string().optional(),
  /** Directory of the ext_proc protos; defaults to the repository's proto/. */
  EXTPROC_PROTO_DIR: z.string().optional(),
  /** The collector's OTLP/HTTP traces URL; unset: no tracing, nothing sent anywhere. */
  EXTPROC_TRACES_ENDPOINT: z
    .string()
    .url()
    .regex(/^https?:\/\//, "must be an http:// or https:// URL")
    .optional(),
  EXTPROC_TRACES_SERVICE_NAME: z.string().min(1).default("llm-gateway-extproc"),
  EXTPROC_TRACES_FLUSH_MS: z.coerce.number().int().min(10).default(1000),
  EXTPROC_TRACES_QUEUE_SPANS: z.coerce.number().int().min(1).default(4096),
  /**
   * Headers sent with every export (e.g. the collector's auth token), as OTEL_EXPORTER_OTLP_HEADERS has them:
   * `name=value` pairs, comma-separated, values percent-encoded. Never logged, never echoed in an error.
   */
  EXTPROC_TRACES_HEADERS: z
    .string()
    .optional()
    .transform((text, ctx) => {
      const headers = text === undefined ? {} : parseExportHeaders(text);
      if (headers === undefined)
        ctx.addIssue({
          code: "custom",
          message: "must be name=value pairs, comma-separated (value not shown)",
        });
      return headers ?? {};
    }),
  /** PEM file of the CA(s) that sign an https:// collector's certificate, instead of Node's bundled CAs. */
  EXTPROC_TRACES_CA_FILE: z.string().min(1).optional(),
});

/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The headers of an OTEL_EXPORTER_OTLP_HEADERS-style list (`a=1,b=x%20y`); undefined when an entry is not
 * `name=value`, a name is no header name, or a value does not decode to printable header text.
 */
function parseExportHeaders(text: string): Record<string, string> | undefined {
  const headers: Record<string, string> = {};
  for (const entry of text.split(",")) {
    if (entry.trim() === "") continue;
    const at = entry.indexOf("=");
    const name = entry.slice(0, at).trim().toLowerCase();
    if (at < 0 || !HEADER_NAME.test(name)) return undefined;
    let value: string;
    try {
      value = decodeURIComponent(entry.slice(at + 1).trim());
    } catch {
      return undefined;
    }
    if (!/^[\t\x20-\x7e\x80-\xff]*$/.test(value)) return undefined;
    headers[name] = value;
  }
  return headers;
}

type Variables = z.infer<typeof variables>;

/** A level pino knows. */
export type LogLevel = Variables["LOG_LEVEL"];

/** Validated runtime settings. */
export interface Settings {
  readonly policyFile: string;
  readonly envoyConfigFile: string | undefined;
  readonly listen: string;
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly auditLog: string;
  readonly auditStdout: boolean;
  readonly auditFsyncMs: number;
  readonly maxMessageBytes: number;
  readonly shutdownGraceMs: number;
  /** Worker threads for token counting and text scans of large inputs. */
  readonly workers: number;
  readonly logLevel: LogLevel;
  readonly redisPassword: string | undefined;
  /** OTLP trace export; undefined when tracing is off (the default). */
  readonly traces: TraceSettings | undefined;
}

/** Where and how extproc sends its spans. */
export interface TraceSettings {
  /** The collector's OTLP/HTTP traces URL (`…/v1/traces`). */
  readonly endpoint: string;
  readonly serviceName: string;
  /** How often queued spans are sent. */
  readonly flushMs: number;
  /** Most spans waiting to be sent; more are dropped (and counted). */
  readonly queueSpans: number;
  /** Sent with every export request (names lower-case); secrets among them are never logged. */
  readonly headers: Readonly<Record<string, string>>;
  /** PEM file of the CA(s) for an https:// endpoint; undefined: Node's bundled CAs. */
  readonly caFile: string | undefined;
}

/** Reads settings from `env`; throws an Error naming each bad variable. */
export function readSettings(env: NodeJS.ProcessEnv = process.env): Settings {
  const parsed = variables.safeParse(env);
  if (!parsed.success) throw new Error(parsed.error.issues.map(describeIssue).join("\n"));
  const s = parsed.data;
  if (s.EXTPROC_TRACES_CA_FILE !== undefined && !s.EXTPROC_TRACES_ENDPOINT?.startsWith("https://"))
    throw new Error("EXTPROC_TRACES_CA_FILE: needs an https:// EXTPROC_TRACES_ENDPOINT (TLS was asked for)");
  const [metricsHost, metricsPort] = s.EXTPROC_METRICS_LISTEN.split(":") as [string, string];
  return {
    policyFile: s.EXTPROC_POLICY,
    envoyConfigFile: s.EXTPROC_ENVOY_CONFIG,
    listen: s.EXTPROC_LISTEN,
    metricsHost,
    metricsPort: Number(metricsPort),
    auditLog: s.EXTPROC_AUDIT_LOG,
    auditStdout: s.EXTPROC_AUDIT_STDOUT === "true",
    auditFsyncMs: s.EXTPROC_AUDIT_FSYNC_MS,
    maxMessageBytes: s.EXTPROC_MAX_MESSAGE_BYTES,
    shutdownGraceMs: s.EXTPROC_SHUTDOWN_GRACE_MS,
    workers: s.EXTPROC_WORKERS ?? s.EXTPROC_TOKENIZER_WORKERS,
    logLevel: s.LOG_LEVEL,
    redisPassword: s.REDIS_PASSWORD,
    traces: s.EXTPROC_TRACES_ENDPOINT
      ? {
          endpoint: s.EXTPROC_TRACES_ENDPOINT,
          serviceName: s.EXTPROC_TRACES_SERVICE_NAME,
          flushMs: s.EXTPROC_TRACES_FLUSH_MS,
          queueSpans: s.EXTPROC_TRACES_QUEUE_SPANS,
          headers: s.EXTPROC_TRACES_HEADERS,
          caFile: s.EXTPROC_TRACES_CA_FILE,
        }
      : undefined,
  };
}

/**
 * LOG_LEVEL alone, for the logger that must exist before the other settings are read (it reports their
 * errors). Throws an Error naming the variable when it is not a level.
 */
export function readLogLevel(env: NodeJS.ProcessEnv = process.env): LogLevel {
  return readVariable("LOG_LEVEL", env);
}

/** EXTPROC_PROTO_DIR alone, read when the protos load (at import); undefined when unset. */
export function readProtoDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return readVariable("EXTPROC_PROTO_DIR", env);
}

/** The directory of the protos extproc speaks: EXTPROC_PROTO_DIR, or the repository's proto/. */
export function protoDirectory(env: NodeJS.ProcessEnv = process.env): string {
  // This file is dist/extproc/config/index.js once built.
  return readProtoDir(env) ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../proto");
}

/**
 * The environment that policy secrets written as `{ env: NAME }` are read from: the process's. Those names
 * are the policy author's, so they are not in the list above.
 */
export function secretEnvironment(): NodeJS.ProcessEnv {
  return process.env;
}

function readVariable<K extends keyof Variables>(name: K, env: NodeJS.ProcessEnv): Variables[K] {
  const parsed = variables.shape[name].safeParse(env[name]);
  if (!parsed.success)
    throw new Error(parsed.error.issues.map((i) => describeIssue({ ...i, path: [name] })).join("\n"));
  return parsed.data as Variables[K];
}

function describeIssue(issue: {
  readonly path: ReadonlyArray<PropertyKey>;
  readonly message: string;
}): string {
  return `${issue.path.map(String).join(".")}: ${issue.message}`;
}
