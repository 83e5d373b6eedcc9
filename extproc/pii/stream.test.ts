import assert from "node:assert/strict";
import fc from "fast-check";
import { seededRandom } from "../../test/harness/random.js";
import { describe, it } from "node:test";
import type { Identity } from "../auth/index.js";
import { parsePolicy, sha256Hex } from "../policy/index.js";
import { PiiSession, resolvePii } from "./index.js";
import { fieldKey, mapResponseTexts } from "../openai/response-fields.js";
import { processResponseBody } from "./response.js";
import { StreamingPii, StreamRedactor } from "./stream.js";

/** The sample policy's PII section (deploy/policy.yaml), with EMPLOYEE_ID hashed to cover pseudonyms too. */
const POLICY = parsePolicy(
  `
version: 1
pools: { pool-a: {} }
models: { m1: { pool: pool-a } }
teams: { t: { models: [m1] } }
keys: [{ id: k1, team: t, sha256: ${sha256Hex("key-1")} }]
pii:
  hmacKey: { env: PII_KEY }
  entropyThreshold: 4.0
  holdBackChars: 64
  custom:
    - { entity: PROJECT_CODENAME, words: [Bluebird, Nightjar] }
    - { entity: EMPLOYEE_ID, regex: "EMP-[0-9]{6}" }
  rules:
    - actions:
        EMAIL: redact
        PHONE: redact
        US_SSN: block
        CREDIT_CARD: mask
        IBAN: mask
        IPV4: log
        IPV6: redact
        AWS_ACCESS_KEY: block
        PRIVATE_KEY: block
        JWT: redact
        API_KEY: redact
        HIGH_ENTROPY: log
        PROJECT_CODENAME: redact
        EMPLOYEE_ID: hash
      restore: true
      responses: true
`,
  "p.yaml",
  { env: { PII_KEY: "stream-test-key" } },
);
const PII = POLICY.pii!;
const HOLD = PII.holdBackChars;
const IDENTITY: Identity = { keyId: "k1", team: "t", allowedModels: new Set(["m1"]) };
const REQUEST = "Contact a@example.com about Bluebird, badge EMP-123456.";

/** A session that has redacted {@link REQUEST}, so that its placeholders can be restored. */
function session(): PiiSession {
  const s = new PiiSession(PII, resolvePii(PII, IDENTITY, "m1")!);
  s.redactRequest(REQUEST);
  return s;
}

const PEM = [
  "-----BEGIN RSA PRIVATE KEY-----",
  "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu",
  "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm",
  "-----END RSA PRIVATE KEY-----",
].join("\n");
const JWT =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1LTQ4MTUiLCJyb2xlIjoiYWRtaW4ifQ." +
  "q0Xb3W9mTz7cJf1RkLp8NvYs2HdA6eGiUoK4";

/** Model output with values of most types, none of them from the request. */
const OUTPUT =
  "Hi! I wrote to b.smith@corp-mail.test (phone +44 20 7946 0958, alt (555) 123-4567). " +
  "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00, SSN 123-45-6789, host 10.0.0.1 / " +
  "2001:db8::1, project Nightjar, badge EMP-654321. Key sk-proj-Q7mN2xLp9RtV4bZc8WkY3sHd6FgJ and " +
  `AKIAIOSFODNN7EXAMPLE, token ${JWT}, b.smith@corp-mail.test again.\n${PEM}\nBye.`;

/** Model output that repeats the request's placeholders (redacted and hashed) next to new values. */
function outputWithPlaceholders(): string {
  const hashed = /<EMPLOYEE_ID_[0-9a-f]{16}>/.exec(session().redactRequest("EMP-123456"))![0];
  return `I wrote to <EMAIL_1> about <PROJECT_CODENAME_1> for ${hashed}; c@example.net is new, <EMAIL_1> again.`;
}

/** Streams `chunks` through a fresh session's redactor. */
function stream(chunks: readonly string[]): string {
  const redactor = new StreamRedactor(session(), HOLD);
  return chunks.map((c) => redactor.push(c)).join("") + redactor.flush();
}

