/**
 * Golden tests: the recorded vLLM chat answers, translated, against what the same vLLM answered natively on
 * /v1/responses and /v1/messages for the same request (testdata/, recorded with capture.sh's requests).
 * Ids differ by design (derived from the chat id), so they are compared by pattern; everything else must
 * match: the same event types in the same order, the same fields, the same text and the same usage.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chatTranslation } from "./index.js";
import { chatEvents, convert, parseSse, recording, type ParsedEvent } from "./test-support.js";

/** capture.sh's requests for the recordings. */
const RESPONSES_REQUEST = { model: "tiny-llama", input: "Hello there", max_output_tokens: 8, temperature: 0 };
const RECORDED_TEXT = " Libraryditional Libraryditional line redistribute line GENERAL";

/** `value` with every id-like string (resp_…, msg_…, chatcmpl-…) replaced by its prefix. */
function withoutIds(value: unknown): unknown {
  if (typeof value === "string") return value.replace(/^(resp_|msg_|chatcmpl-)[0-9a-f]{16}$/, "$1<id>");
  if (Array.isArray(value)) return value.map(withoutIds);
  if (value !== null && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutIds(v)]));
  return value;
}

/** The event types in order, with runs of the same delta type collapsed (servers cut text differently). */
function eventShape(events: readonly ParsedEvent[]): string[] {
  return events
    .map((e) => e.event)
    .filter((type, i, all) => !(type.endsWith("delta") && all[i - 1] === type));
}

describe("Responses translation against vLLM's native /v1/responses", () => {
  const translation = chatTranslation("responses");

  it("translates the whole chat answer to the native response, field for field", () => {
    const chat = JSON.parse(recording("chat").body) as unknown;
    const native = JSON.parse(recording("responses").body) as unknown;
    const translated = translation.fromChatAnswer(chat, { request: RESPONSES_REQUEST });
    assert.deepEqual(withoutIds(translated), withoutIds(native));
    assert.match((translated as { id: string }).id, /^resp_[0-9a-f]{16}$/);
  });

  it("translates the chat stream to the native event sequence, fields and final response", () => {
    const native = parseSse(recording("responses_stream").body);
    const events = parseSse(
      convert(
        translation.streamConverter({ request: { ...RESPONSES_REQUEST, stream: true } }),
        chatEvents(recording("chat_stream_usage").body),
      ).toString(),
    );
    assert.deepEqual(eventShape(events), eventShape(native));
    for (const event of events) {
      assert.equal(event.data.type, event.event, "the SSE event name is the payload's type");
      const twin = native.find((n) => n.event === event.event)!;
      assert.deepEqual(Object.keys(event.data).sort(), Object.keys(twin.data).sort(), event.event);
    }
    assert.deepEqual(
      events.map((e) => e.data.sequence_number),
      events.map((_, i) => i),
    );
    const text = events
      .filter((e) => e.event === "response.output_text.delta")
      .map((e) => e.data.delta)
      .join("");
    assert.equal(text, RECORDED_TEXT);
    // The framing events are the native ones but for ids (and the request echo, the same request here).
    const framing = (list: readonly ParsedEvent[]) =>
      list
        .filter((e) => !e.event.endsWith(".delta"))
        .map((e) => withoutIds({ ...e.data, sequence_number: 0 }));
    assert.deepEqual(framing(events), framing(native));
  });

  it("states usage from the gateway's count when the chat stream carried none", () => {
    const events = chatEvents(recording("chat_stream").body);
    const converter = translation.streamConverter();
    const bytes = Buffer.concat([
      ...events.map((e) => converter.event(e)),
      converter.done({ promptTokens: 17, completionTokens: 8, cachedTokens: 0, reasoningTokens: 0 }),
    ]);
    const completed = parseSse(bytes.toString()).at(-1)!;
    const usage = (completed.data.response as { usage: Record<string, number> }).usage;
    assert.deepEqual([usage.input_tokens, usage.output_tokens, usage.total_tokens], [17, 8, 25]);
  });
});

describe("Messages translation against vLLM's native /v1/messages", () => {
  const translation = chatTranslation("messages");

  it("translates the whole chat answer to the native message (plus Anthropic's stop_sequence)", () => {
    const chat = JSON.parse(recording("chat").body) as unknown;
    const native = JSON.parse(recording("messages").body) as Record<string, unknown>;
    const translated = translation.fromChatAnswer(chat) as Record<string, unknown>;
    assert.match(translated.id as string, /^msg_[0-9a-f]{16}$/);
    assert.deepEqual(
      { ...translated, id: native.id },
      { ...native, stop_sequence: null },
      "the native answer lacks only stop_sequence, which Anthropic's API sends",
    );
  });

  it("translates the chat stream to the native events, one for one", () => {
    const native = parseSse(recording("messages_stream").body);
    const events = parseSse(
      convert(
        translation.streamConverter({ promptTokens: 17 }),
        chatEvents(recording("chat_stream_usage").body),
      ).toString(),
    );
    const start = events[0]!.data.message as Record<string, unknown>;
    assert.match(start.id as string, /^msg_[0-9a-f]{16}$/);
    const nativeStart = native[0]!.data.message as Record<string, unknown>;
    assert.deepEqual(
      events.map((e, i) =>
        i === 0 ? { ...e, data: { ...e.data, message: { ...start, id: nativeStart.id } } } : e,
      ),
      native,
    );
  });

  it("says input_tokens 0 at message_start without a count, and the server's count at message_delta", () => {
    const events = parseSse(
      convert(translation.streamConverter(), chatEvents(recording("chat_stream_usage").body)).toString(),
    );
    const start = events[0]!.data.message as { usage: unknown };
    assert.deepEqual(start.usage, { input_tokens: 0, output_tokens: 0 });
    assert.deepEqual(events.at(-2)!.data.usage, { input_tokens: 17, output_tokens: 8 });
  });
});
