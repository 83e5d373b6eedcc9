import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Identity } from "../auth/index.js";
import { parsePolicy, sha256Hex } from "../policy/index.js";
import { PiiSession, resolvePii } from "./index.js";
import { DetectionView } from "./normalize.js";
import { Scanner } from "./scanner.js";
import { BUILTIN_ENTITIES } from "./detectors.js";

const SEED = 20261201;
const scanner = new Scanner({ custom: [], entropyThreshold: 4 });
const ALL = new Set<string>(BUILTIN_ENTITIES);

/** Every finding of `text` as [entity, original characters]. */
const scan = (text: string): Array<[string, string]> =>
  scanner.scan(text, ALL).map((f) => [f.entity, text.slice(f.start, f.end)]);

/**
 * What the view must be, computed another way: invisible characters removed, NFKC of the whole text,
 * then separators folded (the view does this per character with its marks, and must agree).
 */
function reference(text: string): string {
  return text
    .replace(/\p{Default_Ignorable_Code_Point}/gu, "")
    .normalize("NFKC")
    .replace(/\p{Zs}/gu, " ")
    .replace(/[\u2010-\u2015\u2212\u2E3A\u2E3B\uFE58]/gu, "-")
    .replace(/[\u00B7\u2027\u2219\u22C5\u2E31\u3002\u30FB]/gu, ".")
    .replace(/[\u0660-\u0669]/gu, (d) => String(d.charCodeAt(0) - 0x660))
    .replace(/[\u0966-\u096F]/gu, (d) => String(d.charCodeAt(0) - 0x966))
    .replace(/\u{1E950}|\u{1E951}|\u{1E959}/gu, (d) => String(d.codePointAt(0)! - 0x1e950));
}

