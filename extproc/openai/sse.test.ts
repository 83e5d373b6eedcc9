import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SseSplitter, type SseEvent } from "./sse.js";

/**
 * A stream mixing every terminator and field form the splitter must handle: a comment, LF, CRLF and
 * CR-only terminators, `data:` without a space, multi-line data, multi-byte UTF-8, `[DONE]` and an
 * unterminated tail.
 */
const EVENTS = [
  ": keep-alive\n\n",
  'data: {"a":1}\n\n',
  'data:{"b":"é→😀"}\r\n\r\n',
  "event: x\r\nid: 7\r\ndata: line1\r\ndata:  line2\r\n\r\n",
  "data: cr\r\r",
  "data: [DONE]\n\n",
];
const EXPECTED_DATA = ["", '{"a":1}', '{"b":"é→😀"}', "line1\n line2", "cr", "[DONE]"];
const TAIL = "data: tai";
const STREAM = Buffer.from(EVENTS.join("") + TAIL, "utf8");

const text = (b: Buffer) => b.toString("utf8");
const raws = (events: readonly SseEvent[]) => events.map((e) => text(e.raw));
const datas = (events: readonly SseEvent[]) => events.map((e) => e.data);

/** Pushes `chunks` in order and returns every event plus what flush returns at the end. */
function run(chunks: readonly Buffer[]): { events: SseEvent[]; held: number; rest: Buffer } {
  const splitter = new SseSplitter();
  const events: SseEvent[] = [];
  for (const chunk of chunks) events.push(...splitter.push(chunk));
  const held = splitter.heldBytes;
  const rest = splitter.flush();
  assert.equal(splitter.heldBytes, 0);
  return { events, held, rest };
}

function assertWholeStream(chunks: readonly Buffer[], label: string): void {
  const { events, held, rest } = run(chunks);
  assert.deepEqual(raws(events), EVENTS, label);
  assert.deepEqual(datas(events), EXPECTED_DATA, label);
  assert.equal(text(rest), TAIL, label);
  assert.equal(held, Buffer.byteLength(TAIL), label);
  assert.ok(Buffer.concat([...events.map((e) => e.raw), rest]).equals(STREAM), label);
}

