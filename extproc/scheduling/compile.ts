import type { DocumentProblem } from "../errors/document.js";

/**
 * The longest a request may wait in a pool's queue. Envoy's ext_proc filter waits at most
 * `max_message_timeout` (30 s in envoy/envoy.yaml) for the answer a queued request holds back, and
 * extproc asks for that extension once per message: the wait plus the body's scan must fit in it.
 */
export const MAX_QUEUE_WAIT_MS = 20_000;

/** The model servers whose metric names come built in (`scheduling.server`). */
export const MODEL_SERVERS = ["vllm", "sglang", "tgi"] as const;
/** A model server with built-in metric names. */
export type ModelServerKind = (typeof MODEL_SERVERS)[number];

/** The metrics the scheduler reads of each endpoint. */
export interface MetricNames {
  /** Gauge: requests waiting in the server's queue. */
  readonly waiting: string;
  /** Gauge: requests running (in the batch). */
  readonly running: string;
  /** Gauge, 0..1: KV-cache usage; undefined for a server that has none (its usage counts as 0). */
  readonly kvUsage: string | undefined;
  /**
   * Counter: requests the server finished (every series summed); undefined for a server that has none (its
   * speed stays unknown). Optional in a read: without it the read still counts, only the speed is unknown.
   */
  readonly completions: string | undefined;
}

/**
 * Each server's names, from its documentation: vLLM 0.32 (test/vllm-recordings/metrics.txt); SGLang
 * (`--enable-metrics`, docs/references/production_metrics.md; `num_requests_total` counts finished requests);
 * TGI (reference/metrics: no KV usage gauge).
 */
export const METRIC_PRESETS: Readonly<Record<ModelServerKind, MetricNames>> = {
  vllm: {
    waiting: "vllm:num_requests_waiting",
    running: "vllm:num_requests_running",
    kvUsage: "vllm:kv_cache_usage_perc",
    completions: "vllm:request_success_total",
  },
  sglang: {
    waiting: "sglang:num_queue_reqs",
    running: "sglang:num_running_reqs",
    kvUsage: "sglang:token_usage",
    completions: "sglang:num_requests_total",
  },
  tgi: {
    waiting: "tgi_queue_size",
    running: "tgi_batch_current_size",
    kvUsage: undefined,
    completions: "tgi_request_success",
  },
};

/** Where a pool's endpoints come from. */
export type EndpointSource =
  /** The static endpoints of the pool's own cluster in the Envoy bootstrap extproc checks the policy against. */
  | { readonly kind: "envoy" }
  /** A fixed list of `ip:port`. */
  | { readonly kind: "static"; readonly addresses: readonly string[] }
  /** Every address of a DNS name (a Kubernetes headless Service), resolved again every `refreshMs`. */
  | { readonly kind: "dns"; readonly host: string; readonly port: number; readonly refreshMs: number };

/** A pool's `scheduling` section, as the policy schema validated it. */
export interface SchedulingSection {
  readonly server: ModelServerKind;
  readonly metricNames?:
    | {
        readonly waiting?: string | undefined;
        readonly running?: string | undefined;
        readonly kvUsage?: string | undefined;
        readonly completions?: string | undefined;
      }
    | undefined;
  readonly metricsPath: string;
  readonly intervalMs: number;
  readonly timeoutMs?: number | undefined;
  readonly staleAfterIntervals: number;
  readonly speedWindowMs: number;
  readonly maxSequences?: number | undefined;
  readonly endpoints:
    | "envoy"
    | { readonly static: readonly string[] }
    | { readonly dns: string; readonly port: number; readonly refreshMs: number };
  readonly affinity: false | { readonly prefixChars: number; readonly queueMargin: number };
  readonly queue?: QueueSettings | undefined;
}

/** A pool's admission queue: requests in flight at most, waiting requests at most, the longest wait. */
export interface QueueSettings {
  readonly maxInFlight: number;
  readonly maxDepth: number;
  readonly maxWaitMs: number;
}

/** A pool's compiled scheduling settings. */
export interface PoolScheduling {
  readonly pool: string;
  readonly metricNames: MetricNames;
  readonly metricsPath: string;
  readonly intervalMs: number;
  /** Bound on one scrape; below the interval, so scrapes of one endpoint never pile up. */
  readonly timeoutMs: number;
  /** A state older than this is unknown. */
  readonly staleAfterMs: number;
  /** Time constant of the endpoints' speed estimates: completions older than this weigh 1/e as much. */
  readonly speedWindowMs: number;
  /** Sequences a server runs at once: an endpoint with that load is full. */
  readonly maxSequences: number | undefined;
  readonly endpoints: EndpointSource;
  /** Prefix affinity: the prompt's first `prefixChars` characters pick the endpoint while within `queueMargin`. */
  readonly affinity: { readonly prefixChars: number; readonly queueMargin: number } | undefined;
  /** Admission queue; undefined: every request goes on at once. */
  readonly queue: QueueSettings | undefined;
}

/** Compiles pool `pool`'s `scheduling` section (`path` locates it for problems). */
export function compileScheduling(
  pool: string,
  section: SchedulingSection,
  path: string,
  problems: DocumentProblem[],
): PoolScheduling {
  const timeoutMs = section.timeoutMs ?? Math.max(5, Math.floor(section.intervalMs * 0.8));
  if (timeoutMs > section.intervalMs)
    problems.push({
      path: `${path}.timeoutMs`,
      message: `must not exceed intervalMs (${section.intervalMs}): scrapes of one endpoint would pile up`,
    });
  if (section.speedWindowMs < 2 * section.intervalMs)
    problems.push({
      path: `${path}.speedWindowMs`,
      message: `must be at least two intervals (${2 * section.intervalMs}): a speed needs reads to average over`,
    });
  const preset = METRIC_PRESETS[section.server];
  const names = section.metricNames ?? {};
  const { endpoints } = section;
  return {
    pool,
    metricNames: {
      waiting: names.waiting ?? preset.waiting,
      running: names.running ?? preset.running,
      kvUsage: names.kvUsage ?? preset.kvUsage,
      completions: names.completions ?? preset.completions,
    },
    metricsPath: section.metricsPath,
    intervalMs: section.intervalMs,
    timeoutMs,
    staleAfterMs: section.intervalMs * section.staleAfterIntervals,
    speedWindowMs: section.speedWindowMs,
    maxSequences: section.maxSequences,
    endpoints:
      endpoints === "envoy"
        ? { kind: "envoy" }
        : "static" in endpoints
          ? { kind: "static", addresses: endpoints.static }
          : { kind: "dns", host: endpoints.dns, port: endpoints.port, refreshMs: endpoints.refreshMs },
    affinity: section.affinity === false ? undefined : section.affinity,
    queue: section.queue,
  };
}