/** `text` cut into chunks of 1 to `max` characters. */
function randomChunks(text: string, next: () => number, max: number): string[] {
  const chunks: string[] = [];
  for (let pos = 0; pos < text.length;) {
    const n = 1 + Math.floor(next() * max);
    chunks.push(text.slice(pos, pos + n));
    pos += n;
  }
  return chunks;
}

/** Split positions (0..length) where streaming `text` in two chunks differs from processResponse. */
function failingSplits(text: string): number[] {
  const expected = session().processResponse(text);
  const failing: number[] = [];
  for (let i = 0; i <= text.length; i++) {
    if (stream([text.slice(0, i), text.slice(i)]) !== expected) failing.push(i);
  }
  return failing;
}

/** What a client that appends every fragment reassembles: per choice, field key → text. */
function reassemble(events: readonly unknown[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const event of events) {
    mapResponseTexts(event, (text, choice, field) => {
      const key = `${choice}:${fieldKey(field)}`;
      out.set(key, (out.get(key) ?? "") + text);
      return text;
    });
  }
  return out;
}

describe("StreamRedactor", () => {
  it("the non-streamed reference redacts every value in the test text", () => {
    const expected = session().processResponse(OUTPUT);
    assert.ok(
      !/b\.smith|7946|123-4567|4111 1111|0532|6789|Nightjar|EMP-654321|sk-proj|AKIA|eyJ/.test(expected),
    );
    assert.match(expected, /Card \*{4} \*{4} \*{4} 1111/);
    assert.match(expected, /host 10\.0\.0\.1 \/ <IPV6_1>/);
    assert.match(expected, /token <JWT_1>, <EMAIL_2> again\.\n<PRIVATE_KEY_1>\nBye\.$/);
  });

  it("two chunks split at every position give the non-streamed output", () => {
    assert.deepEqual(failingSplits(OUTPUT), []);
  });

  it("random many-chunk splits (fixed seed) give the non-streamed output", () => {
    const expected = session().processResponse(OUTPUT);
    const next = seededRandom(20241122);
    for (let run = 0; run < 300; run++) {
      const chunks = randomChunks(OUTPUT, next, run % 2 === 0 ? 8 : 40);
      assert.equal(stream(chunks), expected, `chunks ${JSON.stringify(chunks)}`);
    }
  });

  it("obfuscated values (invisible, fullwidth, no-break spaces, a key without END) at every split", () => {
    const text =
      "Mail jo\u200Bhn@exa\u200Dmple.com, SSN １２３-４５-６７８９, card 4111\u00A01111\u202F1111\u00A01111.\n" +
      PEM.split("\n").slice(0, 3).join("\n");
    const expected = session().processResponse(text);
    assert.equal(expected, "Mail <EMAIL_2>, SSN <US_SSN_1>, card **** **** **** 1111.\n" + "<PRIVATE_KEY_1>");
    assert.deepEqual(failingSplits(text), []);
  });

  it("one character at a time gives the non-streamed output", () => {
    assert.equal(stream([...OUTPUT]), session().processResponse(OUTPUT));
  });

  it("restores a request placeholder split inside it", () => {
    const text = "Mail <EMAIL_1> today, about <PROJECT_CODENAME_1>.";
    const expected = "Mail a@example.com today, about Bluebird.";
    assert.equal(session().processResponse(text), expected);
    for (const cut of ["<E", "<EMA", "<EMAIL_", "<EMAIL_1", "<PROJECT_CODENAME_", "<PROJECT_CODENAME_1"]) {
      const i = text.indexOf(cut) + cut.length;
      assert.equal(stream([text.slice(0, i), text.slice(i)]), expected, `split after ${cut}`);
    }
    // Even when the whole placeholder arrives character by character.
    assert.equal(stream([...text]), expected);
  });

  // Two gaps in stream.ts's OPEN_PLACEHOLDER (/<[A-Z][A-Z0-9_]{0,46}$/): (1) a bare "<" as the last character
  // before the cut is not held, so "<" is sent and "EMAIL_1>" can no longer be restored; (2) hash pseudonyms
  // end in lowercase hex (<EMPLOYEE_ID_54edf8…>), so a cut inside the hex digits is not held either.
  it("restores request placeholders (redacted and hashed) at every split position", () => {
    const text = outputWithPlaceholders();
    const failing = failingSplits(text).length;
    assert.equal(failing, 0, `${failing} of ${text.length + 1} splits differ from processResponse`);
  });

  it("holds at most 16 KiB of a 40 KB run without spaces", () => {
    for (const run of ["x".repeat(40_000), `-----BEGIN PRIVATE KEY-----${"QUJD".repeat(10_000)}`]) {
      const redactor = new StreamRedactor(session(), HOLD);
      let sent = "";
      let pushed = 0;
      let maxHeld = 0;
      for (let i = 0; i < run.length; i += 1000) {
        const chunk = run.slice(i, i + 1000);
        sent += redactor.push(chunk);
        pushed += chunk.length;
        maxHeld = Math.max(maxHeld, pushed - sent.length);
      }
      assert.ok(maxHeld <= 16 * 1024, `held ${maxHeld}`);
      sent += redactor.flush();
      assert.equal(sent, run);
      // In one push, too.
      const single = new StreamRedactor(session(), HOLD);
      assert.ok(run.length - single.push(run).length <= 16 * 1024);
    }
  });

  // OPEN_PEM's lookahead (?![\s\S]*-----END …) rescans to the end of the buffer from every BEGIN line: many
  // BEGIN lines followed by one END in one push take quadratic time (512 KB: ~10 s).
  it("a 200 KB chunk of BEGIN lines and one END line is processed in linear time", () => {
    const text = "-----BEGIN RSA PRIVATE KEY-----\n".repeat(6400) + "-----END RSA PRIVATE KEY-----";
    const started = performance.now();
    new StreamRedactor(session(), HOLD).push(text);
    const ms = performance.now() - started;
    assert.ok(ms < 200, `${ms.toFixed(0)} ms`);
  });
});

