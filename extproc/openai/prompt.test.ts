import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { promptText } from "./prompt.js";
import {
  chatCompletionRequest,
  completionRequest,
  embeddingRequest,
  parseRequestBody,
  type InferenceRequest,
} from "./schemas.js";
import type { z } from "zod";

/** A request body validated the way the gateway validates it. */
const parse = (schema: z.ZodType, body: object): InferenceRequest =>
  parseRequestBody(Buffer.from(JSON.stringify(body)), schema);

/** The prompt of `request`, checking that collecting it left the request untouched. */
function collect(request: InferenceRequest) {
  const before = structuredClone(request);
  const prompt = promptText(request);
  assert.deepEqual(request, before, "promptText must not change the request");
  return prompt;
}

const sorted = (texts: readonly string[]) => [...texts].sort();

describe("promptText", () => {
  describe("chat completions", () => {
    const request = parse(chatCompletionRequest, {
      model: "m1",
      messages: [
        { role: "system", content: "You are terse." },
        {
          role: "user",
          name: "alice",
          content: [
            { type: "text", text: "What is in this picture?" },
            { type: "image_url", image_url: { url: "https://example.com/cat.png", detail: "high" } },
            { type: "text", text: "Answer in French." },
          ],
        },
        {
          role: "assistant",
          content: null,
          tool_calls: [
            {
              id: "call_1",
              type: "function",
              function: { name: "get_weather", arguments: '{"city":"Paris","unit":"celsius"}' },
            },
            { id: "call_2", type: "function", function: { name: "get_time", arguments: '{"tz":"CET"}' } },
          ],
        },
        { role: "tool", tool_call_id: "call_1", content: "18 degrees, sunny" },
        { role: "assistant", content: "Un chat. Il fait beau à Paris." },
      ],
      temperature: 0.2,
      max_tokens: 50,
    });

    it("collects roles, names, string contents, text parts and tool call arguments", () => {
      const prompt = collect(request);
      // Function names are left out of the comparison: what matters here is the text the model reads.
      const texts = prompt.texts.filter((text) => text !== "get_weather" && text !== "get_time");
      assert.deepEqual(
        sorted(texts),
        sorted([
          "system",
          "You are terse.",
          "user",
          "alice",
          "What is in this picture?",
          "Answer in French.",
          "assistant",
          '{"city":"Paris","unit":"celsius"}',
          '{"tz":"CET"}',
          "tool",
          "18 degrees, sunny",
          "assistant",
          "Un chat. Il fait beau à Paris.",
        ]),
      );
    });

    it("ignores image parts, ids, types and other parameters", () => {
      const { texts } = collect(request);
      for (const absent of [
        "https://example.com/cat.png",
        "high",
        "image_url",
        "text",
        "call_1",
        "call_2",
        "function",
        "m1",
      ]) {
        assert.ok(!texts.includes(absent), `${absent} is not prompt text`);
      }
      assert.ok(!texts.some((text) => text.includes("example.com")));
    });

    it("counts the messages, and no token ids", () => {
      const prompt = collect(request);
      assert.equal(prompt.messages, 5);
      assert.equal(prompt.tokenIds, 0);
    });

    it("takes a message without content as just its role", () => {
      const prompt = collect(
        parse(chatCompletionRequest, {
          model: "m1",
          messages: [{ role: "user" }, { role: "assistant", content: null }],
        }),
      );
      assert.deepEqual(sorted(prompt.texts), ["assistant", "user"]);
      assert.equal(prompt.messages, 2);
    });

    it("keeps empty and repeated strings (each is sent, each is counted)", () => {
      const prompt = collect(
        parse(chatCompletionRequest, {
          model: "m1",
          messages: [
            { role: "user", content: "same" },
            { role: "user", content: "same" },
            { role: "user", content: "" },
          ],
        }),
      );
      assert.deepEqual(sorted(prompt.texts), ["", "same", "same", "user", "user", "user"]);
    });
  });

  describe("completions", () => {
    it("takes a string prompt", () => {
      assert.deepEqual(collect(parse(completionRequest, { model: "m1", prompt: "Once upon a time" })), {
        texts: ["Once upon a time"],
        tokenIds: 0,
        messages: 0,
      });
    });

    it("takes every prompt of a batch", () => {
      const prompt = collect(parse(completionRequest, { model: "m1", prompt: ["first", "second", "third"] }));
      assert.deepEqual(prompt, { texts: ["first", "second", "third"], tokenIds: 0, messages: 0 });
    });

    it("counts token id prompts in tokenIds", () => {
      assert.deepEqual(collect(parse(completionRequest, { model: "m1", prompt: [1, 2, 3, 4] })), {
        texts: [],
        tokenIds: 4,
        messages: 0,
      });
      assert.deepEqual(
        collect(
          parse(completionRequest, {
            model: "m1",
            prompt: [
              [10, 20],
              [30, 40, 50],
            ],
          }),
        ),
        { texts: [], tokenIds: 5, messages: 0 },
      );
    });
  });

  describe("embeddings", () => {
    it("takes a string input, a batch of strings, or token ids", () => {
      assert.deepEqual(collect(parse(embeddingRequest, { model: "e1", input: "embed me" })), {
        texts: ["embed me"],
        tokenIds: 0,
        messages: 0,
      });
      assert.deepEqual(collect(parse(embeddingRequest, { model: "e1", input: ["a", "b c"] })), {
        texts: ["a", "b c"],
        tokenIds: 0,
        messages: 0,
      });
      assert.deepEqual(collect(parse(embeddingRequest, { model: "e1", input: [7, 8, 9] })), {
        texts: [],
        tokenIds: 3,
        messages: 0,
      });
      assert.deepEqual(collect(parse(embeddingRequest, { model: "e1", input: [[1], [2, 3], []] })), {
        texts: [],
        tokenIds: 3,
        messages: 0,
      });
    });

    it("ignores the other parameters", () => {
      const prompt = collect(
        parse(embeddingRequest, {
          model: "e1",
          input: "x",
          encoding_format: "base64",
          dimensions: 256,
          user: "u1",
        }),
      );
      assert.deepEqual(prompt.texts, ["x"]);
    });
  });
});
