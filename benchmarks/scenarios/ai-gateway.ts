/**
 * Row "AI Gateway": Envoy AI Gateway's ext_proc (Go; scripts/install-peers.sh builds a pinned tag) behind
 * Envoy with a static bootstrap wired the way AI Gateway's own data-plane tests wire it
 * (tests/data-plane/envoy.yaml there): its router-level ext_proc filter reads the model from the body, sets
 * `x-ai-eg-model` and clears the route cache; the route on that header picks the backend's cluster, whose
 * upstream ext_proc filter (keyed by the endpoint's backend-name metadata) prepares the request for the
 * backend. Its filter config (`-configPath`) names one OpenAI-schema backend: the demo model server.
 * Skipped when not built.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import * as yaml from "js-yaml";
import { envoyBinary, freePort } from "../../test/harness/index.js";
import { notInstalled, peerExecutable } from "../lib/peers.js";
import { MODEL } from "../lib/request.js";
import type { Scenario } from "../lib/scenario.js";
import { answers, startProcess, type StartedProcess } from "../lib/stacks.js";

const EXECUTABLE = "ai-gateway/extproc";
const NOT_CONFIGURED =
  "this row's filter config and bootstrap are set up and checked for chat completions only (one OpenAI-schema backend)";
/** The backend's name in the filter config and in the endpoint metadata the upstream filter reads. */
const BACKEND = "demo-model-server";
/** AI Gateway's metadata namespace and the request attribute naming an endpoint's backend. */
const NAMESPACE = "io.envoy.ai_gateway";
const BACKEND_ATTRIBUTE =
  "xds.upstream_host_metadata.filter_metadata['aigateway.envoy.io']['per_route_rule_backend_name']";

/** The ext_proc filter config (filterapi.Config); `version: dev` is what a build without release tags reports. */
function filterConfig(): string {
  return yaml.dump({
    version: "dev",
    backends: [{ name: BACKEND, schema: { name: "OpenAI", prefix: "v1" } }],
    models: [{ name: MODEL, ownedBy: "benchmark" }],
  });
}

const extProcFilter = (name: string, processingMode: Record<string, string>, extra: object = {}) => ({
  name,
  typed_config: {
    "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
    grpc_service: { envoy_grpc: { cluster_name: "extproc" }, timeout: "30s" },
    message_timeout: "5s",
    processing_mode: processingMode,
    metadata_options: { receiving_namespaces: { untyped: [NAMESPACE] } },
    ...extra,
  },
});

