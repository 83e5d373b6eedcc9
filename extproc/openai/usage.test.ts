import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generatedText, mayCarryUsage, usageOf } from "./usage.js";

describe("usageOf", () => {
  it("treats counts a quota could not be charged as no usage at all", () => {
    assert.equal(usageOf({ usage: { prompt_tokens: "7", completion_tokens: 1 } }), undefined);
    for (const bad of [-5, 1.5, NaN, Infinity, 2 ** 60]) {
      assert.equal(usageOf({ usage: { prompt_tokens: bad, completion_tokens: 1 } }), undefined, String(bad));
      assert.equal(usageOf({ usage: { prompt_tokens: 1, completion_tokens: bad } }), undefined, String(bad));
    }
    // A missing or null completion count is 0; an odd total is recomputed.
    assert.deepEqual(usageOf({ usage: { prompt_tokens: 3, completion_tokens: null, total_tokens: -1 } }), {
      prompt_tokens: 3,
      completion_tokens: 0,
      total_tokens: 3,
    });
  });

  it("reads a complete usage object", () => {
    const body = {
      id: "x",
      choices: [],
      usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18, prompt_tokens_details: null },
    };
    assert.deepEqual(usageOf(body), { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });
  });

  it("reports the server's total as is, even when it is not the sum", () => {
    assert.deepEqual(usageOf({ usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 10 } }), {
      prompt_tokens: 1,
      completion_tokens: 2,
      total_tokens: 10,
    });
  });

  it("reads embeddings usage, which has no completion tokens", () => {
    assert.deepEqual(usageOf({ object: "list", data: [], usage: { prompt_tokens: 5, total_tokens: 5 } }), {
      prompt_tokens: 5,
      completion_tokens: 0,
      total_tokens: 5,
    });
  });

  it("computes a missing total from the other counts", () => {
    assert.deepEqual(usageOf({ usage: { prompt_tokens: 3, completion_tokens: 4 } }), {
      prompt_tokens: 3,
      completion_tokens: 4,
      total_tokens: 7,
    });
    assert.deepEqual(usageOf({ usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: null } }), {
      prompt_tokens: 3,
      completion_tokens: 4,
      total_tokens: 7,
    });
  });

  it("treats a completion count that is not a number as 0", () => {
    assert.deepEqual(usageOf({ usage: { prompt_tokens: 3, completion_tokens: "4" } }), {
      prompt_tokens: 3,
      completion_tokens: 0,
      total_tokens: 3,
    });
  });

  it("keeps zero counts", () => {
    assert.deepEqual(usageOf({ usage: { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 } }), {
      prompt_tokens: 0,
      completion_tokens: 0,
      total_tokens: 0,
    });
  });

  it("returns undefined without a well-formed usage object", () => {
    const bodies: unknown[] = [
      undefined,
      null,
      42,
      "usage",
      [],
      {},
      { usage: null },
      { usage: "12" },
      { usage: 12 },
      { usage: [] },
      { usage: {} },
      { usage: { completion_tokens: 4, total_tokens: 4 } },
      { usage: { prompt_tokens: "3", completion_tokens: 4, total_tokens: 7 } },
      { usage: { prompt_tokens: null } },
      { choices: [{ usage: { prompt_tokens: 1 } }] },
    ];
    for (const body of bodies) assert.equal(usageOf(body), undefined, JSON.stringify(body));
  });

  it("reads the usage of a parsed stream usage chunk", () => {
    const chunk = JSON.parse(
      '{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"total_tokens":21,"completion_tokens":12}}',
    );
    assert.deepEqual(usageOf(chunk), { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 });
  });
});

describe("mayCarryUsage", () => {
  it("is true when the JSON text has a usage object", () => {
    for (const json of [
      '{"usage":{"prompt_tokens":1}}',
      '{"choices":[],"usage": {"prompt_tokens":1}}',
      '{"choices":[],"usage" :\n\t{ "prompt_tokens":1}}',
      '{\n  "usage"  :  {}\n}',
    ]) {
      assert.equal(mayCarryUsage(json), true, json);
    }
  });

  it("is false when usage is absent, null or not an object", () => {
    for (const json of [
      '{"choices":[{"delta":{"content":"hi"}}]}',
      '{"choices":[],"usage":null}',
      '{"usage": null}',
      '{"usage":12}',
      '{"usage":"x"}',
      '{"usage":[]}',
      '{"prompt_usage":1}',
      "[DONE]",
      "",
    ]) {
      assert.equal(mayCarryUsage(json), false, json);
    }
  });

  it("never misses a usage object that usageOf would read", () => {
    const json = '{"id":"1","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3,"total_tokens":5}}';
    assert.ok(usageOf(JSON.parse(json)));
    assert.equal(mayCarryUsage(json), true);
    const spaced = JSON.stringify(JSON.parse(json), null, 2);
    assert.equal(mayCarryUsage(spaced), true);
  });
});

describe("generatedText", () => {
  it("reads the message content of a chat completion", () => {
    assert.equal(
      generatedText({ choices: [{ index: 0, message: { role: "assistant", content: "Hello!" } }] }),
      "Hello!",
    );
  });

  it("reads the delta content of a chat completion chunk", () => {
    assert.equal(generatedText({ choices: [{ index: 0, delta: { content: "Hel" } }] }), "Hel");
  });

  it("reads the text of a completion", () => {
    assert.equal(generatedText({ choices: [{ index: 0, text: "once upon" }] }), "once upon");
  });

  it("concatenates the text of every choice in order", () => {
    assert.equal(
      generatedText({
        choices: [{ message: { content: "a" } }, { message: { content: "b" } }, { text: "c" }],
      }),
      "abc",
    );
  });

  it("skips choices without string text", () => {
    assert.equal(
      generatedText({
        choices: [
          { delta: { role: "assistant" } },
          { delta: { content: null } },
          { message: { content: null, tool_calls: [] } },
          { text: 5 },
          { message: { content: ["part"] } },
          {},
          { delta: { content: "x" } },
        ],
      }),
      "x",
    );
  });

  it("keeps empty strings and whitespace as they are", () => {
    assert.equal(generatedText({ choices: [{ text: "" }, { text: " \n" }] }), " \n");
  });

  it("returns an empty string for bodies without a choices array", () => {
    for (const body of [
      undefined,
      null,
      42,
      "text",
      [],
      {},
      { choices: null },
      { choices: {} },
      { choices: "x" },
    ]) {
      assert.equal(generatedText(body), "", JSON.stringify(body));
    }
    assert.equal(generatedText({ choices: [] }), "");
  });

  it("skips choices that are not objects", () => {
    assert.equal(generatedText({ choices: ["x", 3, true, [], { text: "a" }] }), "a");
  });

  it("skips null choices instead of throwing", () => {
    assert.equal(generatedText({ choices: [null, { text: "a" }, undefined] }), "a");
  });
});
