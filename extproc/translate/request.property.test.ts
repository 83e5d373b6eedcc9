/**
 * Properties of the request translations, over generated multi-turn requests (every supported item and
 * block kind, in any order and mix), each model-read text carrying a unique marker:
 * - a request of supported features translates, and every marker of a field the model reads appears in the
 *   chat body exactly once (nothing the client sent for the model is lost or duplicated), while markers of
 *   the documented drops (earlier reasoning and thinking) appear nowhere;
 * - a request with an unsupported feature anywhere is refused with invalid_request, and `param` names a
 *   field the request has; nothing else is ever thrown.
 * Seeded: FC_SEED reproduces a run.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { GatewayError } from "../errors/index.js";
import { chatTranslation } from "./index.js";

const SEED = Number(process.env.FC_SEED ?? 0x2e9_0e57) | 0;
const NUM_RUNS = Number(process.env.FC_RUNS ?? 300);

type Json = Record<string, unknown>;

/** Hands out markers: `kept` ones must reach the chat body once, `dropped` ones never. */
class Markers {
  readonly kept: string[] = [];
  readonly dropped: string[] = [];
  private next = 0;
  text(noise: string, keep = true): string {
    const marker = `⟪${this.next++}⟫`;
    (keep ? this.kept : this.dropped).push(marker);
    return marker + noise;
  }
}

const noise = fc.string({ maxLength: 8 });

