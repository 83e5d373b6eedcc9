import { z } from "zod";

/** extproc's runtime settings, from environment variables (documented in docs/configuration.md). */
const settingsSchema = z.object({
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
});

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
  readonly logLevel: string;
}

/** Reads settings from `env`; throws an Error naming each bad variable. */
export function readSettings(env: NodeJS.ProcessEnv): Settings {
  const parsed = settingsSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("\n"));
  }
  const s = parsed.data;
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
  };
}