describe("DetectionView", () => {
  it("is the text itself when there is nothing to change (ASCII, or stable non-ASCII)", () => {
    for (const text of ["plain ascii a@b.com", "Grüße aus Köln, 日本語 テキスト 😀"]) {
      const view = DetectionView.of(text);
      assert.equal(view.text, text);
      assert.ok(view.unchanged);
      assert.deepEqual(view.originalSpan(2, 7), [2, 7]);
    }
  });

  it("removes invisible characters and maps spans around them", () => {
    const text = "\u200Bjo\u200B\u200Dhn\u00AD@ex\uFEFFample.com\u202E!";
    const view = DetectionView.of(text);
    assert.equal(view.text, "john@example.com!");
    // The whole address, with the invisible characters inside and right after it (they follow its
    // last letter), but not the one before it.
    assert.deepEqual(view.originalSpan(0, 16), [1, 22]);
    assert.equal(text.slice(...view.originalSpan(16, 17)), "!");
    assert.equal(text.slice(...view.originalSpan(2, 3)), "h");
  });

  it("NFKC: fullwidth forms, ligatures and circled digits (length changes), surrogate pairs, marks", () => {
    const text = "ｊｏｈｎ＠ｘ．ｉｏ ﬁle ①② 𝐀𝐁 e\u0301 ｶﾞ \u1100\u1161";
    const view = DetectionView.of(text);
    assert.equal(view.text, "john@x.io file 12 AB é ガ 가");
    const original = (from: string) => {
      const start = view.text.indexOf(from);
      return text.slice(...view.originalSpan(start, start + from.length));
    };
    assert.equal(original("john@x.io"), "ｊｏｈｎ＠ｘ．ｉｏ");
    assert.equal(original("fi"), "ﬁ");
    const i = view.text.indexOf("file") + 1;
    assert.equal(text.slice(...view.originalSpan(i, i + 1)), "ﬁ", "half of a ligature takes all of it");
    assert.equal(original("le 1"), "le ①");
    assert.equal(original("AB"), "𝐀𝐁");
    assert.equal(original("B"), "𝐁");
    assert.equal(original("é"), "e\u0301");
    assert.equal(original("ガ"), "ｶﾞ");
    assert.equal(original("가"), "\u1100\u1161");
  });

  it("folds spaces, dashes, dots and decimal digits of other scripts", () => {
    const text = "4111\u00A01111\u202F1111\u2009111 123\u2013456\u2212789 a\u3002b \u0661\u0662\u0663 \u0967";
    assert.equal(DetectionView.of(text).text, "4111 1111 1111 111 123-456-789 a.b 123 1");
  });

  it("agrees with whole-text NFKC and maps every view character back to what produced it", () => {
    const pieces = [
      "a",
      "Z",
      "1",
      " ",
      "@",
      ".",
      "-",
      "é",
      "ß",
      "日",
      "😀",
      "\u0301",
      "\u0323",
      "\u200B",
      "\u200D",
      "\u00AD",
      "\uFEFF",
      "\u202E",
      "\uFE0F",
      "\u{E0041}",
      "ﬁ",
      "①",
      "＠",
      "Ａ",
      "１",
      "𝐀",
      "𝟏",
      "\u00A0",
      "\u202F",
      "\u3000",
      "\u2013",
      "\u2212",
      "\u3002",
      "\u0663",
      "\u0969",
      "\u{1E951}",
      "\u1100",
      "\u1161",
      "\u11A8",
      "가",
      "ｶ",
      "ﾞ",
      "Å",
      "\u212B",
      "™",
      "½",
    ];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...pieces), { maxLength: 40 }), (parts) => {
        // Long enough, sometimes, for several blocks (blocks are 4096 characters).
        const text = parts.join("").repeat(parts.length % 7 === 0 ? 200 : 1);
        const view = DetectionView.of(text);
        assert.equal(view.text, reference(text));
        let lastStart = 0;
        for (let j = 0; j < view.text.length; j++) {
          const [start, end] = view.originalSpan(j, j + 1);
          assert.ok(start >= lastStart && start < end && end <= text.length, `span of ${j}`);
          assert.ok(reference(text.slice(start, end)).includes(view.text[j]!), `origin of ${j}`);
          lastStart = start;
        }
      }),
      { seed: SEED, numRuns: 300 },
    );
  });

  it("is linear: four times the dense changes take about four times as long (not sixteen)", () => {
    const unit = "ｊ\u200Bﬁ①\u00A0e\u0301𝐀 ";
    // Best of three, as JSON.parse would give it (a flat string): the machine's load affects both sizes.
    const time = (repeats: number) => {
      const text = JSON.parse(JSON.stringify(unit.repeat(repeats))) as string;
      let best = Infinity;
      for (let run = 0; run < 3; run++) {
        const started = performance.now();
        const view = DetectionView.of(text);
        best = Math.min(best, performance.now() - started);
        assert.equal(view.text.length, "jfi1 éA ".length * repeats);
      }
      return best;
    };
    const small = time(100_000);
    const large = time(400_000);
    assert.ok(large / small < 9, `${small.toFixed(0)} ms, then ${large.toFixed(0)} ms`);
  });
});

