/**
 * Row "envoy + extproc + tracing": the core gateway with traces on in Envoy and extproc (every request
 * sampled), both exporting OTLP/HTTP protobuf to a collector on loopback: the test harness's OTLP receiver,
 * run by the driver (on the load's CPU, not the proxies'). Its cost is this row against "envoy + extproc",
 * the same gateway with tracing off (the default).
 */
import { startOtlpReceiver } from "../../test/harness/otlp-receiver.js";
import { startExtprocRow } from "../lib/extproc-row.js";
import type { Scenario } from "../lib/scenario.js";

/** extproc's default flush interval; Envoy's own default is 5 s, which only makes its batches larger. */
const FLUSH_MS = 1000;

/** Services whose spans the check wants for each of its requests. */
const SERVICES = ["llm-gateway-envoy", "llm-gateway-extproc"] as const;

export const envoyExtprocTracing: Scenario = {
  id: "envoy+extproc+tracing",
  label: "envoy + extproc + tracing",
  description: `the core gateway with OpenTelemetry traces on in Envoy and extproc, every request sampled, exported as OTLP/HTTP protobuf every ${FLUSH_MS} ms to a receiver on loopback (the driver's CPU)`,
  unavailable: () => undefined,
  start: async (env) => {
    const receiver = await startOtlpReceiver({ answer: "ok" }, 10_000);
    const row = await startExtprocRow(env, {
      expect: { rateLimitRequests: null, pii: false },
      traces: { port: receiver.port, flushIntervalMs: FLUSH_MS },
      // Each check request's spans reach the collector from both Envoy and extproc.
      requestProblems: async (requestIds) => {
        const deadline = Date.now() + 5 * FLUSH_MS;
        const missing = () =>
          requestIds.flatMap((id) =>
            SERVICES.filter(
              (service) =>
                !receiver.spans.some(
                  (s) =>
                    s.service === service &&
                    (s.attributes["guid:x-request-id"] === id ||
                      s.attributes["llm_gateway.request_id"] === id),
                ),
            ).map((service) => `no ${service} span for request ${id}`),
          );
        while (missing().length > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        const problems = missing();
        // Measured from here: the collector takes every export without decoding it, on the load's CPU.
        receiver.decode = false;
        return problems;
      },
    });
    return { ...row, stop: () => row.stop().finally(() => receiver.close()) };
  },
};
