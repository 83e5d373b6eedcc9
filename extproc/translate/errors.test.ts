import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { chatTranslation } from "./index.js";
import { recording } from "./test-support.js";

const responses = chatTranslation("responses");
const messages = chatTranslation("messages");

describe("upstream errors in the client API's shape", () => {
  it("keeps vLLM's OpenAI error for Responses, as vLLM's native /v1/responses answers it", () => {
    const chat = recording("err_unknown_model");
    const native = recording("err_responses_unknown_model");
    const translated = responses.fromChatError(chat.status, JSON.parse(chat.body));
    assert.deepEqual(translated, JSON.parse(native.body));
  });

  it("gives Messages Anthropic's shape with the type for the status", () => {
    const chat = recording("err_unknown_model");
    assert.deepEqual(messages.fromChatError(chat.status, JSON.parse(chat.body)), {
      type: "error",
      error: {
        type: "not_found_error",
        message: "The model `nope` does not exist. Valid aliases: tiny-llama.",
      },
    });
    const types = [400, 401, 402, 403, 404, 413, 422, 429, 500, 503, 504, 529].map(
      (status) => (messages.fromChatError(status, {}) as { error: { type: string } }).error.type,
    );
    assert.deepEqual(types, [
      "invalid_request_error",
      "authentication_error",
      "billing_error",
      "permission_error",
      "not_found_error",
      "request_too_large",
      "invalid_request_error",
      "rate_limit_error",
      "api_error",
      "overloaded_error",
      "timeout_error",
      "overloaded_error",
    ]);
  });

  it("reads TGI's and Ollama's error bodies, and bodies that are no error at all", () => {
    const tgi = {
      error: "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096",
      error_type: "validation",
    };
    assert.deepEqual(responses.fromChatError(422, tgi), {
      error: { message: tgi.error, type: "validation", param: null, code: null },
    });
    assert.deepEqual(messages.fromChatError(404, { error: 'model "x" not found' }), {
      type: "error",
      error: { type: "not_found_error", message: 'model "x" not found' },
    });
    for (const junk of [null, "oops", [], { error: 3 }])
      assert.deepEqual(responses.fromChatError(502, junk), {
        error: { message: "the model server answered 502", type: "server_error", param: null, code: null },
      });
  });
});