describe("Scanner on obfuscated values", () => {
  it("finds each evasion, spanning the original characters", () => {
    const cases: Array<[string, string]> = [
      ["EMAIL", "jo\u200Bhn@exa\u200Dmple.com"],
      ["EMAIL", "john＠example.com"],
      ["EMAIL", "ｊｏｈｎ＠ｅｘａｍｐｌｅ．ｃｏｍ"],
      ["US_SSN", "１２３-４５-６７８９"],
      ["US_SSN", "123 45 6789"],
      ["US_SSN", "123\u00A045\u00A06789"],
      ["CREDIT_CARD", "4111\u00A01111\u00A01111\u00A01111"],
      ["CREDIT_CARD", "4111\u202F1111\u202F1111\u202F1111"],
      ["CREDIT_CARD", "4111.1111.1111.1111"],
      ["CREDIT_CARD", "3782.822463.10005"],
      ["CREDIT_CARD", "4111\u20131111\u20131111\u20131111"],
      ["PHONE", "+44\u00A020\u00A07946\u00A00958"],
      ["IBAN", "DE89\u00A03704\u00A00044\u00A00532\u00A00130\u00A000"],
      ["IPV4", "192\u3002168\u300210\u300220"],
    ];
    for (const [entity, value] of cases)
      assert.deepEqual(scan(`see ${value} now`), [[entity, value]], JSON.stringify(value));
  });

  it("US_SSN with spaces passes the same validators and is not part of a longer spaced number", () => {
    for (const ssn of ["000 12 3456", "666 12 3456", "912 34 5678", "123 00 4567", "123 45 0000"])
      assert.deepEqual(scan(`SSN ${ssn}.`), [], ssn);
    assert.deepEqual(scan("ref 12 123 45 6789 and 123 45 6789 12 and 123 45-6789"), []);
  });

  it("CREDIT_CARD with dots must pass Luhn and look like a printed card", () => {
    const cards = (text: string) => scan(text).filter(([entity]) => entity === "CREDIT_CARD");
    assert.deepEqual(cards("card 4111.1111.1111.1112"), []);
    assert.deepEqual(cards("v 4111.1111.1111.1111.1, 1.4111.1111.1111.1111, 4111.11111111.1111"), []);
  });

  it("PRIVATE_KEY without its END line: the header and the run of base64 lines", () => {
    const body = [
      "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu",
      "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm",
      "o3qGy0t6z09AIJtH+5OeRV1be+N4cDYJ",
    ];
    const key = `-----BEGIN RSA PRIVATE KEY-----\n${body.join("\n")}`;
    assert.deepEqual(scan(`key:\n${key}\n\nthanks`), [["PRIVATE_KEY", key]]);
    assert.deepEqual(scan(`key: ${key}`), [["PRIVATE_KEY", key]]);
    const escaped = `-----BEGIN PRIVATE KEY-----\\n${body.join("\\n")}`;
    assert.deepEqual(scan(`"${escaped}"`), [["PRIVATE_KEY", escaped]]);
    const oneLine = `-----BEGIN OPENSSH PRIVATE KEY----- ${body.join("")}`;
    assert.deepEqual(scan(`${oneLine} end`), [["PRIVATE_KEY", oneLine]]);
    const encrypted = `-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n${body[0]}`;
    assert.deepEqual(scan(encrypted), [["PRIVATE_KEY", encrypted]]);
    // A header alone, or followed by prose, holds no key material.
    assert.deepEqual(scan("-----BEGIN PRIVATE KEY-----\nsee the attachment"), []);
  });

  it("a value ending inside a changed character takes it whole; two values meeting in one never overlap", () => {
    assert.deepEqual(scan("mail a@b.ﬁ ok"), [["EMAIL", "a@b.ﬁ"]]);
    // "ﬁ" reads as "fi": "af" and "ib" meet inside it; the second keeps only what the first leaves.
    const custom = new Scanner({
      custom: [
        { entity: "A", regex: "af" },
        { entity: "B", regex: "ib" },
      ],
      entropyThreshold: 4,
    });
    const text = "aﬁb";
    assert.deepEqual(
      custom.scan(text, new Set(["A", "B"])).map((f) => [f.entity, f.start, f.end, f.value, f.normalized]),
      [
        ["A", 0, 2, "aﬁ", "af"],
        ["B", 2, 3, "b", "ib"],
      ],
    );
  });
});

const POLICY = parsePolicy(
  `
version: 1
pools: { pool-a: {} }
models: { m1: { pool: pool-a } }
teams: { t: { models: [m1] } }
keys: [{ id: k1, team: t, sha256: ${sha256Hex("key-1")} }]
pii:
  hmacKey: { env: PII_KEY }
  rules:
    - actions: { EMAIL: redact, US_SSN: redact, CREDIT_CARD: redact, PHONE: redact, IBAN: redact, IPV4: redact }
`,
  "p.yaml",
  { env: { PII_KEY: "k" } },
);
const K1: Identity = { keyId: "k1", team: "t", allowedModels: new Set(["m1"]) };

function session(): PiiSession {
  return new PiiSession(POLICY.pii!, resolvePii(POLICY.pii, K1, "m1")!);
}