describe("StreamingPii", () => {
  /** OpenAI chat.completion.chunk events carrying `chunks` as content deltas, the last with finish_reason. */
  const events = (chunks: readonly string[]) =>
    chunks.map((content, i) => ({
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta: { content }, finish_reason: i === chunks.length - 1 ? "stop" : null }],
    }));

  it("content deltas: the concatenation equals the non-streamed output; the rest comes with finish_reason", () => {
    const expected = session().processResponse(OUTPUT);
    const next = seededRandom(7);
    for (let run = 0; run < 50; run++) {
      const pii = new StreamingPii(session(), HOLD);
      let out = "";
      for (const event of events(randomChunks(OUTPUT, next, 30))) {
        pii.apply(event);
        out += event.choices[0]!.delta.content;
      }
      assert.equal(out, expected);
      assert.equal(pii.flushEvent(undefined), undefined);
    }
  });

  it("keeps one redactor per choice; the flush event returns what is still held, per choice", () => {
    const pii = new StreamingPii(session(), HOLD);
    const event = {
      id: "c1",
      object: "chat.completion.chunk",
      created: 1,
      model: "m1",
      choices: [
        { index: 0, delta: { content: "first b.smith@corp-mail.test" }, finish_reason: null },
        { index: 1, delta: { content: "second (555) 123-4567" }, finish_reason: null },
      ],
    };
    assert.equal(pii.apply(event), true);
    assert.deepEqual(
      event.choices.map((c) => c.delta.content),
      ["", ""],
    );
    assert.deepEqual(pii.flushEvent(event), {
      id: "c1",
      object: "chat.completion.chunk",
      created: 1,
      model: "m1",
      choices: [
        { index: 0, delta: { content: "first <EMAIL_2>" }, finish_reason: null },
        { index: 1, delta: { content: "second <PHONE_1>" }, finish_reason: null },
      ],
    });
    assert.equal(pii.flushEvent(event), undefined);
  });

  interface ToolCallEvent {
    object: string;
    choices: Array<{
      index: number;
      delta: {
        tool_calls?: Array<{
          index: number;
          id?: string;
          type?: string;
          function: { name?: string; arguments?: string };
        }>;
      };
      finish_reason: string | null;
    }>;
  }

  /** vLLM's streamed tool call: id, type and name first, then the arguments in `size`-character fragments. */
  const toolCallEvents = (name: string, args: string, size: number): ToolCallEvent[] => [
    {
      object: "chat.completion.chunk",
      choices: [
        {
          index: 0,
          delta: { tool_calls: [{ id: "call_1", type: "function", index: 0, function: { name } }] },
          finish_reason: null,
        },
      ],
    },
    ...Array.from({ length: Math.ceil(args.length / size) }, (_, i) => ({
      object: "chat.completion.chunk",
      choices: [
        {
          index: 0,
          delta: {
            tool_calls: [{ index: 0, function: { arguments: args.slice(i * size, i * size + size) } }],
          },
          finish_reason: null,
        },
      ],
    })),
    { object: "chat.completion.chunk", choices: [{ index: 0, delta: {}, finish_reason: "tool_calls" }] },
  ];

  it("tool call arguments streamed 3 characters at a time are redacted whole, released with finish_reason", () => {
    const args = '{"to":"<EMAIL_1>","cc":"z.q@example.org","note":"call (555) 123-4567 now"}';
    const pii = new StreamingPii(session(), HOLD);
    const events = toolCallEvents("send_mail", args, 3);
    for (const event of events) pii.apply(event);
    assert.equal(pii.flushEvent(events.at(-1)), undefined);
    const got = reassemble(events);
    assert.equal(
      got.get("0:tool_calls.0.arguments"),
      '{"to":"a@example.com","cc":"<EMAIL_2>","note":"call <PHONE_1> now"}',
    );
    assert.equal(got.get("0:tool_calls.0.name"), "send_mail");
    assert.equal(got.get("0:tool_calls.0.id"), "call_1");
    // The name and id pass at once, in the call's first delta, where clients need them.
    assert.equal(events[0]!.choices[0]!.delta.tool_calls![0]!.function.name, "send_mail");
    // The rest arrives in the finish_reason event, in a tool_calls delta with the call's index.
    const last = events.at(-1)!.choices[0]!.delta;
    assert.equal(last.tool_calls?.length, 1);
    assert.equal(last.tool_calls[0]!.index, 0);
    assert.match(JSON.stringify(last.tool_calls[0]!.function), /^\{"arguments":".+now\\"\}"\}$/);
  });

  it("without finish_reason, the flush event puts tool call text and reasoning back in their own fields", () => {
    const pii = new StreamingPii(session(), HOLD);
    const events: unknown[] = toolCallEvents("lookup_user", '{"email":"x.y@example.org"}', 3).slice(0, -1);
    const delta = {
      reasoning_content: "I think z.z@example.org",
      tool_calls: [
        { index: 1, id: "call_2", type: "function", function: { name: "second_call", arguments: '{"n":' } },
      ],
    };
    events.push({ object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: null }] });
    for (const event of events) pii.apply(event);
    assert.deepEqual(pii.flushEvent(events.at(-1))!.choices, [
      {
        index: 0,
        delta: {
          tool_calls: [
            { index: 0, function: { arguments: '{"email":"<EMAIL_2>"}' } },
            { index: 1, function: { arguments: '{"n":' } },
          ],
          reasoning_content: "I think <EMAIL_3>",
        },
        finish_reason: null,
      },
    ]);
  });

  it("a tool call's name reaches the client in one piece, scanned whole: later pieces are dropped", () => {
    const pii = new StreamingPii(session(), HOLD);
    const piece = (name: string) => ({
      choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { name } }] }, finish_reason: null }],
    });
    const events = [piece(""), piece("x.y@example.org"), piece("bob.smith@"), piece("corp-mail.test")];
    for (const event of events) pii.apply(event);
    assert.deepEqual(
      events.map((e) => e.choices[0]!.delta.tool_calls[0]!.function.name),
      ["", "<EMAIL_2>", "", ""],
    );
  });

  it("reasoning (both of vLLM's names), refusal, the legacy function_call and stop_reason are scanned, streamed and whole", () => {
    const delta = {
      reasoning_content: "mail q.r@example.org",
      reasoning: "or s.t@example.org",
      refusal: "not u.v@example.org",
      function_call: { name: "w.x@example.org", arguments: '{"a":"y.z@example.org"}' },
    };
    const whole = {
      choices: [
        {
          index: 0,
          message: structuredClone(delta),
          finish_reason: "stop",
          stop_reason: "end w.w@example.org",
        },
      ],
    };
    assert.equal(processResponseBody(session(), whole), true);
    assert.doesNotMatch(JSON.stringify(whole), /@example\.org/);
    const streamed = { choices: [{ index: 0, delta: structuredClone(delta), finish_reason: null }] };
    const pii = new StreamingPii(session(), HOLD);
    pii.apply(streamed);
    const rest = pii.flushEvent(streamed)!;
    assert.doesNotMatch(JSON.stringify([streamed, rest]), /@example\.org/);
    const got = reassemble([streamed, rest]);
    assert.match(got.get("0:reasoning_content")!, /^mail <EMAIL_\d>$/);
    assert.match(got.get("0:reasoning")!, /^or <EMAIL_\d>$/);
    assert.match(got.get("0:refusal")!, /^not <EMAIL_\d>$/);
    assert.match(got.get("0:function_call.name")!, /^<EMAIL_\d>$/);
    assert.match(got.get("0:function_call.arguments")!, /^\{"a":"<EMAIL_\d>"\}$/);
  });

  it("drops logprobs and token ids with output scanning on, keeps them without it", () => {
    const logprobs = { content: [{ token: "z@example.org", logprob: -1, bytes: [122], top_logprobs: [] }] };
    const event = () => ({
      prompt_token_ids: [1, 2],
      choices: [{ index: 0, delta: { content: "hi" }, logprobs, token_ids: [7], finish_reason: null }],
    });
    const scanned = event();
    assert.equal(new StreamingPii(session(), HOLD).apply(scanned), true);
    assert.equal(scanned.choices[0]!.logprobs, null);
    assert.equal(scanned.choices[0]!.token_ids, null);
    assert.equal(scanned.prompt_token_ids, null);
    const completion = {
      choices: [{ index: 0, text: "hi", logprobs: { tokens: ["hi"], text_offset: [0] } }],
    };
    assert.equal(processResponseBody(session(), completion), true);
    assert.equal(completion.choices[0]!.logprobs, null);

    const restoreOnly = new PiiSession(PII, { ...resolvePii(PII, IDENTITY, "m1")!, responses: false });
    const kept = event();
    new StreamingPii(restoreOnly, HOLD).apply(kept);
    assert.deepEqual(kept.choices[0]!.logprobs, logprobs);
  });

  it("a chunk with nothing to change reports no change", () => {
    const pii = new StreamingPii(session(), HOLD);
    const event = { choices: [{ index: 0, delta: { role: "assistant" }, finish_reason: null }] };
    assert.equal(pii.apply(event), false);
    assert.equal(pii.apply({ object: "other" }), false);
  });
});

