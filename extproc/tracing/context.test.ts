import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { formatTraceparent, newSpanId, parseTraceparent } from "./context.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

describe("parseTraceparent", () => {
  it("reads the trace id, the parent span id and the sampled flag", () => {
    const sampled = parseTraceparent(`00-${TRACE}-${SPAN}-01`)!;
    assert.equal(sampled.traceId.toString("hex"), TRACE);
    assert.equal(sampled.spanId.toString("hex"), SPAN);
    assert.equal(sampled.sampled, true);
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-00`)!.sampled, false);
    // Other flags are not the sampled bit.
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-02`)!.sampled, false);
    assert.equal(parseTraceparent(`00-${TRACE}-${SPAN}-03`)!.sampled, true);
  });

  it("reads a later version as version 00, with what follows it", () => {
    assert.equal(parseTraceparent(`01-${TRACE}-${SPAN}-01-more`)?.sampled, true);
  });

  const invalid = [
    undefined,
    "",
    `00-${TRACE}-${SPAN}`,
    `00-${TRACE.toUpperCase()}-${SPAN}-01`,
    `00-${"0".repeat(32)}-${SPAN}-01`,
    `00-${TRACE}-${"0".repeat(16)}-01`,
    `ff-${TRACE}-${SPAN}-01`,
    `00-${TRACE}-${SPAN}-01-extra`,
    `00-${TRACE}a-${SPAN}-01`,
    `0-${TRACE}-${SPAN}-01`,
  ];
  for (const header of invalid) {
    it(`refuses ${JSON.stringify(header)}`, () => assert.equal(parseTraceparent(header), undefined));
  }

  it("reads back what it formats, for any valid context", () => {
    const hex = (bytes: number) =>
      fc.uint8Array({ minLength: bytes, maxLength: bytes }).filter((b) => b.some((x) => x !== 0));
    fc.assert(
      fc.property(hex(16), hex(8), fc.boolean(), (traceId, spanId, sampled) => {
        const context = { traceId: Buffer.from(traceId), spanId: Buffer.from(spanId), sampled };
        assert.deepEqual(parseTraceparent(formatTraceparent(context)), context);
      }),
    );
  });
});

describe("newSpanId", () => {
  it("draws 8 random bytes, never all zero, never the same twice in a long run", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const id = newSpanId();
      assert.equal(id.length, 8);
      assert.notEqual(id.readBigUInt64BE(), 0n);
      seen.add(id.toString("hex"));
    }
    assert.equal(seen.size, 5000);
  });
});
