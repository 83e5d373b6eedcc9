/**
 * What extproc rows report beyond CPU: extproc's own /metrics (time inside its handlers, PII found, quota
 * trouble) and Envoy's counters for its link to extproc (what explains HTTP 500s), each as the change over
 * one measured row.
 */

/** Where an extproc row's two sources are. */
export interface ExtprocEndpoints {
  /** extproc's /metrics. */
  readonly metricsUrl: string;
  /** Envoy's admin endpoint. */
  readonly adminUrl: string;
}

/**
 * extproc's own view from its /metrics: time inside the phase handlers, and messages, per request; PII
 * found; and what went wrong with quotas (both should stay 0 in this benchmark).
 */
export interface HandlerUse {
  readonly usPerRequest: number;
  readonly messagesPerRequest: number;
  /** Values the PII detectors found, requests and responses (`llm_gateway_pii_detections_total`). */
  readonly piiDetections: number;
  /** Requests refused by a limit (`llm_gateway_quota_rejections_total`). */
  readonly quotaRejections: number;
  /** Failed quota store calls, reserve or settle (`llm_gateway_quota_store_errors_total`). */
  readonly quotaStoreErrors: number;
}

/** The running totals {@link handlerUse} takes the difference of. */
export interface HandlerTotals {
  readonly seconds: number;
  readonly messages: number;
  readonly requests: number;
  readonly piiDetections: number;
  readonly quotaRejections: number;
  readonly quotaStoreErrors: number;
}

/** extproc's totals now, from its /metrics at `url`; undefined if unreachable. */
export async function scrapeExtproc(url: string): Promise<HandlerTotals | undefined> {
  try {
    const text = await (await fetch(url)).text();
    const total = (name: string): number =>
      text
        .split("\n")
        .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
    return {
      seconds: total("llm_gateway_processing_duration_seconds_sum"),
      messages: total("llm_gateway_processing_duration_seconds_count"),
      requests: total("llm_gateway_requests_total"),
      piiDetections: total("llm_gateway_pii_detections_total"),
      quotaRejections: total("llm_gateway_quota_rejections_total"),
      quotaStoreErrors: total("llm_gateway_quota_store_errors_total"),
    };
  } catch {
    return undefined;
  }
}

/** What happened between two scrapes, per request; null without both or without requests. */
export function handlerUse(
  before: HandlerTotals | undefined,
  after: HandlerTotals | undefined,
): HandlerUse | null {
  if (!before || !after || after.requests <= before.requests) return null;
  const requests = after.requests - before.requests;
  return {
    usPerRequest: (1e6 * (after.seconds - before.seconds)) / requests,
    messagesPerRequest: (after.messages - before.messages) / requests,
    piiDetections: after.piiDetections - before.piiDetections,
    quotaRejections: after.quotaRejections - before.quotaRejections,
    quotaStoreErrors: after.quotaStoreErrors - before.quotaStoreErrors,
  };
}

/** Envoy's counters for its link to extproc during a row (warm-up included): what explains HTTP 500s. */
export interface ExtprocLink {
  /** ext_proc gRPC streams that failed; each failed its HTTP request closed, with a 500. */
  readonly streamsFailed: number;
  /** Times extproc's side closed Envoy's gRPC connection (HTTP/2 GOAWAY). */
  readonly goaways: number;
  /** ext_proc streams Envoy reset itself rather than waiting for extproc to end them. */
  readonly streamResets: number;
}

const LINK_COUNTERS: Record<keyof ExtprocLink, string> = {
  streamsFailed: "http.llm_gateway.ext_proc.streams_failed",
  goaways: "cluster.extproc.upstream_cx_close_notify",
  streamResets: "cluster.extproc.upstream_rq_tx_reset",
};

/** Envoy's extproc cluster and ext_proc filter counters now; undefined if unreachable. */
export async function envoyCounters(adminUrl: string): Promise<Map<string, number> | undefined> {
  const filter = encodeURIComponent("^(cluster\\.extproc|http\\.llm_gateway\\.ext_proc)\\.");
  try {
    const text = await (await fetch(`${adminUrl}/stats?filter=${filter}`)).text();
    return new Map(
      text
        .split("\n")
        .map((line) => line.split(": "))
        .filter((kv): kv is [string, string] => kv.length === 2 && /^\d+$/.test(kv[1]!))
        .map(([k, v]) => [k, Number(v)]),
    );
  } catch {
    return undefined;
  }
}

/** The link counters' change between two readings; null without both. */
export function extprocLink(
  before: Map<string, number> | undefined,
  after: Map<string, number> | undefined,
): ExtprocLink | null {
  if (!before || !after) return null;
  const delta = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0);
  return {
    streamsFailed: delta(LINK_COUNTERS.streamsFailed),
    goaways: delta(LINK_COUNTERS.goaways),
    streamResets: delta(LINK_COUNTERS.streamResets),
  };
}
