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
});
