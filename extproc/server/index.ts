import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { ProcessingRequestMessage } from "../envoy/messages.js";
import {
  encodeRequest,
  encodeResponse,
  PROCESS_METHOD_PATH,
  ProcessingRequest,
  ProcessingResponse,
} from "../envoy/protocol.js";
import { Exchange, type ProcessorDeps } from "../processor/index.js";
import { TRACEPARENT } from "../tracing/index.js";
import { freeUnixSocketPath } from "./socket.js";

/** Options for {@link startExtProcServer}. */
export interface ExtProcServerOptions {
  /** `host:port`, `unix:relative/path.sock` or `unix:///absolute/path.sock`. */
  readonly listen: string;
  /** Largest ext_proc message accepted; must exceed Envoy's request body buffer limit. */
  readonly maxMessageBytes: number;
  readonly logger: Logger;
}

/** A running ext_proc gRPC server. */
export interface ExtProcServer {
  /** The bound address (with the real port when 0 was asked for). */
  readonly address: string;
  /** Stops taking new streams, lets open ones finish for up to `graceMs`, then cancels the rest. */
  shutdown(graceMs: number): Promise<void>;
}

/** The time extproc asks Envoy for when an answer may outlast message_timeout: a large body, a queue wait (max_message_timeout). */
const EXTENDED_TIMEOUT = { seconds: 30 };

/** The file of a gRPC `unix:` address (`unix:///abs/path` or `unix:relative/path`). */
const unixSocketPath = (listen: string): string => listen.replace(/^unix:(\/\/)?/, "");

/** Hand-written service definition: protobufjs encodes/decodes, no plain-object conversion in between. */
const serviceDefinition: grpc.ServiceDefinition = {
  process: {
    path: PROCESS_METHOD_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: encodeRequest,
    requestDeserialize: (bytes: Buffer) => ProcessingRequest.decode(bytes),
    responseSerialize: encodeResponse,
    responseDeserialize: (bytes: Buffer) => ProcessingResponse.decode(bytes),
  },
};

/**
 * Starts the `envoy.service.ext_proc.v3.ExternalProcessor` service. Each Envoy stream (one per HTTP request)
 * gets its own {@link Exchange}; replies go out in the order the exchange gives them. An unexpected error ends
 * the stream with INTERNAL, which Envoy (failure_mode_allow: false) turns into a 500: fail closed.
 */
export async function startExtProcServer(
  deps: ProcessorDeps,
  options: ExtProcServerOptions,
): Promise<ExtProcServer> {
  const { logger } = options;
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": options.maxMessageBytes,
    // Channelz keeps per-call statistics and traces for a debugging service extproc does not serve.
    "grpc.enable_channelz": 0,
  });

  const process = (call: grpc.ServerDuplexStream<ProcessingRequestMessage, object>): void => {
    deps.metrics.activeStreams.inc();
    // Envoy's span for this ext_proc call, when Envoy traces: the parent of extproc's spans.
    const traceparent = deps.tracer && call.metadata.get(TRACEPARENT)[0];
    // Envoy takes one timeout extension per message: for a large body's scan, or a wait in a pool's queue.
    let extended = false;
    const askForTime = (): void => {
      if (extended) return;
      extended = true;
      call.write({ overrideMessageTimeout: EXTENDED_TIMEOUT });
    };
    const exchange = new Exchange(
      deps,
      typeof traceparent === "string" ? traceparent : undefined,
      askForTime,
    );
    let ended = false;
    const end = (error?: Error): void => {
      if (ended) return;
      ended = true;
      deps.metrics.activeStreams.dec();
      exchange.close(error);
    };
    // Envoy may send the next message (streamed body chunks) before we answered the last one; replies
    // must go out in order, so messages are handled one after another on a per-stream chain.
    let chain: Promise<void> = Promise.resolve();
    call.on("data", (message: ProcessingRequestMessage) => {
      chain = chain.then(async () => {
        if (ended) return;
        let replies: object[];
        try {
          if (exchange.needsMoreTime(message)) {
            askForTime();
            // Let it reach the socket before the (synchronous) parsing and scanning of the body starts.
            await new Promise((resolve) => setImmediate(resolve));
          }
          replies = await exchange.handle(message);
        } catch (err) {
          logger.error(
            { err },
            "ext_proc message failed; closing the stream (Envoy fails the request closed)",
          );
          end(err as Error);
          call.emit("error", { code: grpc.status.INTERNAL, details: "extproc internal error" });
          return;
        }
        // Observability-mode messages expect no reply.
        if (!message.observabilityMode) for (const reply of replies) call.write(reply);
        if (exchange.finished) {
          // Close our side as soon as the request is done. Otherwise Envoy resets every stream when the
          // HTTP request ends, and Node's HTTP/2 stack treats a sustained stream of resets as an attack
          // (rapid-reset protection) and drops the whole connection, failing requests in flight.
          end();
          call.end();
        }
      });
    });
    call.on("end", () => {
      // A message still in hand may be waiting in a pool's queue: it stops now, not when its turn comes.
      exchange.abandon();
      void chain.then(() => {
        end();
        call.end();
      });
    });
    call.on("cancelled", () => end());
    call.on("error", (err) => end(err));
  };
  server.addService(serviceDefinition, { process });

  if (options.listen.startsWith("unix:")) await freeUnixSocketPath(unixSocketPath(options.listen));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.listen, grpc.ServerCredentials.createInsecure(), (err, boundPort) =>
      err ? reject(err) : resolve(boundPort),
    ),
  );
  const address = options.listen.startsWith("unix:")
    ? options.listen
    : options.listen.replace(/:\d+$/, `:${port}`);

  return {
    address,
    shutdown: (graceMs) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
