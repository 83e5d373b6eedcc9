/**
 * The ext_proc server over a real gRPC connection on 127.0.0.1 (grpc-js on both ends), in front of a real
 * Exchange: what Envoy sees on the stream, message by message.
 */
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import pino from "pino";
import {
  decoded,
  decodeReply,
  requestBody,
  requestHeaders,
  unitDeps,
  type Reply,
} from "../../test/unit/ext-proc.js";
import type { ProcessingRequestMessage } from "../envoy/messages.js";
import { PROCESS_METHOD_PATH, ProcessingRequest, ProcessingResponse } from "../envoy/protocol.js";
import { parsePolicy, sha256Hex } from "../policy/index.js";
import { PoolQueues } from "../scheduling/index.js";
import { queueEvents } from "../metrics/index.js";
import { API_KEY } from "../../test/unit/ext-proc.js";
import { startExtProcServer, type ExtProcServer } from "./index.js";

type DecodedResponse = Reply & { overrideMessageTimeout?: { seconds?: number | { toString(): string } } };

/** A chat completion request whose body is about `bytes` long. */
const chatOfSize = (bytes: number) => ({
  model: "m1",
  max_tokens: 16,
  messages: [{ role: "user", content: "lorem ipsum dolor sit amet ".repeat(Math.ceil(bytes / 27)) }],
});

