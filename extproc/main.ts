/**
 * extproc entry point: loads settings and policy, starts the ext_proc gRPC server and the metrics endpoint,
 * and shuts down gracefully on SIGTERM/SIGINT (finish in-flight streams, flush audit, exit 0).
 */
import { randomInt } from "node:crypto";
import pino from "pino";
import { createAuditSink, readAuditRecords, type ChainHead } from "./audit/index.js";
import { RevocationList } from "./auth/revocations.js";
import { readLogLevel, readSettings } from "./config/index.js";
import {
  createMetrics,
  queueEvents,
  registerAuditDurabilityLag,
  registerEndpointState,
  startMetricsServer,
} from "./metrics/index.js";
import { readEnvoyRouting } from "./policy/envoy-routing.js";
import { PolicyError, type Policy } from "./policy/index.js";
import { PolicyStore } from "./policy/store.js";
import { MemoryQuotaStore, openRedisStore, QuotaService } from "./quota/index.js";
import { replayUsage } from "./quota/replay.js";
import { monthWindow } from "./quota/windows.js";
import { PoolQueues, Scheduler } from "./scheduling/index.js";
import { RedisQueueStore } from "./scheduling/queue-redis.js";
import { startExtProcServer } from "./server/index.js";
import { createTracer } from "./tracing/index.js";
import { preloadEncoding } from "./tokens/index.js";
import { WorkerPool } from "./workers/index.js";

/** Longest time between two "audit checkpoint" log lines while records are being written. */
const CHECKPOINT_INTERVAL_MS = 60_000;

// Operational logs go to stderr; stdout is left to the audit sink when EXTPROC_AUDIT_LOG=stdout.
const logger = pino({ level: readLogLevel() }, pino.destination(2));

/**
 * Whether requests under `policy` may have tokens counted: a limit rule (admission and settlement count
 * them), a guardrail's input token cap, or a pool that translates the Messages API (the gateway answers its
 * `count_tokens` itself). Nothing else counts.
 */
const countsTokens = (policy: Policy): boolean =>
  policy.limits.length > 0 ||
  policy.guardrails.some((g) => g.maxInputTokens !== undefined) ||
  [...policy.pools.values()].some((pool) => pool.apis.messages === "translated");

