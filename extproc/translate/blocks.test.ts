import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ChatStreamAssembler, type BlockOp } from "./blocks.js";

const delta = (d: Record<string, unknown>, finish: string | null = null) => ({
  id: "chatcmpl-1",
  model: "m",
  created: 5,
  choices: [{ index: 0, delta: d, finish_reason: finish }],
});
const run = (chunks: unknown[]) => {
  const assembler = new ChatStreamAssembler(() => 0);
  const ops: BlockOp[] = chunks.flatMap((c) => assembler.push(c));
  ops.push(...assembler.finish());
  return { assembler, ops };
};

describe("chat stream block assembly", () => {
  it("opens a block per kind change and closes it with its whole text", () => {
    const { ops, assembler } = run([
      delta({ role: "assistant", content: "" }),
      delta({ reasoning: "think" }),
      delta({ content: "Hi" }),
      delta({ content: "!" }, "stop"),
    ]);
    assert.deepEqual(ops, [
      { op: "open", index: 0, block: { kind: "reasoning" } },
      { op: "delta", index: 0, text: "think" },
      { op: "close", index: 0, block: { kind: "reasoning" }, text: "think" },
      { op: "open", index: 1, block: { kind: "text" } },
      { op: "delta", index: 1, text: "Hi" },
      { op: "delta", index: 1, text: "!" },
      { op: "close", index: 1, block: { kind: "text" }, text: "Hi!" },
    ]);
    assert.equal(assembler.finishReason, "stop");
    assert.deepEqual(assembler.head, { id: "chatcmpl-1", model: "m", created: 5 });
  });

  it("holds a tool call's fragments until its name arrives", () => {
    const { ops } = run([
      delta({ tool_calls: [{ index: 0, id: "call_1", function: { arguments: '{"a"' } }] }),
      delta({ tool_calls: [{ index: 0, function: { name: "f", arguments: ":1}" } }] }),
    ]);
    const tool = { kind: "tool", callId: "call_1", name: "f" };
    assert.deepEqual(ops, [
      { op: "open", index: 0, block: tool },
      { op: "delta", index: 0, text: '{"a":1}' },
      { op: "close", index: 0, block: tool, text: '{"a":1}' },
    ]);
  });

  it("delivers a tool call whose name never came, nameless, at the end", () => {
    const { ops } = run([delta({ tool_calls: [{ index: 0, function: { arguments: "{}" } }] })]);
    assert.deepEqual(
      ops.map((op) => op.op),
      ["open", "delta", "close"],
    );
    assert.deepEqual((ops[0] as { block: unknown }).block, { kind: "tool", callId: undefined, name: "" });
  });

  it("tells calls apart without an index by their ids (servers that send each call whole)", () => {
    const call = (id: string, name: string) => ({ id, function: { name, arguments: "{}" } });
    const { assembler } = run([
      delta({ tool_calls: [call("a", "f")] }),
      delta({ tool_calls: [call("b", "g")] }),
    ]);
    assert.deepEqual(
      assembler.finished.map(({ block, text }) => [block, text]),
      [
        [{ kind: "tool", callId: "a", name: "f" }, "{}"],
        [{ kind: "tool", callId: "b", name: "g" }, "{}"],
      ],
    );
  });

  it("counts, and does not deliver, fragments for a tool call that already closed", () => {
    const { assembler } = run([
      delta({ tool_calls: [{ index: 0, id: "a", function: { name: "f", arguments: "{" } }] }),
      delta({ tool_calls: [{ index: 1, id: "b", function: { name: "g", arguments: "{}" } }] }),
      delta({ tool_calls: [{ index: 0, function: { arguments: "}" } }] }),
    ]);
    assert.equal(assembler.droppedChars, 1);
    assert.deepEqual(
      assembler.finished.map((b) => b.text),
      ["{", "{}"],
    );
  });

  it("takes the last usage, the matched stop string, and ignores other choices and junk", () => {
    const { assembler, ops } = run([
      "junk",
      null,
      { choices: [{ index: 1, delta: { content: "other choice" } }] },
      { ...delta({ content: "x" }, "stop"), usage: { prompt_tokens: 1, completion_tokens: 1 } },
      { choices: [{ index: 0, delta: {}, finish_reason: "stop", stop_reason: "END" }] },
      {
        choices: [],
        usage: { prompt_tokens: 3, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 1 } },
      },
    ]);
    assert.deepEqual(
      ops.filter((op) => op.op === "delta").map((op) => op.text),
      ["x"],
    );
    assert.equal(assembler.stopSequence, "END");
    assert.deepEqual(assembler.usage, {
      promptTokens: 3,
      completionTokens: 2,
      cachedTokens: 1,
      reasoningTokens: 0,
    });
    assert.deepEqual(assembler.head, { id: "", model: "", created: 0 });
  });
});
