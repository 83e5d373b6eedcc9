import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { recordedBody, sseEvents } from "../../test/vllm-recordings/index.js";
import { modelRenamer } from "./model-name.js";

describe("model name rewrite", () => {
  it("renames the model of every event of a vLLM stream and changes no other byte", () => {
    const rename = modelRenamer("tiny-llama", "llama-3.1-8b-instruct");
    const body = recordedBody("chat_stream_usage_continuous");
    const renamed = sseEvents(body).map((e) => rename(Buffer.from(e)).toString());
    assert.equal(
      renamed.join(""),
      body.replaceAll('"model":"tiny-llama"', '"model":"llama-3.1-8b-instruct"'),
    );
  });

  it("leaves text that mentions the name, and an answer of another model, untouched (same buffer)", () => {
    const rename = modelRenamer("meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b-instruct");
    for (const text of [
      '{"model":"other","choices":[{"message":{"content":"\\"model\\":\\"meta-llama/Llama-3.1-8B-Instruct\\""}}]}',
      '{"model":"meta-llama/Llama-3.1-8B-Instruct-v2"}',
    ]) {
      const raw = Buffer.from(text);
      assert.equal(rename(raw), raw);
    }
  });

  it("rewrites only the first model field, keeps invalid UTF-8 bytes, and takes names with $ or quotes", () => {
    const rename = modelRenamer('org/m$1 "x"', "pub$&lic");
    const raw = Buffer.concat([
      Buffer.from('{"model" : "org/m$1 \\"x\\"","choices":[{"text":"'),
      Buffer.from([0xff, 0xc3]),
      Buffer.from('"}],"model":"org/m$1 \\"x\\""}'),
    ]);
    const expected = Buffer.concat([
      Buffer.from('{"model" : "pub$&lic","choices":[{"text":"'),
      Buffer.from([0xff, 0xc3]),
      Buffer.from('"}],"model":"org/m$1 \\"x\\""}'),
    ]);
    assert.deepEqual(rename(raw), expected);
  });
});
