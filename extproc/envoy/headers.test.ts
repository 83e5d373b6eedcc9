import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CLIENT_CREDENTIAL_HEADERS, readHeaders } from "./headers.js";
import { encodePhaseReply, type ProcessingRequestMessage } from "./messages.js";
import { ProcessingRequest, ProcessingResponse } from "./protocol.js";

const raw = (value: string, encoding: BufferEncoding = "utf8") => Buffer.from(value, encoding);
const asObject = (headers: ReadonlyMap<string, string>) => Object.fromEntries(headers);

describe("readHeaders", () => {
  it("reads raw_value", () => {
    const headers = readHeaders({
      headers: [
        { key: ":path", rawValue: raw("/v1/models") },
        { key: "content-type", rawValue: raw("application/json") },
      ],
    });
    assert.deepEqual(asObject(headers), { ":path": "/v1/models", "content-type": "application/json" });
  });

  it("prefers raw_value over value", () => {
    const headers = readHeaders({
      headers: [{ key: "x-a", value: "from-value", rawValue: raw("from-raw") }],
    });
    assert.equal(headers.get("x-a"), "from-raw");
  });

  it("uses value when raw_value is empty or absent", () => {
    const headers = readHeaders({
      headers: [
        { key: "x-empty-raw", value: "v1", rawValue: new Uint8Array(0) },
        { key: "x-no-raw", value: "v2" },
      ],
    });
    assert.deepEqual(asObject(headers), { "x-empty-raw": "v1", "x-no-raw": "v2" });
  });

  it("reads a header without any value as the empty string", () => {
    const headers = readHeaders({
      headers: [{ key: "x-empty" }, { key: "x-empty2", value: "", rawValue: raw("") }],
    });
    assert.deepEqual(asObject(headers), { "x-empty": "", "x-empty2": "" });
  });

  it("joins repeated headers with a comma and a space, in order", () => {
    const headers = readHeaders({
      headers: [
        { key: "accept", rawValue: raw("text/plain") },
        { key: "x-other", rawValue: raw("o") },
        { key: "accept", value: "application/json" },
        { key: "accept", rawValue: raw("*/*") },
      ],
    });
    assert.deepEqual(asObject(headers), { accept: "text/plain, application/json, */*", "x-other": "o" });
  });

  it("ignores entries without a key", () => {
    const headers = readHeaders({
      headers: [{ value: "orphan" }, { key: "", rawValue: raw("orphan") }, { key: "x-kept", value: "k" }],
    });
    assert.deepEqual(asObject(headers), { "x-kept": "k" });
  });

  it("returns an empty map for a missing header map", () => {
    assert.equal(readHeaders(undefined).size, 0);
    assert.equal(readHeaders(null).size, 0);
    assert.equal(readHeaders({}).size, 0);
    assert.equal(readHeaders({ headers: [] }).size, 0);
  });

  it("reads raw_value bytes one per character, so they survive a round trip unchanged", () => {
    const bytes = Buffer.from([0x63, 0x61, 0x66, 0xc3, 0xa9, 0x20, 0xff, 0x00]);
    const value = readHeaders({ headers: [{ key: "x-bytes", rawValue: bytes }] }).get("x-bytes")!;
    assert.equal(value.length, bytes.length);
    assert.deepEqual(Buffer.from(value, "latin1"), bytes);
  });

  it("reads headers as decoded from a real ProcessingRequest", () => {
    const encoded = ProcessingRequest.encode({
      requestHeaders: {
        headers: {
          headers: [
            { key: ":authority", rawValue: raw("gateway:8080") },
            { key: "authorization", rawValue: raw("Bearer sk-1") },
            { key: "x-forwarded-for", rawValue: raw("10.0.0.1") },
            { key: "x-forwarded-for", rawValue: raw("10.0.0.2") },
            { key: "x-old", value: "only-value" },
            { key: "x-both", value: "value", rawValue: raw("raw") },
            { value: "no-key" },
          ],
        },
      },
    }).finish();
    const decoded = ProcessingRequest.decode(encoded) as unknown as ProcessingRequestMessage;
    assert.deepEqual(asObject(readHeaders(decoded.requestHeaders?.headers)), {
      ":authority": "gateway:8080",
      authorization: "Bearer sk-1",
      "x-forwarded-for": "10.0.0.1, 10.0.0.2",
      "x-old": "only-value",
      "x-both": "raw",
    });
  });

  it("gives back header bytes that encode to the same raw_value in a reply", () => {
    const bytes = Buffer.from([0x74, 0xe9, 0x73, 0x74, 0xff]);
    const value = readHeaders({ headers: [{ key: "x-b", rawValue: bytes }] }).get("x-b")!;
    const reply = encodePhaseReply("requestHeaders", { setHeaders: [["x-b", value]] });
    const decoded = ProcessingResponse.decode(reply);
    const header =
      ProcessingResponse.toObject(decoded).requestHeaders.response.headerMutation.setHeaders[0].header;
    assert.deepEqual(Buffer.from(header.rawValue), bytes);
  });
});

describe("CLIENT_CREDENTIAL_HEADERS", () => {
  it("lists every header extractApiKey reads a key from, lower-cased", () => {
    assert.deepEqual([...CLIENT_CREDENTIAL_HEADERS].sort(), ["api-key", "authorization", "x-api-key"]);
  });
});
