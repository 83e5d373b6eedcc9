import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { messagesEvents } from "../anthropic/index.js";
import type { Identity } from "../auth/index.js";
import { mapJsonStrings, type EventStreamShape, type TypedEvent } from "../openai/events.js";
import { responsesEvents } from "../openai/responses.js";
import { parsePolicy, sha256Hex } from "../policy/index.js";
import { EventStreamPii } from "./events.js";
import { PiiSession, resolvePii } from "./index.js";

const POLICY = parsePolicy(
  `
version: 1
pools: { pool-a: {} }
models: { m1: { pool: pool-a } }
teams: { t: { models: [m1] } }
keys: [{ id: k1, team: t, sha256: ${sha256Hex("key-1")} }]
pii:
  holdBackChars: 64
  rules:
    - actions: { EMAIL: redact, PHONE: redact }
      responses: true
`,
  "p.yaml",
);
const PII = POLICY.pii!;
const IDENTITY: Identity = { keyId: "k1", team: "t", allowedModels: new Set(["m1"]) };
const session = () => new PiiSession(PII, resolvePii(PII, IDENTITY, "m1")!);
const EMAIL = "bob.smith@corp-mail.test";

/** Cuts `text` into pieces at the given offsets. */
const cut = (text: string, cuts: number[]): string[] => {
  const at = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  return [...at, text.length].map((end, i) => text.slice(i === 0 ? 0 : at[i - 1], end));
};

/** Runs `events` through a redactor of `shape`; returns every event the client gets. */
function run(shape: EventStreamShape, events: TypedEvent[]): TypedEvent[] {
  const pii = new EventStreamPii(session(), PII.holdBackChars, shape);
  const out: TypedEvent[] = [];
  for (const event of events) {
    const { before } = pii.apply(event);
    out.push(...before, event);
  }
  out.push(...pii.flush());
  return out;
}

const messagesStream = (pieces: string[], kind: "text" | "json"): TypedEvent[] => {
  const delta = (piece: string) =>
    kind === "text" ? { type: "text_delta", text: piece } : { type: "input_json_delta", partial_json: piece };
  return [
    {
      name: "content_block_start",
      data: { type: "content_block_start", content_block: { type: "text", text: "" }, index: 0 },
    },
    ...pieces.map((p) => ({
      name: "content_block_delta",
      data: { type: "content_block_delta", delta: delta(p), index: 0 },
    })),
    { name: "content_block_stop", data: { type: "content_block_stop", index: 0 } },
    { name: "message_stop", data: { type: "message_stop" } },
  ];
};

const responsesStream = (pieces: string[], type: string): TypedEvent[] => [
  ...pieces.map((delta, i) => ({
    name: `${type}.delta`,
    data: {
      type: `${type}.delta`,
      delta,
      item_id: "i",
      output_index: 0,
      content_index: 0,
      sequence_number: i,
    },
  })),
  {
    name: `${type}.done`,
    data: { type: `${type}.done`, text: pieces.join(""), item_id: "i", output_index: 0, content_index: 0 },
  },
];

/** The text the client assembles from a stream's deltas. */
const assembled = (events: TypedEvent[], shape: EventStreamShape): string => {
  let text = "";
  for (const e of events) {
    shape.mapTexts(structuredClone(e), (t, at) => {
      if (at.kind === "delta") text += t;
      return t;
    });
  }
  return text;
};