describe("SseSplitter", () => {
  it("splits a stream pushed in one chunk into events with their raw bytes and data", () => {
    assertWholeStream([STREAM], "one chunk");
  });

  it("returns the same events whatever byte position the stream is split at", () => {
    for (let at = 0; at <= STREAM.length; at++) {
      assertWholeStream([STREAM.subarray(0, at), STREAM.subarray(at)], `split at ${at}`);
    }
  });

  it("returns the same events for every split into three chunks", () => {
    for (let a = 0; a <= STREAM.length; a++) {
      for (let b = a; b <= STREAM.length; b++) {
        const chunks = [STREAM.subarray(0, a), STREAM.subarray(a, b), STREAM.subarray(b)];
        assertWholeStream(chunks, `split at ${a} and ${b}`);
      }
    }
  });

  it("returns the same events when the stream arrives one byte at a time", () => {
    const bytes = [...STREAM].map((byte) => Buffer.from([byte]));
    assertWholeStream(bytes, "byte by byte");
  });

  it("only returns an event once its blank line has arrived", () => {
    const splitter = new SseSplitter();
    assert.deepEqual(splitter.push(Buffer.from("data: a\n")), []);
    assert.equal(splitter.heldBytes, 8);
    const events = splitter.push(Buffer.from("\ndata: b\n"));
    assert.deepEqual(raws(events), ["data: a\n\n"]);
    assert.deepEqual(datas(events), ["a"]);
    assert.equal(splitter.heldBytes, 8);
  });

  it("treats CRLF as one line terminator", () => {
    const splitter = new SseSplitter();
    const events = splitter.push(Buffer.from("data: a\r\n\r\ndata: b\r\ndata: c\r\n\r\n"));
    assert.deepEqual(raws(events), ["data: a\r\n\r\n", "data: b\r\ndata: c\r\n\r\n"]);
    assert.deepEqual(datas(events), ["a", "b\nc"]);
    assert.equal(splitter.heldBytes, 0);
  });

  it("waits for the next chunk when a chunk ends in CR, in case an LF follows", () => {
    const splitter = new SseSplitter();
    assert.deepEqual(splitter.push(Buffer.from("data: a\r\n\r")), []);
    assert.equal(splitter.heldBytes, 10);
    const events = splitter.push(Buffer.from("\n"));
    // One event including the LF; the LF must not show up later as an empty event of its own.
    assert.deepEqual(raws(events), ["data: a\r\n\r\n"]);
    assert.deepEqual(datas(events), ["a"]);
    assert.equal(splitter.heldBytes, 0);
    assert.equal(splitter.flush().length, 0);
  });

  it("handles a CR ending a data line at a chunk end followed by LF", () => {
    const splitter = new SseSplitter();
    assert.deepEqual(splitter.push(Buffer.from("data: a\r")), []);
    assert.deepEqual(splitter.push(Buffer.from("\n")), []);
    assert.deepEqual(raws(splitter.push(Buffer.from("\r\n"))), ["data: a\r\n\r\n"]);
    assert.equal(splitter.heldBytes, 0);
  });

  it("accepts a lone CR as a terminator once the next byte shows it is not CRLF", () => {
    const splitter = new SseSplitter();
    assert.deepEqual(splitter.push(Buffer.from("data: a\r\r")), []);
    const events = splitter.push(Buffer.from("data: b\n\n"));
    assert.deepEqual(raws(events), ["data: a\r\r", "data: b\n\n"]);
    assert.deepEqual(datas(events), ["a", "b"]);
  });

  it("joins multi-line data with LF", () => {
    const [event, ...more] = new SseSplitter().push(Buffer.from('data: {\ndata: "k": 1\ndata: }\n\n'));
    assert.equal(more.length, 0);
    assert.equal(event!.data, '{\n"k": 1\n}');
  });

  it("strips exactly one optional space after `data:`", () => {
    const events = new SseSplitter().push(Buffer.from("data:x\n\ndata: y\n\ndata:  z\n\ndata:\n\n"));
    assert.deepEqual(datas(events), ["x", "y", " z", ""]);
  });

  it("ignores comments and fields other than data", () => {
    const events = new SseSplitter().push(
      Buffer.from(": comment\nevent: message\nid: 1\nretry: 10\ndata: d\n\nevent: ping\n\n"),
    );
    assert.deepEqual(datas(events), ["d", ""]);
  });

  it("returns the [DONE] sentinel as an event", () => {
    const events = new SseSplitter().push(Buffer.from('data: {"x":1}\n\ndata: [DONE]\n\n'));
    assert.deepEqual(datas(events), ['{"x":1}', "[DONE]"]);
    assert.equal(text(events[1]!.raw), "data: [DONE]\n\n");
  });

  it("decodes multi-byte UTF-8 split across chunks", () => {
    const bytes = Buffer.from("data: é😀\n\n", "utf8");
    for (let at = 1; at < bytes.length; at++) {
      const splitter = new SseSplitter();
      const events = [...splitter.push(bytes.subarray(0, at)), ...splitter.push(bytes.subarray(at))];
      assert.deepEqual(datas(events), ["é😀"], `split at ${at}`);
    }
  });

  it("flushes an unterminated tail once and then starts afresh", () => {
    const splitter = new SseSplitter();
    assert.deepEqual(raws(splitter.push(Buffer.from("data: a\n\ndata: partial"))), ["data: a\n\n"]);
    assert.equal(splitter.heldBytes, 13);
    assert.equal(text(splitter.flush()), "data: partial");
    assert.equal(splitter.heldBytes, 0);
    assert.equal(splitter.flush().length, 0);
    assert.deepEqual(raws(splitter.push(Buffer.from("data: b\n\n"))), ["data: b\n\n"]);
  });

  it("keeps held bytes across empty chunks", () => {
    const splitter = new SseSplitter();
    assert.deepEqual(splitter.push(Buffer.alloc(0)), []);
    assert.equal(splitter.heldBytes, 0);
    splitter.push(Buffer.from("data: a"));
    assert.deepEqual(splitter.push(Buffer.alloc(0)), []);
    assert.equal(splitter.heldBytes, 7);
    assert.deepEqual(datas(splitter.push(Buffer.from("\n\n"))), ["a"]);
  });

  it("counts held bytes as bytes, not characters", () => {
    const splitter = new SseSplitter();
    splitter.push(Buffer.from("data: é", "utf8"));
    assert.equal(splitter.heldBytes, 8);
  });

  it("does not change events already returned when later chunks arrive", () => {
    const splitter = new SseSplitter();
    splitter.push(Buffer.from("data: a"));
    const [event] = splitter.push(Buffer.from("\n\ndata: b"));
    splitter.push(Buffer.from("c\n\n"));
    splitter.push(Buffer.from("data: zzzzzzzzzz"));
    assert.equal(text(event!.raw), "data: a\n\n");
    assert.equal(event!.data, "a");
  });
});