describe("ext_proc server", () => {
  // A server per test: the unit quota's clock stands still, so its bucket never refills.
  let unit: ReturnType<typeof unitDeps>;
  let server: ExtProcServer;
  let client: grpc.Client;

  beforeEach(async () => {
    unit = unitDeps();
    server = await startExtProcServer(unit.deps, {
      listen: "127.0.0.1:0",
      maxMessageBytes: 16 * 1024 * 1024,
      logger: pino({ level: "silent" }),
    });
    client = new grpc.Client(server.address, grpc.credentials.createInsecure(), {
      "grpc.max_send_message_length": 16 * 1024 * 1024,
    });
  });

  afterEach(async () => {
    client.close();
    await server.shutdown(1000);
  });

  /**
   * Sends `messages` on one stream and collects the answers until `replies` have come (then the client ends
   * its side) or the server ends the stream; resolves to them in order, and to whether the server ended it.
   */
  function converse(
    messages: ProcessingRequestMessage[],
    replies: number,
  ): Promise<{ received: DecodedResponse[]; endedByServer: boolean }> {
    return new Promise((resolve, reject) => {
      const call = client.makeBidiStreamRequest(
        PROCESS_METHOD_PATH,
        (message: object) => Buffer.from(ProcessingRequest.encode(message).finish()),
        (bytes: Buffer) => ProcessingResponse.decode(bytes),
      );
      const received: DecodedResponse[] = [];
      call.on("data", (message: object) => {
        received.push(decodeReply(message));
        if (received.length === replies) {
          call.end();
          resolve({ received, endedByServer: false });
        }
      });
      call.on("error", reject);
      call.on("end", () => resolve({ received, endedByServer: true }));
      for (const message of messages) call.write(message);
    });
  }

  /** Opens a stream, sends `messages` and keeps it open; `replies` collects what the server sends. */
  function open(messages: ProcessingRequestMessage[]) {
    const call = client.makeBidiStreamRequest(
      PROCESS_METHOD_PATH,
      (message: object) => Buffer.from(ProcessingRequest.encode(message).finish()),
      (bytes: Buffer) => ProcessingResponse.decode(bytes),
    );
    const replies: DecodedResponse[] = [];
    call.on("data", (message: object) => replies.push(decodeReply(message)));
    call.on("error", () => {});
    for (const message of messages) call.write(message);
    return { call, replies };
  }

  const seconds = (response: DecodedResponse) => Number(String(response.overrideMessageTimeout?.seconds));

  it("asks Envoy for 30 s before handling a request body of 256 KiB or more, then answers it", async () => {
    const { received: replies } = await converse([requestHeaders(), requestBody(chatOfSize(300 * 1024))], 3);
    assert.equal(replies.length, 3);
    assert.equal(seconds(replies[0]!), 30, "the extension goes first, while the headers answer is held");
    assert.ok(replies[0]!.requestHeaders == null, "the extension is a message of its own");
    assert.ok(replies[1]!.requestHeaders, "then the request headers are answered");
    assert.ok(replies[2]!.requestBody?.response, "then the body");
  });

  it("asks for more time on the last chunk of a large body that arrives in several, once", async () => {
    const body = Buffer.from(JSON.stringify(chatOfSize(300 * 1024)));
    const chunk = (part: Buffer, endOfStream: boolean) =>
      decoded({ requestBody: { body: part, endOfStream } });
    const { received: replies } = await converse(
      [
        requestHeaders(),
        chunk(body.subarray(0, 100_000), false),
        chunk(body.subarray(100_000, 200_000), false),
        chunk(body.subarray(200_000), true),
      ],
      5,
    );
    assert.equal(replies.filter((reply) => reply.overrideMessageTimeout != null).length, 1);
    assert.equal(seconds(replies[0]!), 30);
    assert.ok(replies[1]!.requestHeaders, "the held headers answer");
    assert.equal(replies.filter((reply) => reply.requestBody).length, 3, "one answer per chunk");
  });

  it("answers a smaller body without asking for more time", async () => {
    const { received: replies } = await converse([requestHeaders(), requestBody(chatOfSize(200 * 1024))], 2);
    assert.equal(replies.length, 2);
    assert.ok(replies[0]!.requestHeaders);
    assert.ok(replies[1]!.requestBody?.response);
    assert.ok(replies.every((reply) => reply.overrideMessageTimeout == null));
  });

  it("ends the stream once a refusal has been sent, auditing the request once", async () => {
    const { received, endedByServer } = await converse([requestHeaders("/v1/nowhere")], 2);
    assert.equal(endedByServer, true);
    assert.equal(received.length, 1);
    assert.equal(received[0]!.immediateResponse?.status?.code, 404);
    const records = await unit.audit.records();
    assert.equal(records.filter((record) => record.path === "/v1/nowhere").length, 1);
  });

  it("stops a queued request's wait as soon as Envoy ends the stream, freeing its place", async () => {
    // Pool a, one slot: the first request holds it, the second waits (up to 10 s).
    const policy = parsePolicy(
      `
version: 1
pools:
  pool-a:
    scheduling: { endpoints: { static: ["127.0.0.1:9"] }, queue: { maxInFlight: 1, maxWaitMs: 10000 } }
models: { m1: { pool: pool-a } }
teams: { t: { models: [m1] } }
keys: [{ id: k1, team: t, sha256: ${sha256Hex(API_KEY)} }]
`,
      "queue.yaml",
    );
    const logger = pino({ level: "silent" });
    const queued = unitDeps(policy);
    const { metrics } = queued;
    const queues = new PoolQueues({
      shared: undefined,
      events: queueEvents(metrics),
      logger,
      now: Date.now,
    });
    const queuedServer = await startExtProcServer(
      { ...queued.deps, queues },
      { listen: "127.0.0.1:0", maxMessageBytes: 1024 * 1024, logger },
    );
    const queuedClient = new grpc.Client(queuedServer.address, grpc.credentials.createInsecure());
    const previous = client;
    client = queuedClient;
    try {
      const body = requestBody({ model: "m1", max_tokens: 4, messages: [{ role: "user", content: "hi" }] });
      const holder = open([requestHeaders("/v1/chat/completions", { "x-request-id": "holder" }), body]);
      const waiter = open([requestHeaders("/v1/chat/completions", { "x-request-id": "waiter" }), body]);
      const waitingNow = async () =>
        (await metrics.queueWaiting.get()).values.reduce((n, v) => n + v.value, 0);
      const until = async (what: string, check: () => boolean | Promise<boolean>) => {
        for (let i = 0; i < 200 && !(await check()); i++) await new Promise((r) => setTimeout(r, 10));
        assert.ok(await check(), what);
      };
      await until("the holder admitted", () => holder.replies.length === 2);
      await until("the waiter queued", async () => (await waitingNow()) === 1);
      assert.equal(seconds(waiter.replies[0]!), 30, "the waiter asked Envoy for more time");
      // Envoy half-closes the stream (its client went away): the wait ends at once, not in 10 s.
      const ended = Date.now();
      waiter.call.end();
      const records = () => queued.audit.records();
      await until("the waiter audited", async () => (await records()).some((r) => r.request_id === "waiter"));
      assert.ok(Date.now() - ended < 1000, `the wait ended after ${Date.now() - ended} ms`);
      assert.equal(await waitingNow(), 0);
      const record = (await records()).find((r) => r.request_id === "waiter")!;
      assert.deepEqual(
        [record.reason, record.status, record.queued_ms],
        ["closed_before_response", null, undefined],
      );
      // Leaving is not a refusal: no shed counted, no refusal sent.
      assert.equal((await metrics.queueShed.get()).values.length, 0);
      assert.equal(waiter.replies.length, 1, "only the extension");
      holder.call.end();
    } finally {
      client = previous;
      queuedClient.close();
      queues.close();
      await queuedServer.shutdown(1000);
    }
  });
});