/** The Envoy bootstrap: listener on `ports.http`, AI Gateway's extproc on `socket`, the model server on `modelServerPort`. */
function envoyBootstrap(
  ports: { http: number; admin: number },
  socket: string,
  modelServerPort: number,
): string {
  const hcm = {
    "@type":
      "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    stat_prefix: "ai_gateway",
    route_config: {
      virtual_hosts: [
        {
          name: "ai_gateway",
          domains: ["*"],
          routes: [
            {
              match: { prefix: "/", headers: [{ name: "x-ai-eg-model", string_match: { exact: MODEL } }] },
              route: { cluster: BACKEND, timeout: "60s" },
            },
          ],
        },
      ],
    },
    http_filters: [
      extProcFilter(
        "envoy.filters.http.ext_proc",
        {
          request_header_mode: "SEND",
          request_body_mode: "BUFFERED",
          response_header_mode: "SEND",
          // Overridden to STREAMED for streams by the processor.
          response_body_mode: "BUFFERED",
        },
        { allow_mode_override: true },
      ),
      {
        name: "envoy.filters.http.router",
        typed_config: { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
      },
    ],
  };
  const backend = {
    name: BACKEND,
    connect_timeout: "5s",
    type: "STATIC",
    typed_extension_protocol_options: {
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        explicit_http_config: { http_protocol_options: {} },
        http_filters: [
          extProcFilter(
            "upstream_extproc",
            {
              request_header_mode: "SEND",
              request_body_mode: "NONE",
              response_header_mode: "SKIP",
              response_body_mode: "NONE",
            },
            { request_attributes: [BACKEND_ATTRIBUTE], allow_mode_override: true },
          ),
          {
            name: "envoy.filters.http.header_mutation",
            typed_config: {
              "@type": "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
              mutations: {
                request_mutations: [
                  {
                    append: {
                      append_action: "ADD_IF_ABSENT",
                      header: {
                        key: "content-length",
                        value: `%DYNAMIC_METADATA(${NAMESPACE}:content_length)%`,
                      },
                    },
                  },
                ],
              },
            },
          },
          {
            name: "envoy.filters.http.upstream_codec",
            typed_config: {
              "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec",
            },
          },
        ],
      },
    },
    load_assignment: {
      cluster_name: BACKEND,
      endpoints: [
        {
          lb_endpoints: [
            {
              endpoint: {
                address: { socket_address: { address: "127.0.0.1", port_value: modelServerPort } },
              },
              metadata: {
                filter_metadata: { "aigateway.envoy.io": { per_route_rule_backend_name: BACKEND } },
              },
            },
          ],
        },
      ],
    },
  };
  const extproc = {
    name: "extproc",
    connect_timeout: "5s",
    type: "STATIC",
    typed_extension_protocol_options: {
      "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
    load_assignment: {
      cluster_name: "extproc",
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { pipe: { path: socket } } } }] }],
    },
  };
  return yaml.dump(
    {
      admin: { address: { socket_address: { address: "127.0.0.1", port_value: ports.admin } } },
      static_resources: {
        listeners: [
          {
            name: "listener_http",
            address: { socket_address: { address: "127.0.0.1", port_value: ports.http } },
            filter_chains: [
              { filters: [{ name: "envoy.filters.network.http_connection_manager", typed_config: hcm }] },
            ],
          },
        ],
        clusters: [backend, extproc],
      },
    },
    { noRefs: true },
  );
}

export const aiGateway: Scenario = {
  id: "ai-gateway",
  label: "AI Gateway",
  description: `Envoy + Envoy AI Gateway's ext_proc (model routing by x-ai-eg-model and route-cache clear), one OpenAI backend: the demo model server`,
  unavailable: () =>
    peerExecutable(EXECUTABLE) ? undefined : notInstalled("Envoy AI Gateway's ext_proc", EXECUTABLE),
  unsupported: { responses: NOT_CONFIGURED, messages: NOT_CONFIGURED },
  start: async (env) => {
    const [http, admin, extprocAdmin] = [await freePort(), await freePort(), await freePort()];
    const socket = path.join(env.workDir, "ai-gateway.sock");
    const configFile = path.join(env.workDir, "ai-gateway-filter.yaml");
    writeFileSync(configFile, filterConfig());
    const bootstrap = path.join(env.workDir, "envoy.yaml");
    writeFileSync(bootstrap, envoyBootstrap({ http, admin }, socket, env.modelServerPort));
    const started: StartedProcess[] = [];
    const stop = async (): Promise<void> => void (await Promise.all(started.map((p) => p.stop())));
    try {
      started.push(
        await startProcess(
          env,
          "ai-gateway extproc",
          peerExecutable(EXECUTABLE)!,
          [
            ...["-configPath", configFile, "-extProcAddr", `unix://${socket}`],
            ...["-adminPort", String(extprocAdmin), "-logLevel", "warn"],
          ],
          { pin: true },
          answers(`http://127.0.0.1:${extprocAdmin}/health`),
        ),
      );
      started.push(
        await startProcess(
          env,
          "envoy",
          envoyBinary(),
          ["-c", bootstrap, "--disable-hot-restart", "--concurrency", "1", "-l", "warning"],
          { pin: true },
          answers(`http://127.0.0.1:${admin}/ready`, "LIVE"),
        ),
      );
    } catch (err) {
      await stop();
      throw err;
    }
    return {
      origin: `http://127.0.0.1:${http}`,
      // Envoy first, as in our rows.
      proxies: started.map(({ label, pid }) => ({ label, pid })).reverse(),
      check: async () => [],
      stop,
    };
  },
};
