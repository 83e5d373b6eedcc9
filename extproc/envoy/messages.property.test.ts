/**
 * Property: encodePhaseReply writes, field by field, exactly the bytes protobufjs writes for the
 * ProcessingResponse message object the reply stands for (the object below, built the way the reflection
 * encoder reads it), for every phase and any mix of header mutations (latin1 values), body replacement or
 * clearing, route-cache clearing and access-log metadata (any Unicode string, any double, booleans, absent
 * values). Seeded: FC_SEED reproduces a run.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  encodePhaseReply,
  METADATA_NAMESPACE,
  type MetadataValues,
  type Phase,
  type PhaseReply,
} from "./messages.js";
import { ProcessingResponse } from "./protocol.js";

const SEED = Number(process.env.FC_SEED ?? 0x0e7c_0de5) | 0;
const NUM_RUNS = 2000;

const PHASES: Phase[] = [
  "requestHeaders",
  "responseHeaders",
  "requestBody",
  "responseBody",
  "requestTrailers",
  "responseTrailers",
];

/** The message object of a reply, as the protobufjs reflection encoder takes it. */
function messageOf(phase: Phase, reply: PhaseReply): object {
  if (phase === "requestTrailers" || phase === "responseTrailers") return { [phase]: {} };
  const common: Record<string, unknown> = {};
  if (reply.setHeaders || reply.removeHeaders)
    common.headerMutation = {
      setHeaders: (reply.setHeaders ?? []).map(([key, value]) => ({
        header: { key, rawValue: Buffer.from(value, "latin1") },
        appendAction: 2, // OVERWRITE_IF_EXISTS_OR_ADD
      })),
      removeHeaders: reply.removeHeaders ?? [],
    };
  if (reply.body) common.bodyMutation = reply.body.length > 0 ? { body: reply.body } : { clearBody: true };
  if (reply.clearRouteCache) common.clearRouteCache = true;
  const out: Record<string, unknown> = { [phase]: { response: common } };
  if (reply.metadata) {
    const fields: Record<string, object> = {};
    for (const [key, value] of Object.entries(reply.metadata)) {
      if (value == null) continue;
      if (typeof value === "string") fields[key] = { stringValue: value };
      else if (typeof value === "number") fields[key] = { numberValue: value };
      else fields[key] = { boolValue: value };
    }
    out.dynamicMetadata = { fields: { [METADATA_NAMESPACE]: { structValue: { fields } } } };
  }
  return out;
}

const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)) });
const headerName = fc.stringMatching(/^[a-z:][a-z0-9-]{0,20}$/);
const metadataValue = fc.oneof(
  fc.string({ unit: "binary" }),
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
);
const reply: fc.Arbitrary<PhaseReply> = fc.record(
  {
    setHeaders: fc.array(fc.tuple(headerName, latin1), { maxLength: 6 }),
    removeHeaders: fc.array(headerName, { maxLength: 6 }),
    body: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
    clearRouteCache: fc.boolean(),
    metadata: fc.dictionary(fc.string({ unit: "binary", maxLength: 12 }), metadataValue, {
      maxKeys: 8,
    }) as fc.Arbitrary<MetadataValues>,
  },
  { requiredKeys: [] },
);

describe(`encodePhaseReply property (fast-check, seed ${SEED}, ${NUM_RUNS} runs)`, () => {
  it("writes the bytes protobufjs writes for the same ProcessingResponse", () => {
    fc.assert(
      fc.property(fc.constantFrom(...PHASES), reply, (phase, r) => {
        const expected = Buffer.from(ProcessingResponse.encode(messageOf(phase, r)).finish());
        assert.deepEqual(encodePhaseReply(phase, r), expected);
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
  });

  it("decodes back to the reply's headers, body and metadata", () => {
    const decoded = ProcessingResponse.toObject(
      ProcessingResponse.decode(
        encodePhaseReply("requestHeaders", {
          setHeaders: [["x-a", "\u00e9"]],
          removeHeaders: ["authorization"],
          clearRouteCache: true,
          metadata: { key_id: "k", prompt_tokens: 30, stream: false, pool: null },
        }),
      ),
    );
    assert.deepEqual(
      decoded.requestHeaders.response.headerMutation.setHeaders[0].header.rawValue,
      Buffer.from([0xe9]),
    );
    assert.deepEqual(decoded.requestHeaders.response.headerMutation.removeHeaders, ["authorization"]);
    assert.equal(decoded.requestHeaders.response.clearRouteCache, true);
    assert.deepEqual(decoded.dynamicMetadata.fields[METADATA_NAMESPACE].structValue.fields, {
      key_id: { stringValue: "k" },
      prompt_tokens: { numberValue: 30 },
      stream: { boolValue: false },
    });
  });
});
