import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { recordedBody, sseEvents, withId } from "../../test/vllm-recordings/index.js";
import { UsageChunkRemover, withoutNullUsage } from "./usage-chunk.js";

/** What the gateway sends a client that did not ask for usage, for a stream the server sent with it. */
function withoutUsageChunk(body: string): string {
  const remover = new UsageChunkRemover();
  const out: Buffer[] = [];
  for (const event of sseEvents(body)) {
    const raw = Buffer.from(event, "utf8");
    if (event === "data: [DONE]\n\n") out.push(...remover.release(), raw);
    else {
      const parsed = JSON.parse(event.slice("data: ".length)) as { choices: unknown[]; usage?: unknown };
      if (parsed.usage && parsed.choices.length === 0) out.push(...remover.usageChunk(parsed));
      else out.push(...remover.keep(raw));
    }
  }
  return Buffer.concat(out).toString("utf8");
}

describe("usage chunk removal, against vLLM's recordings", () => {
  it("turns vLLM's include_usage chat stream into its stream without it, byte for byte", () => {
    const asked = recordedBody("chat_stream_usage");
    const plain = recordedBody("chat_stream");
    assert.equal(withoutUsageChunk(asked), withId(plain, "chatcmpl-b671885a2357ba23"));
  });

  it("does the same for completions", () => {
    const asked = recordedBody("completions_stream_usage");
    const plain = recordedBody("completions_stream");
    assert.equal(withoutUsageChunk(asked), withId(plain, "cmpl-b6a5d8bcdefd97a5"));
  });

  it("puts the fingerprint back on every choice's finishing chunk (n: 2), keeping the event order", () => {
    // vLLM's n: 2 stream without include_usage, and the same as include_usage sends it: no fingerprint on
    // the finishing chunks, one usage chunk carrying it.
    const plain = recordedBody("chat_stream_n2");
    const fingerprint = ',"system_fingerprint":"vllm-0.32.0-510f2205"';
    assert.equal(plain.split(fingerprint).length, 3);
    const asked = plain
      .replaceAll(fingerprint, "")
      .replace(
        "data: [DONE]",
        `data: {"id":"chatcmpl-b44db55003513812","object":"chat.completion.chunk","created":1796151241,"model":"tiny-llama","choices":[],"usage":{"prompt_tokens":17,"total_tokens":23,"completion_tokens":6}${fingerprint}}\n\ndata: [DONE]`,
      );
    assert.equal(withoutUsageChunk(asked), plain);
  });

  it("holds nothing before the first finishing chunk, and releases held events when no usage chunk comes", () => {
    const remover = new UsageChunkRemover();
    const events = sseEvents(recordedBody("chat_stream"));
    for (const event of events.slice(0, -2)) assert.equal(remover.keep(Buffer.from(event)).length, 1);
    assert.deepEqual(remover.keep(Buffer.from(events.at(-2)!)), []);
    assert.deepEqual(
      remover.release().map((b) => b.toString()),
      [events.at(-2)],
    );
  });

  it('removes a "usage":null field (OpenAI\'s servers add one) but never text that looks like it', () => {
    assert.equal(
      withoutNullUsage(Buffer.from('data: {"id":"x","choices":[],"usage":null}\n\n')).toString(),
      'data: {"id":"x","choices":[]}\n\n',
    );
    const quoted = Buffer.from('data: {"choices":[{"delta":{"content":"\\"usage\\":null,"}}]}\n\n');
    assert.equal(withoutNullUsage(quoted), quoted);
  });

  it("does not mistake a quoted finish_reason inside generated text for a finishing chunk", () => {
    const remover = new UsageChunkRemover();
    const event = Buffer.from(
      'data: {"choices":[{"index":0,"delta":{"content":"\\"finish_reason\\":\\"stop\\""},"finish_reason":null}]}\n\n',
    );
    assert.deepEqual(remover.keep(event), [event]);
  });
});