/** The value at a param path such as `input[3].content[0].type`. */
function at(value: unknown, param: string): unknown {
  return param.split(/\.|(?=\[)/).reduce<unknown>((node, step) => {
    const index = /^\[(\d+)\]$/.exec(step);
    return (node as Record<string, unknown> | undefined)?.[index ? Number(index[1]) : step];
  }, value);
}

/** Runs the translation; on a refusal, checks it is the documented one. */
function translateOrRefusal(run: () => Json, request: unknown): Json | GatewayError {
  try {
    return run();
  } catch (err) {
    assert.ok(err instanceof GatewayError, `threw ${String(err)}`);
    assert.equal(err.code, "invalid_request");
    assert.ok(
      err.param !== null && at(request, err.param) !== undefined,
      `param ${err.param} is in the request`,
    );
    return err;
  }
}

function assertMarkers(chat: Json, markers: Markers): void {
  const body = JSON.stringify(chat);
  const count = (marker: string) => body.split(marker).length - 1;
  for (const marker of markers.kept) assert.equal(count(marker), 1, `${marker} reaches the chat body once`);
  for (const marker of markers.dropped) assert.equal(count(marker), 0, `${marker} is dropped`);
}

// ---- Responses ------------------------------------------------------------------------------------------

const RESPONSES_ITEMS = [
  "user_text",
  "user_parts",
  "user_image",
  "assistant_text",
  "developer",
  "function_call",
  "function_call_output",
  "function_call_output_parts",
  "reasoning",
] as const;
const RESPONSES_UNSUPPORTED = ["web_search_call", "item_reference", "input_file", "hosted_tool"] as const;

function responsesItem(kind: string, s: string, i: number, m: Markers): Json {
  switch (kind) {
    case "user_text":
      return { role: "user", content: m.text(s) };
    case "user_parts":
      return {
        type: "message",
        role: "user",
        content: [
          { type: "input_text", text: m.text(s) },
          { type: "input_text", text: m.text(s) },
        ],
      };
    case "user_image":
      return {
        role: "user",
        content: [{ type: "input_image", image_url: `data:image/png;base64,${m.text("AA")}` }],
      };
    case "assistant_text":
      return {
        type: "message",
        role: "assistant",
        content: [{ type: "output_text", text: m.text(s), annotations: [] }],
      };
    case "developer":
      return { role: "developer", content: m.text(s) };
    case "function_call":
      return {
        type: "function_call",
        call_id: `call_${i}`,
        name: m.text("f"),
        arguments: JSON.stringify({ q: m.text(s) }),
      };
    case "function_call_output":
      return { type: "function_call_output", call_id: `call_${i}`, output: m.text(s) };
    case "function_call_output_parts":
      return {
        type: "function_call_output",
        call_id: `call_${i}`,
        output: [{ type: "input_text", text: m.text(s) }],
      };
    case "reasoning":
      return {
        type: "reasoning",
        id: `rs_${i}`,
        summary: [{ type: "summary_text", text: m.text(s, false) }],
      };
    case "web_search_call":
      return { type: "web_search_call", id: `ws_${i}`, status: "completed" };
    case "item_reference":
      return { type: "item_reference", id: `msg_${i}` };
    default:
      return { role: "user", content: [{ type: "input_file", file_id: `file_${i}` }] };
  }
}

const responsesSpec = fc.record({
  instructions: fc.option(noise, { nil: undefined }),
  items: fc.array(fc.tuple(fc.constantFrom(...RESPONSES_ITEMS), noise), { minLength: 1, maxLength: 8 }),
  tools: fc.array(noise, { maxLength: 3 }),
  schema: fc.option(noise, { nil: undefined }),
  stream: fc.boolean(),
});

type ResponsesSpec = typeof responsesSpec extends fc.Arbitrary<infer T> ? T : never;

function responsesRequest(spec: ResponsesSpec, m: Markers, unsupported?: [number, string]): Json {
  const items = spec.items.map(([kind, s], i) => responsesItem(kind, s, i, m));
  const tools: Json[] = spec.tools.map((s) => ({
    type: "function",
    name: m.text("t"),
    description: m.text(s),
    parameters: { type: "object", properties: { [m.text("p")]: { type: "string" } } },
  }));
  if (unsupported) {
    const [where, kind] = unsupported;
    if (kind === "hosted_tool") tools.splice(where % (tools.length + 1), 0, { type: "web_search" });
    else items.splice(where % (items.length + 1), 0, responsesItem(kind, "", 99, new Markers()));
  }
  const request: Json = { model: "m", input: items, stream: spec.stream };
  if (spec.instructions !== undefined) request.instructions = m.text(spec.instructions);
  if (tools.length > 0) request.tools = tools;
  if (spec.schema !== undefined)
    request.text = {
      format: { type: "json_schema", name: "out", schema: { description: m.text(spec.schema) } },
    };
  return request;
}

// ---- Messages -------------------------------------------------------------------------------------------

const USER_BLOCKS = ["text", "image_base64", "image_url", "tool_result_text", "tool_result_blocks"] as const;
const ASSISTANT_BLOCKS = ["text", "tool_use", "thinking"] as const;
const MESSAGES_UNSUPPORTED = ["document", "server_tool_use", "server_tool", "assistant_image"] as const;

function messagesBlock(kind: string, s: string, i: number, m: Markers): Json {
  switch (kind) {
    case "text":
      return { type: "text", text: m.text(s) };
    case "image_base64":
      return { type: "image", source: { type: "base64", media_type: "image/png", data: m.text("AA") } };
    case "image_url":
      return { type: "image", source: { type: "url", url: `https://example.com/${m.text("a")}` } };
    case "tool_result_text":
      return {
        type: "tool_result",
        tool_use_id: `toolu_${i}`,
        content: m.text(s),
        is_error: s.length % 2 === 0,
      };
    case "tool_result_blocks":
      return { type: "tool_result", tool_use_id: `toolu_${i}`, content: [{ type: "text", text: m.text(s) }] };
    case "tool_use":
      return { type: "tool_use", id: `toolu_${i}`, name: m.text("f"), input: { q: m.text(s) } };
    case "thinking":
      return { type: "thinking", thinking: m.text(s, false), signature: "sig" };
    case "document":
      return { type: "document", source: { type: "text", media_type: "text/plain", data: "d" } };
    case "server_tool_use":
      return { type: "server_tool_use", id: `srvtoolu_${i}`, name: "web_search", input: {} };
    default:
      return { type: "image", source: { type: "url", url: "https://example.com/a.png" } };
  }
}

const messagesSpec = fc.record({
  system: fc.option(
    fc.oneof(
      noise.map((s) => [s]),
      fc.array(noise, { minLength: 1, maxLength: 3 }),
    ),
    {
      nil: undefined,
    },
  ),
  systemAsString: fc.boolean(),
  turns: fc.array(
    fc.oneof(
      fc.record({
        role: fc.constant("user" as const),
        blocks: fc.array(fc.tuple(fc.constantFrom(...USER_BLOCKS), noise), { minLength: 1, maxLength: 4 }),
        asString: fc.option(noise, { nil: undefined }),
      }),
      fc.record({
        role: fc.constant("assistant" as const),
        blocks: fc.array(fc.tuple(fc.constantFrom(...ASSISTANT_BLOCKS), noise), {
          minLength: 1,
          maxLength: 4,
        }),
        asString: fc.option(noise, { nil: undefined }),
      }),
    ),
    { minLength: 1, maxLength: 6 },
  ),
  tools: fc.array(noise, { maxLength: 3 }),
});

type MessagesSpec = typeof messagesSpec extends fc.Arbitrary<infer T> ? T : never;

function messagesRequest(spec: MessagesSpec, m: Markers, unsupported?: [number, string]): Json {
  const messages = spec.turns.map((turn, t) => ({
    role: turn.role,
    content:
      turn.asString !== undefined
        ? m.text(turn.asString)
        : turn.blocks.map(([kind, s], i) => messagesBlock(kind, s, t * 10 + i, m)),
  }));
  const tools: Json[] = spec.tools.map((s) => ({
    name: m.text("t"),
    description: m.text(s),
    input_schema: { type: "object", properties: { [m.text("p")]: { type: "string" } } },
  }));
  if (unsupported) {
    const [where, kind] = unsupported;
    if (kind === "server_tool")
      tools.splice(where % (tools.length + 1), 0, { type: "web_search_20250305", name: "web_search" });
    else
      messages.splice(where % (messages.length + 1), 0, {
        role: kind === "document" ? "user" : "assistant",
        content: [messagesBlock(kind, "", 99, new Markers())],
      });
  }
  const request: Json = { model: "m", max_tokens: 16, messages };
  if (spec.system !== undefined)
    request.system = spec.systemAsString
      ? m.text(spec.system.join(""))
      : spec.system.map((s) => ({ type: "text", text: m.text(s) }));
  if (tools.length > 0) request.tools = tools;
  return request;
}

// ---- properties -----------------------------------------------------------------------------------------

describe("request translation properties", () => {
  const responses = chatTranslation("responses");
  const messages = chatTranslation("messages");

  it("Responses: every model-read text reaches the chat body once; documented drops nowhere", () => {
    fc.assert(
      fc.property(responsesSpec, (spec) => {
        const markers = new Markers();
        const request = responsesRequest(spec, markers);
        const chat = translateOrRefusal(() => responses.toChatRequest(request), request);
        assert.ok(!(chat instanceof GatewayError), `refused: ${String((chat as GatewayError).message)}`);
        assertMarkers(chat, markers);
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
  });

  it("Responses: an unsupported feature anywhere is refused, naming a field the request has", () => {
    fc.assert(
      fc.property(responsesSpec, fc.nat(), fc.constantFrom(...RESPONSES_UNSUPPORTED), (spec, where, kind) => {
        const request = responsesRequest(spec, new Markers(), [where, kind]);
        const result = translateOrRefusal(() => responses.toChatRequest(request), request);
        assert.ok(result instanceof GatewayError, "refused");
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
  });

  it("Messages: every model-read text reaches the chat body once; earlier thinking nowhere", () => {
    fc.assert(
      fc.property(messagesSpec, (spec) => {
        const markers = new Markers();
        const request = messagesRequest(spec, markers);
        const chat = translateOrRefusal(() => messages.toChatRequest(request), request);
        assert.ok(!(chat instanceof GatewayError), `refused: ${String((chat as GatewayError).message)}`);
        assertMarkers(chat, markers);
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
  });

  it("Messages: an unsupported feature anywhere is refused, naming a field the request has", () => {
    fc.assert(
      fc.property(messagesSpec, fc.nat(), fc.constantFrom(...MESSAGES_UNSUPPORTED), (spec, where, kind) => {
        const request = messagesRequest(spec, new Markers(), [where, kind]);
        const result = translateOrRefusal(() => messages.toChatRequest(request), request);
        assert.ok(result instanceof GatewayError, "refused");
      }),
      { seed: SEED, numRuns: NUM_RUNS },
    );
  });
});
