import assert from "node:assert/strict";
import { seededRandom } from "../../test/harness/random.js";
import { describe, it } from "node:test";
import type { Identity } from "../auth/index.js";
import { parsePolicy, sha256Hex } from "../policy/index.js";
import { PiiSession, resolvePii } from "./index.js";
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
      assert.equal(pii.flush().size, 0);
    }
  });

  it("keeps one redactor per choice and returns what is still held on flush", () => {
    const pii = new StreamingPii(session(), HOLD);
    const event = {
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
    assert.deepEqual(
      pii.flush(),
      new Map([
        [0, "first <EMAIL_2>"],
        [1, "second <PHONE_1>"],
      ]),
    );
  });

  it("tool call arguments are processed whole, restoring request placeholders", () => {
    const pii = new StreamingPii(session(), HOLD);
    const event = {
      choices: [
        {
          index: 0,
          delta: {
            tool_calls: [{ index: 0, function: { arguments: '{"to":"<EMAIL_1>","cc":"z@example.org"}' } }],
          },
          finish_reason: null,
        },
      ],
    };
    assert.equal(pii.apply(event), true);
    assert.equal(
      event.choices[0]!.delta.tool_calls[0]!.function.arguments,
      '{"to":"a@example.com","cc":"<EMAIL_2>"}',
    );
  });

  it("a chunk with nothing to change reports no change", () => {
    const pii = new StreamingPii(session(), HOLD);
    const event = { choices: [{ index: 0, delta: { role: "assistant" }, finish_reason: null }] };
    assert.equal(pii.apply(event), false);
    assert.equal(pii.apply({ object: "other" }), false);
  });
});