describe("StreamingPii, property: no split of a stream lets a value through", () => {
  const word = fc.constantFrom(
    "the",
    "report",
    "is",
    "ready",
    "for",
    "review",
    "and",
    "weather",
    "today",
    "x",
  );
  const words = fc.array(word, { maxLength: 24 });
  const label = fc.stringMatching(/^[a-z]{2,8}$/);
  /** A labelled value the policy acts on (none of them in the request, so none is restorable). */
  const value = fc.oneof(
    fc.tuple(label, label, fc.constantFrom("com", "org", "net")).map(([l, d, t]) => `${l}.q@${d}.${t}`),
    fc
      .tuple(
        fc.integer({ min: 1, max: 665 }),
        fc.integer({ min: 1, max: 99 }),
        fc.integer({ min: 1, max: 9999 }),
      )
      .map(
        ([a, g, s]) =>
          `${String(a).padStart(3, "0")}-${String(g).padStart(2, "0")}-${String(s).padStart(4, "0")}`,
      ),
    fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 15, maxLength: 15 }).map(cardNumber),
    fc.integer({ min: 1000, max: 9999 }).map((n) => `+44 20 7946 ${n}`),
  );

  /** A text stream of the answer: content, reasoning, a tool call's name and arguments, or completion text. */
  interface Stream {
    readonly choice: number;
    readonly kind: "content" | "reasoning" | "tool" | "text";
    readonly call?: number;
    /** The name in the pieces its deltas carry (an attacker may cut it). */
    names: string[];
    text: string;
  }

  const answer = fc.record({
    chat: fc.boolean(),
    reasoningField: fc.constantFrom("reasoning_content", "reasoning"),
    choices: fc.array(
      fc.record({
        content: words,
        reasoning: words,
        calls: fc.array(fc.tuple(label, words), { maxLength: 2 }),
      }),
      { minLength: 1, maxLength: 2 },
    ),
    value,
    target: fc.nat(),
    at: fc.nat(),
    inName: fc.boolean(),
    cuts: fc.array(fc.nat(), { maxLength: 40 }),
    order: fc.array(fc.nat(), { maxLength: 200 }),
    finish: fc.boolean(),
  });

  /**
   * The event carrying fragment `k` of `stream`: a tool call's first also carries its id and type, and the
   * k-th its k-th name piece.
   */
  function eventFor(stream: Stream, fragment: string, k: number, chat: boolean, field: string): unknown {
    const spelled = {
      content: [{ token: fragment, logprob: -1, bytes: [...Buffer.from(fragment)], top_logprobs: [] }],
    };
    if (!chat)
      return {
        object: "text_completion",
        choices: [{ index: stream.choice, text: fragment, logprobs: spelled, finish_reason: null }],
      };
    const delta =
      stream.kind !== "tool"
        ? { [stream.kind === "content" ? "content" : field]: fragment }
        : {
            tool_calls: [
              {
                index: stream.call,
                ...(k === 0 && { id: `call_${stream.call}`, type: "function" }),
                function: { ...(k < stream.names.length && { name: stream.names[k] }), arguments: fragment },
              },
            ],
          };
    return {
      object: "chat.completion.chunk",
      choices: [{ index: stream.choice, delta, logprobs: spelled, finish_reason: null }],
    };
  }

  const RUNS = 400;
  it(`${RUNS} generated answers, split anywhere: the value never reaches the client, other text arrives intact`, () => {
    let fragments = 0;
    fc.assert(
      fc.property(answer, (a) => {
        const streams: Stream[] = [];
        a.choices.forEach((c, choice) => {
          if (!a.chat) return streams.push({ choice, kind: "text", names: [], text: c.content.join(" ") });
          streams.push({ choice, kind: "content", names: [], text: c.content.join(" ") });
          streams.push({ choice, kind: "reasoning", names: [], text: c.reasoning.join(" ") });
          c.calls.forEach(([name, args], call) =>
            streams.push({ choice, kind: "tool", call, names: [name], text: `{"note":"${args.join(" ")}"}` }),
          );
        });
        // The value goes into one stream, at a word boundary, or is a tool call's name, maybe cut in two.
        const target = streams[a.target % streams.length]!;
        const inName = target.kind === "tool" && a.inName;
        const nameCut = a.at % a.value.length;
        if (inName) target.names = nameCut ? [a.value.slice(0, nameCut), a.value.slice(nameCut)] : [a.value];
        else {
          const spaces = [
            0,
            ...[...target.text].flatMap((ch, i) => (ch === " " ? [i + 1] : [])),
            target.text.length,
          ];
          const at = spaces[a.at % spaces.length]!;
          target.text = `${target.text.slice(0, at)} ${a.value} ${target.text.slice(at)}`;
        }
        // Cut each stream into fragments, then interleave them (each stream keeps its own order).
        let cut = 0;
        const pieces = streams.map((s) => {
          const at = new Set<number>();
          for (let i = 0; i < 1 + ((a.cuts[cut++ % Math.max(1, a.cuts.length)] ?? 0) % 12); i++)
            at.add((a.cuts[(cut + i) % Math.max(1, a.cuts.length)] ?? 0) % (s.text.length + 1));
          const sorted = [0, ...[...at].sort((x, y) => x - y), s.text.length];
          return sorted.slice(1).map((end, i) => s.text.slice(sorted[i], end));
        });
        const sent = pieces.map(() => 0);
        const events: unknown[] = [];
        for (let step = 0; pieces.some((p, i) => sent[i]! < p.length); step++) {
          let i = (a.order[step % Math.max(1, a.order.length)] ?? 0) % pieces.length;
          while (sent[i]! >= pieces[i]!.length) i = (i + 1) % pieces.length;
          const stream = streams[i]!;
          events.push(eventFor(stream, pieces[i]![sent[i]!]!, sent[i]!, a.chat, a.reasoningField));
          // Name pieces beyond the call's fragments follow in deltas of their own.
          if (++sent[i]! === pieces[i]!.length)
            for (const name of stream.names.slice(sent[i]))
              events.push(eventFor({ ...stream, names: [name] }, "", 0, a.chat, a.reasoningField));
        }
        if (a.finish) {
          const object = a.chat ? "chat.completion.chunk" : "text_completion";
          const choices = a.choices.map((_, index) =>
            a.chat ? { index, delta: {}, finish_reason: "stop" } : { index, text: "", finish_reason: "stop" },
          );
          events.push({ object, choices });
        }
        fragments += events.length;

        const pii = new StreamingPii(session(), HOLD);
        for (const event of events) pii.apply(event);
        const rest = pii.flushEvent(events.at(-1));
        if (rest) events.push(rest);

        const wire = JSON.stringify(events);
        assert.ok(!wire.includes(a.value), `the value ${a.value} reached the client`);
        const got = reassemble(events);
        for (const s of streams) {
          const key =
            s.kind === "tool" ? `tool_calls.${s.call}` : s.kind === "reasoning" ? a.reasoningField : s.kind;
          const text = got.get(`${s.choice}:${s.kind === "tool" ? `${key}.arguments` : key}`) ?? "";
          assert.ok(!text.includes(a.value), `the client reassembles ${a.value} from ${key}`);
          if (s === target && !inName) {
            const [before, after] = s.text.split(a.value) as [string, string];
            assert.ok(
              text.startsWith(before) && text.endsWith(after) && text.length > before.length + after.length,
            );
          } else assert.equal(text, s.text);
          if (s.kind !== "tool") continue;
          // A name reaches the client in one piece: clients that replace a name per delta see all of it, and
          // clients that append cannot assemble a value.
          const names = events.flatMap((e) =>
            choicesWith(e, s.choice).flatMap((c) =>
              (
                (c.delta as { tool_calls?: Array<{ index: number; function?: { name?: string } }> })
                  .tool_calls ?? []
              )
                .filter((t) => t.index === s.call && t.function?.name)
                .map((t) => t.function!.name!),
            ),
          );
          if (s === target && inName)
            assert.ok(names.length === 1 && !names[0]!.includes(a.value), `${names}`);
          else assert.deepEqual(names, s.names);
        }
      }),
      { seed: 20261201, numRuns: RUNS },
    );
    assert.ok(fragments > RUNS * 5, `only ${fragments} events in ${RUNS} runs`);
  });
});

/** The choices of `event` with index `index`. */
function choicesWith(event: unknown, index: number): Array<Record<string, unknown>> {
  return ((event as { choices?: Array<Record<string, unknown>> }).choices ?? []).filter(
    (c) => c.index === index,
  );
}

/** A Luhn-valid 16-digit Visa number from 15 digits, written in groups of four. */
function cardNumber(digits: number[]): string {
  const body = [4, ...digits.slice(0, 14)];
  const sum = body
    .slice()
    .reverse()
    .reduce((acc, d, i) => acc + (i % 2 === 0 ? (d * 2 > 9 ? d * 2 - 9 : d * 2) : d), 0);
  const all = [...body, (10 - (sum % 10)) % 10].join("");
  return all.replace(/(\d{4})(?=\d)/g, "$1 ");
}
