import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { phaseOf } from "../processor/index.js";
import { readHeaders } from "./headers.js";
import {
  BodySendMode,
  encodeLocalReply,
  encodePhaseReply,
  METADATA_NAMESPACE,
  type Phase,
  type ProcessingRequestMessage,
} from "./messages.js";
import { encodeResponse, ProcessingRequest, ProcessingResponse } from "./protocol.js";

/** Encodes a reply to wire bytes with the real protobuf type, as the gRPC server does, and decodes it. */
function wire(message: object, options: { bytes?: StringConstructor; enums?: StringConstructor } = {}) {
  const bytes = encodeResponse(message);
  return ProcessingResponse.toObject(ProcessingResponse.decode(bytes), { oneofs: true, ...options });
}

const bytesOf = (value: unknown) => {
  assert.ok(value instanceof Uint8Array, `expected bytes, got ${String(value)}`);
  return Buffer.from(value);
};

const OVERWRITE_IF_EXISTS_OR_ADD = 2;
const BODY_PHASES = ["requestBody", "responseBody"] as const;
const HEADER_PHASES = ["requestHeaders", "responseHeaders"] as const;
const TRAILER_PHASES = ["requestTrailers", "responseTrailers"] as const;

describe("encodePhaseReply", () => {
  it("continues with an empty response under the phase's own field", () => {
    for (const phase of [...HEADER_PHASES, ...BODY_PHASES]) {
      assert.deepEqual(
        wire(encodePhaseReply(phase, {})),
        { [phase]: { response: {} }, response: phase },
        phase,
      );
    }
  });

  it("answers trailers phases with a trailers response", () => {
    for (const phase of TRAILER_PHASES) {
      assert.deepEqual(wire(encodePhaseReply(phase, {})), { [phase]: {}, response: phase }, phase);
    }
  });

  it("sets headers as raw_value bytes with OVERWRITE_IF_EXISTS_OR_ADD and removes headers", () => {
    const reply = encodePhaseReply("requestHeaders", {
      setHeaders: [
        ["x-gateway-pool", "pool-a"],
        ["authorization", "Bearer upstream-secret"],
        ["x-latin1", "caf\u00e9"],
      ],
      removeHeaders: ["x-api-key", "api-key"],
      clearRouteCache: true,
    });
    const decoded = wire(reply);
    assert.equal(decoded.response, "requestHeaders");
    const common = decoded.requestHeaders.response;
    assert.deepEqual(Object.keys(common).sort(), ["clearRouteCache", "headerMutation"]);
    assert.equal(common.clearRouteCache, true);
    assert.deepEqual(common.headerMutation.removeHeaders, ["x-api-key", "api-key"]);
    const set = common.headerMutation.setHeaders;
    assert.equal(set.length, 3);
    assert.deepEqual(
      set.map((h: { header: { key: string } }) => h.header.key),
      ["x-gateway-pool", "authorization", "x-latin1"],
    );
    assert.deepEqual(bytesOf(set[0].header.rawValue), Buffer.from("pool-a"));
    assert.deepEqual(bytesOf(set[1].header.rawValue), Buffer.from("Bearer upstream-secret"));
    assert.deepEqual(bytesOf(set[2].header.rawValue), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    for (const h of set) {
      assert.equal(h.appendAction, OVERWRITE_IF_EXISTS_OR_ADD);
      // Envoy rejects a HeaderValue with both value and raw_value; only raw_value may be set.
      assert.equal(h.header.value, undefined);
    }
    const named = wire(reply, { enums: String, bytes: String });
    assert.equal(
      named.requestHeaders.response.headerMutation.setHeaders[0].appendAction,
      "OVERWRITE_IF_EXISTS_OR_ADD",
    );
    assert.equal(named.requestHeaders.response.headerMutation.setHeaders[0].header.rawValue, "cG9vbC1h");
  });

  it("sends only the mutations asked for", () => {
    const onlyRemove = wire(encodePhaseReply("requestHeaders", { removeHeaders: ["authorization"] }));
    assert.deepEqual(onlyRemove.requestHeaders.response, {
      headerMutation: { removeHeaders: ["authorization"] },
    });
    const onlySet = wire(encodePhaseReply("responseHeaders", { setHeaders: [["x-a", "1"]] }));
    assert.deepEqual(Object.keys(onlySet.responseHeaders.response.headerMutation), ["setHeaders"]);
    const noCache = wire(encodePhaseReply("requestHeaders", { clearRouteCache: false }));
    assert.deepEqual(noCache.requestHeaders.response, {});
  });

  it("replaces the body with body_mutation.body", () => {
    for (const phase of BODY_PHASES) {
      const body = Buffer.from('{"model":"big-v2","é":1}', "utf8");
      const decoded = wire(encodePhaseReply(phase, { body }));
      assert.deepEqual(Object.keys(decoded[phase].response), ["bodyMutation"], phase);
      const mutation = decoded[phase].response.bodyMutation;
      assert.equal(mutation.mutation, "body", phase);
      assert.deepEqual(bytesOf(mutation.body), body, phase);
      assert.equal(mutation.clearBody, undefined, phase);
      assert.equal(
        wire(encodePhaseReply(phase, { body }), { bytes: String })[phase].response.bodyMutation.body,
        body.toString("base64"),
      );
    }
  });

  it("clears the body with clear_body for an empty buffer", () => {
    for (const phase of BODY_PHASES) {
      const mutation = wire(encodePhaseReply(phase, { body: Buffer.alloc(0) }))[phase].response.bodyMutation;
      assert.deepEqual(mutation, { clearBody: true, mutation: "clearBody" }, phase);
    }
  });

  it("never asks Envoy to switch body modes (it streams every body; the exchange holds one read whole)", () => {
    for (const mode of Object.values(BodySendMode)) {
      const reply = encodePhaseReply("responseHeaders", { responseBodyMode: mode });
      assert.deepEqual(wire(reply), { response: "responseHeaders", responseHeaders: { response: {} } });
    }
  });

  it("passes an answer encoded once through unchanged, and encodes any other", () => {
    const reply = encodePhaseReply("responseBody", { body: Buffer.from("x") });
    const once = encodeResponse(reply);
    assert.equal(encodeResponse(once), once);
    assert.deepEqual(encodeResponse(reply), once);
    assert.deepEqual(
      wire(reply),
      ProcessingResponse.toObject(ProcessingResponse.decode(once), { oneofs: true }),
    );
  });

  it("omits mode_override and dynamic_metadata unless asked for", () => {
    const decoded = wire(encodePhaseReply("responseHeaders", { setHeaders: [["x", "y"]] }));
    assert.equal(decoded.modeOverride, undefined);
    assert.equal(decoded.dynamicMetadata, undefined);
  });

  it("writes dynamic metadata as a struct under the gateway namespace", () => {
    const decoded = wire(
      encodePhaseReply("responseBody", {
        metadata: {
          key_id: "k-1",
          empty: "",
          prompt_tokens: 12,
          zero: 0,
          ratio: 0.25,
          streamed: true,
          cached: false,
          absent: undefined,
          nothing: null,
        },
      }),
    );
    assert.equal(METADATA_NAMESPACE, "llm_gateway");
    assert.deepEqual(Object.keys(decoded.dynamicMetadata.fields), ["llm_gateway"]);
    const namespace = decoded.dynamicMetadata.fields.llm_gateway;
    assert.equal(namespace.kind, "structValue");
    assert.deepEqual(namespace.structValue.fields, {
      key_id: { stringValue: "k-1", kind: "stringValue" },
      empty: { stringValue: "", kind: "stringValue" },
      prompt_tokens: { numberValue: 12, kind: "numberValue" },
      zero: { numberValue: 0, kind: "numberValue" },
      ratio: { numberValue: 0.25, kind: "numberValue" },
      streamed: { boolValue: true, kind: "boolValue" },
      cached: { boolValue: false, kind: "boolValue" },
    });
    assert.deepEqual(decoded.responseBody, { response: {} });
  });

  it("writes an empty namespace struct when every metadata value is null or undefined", () => {
    const decoded = wire(encodePhaseReply("requestBody", { metadata: { a: null, b: undefined } }));
    assert.deepEqual(decoded.dynamicMetadata, {
      fields: { llm_gateway: { structValue: {}, kind: "structValue" } },
    });
  });

  it("combines every part of a reply in one message", () => {
    const decoded = wire(
      encodePhaseReply("responseBody", {
        setHeaders: [["x-a", "1"]],
        removeHeaders: ["x-b"],
        body: Buffer.from("data: x\n\n"),
        metadata: { total_tokens: 3 },
      }),
    );
    const common = decoded.responseBody.response;
    assert.deepEqual(Object.keys(common).sort(), ["bodyMutation", "headerMutation"]);
    assert.deepEqual(bytesOf(common.bodyMutation.body), Buffer.from("data: x\n\n"));
    assert.equal(decoded.dynamicMetadata.fields.llm_gateway.structValue.fields.total_tokens.numberValue, 3);
  });
});

describe("encodeLocalReply", () => {
  it("answers with an immediate response carrying status, body, details and content-type", () => {
    const body = '{"error":{"message":"Incorrect API key provided — sorry"}}';
    const decoded = wire(
      encodeLocalReply({
        status: 401,
        body,
        contentType: "application/json",
        details: "llm_gateway_invalid_api_key",
      }),
    );
    assert.deepEqual(Object.keys(decoded).sort(), ["immediateResponse", "response"]);
    assert.equal(decoded.response, "immediateResponse");
    const immediate = decoded.immediateResponse;
    assert.deepEqual(immediate.status, { code: 401 });
    assert.deepEqual(bytesOf(immediate.body), Buffer.from(body, "utf8"));
    assert.equal(immediate.details, "llm_gateway_invalid_api_key");
    assert.deepEqual(Object.keys(immediate.headers), ["setHeaders"]);
    assert.equal(immediate.headers.setHeaders.length, 1);
    const [contentType] = immediate.headers.setHeaders;
    assert.equal(contentType.header.key, "content-type");
    assert.deepEqual(bytesOf(contentType.header.rawValue), Buffer.from("application/json"));
    assert.equal(contentType.appendAction, OVERWRITE_IF_EXISTS_OR_ADD);
  });

  it("adds extra headers after the content type, and metadata", () => {
    const decoded = wire(
      encodeLocalReply({
        status: 200,
        body: '{"object":"list","data":[]}',
        contentType: "application/json; charset=utf-8",
        details: "llm_gateway_models",
        headers: [
          ["cache-control", "no-store"],
          ["x-request-id", "r-1"],
        ],
        metadata: { key_id: "k-1", team: undefined, status: 200 },
      }),
    );
    const set = decoded.immediateResponse.headers.setHeaders;
    assert.deepEqual(
      set.map((h: { header: { key: string; rawValue: Uint8Array }; appendAction: number }) => [
        h.header.key,
        Buffer.from(h.header.rawValue).toString("latin1"),
        h.appendAction,
      ]),
      [
        ["content-type", "application/json; charset=utf-8", 2],
        ["cache-control", "no-store", 2],
        ["x-request-id", "r-1", 2],
      ],
    );
    assert.deepEqual(decoded.immediateResponse.status, { code: 200 });
    assert.deepEqual(decoded.dynamicMetadata.fields.llm_gateway.structValue.fields, {
      key_id: { stringValue: "k-1", kind: "stringValue" },
      status: { numberValue: 200, kind: "numberValue" },
    });
  });

  it("omits dynamic_metadata without metadata, and clears nothing else", () => {
    const decoded = wire(
      encodeLocalReply({
        status: 404,
        body: "",
        contentType: "text/plain",
        details: "llm_gateway_unknown_url",
      }),
    );
    assert.equal(decoded.dynamicMetadata, undefined);
    assert.equal(decoded.modeOverride, undefined);
    assert.deepEqual(decoded.immediateResponse.status, { code: 404 });
    assert.equal(decoded.immediateResponse.details, "llm_gateway_unknown_url");
  });
});

describe("ProcessingRequest", () => {
  /** Encodes a request as Envoy would send it, and decodes it as the gRPC server does. */
  const roundTrip = (request: object) =>
    ProcessingRequest.decode(
      ProcessingRequest.encode(request).finish(),
    ) as unknown as ProcessingRequestMessage;

  it("decodes request headers into the requestHeaders phase", () => {
    const decoded = roundTrip({
      requestHeaders: {
        headers: {
          headers: [
            { key: ":method", rawValue: Buffer.from("POST") },
            { key: ":path", rawValue: Buffer.from("/v1/chat/completions") },
            { key: "authorization", rawValue: Buffer.from("Bearer sk-1") },
            { key: "x-legacy", value: "old-style" },
          ],
        },
        endOfStream: false,
      },
      observabilityMode: false,
    });
    assert.equal(phaseOf(decoded), "requestHeaders");
    assert.equal(decoded.requestHeaders?.endOfStream, false);
    const headers = readHeaders(decoded.requestHeaders?.headers);
    assert.deepEqual(Object.fromEntries(headers), {
      ":method": "POST",
      ":path": "/v1/chat/completions",
      authorization: "Bearer sk-1",
      "x-legacy": "old-style",
    });
  });

  it("decodes every phase", () => {
    const cases: Array<[object, Phase]> = [
      [{ requestHeaders: { headers: { headers: [] }, endOfStream: true } }, "requestHeaders"],
      [
        { responseHeaders: { headers: { headers: [{ key: ":status", rawValue: Buffer.from("200") }] } } },
        "responseHeaders",
      ],
      [{ requestBody: { body: Buffer.from("{}"), endOfStream: true } }, "requestBody"],
      [{ responseBody: { body: Buffer.from("data: x\n\n") } }, "responseBody"],
      [{ requestTrailers: { trailers: { headers: [] } } }, "requestTrailers"],
      [{ responseTrailers: {} }, "responseTrailers"],
    ];
    for (const [request, phase] of cases) assert.equal(phaseOf(roundTrip(request)), phase, phase);
  });

  it("decodes body bytes and end of stream", () => {
    const decoded = roundTrip({ requestBody: { body: Buffer.from('{"model":"m"}'), endOfStream: true } });
    assert.equal(phaseOf(decoded), "requestBody");
    assert.deepEqual(bytesOf(decoded.requestBody?.body), Buffer.from('{"model":"m"}'));
    assert.equal(decoded.requestBody?.endOfStream, true);
  });

  it("has no phase when no request field is set", () => {
    assert.equal(phaseOf(roundTrip({ observabilityMode: true })), undefined);
    assert.equal(phaseOf(roundTrip({})), undefined);
  });
});