describe("EventStreamPii", () => {
  const text = `Mail ${EMAIL} or call +44 20 7946 0958, then wait.`;

  it("property: however Messages text or tool-input JSON is cut into deltas, no value gets through and the text is whole", () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom<"text" | "json">("text", "json"),
        (cuts, kind) => {
          const out = run(messagesEvents, messagesStream(cut(text, cuts), kind));
          const got = assembled(out, messagesEvents);
          assert.equal(got, "Mail <EMAIL_1> or call <PHONE_1>, then wait.");
          // Held text goes out before the block's stop, never after it.
          const stop = out.findIndex((e) => e.data.type === "content_block_stop");
          assert.ok(out.slice(stop).every((e) => e.data.type !== "content_block_delta"));
        },
      ),
      { seed: 7, numRuns: 200 },
    );
  });

  it("property: Responses text and function-call argument deltas, and their done texts", () => {
    fc.assert(
      fc.property(
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.constantFrom(
          "response.output_text",
          "response.function_call_arguments",
          "response.reasoning_text",
        ),
        (cuts, type) => {
          const out = run(responsesEvents, responsesStream(cut(text, cuts), type));
          assert.equal(assembled(out, responsesEvents), "Mail <EMAIL_1> or call <PHONE_1>, then wait.");
          const done = out.at(-1)!;
          assert.equal(done.data.type, `${type}.done`);
          assert.equal(done.data.text, "Mail <EMAIL_1> or call <PHONE_1>, then wait.");
        },
      ),
      { seed: 11, numRuns: 200 },
    );
  });

  it("redacts whole texts: a tool_use block's name and input, a response's output items", () => {
    const start: TypedEvent = {
      name: "content_block_start",
      data: {
        type: "content_block_start",
        content_block: { type: "tool_use", id: "t", name: "f", input: { to: EMAIL } },
        index: 0,
      },
    };
    const completed: TypedEvent = {
      name: "response.completed",
      data: {
        type: "response.completed",
        response: {
          output: [{ type: "function_call", name: "f", arguments: JSON.stringify({ to: EMAIL }) }],
        },
      },
    };
    const pii = new EventStreamPii(session(), 64, messagesEvents);
    assert.equal(pii.apply(start).changed, true);
    assert.deepEqual((start.data.content_block as { input: unknown }).input, { to: "<EMAIL_1>" });
    const rpii = new EventStreamPii(session(), 64, responsesEvents);
    assert.equal(rpii.apply(completed).changed, true);
    assert.doesNotMatch(JSON.stringify(completed.data), /bob/);
  });
});

describe("usage readers", () => {
  it("Messages: input from message_start, output (and vLLM's input again) from message_delta; cache reads count as input", () => {
    const read = messagesEvents.usageReader();
    assert.equal(
      read({
        name: undefined,
        data: {
          type: "message_start",
          message: { usage: { input_tokens: 17, cache_read_input_tokens: 3, output_tokens: 0 } },
        },
      }),
      undefined,
    );
    assert.deepEqual(
      read({ name: undefined, data: { type: "message_delta", usage: { output_tokens: 8 } } }),
      {
        prompt_tokens: 20,
        completion_tokens: 8,
        total_tokens: 28,
      },
    );
    assert.equal(
      read({ name: undefined, data: { type: "message_delta", usage: { output_tokens: -1 } } }),
      undefined,
    );
  });

  it("Responses: only the final events carry usage, and only well-formed counts", () => {
    const read = responsesEvents.usageReader();
    const usage = { input_tokens: 5, output_tokens: 2, total_tokens: 7 };
    assert.equal(
      read({ name: "response.created", data: { type: "response.created", response: { usage } } }),
      undefined,
    );
    assert.deepEqual(
      read({ name: "response.completed", data: { type: "response.completed", response: { usage } } }),
      {
        prompt_tokens: 5,
        completion_tokens: 2,
        total_tokens: 7,
      },
    );
    const bad = { input_tokens: 1.5, output_tokens: 2 };
    assert.equal(
      read({ name: undefined, data: { type: "response.incomplete", response: { usage: bad } } }),
      undefined,
    );
  });
});

describe("mapJsonStrings", () => {
  it("maps every string and property name of a tool input, nested, and keeps the rest", () => {
    const input = { [EMAIL]: { list: [EMAIL, 3, null, true], to: EMAIL }, n: 1 };
    const out = mapJsonStrings(structuredClone(input), (t) => t.replaceAll(EMAIL, "<EMAIL>"));
    assert.deepEqual(out, { "<EMAIL>": { list: ["<EMAIL>", 3, null, true], to: "<EMAIL>" }, n: 1 });
  });
});