describe("PiiSession on obfuscated values", () => {
  it("one placeholder (and one pseudonym) for a value and its obfuscated spellings", () => {
    const s = session();
    assert.equal(
      s.redactRequest("a@b.com, a\u200B@b.com, ａ＠ｂ．ｃｏｍ"),
      "<EMAIL_1>, <EMAIL_1>, <EMAIL_1>",
    );
    assert.equal(s.restore("<EMAIL_1>"), "a@b.com");
  });

  /** Known values, each with the entity the detectors must report it as. */
  const POOL: ReadonlyArray<[string, string]> = [
    ["EMAIL", "john.doe@example.com"],
    ["EMAIL", "ops+alerts@mail.example.co.uk"],
    ["US_SSN", "123-45-6789"],
    ["US_SSN", "219 09 9999"],
    ["CREDIT_CARD", "4111 1111 1111 1111"],
    ["CREDIT_CARD", "5105-1051-0510-5100"],
    ["CREDIT_CARD", "4111.1111.1111.1111"],
    ["CREDIT_CARD", "378282246310005"],
    ["PHONE", "+44 20 7946 0958"],
    ["IBAN", "DE89 3704 0044 0532 0130 00"],
    ["IPV4", "192.168.10.20"],
  ];
  const INVISIBLE = [
    "\u200B",
    "\u200C",
    "\u200D",
    "\u00AD",
    "\uFEFF",
    "\u200E",
    "\u202E",
    "\u2060",
    "\uFE0F",
  ];
  const SPACES = ["\u00A0", "\u202F", "\u2007", "\u2009", "\u3000"];
  const DASHES = ["\u2010", "\u2011", "\u2013", "\u2014", "\u2212", "\uFF0D", "\uFE63"];
  const DOTS = ["\uFF0E", "\u2024", "\u3002"];
  const DIGITS = [0xff10, 0x1d7ce, 0x0660, 0x0966]; // fullwidth, mathematical bold (astral), Arabic-Indic, Devanagari

  /** Obfuscations of one character of a value, each reading as that character. */
  function variants(ch: string): string[] {
    const out = [ch];
    if (ch === " ") out.push(...SPACES);
    if (ch === "-") out.push(...DASHES);
    if (ch === ".") out.push(...DOTS);
    if (/[0-9]/.test(ch)) for (const zero of DIGITS) out.push(String.fromCodePoint(zero + Number(ch)));
    if (/[!-~]/.test(ch)) out.push(String.fromCodePoint(ch.charCodeAt(0) + 0xfee0)); // fullwidth
    // Mathematical bold letters (astral: surrogate pairs).
    if (/[A-Z]/.test(ch)) out.push(String.fromCodePoint(0x1d400 + ch.charCodeAt(0) - 0x41));
    if (/[a-z]/.test(ch)) out.push(String.fromCodePoint(0x1d41a + ch.charCodeAt(0) - 0x61));
    return out;
  }

  const WORDS = [
    "hello",
    "Grüße",
    "日本語",
    "ﬁle",
    "ＡＢＣ",
    "x",
    "and,",
    "(see)",
    "é\u0301",
    "😀",
    "\u200B",
  ];

  it("property: an obfuscated known value is found over exactly its characters and redacted whole", () => {
    const obfuscated = fc
      .tuple(fc.constantFrom(...POOL), fc.infiniteStream(fc.nat()))
      .map(([[entity, value], choices]) => {
        const picks = choices[Symbol.iterator]();
        const next = () => picks.next().value as number;
        let text = "";
        for (const ch of value) {
          const options = variants(ch);
          text += options[next() % options.length];
          if (next() % 3 === 0) text += INVISIBLE[next() % INVISIBLE.length];
        }
        return { entity, value: text };
      });
    const context = fc.array(fc.constantFrom(...WORDS), { maxLength: 6 }).map((w) => w.join(" "));
    fc.assert(
      fc.property(context, obfuscated, context, (before, { entity, value }, after) => {
        const text = `${before} ${value} ${after}`;
        const start = before.length + 1;
        const end = start + value.length;
        const findings = scanner.scan(text, ALL).filter((f) => f.entity === entity);
        assert.ok(
          findings.some((f) => f.start <= start && f.end >= end),
          `${entity} ${JSON.stringify(value)}: ${JSON.stringify(findings)}`,
        );
        const redacted = session().redactRequest(text);
        assert.equal(redacted, `${before} <${entity}_1> ${after}`);
      }),
      { seed: SEED, numRuns: 500 },
    );
  });
});