async function main(): Promise<void> {
  const settings = readSettings();
  // One wall clock for key expiry, quota windows and audit record times (the replay relies on the last two).
  const now = Date.now;
  const metrics = createMetrics();
  const scheduler = new Scheduler((pool) => envoyPoolAddresses(settings.envoyConfigFile, pool), {
    scrapeFailed: (pool, endpoint, err) =>
      logger.debug({ pool, endpoint, err: err.message }, "endpoint metrics read failed"),
    resolveFailed: (pool, err) => logger.warn({ pool, err: err.message }, "endpoint DNS resolution failed"),
  });
  // Tokenizers load with each policy that counts tokens: the first load takes ~300 ms and must not land on a
  // request. One that counts none loads none (cl100k_base alone holds ~65 MB resident). The scheduler
  // follows each policy's pools.
  const preload = (p: Policy) => {
    if (countsTokens(p)) p.models.forEach((model) => preloadEncoding(model.tokenizer));
    scheduler.configure([...p.pools.values()].flatMap((pool) => pool.scheduling ?? []));
  };
  const policies = new PolicyStore(
    settings.policyFile,
    { envoyConfigFile: settings.envoyConfigFile },
    metrics.policy,
    logger,
    preload,
  );
  const policy = policies.current;
  logger.info(
    {
      policy: settings.policyFile,
      digest: policy.digest.slice(0, 16),
      models: policy.models.size,
      keys: policy.keysBySha256.size,
    },
    "policy loaded",
  );
  // Reload on file change and on SIGHUP; a bad file is logged and the last good policy stays.
  policies.watch();
  process.on("SIGHUP", () => policies.reload("SIGHUP"));

  let stopping = false;
  let lastCheckpointAt = 0;
  // The newest durable chain head, and the newest one logged as a checkpoint.
  let durableHead: ChainHead | undefined;
  let checkpointedSeq = 0;
  const checkpoint = (head: ChainHead): void => {
    lastCheckpointAt = Date.now();
    checkpointedSeq = head.seq;
    logger.info({ audit_checkpoint: `${head.seq}:${head.hash}` }, "audit checkpoint");
  };
  const audit = createAuditSink({
    destination: settings.auditLog,
    alsoStdout: settings.auditStdout,
    fsyncIntervalMs: settings.auditFsyncMs,
    now,
    // Chain heads leave the host: the seq in metrics, seq and hash in a log line at most once a minute
    // (and at shutdown), for `audit verify --anchor` to tell a cut or rewritten tail.
    onDamagedTail: (tail) =>
      logger.warn(
        { audit_log: settings.auditLog, after_seq: tail.seq },
        "audit log ends with a line that is not a record (torn write or edit); the chain continues after it and `audit verify` will name it",
      ),
    onDurable: (head) => {
      metrics.auditDurableSeq.set(head.seq);
      durableHead = head;
      if (Date.now() - lastCheckpointAt >= CHECKPOINT_INTERVAL_MS) checkpoint(head);
    },
  });
  // Opened before anything is served: a start-up failure then never leaves the file half-open (pino's exit
  // hook would throw on it), and an unwritable audit path stops extproc with a clear error.
  await audit.ready();
  registerAuditDurabilityLag(metrics.registry, () => audit.durabilityLagSeconds());
  registerEndpointState(metrics.registry, () => scheduler.report());
  // logrotate-style rotation: move the file away, then SIGUSR2 makes extproc reopen its path.
  process.on("SIGUSR2", () => audit.reopen());
  const workers = new WorkerPool({ workers: settings.workers, logger });
  const { quota: quotaSettings } = policy;
  const redisStore =
    quotaSettings.store === "redis"
      ? await openRedisStore(
          quotaSettings.redis!,
          (err) => logger.debug({ err: err.message }, "redis connection error"),
          settings.redisPassword,
        )
      : undefined;
  const store = redisStore ?? new MemoryQuotaStore();
  if (redisStore) {
    // Start even if Redis is down (policy decides how requests fare meanwhile), but say so.
    await redisStore
      .ready(5000)
      .catch((err: Error) => logger.error({ err: err.message }, "redis not reachable at start-up"));
  }
  if (store instanceof MemoryQuotaStore && settings.auditLog !== "stdout") {
    await replayAuditLog(store, policy, settings.auditLog, now());
  }
  const revocations = new RevocationList();
  const stopFollowing = redisStore
    ? revocations.follow(redisStore.client, redisStore.prefix, logger)
    : () => {};
  const quota = new QuotaService({ store, shared: quotaSettings.store === "redis", metrics, logger, now });
  // Pool queues are shared through the quota store's Redis, with its failure policy; local without it.
  const queues = new PoolQueues({
    shared:
      redisStore &&
      new RedisQueueStore(
        redisStore.client,
        redisStore.prefix,
        () => policies.current.priorities.classes.length,
      ),
    events: queueEvents(metrics),
    logger,
    now,
  });
  // Off unless a collector is configured: then no tracer exists and nothing is sent anywhere.
  const tracing =
    settings.traces &&
    createTracer(settings.traces, {
      exported: (spans) => metrics.traceSpansExported.inc(spans),
      dropped: (reason, spans) => metrics.traceSpansDropped.inc({ reason }, spans),
    });
  if (settings.traces) logger.info({ endpoint: settings.traces.endpoint }, "tracing on");
  const server = await startExtProcServer(
    {
      policy: () => policies.current,
      audit,
      metrics,
      // Weighted canary choice needs no cryptographic strength, only an unbiased uniform draw.
      random: () => randomInt(0, 2 ** 32) / 2 ** 32,
      now,
      quota,
      workers,
      logger,
      revocations,
      tracer: tracing?.tracer,
      scheduler,
      queues,
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

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, graceMs: settings.shutdownGraceMs }, "shutting down: finishing in-flight streams");
    server
      .shutdown(settings.shutdownGraceMs)
      .then(async () => {
        policies.close();
        scheduler.close();
        queues.close();
        stopFollowing();
        // Records still waiting for a token count and settlement need the workers and the store.
        await audit.flush();
        // The spans of the requests just finished go out too (one export timeout at most).
        await tracing?.shutdown();
        // At shutdown the newest durable head leaves the host, also when it became durable within the minute
        // of the last checkpoint (no later flush would have logged it).
        if (durableHead && durableHead.seq > checkpointedSeq) checkpoint(durableHead);
        await Promise.all([store.close(), workers.close()]);
        audit.close();
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

/**
 * The static endpoints of `pool`'s own cluster in the Envoy bootstrap (an aggregate's first member), or none
 * without a bootstrap: the policy check refuses a scheduled pool reading endpoints from Envoy then.
 */
function envoyPoolAddresses(envoyConfigFile: string | undefined, pool: string): readonly string[] {
  if (envoyConfigFile === undefined) return [];
  const routing = readEnvoyRouting(envoyConfigFile);
  const route = routing.routes.get(pool);
  const cluster = route && routing.clusters.get(route.cluster);
  const own = cluster?.aggregate ? routing.clusters.get(cluster.aggregate[0]!) : cluster;
  return own?.addresses ?? [];
}

/**
 * Before serving: a restarted replica's in-memory day and month windows are rebuilt from the records of the
 * current month in its audit file (only the current file: records rotated away are not read).
 */
async function replayAuditLog(store: MemoryQuotaStore, policy: Policy, file: string, now: number) {
  const started = performance.now();
  // Cheap line filters before any parsing: only this month's records with a usage object can count.
  const month = `"time":"${monthWindow(now).id}`;
  const records = readAuditRecords(file, (line) => line.includes(month) && line.includes('"usage":{'));
  const summary = await replayUsage(store, policy, records, now);
  logger.info(
    { audit_log: file, ...summary, ms: Math.round(performance.now() - started) },
    "quota windows rebuilt from the audit log",
  );
}

main().catch((err: unknown) => {
  if (err instanceof PolicyError)
    logger.fatal({ problems: err.problems, file: err.file }, `invalid policy\n${err.message}`);
  else logger.fatal({ err }, "extproc failed to start");
  // Let pino write the line before exiting.
  setImmediate(() => process.exit(1));
});
