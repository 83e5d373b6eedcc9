/**
 * extproc entry point: loads settings and policy, starts the ext_proc gRPC server and the metrics endpoint,
 * and shuts down gracefully on SIGTERM/SIGINT (finish in-flight streams, flush audit, exit 0).
 */
import { randomInt } from "node:crypto";
import pino from "pino";
import { createAuditSink } from "./audit/index.js";
import { readSettings } from "./config/index.js";
import { createMetrics, startMetricsServer } from "./metrics/index.js";
import { loadPolicy, PolicyError } from "./policy/index.js";
import { startExtProcServer } from "./server/index.js";

// Operational logs go to stderr; stdout is left to the audit sink when EXTPROC_AUDIT_LOG=stdout.
const logger = pino({ level: process.env.LOG_LEVEL ?? "info" }, pino.destination(2));

async function main(): Promise<void> {
  const settings = readSettings(process.env);
  const policy = loadPolicy(settings.policyFile, { envoyConfigFile: settings.envoyConfigFile });
  logger.info(
    {
      policy: settings.policyFile,
      digest: policy.digest.slice(0, 16),
      models: policy.models.size,
      keys: policy.keysBySha256.size,
    },
    "policy loaded",
  );

  const metrics = createMetrics();
  const audit = createAuditSink(settings.auditLog);
  const server = await startExtProcServer(
    {
      policy: () => policy,
      audit,
      metrics,
      // Weighted canary choice needs no cryptographic strength, only an unbiased uniform draw.
      random: () => randomInt(0, 2 ** 32) / 2 ** 32,
      now: Date.now,
    },
    { listen: settings.listen, maxMessageBytes: settings.maxMessageBytes, logger },
  );
  const metricsServer = await startMetricsServer(
    metrics.registry,
    settings.metricsHost,
    settings.metricsPort,
  );
  logger.info(
    { listen: server.address, metrics: `${settings.metricsHost}:${settings.metricsPort}` },
    "extproc ready",
  );

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, graceMs: settings.shutdownGraceMs }, "shutting down: finishing in-flight streams");
    server
      .shutdown(settings.shutdownGraceMs)
      .then(() => {
        audit.flush();
        metricsServer.close();
        logger.info("stopped");
        process.exit(0);
      })
      .catch((err: unknown) => {
        logger.error({ err }, "shutdown failed");
        process.exit(1);
      });
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((err: unknown) => {
  if (err instanceof PolicyError)
    logger.fatal({ problems: err.problems, file: err.file }, `invalid policy\n${err.message}`);
  else logger.fatal({ err }, "extproc failed to start");
  // Let pino write the line before exiting.
  setImmediate(() => process.exit(1));
});
