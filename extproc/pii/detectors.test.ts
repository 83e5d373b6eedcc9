import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BUILTIN_ENTITIES, findBuiltin } from "./detectors.js";
import { entropy, ibanValid, luhnValid, mixedClasses, phoneDigitsValid, ssnValid } from "./validators.js";

const ALL = new Set<string>(BUILTIN_ENTITIES);
const OPTIONS = { entropyThreshold: 4 };

/** Every finding in `text` as "ENTITY:value". */
function scan(text: string, enabled: ReadonlySet<string> = ALL): string[] {
  return findBuiltin(text, enabled, OPTIONS).map((f) => `${f.entity}:${f.value}`);
}

/** Asserts that `value`, embedded in `template` at "{}", is found exactly, as `entity`, and nothing else. */
function found(entity: string, value: string, template = "value: {} (end)"): void {
  const text = template.replace("{}", value);
  assert.deepEqual(scan(text), [`${entity}:${value}`], `${entity} in ${JSON.stringify(text)}`);
}

/** Asserts that nothing is found in `text` (or nothing of `entity`, when given). */
function nothing(text: string, entity?: string): void {
  const findings = scan(text).filter((f) => entity === undefined || f.startsWith(`${entity}:`));
  assert.deepEqual(findings, [], `nothing in ${JSON.stringify(text)}`);
}

const PEM = [
  "-----BEGIN RSA PRIVATE KEY-----",
  "MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu",
  "KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm",
  "o3qGy0t6z09AIJtH+5OeRV1be+N4cDYJKffGzDa88vQENZiRm0GRq6a+HPGQMd2k",
  "-----END RSA PRIVATE KEY-----",
].join("\n");

const JWT =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1LTQ4MTUiLCJyb2xlIjoiYWRtaW4ifQ." +
  "q0Xb3W9mTz7cJf1RkLp8NvYs2HdA6eGiUoK4";

describe("EMAIL", () => {
  it("finds addresses with subdomains, plus tags, dots and digits", () => {
    for (const email of [
      "john.doe@example.com",
      "jane+newsletter@mail.example.co.uk",
      "first.last@sub.dept.example.org",
      "x_y-z%1@example.io",
      "ops2024@eng.eu-west.example.net",
      "mary.o'neil@example.ie",
      "UPPER.Case@Example.COM",
    ]) {
      found("EMAIL", email);
    }
    found("EMAIL", "bob@example.com", "mailto:{}");
    found("EMAIL", "bob@example.com", "quoted '{}'");
    found("EMAIL", "bob@example.com", '{"email":"{}"}');
    found("EMAIL", "bob@example.com", "<{}>");
  });

  it("ignores hosts without a domain, package specifiers and handles", () => {
    nothing("ssh user@localhost");
    nothing("npm i typescript@5.9.3 and left-pad@1.3.0");
    nothing("ping @maintainers and @alice");
    nothing("name@domain is not an address, nor a@b.c");
    nothing("O'Reilly's book costs 40 dollars");
  });
});

describe("PHONE", () => {
  it("finds E.164 and common national formats", () => {
    for (const phone of [
      "+14155552671",
      "+1 415 555 2671",
      "+1 (555) 123-4567",
      "+44 20 7946 0958",
      "+49 30 12345678",
      "+33 1 23 45 67 89",
      "+81 3-1234-5678",
      "(555) 123-4567",
      "555-123-4567",
      "555.123.4567",
      "020 7946 0958",
      "030 1234 5678",
    ]) {
      found("PHONE", phone);
    }
    found("PHONE", "+442079460958", "tel:{}");
  });

  it("ignores times, dates, versions, short numbers and long digit runs", () => {
    nothing("at 12:30:45 on 2024-11-22");
    nothing("version 1.2.3.4 and v1.2.3.4");
    nothing("call 911 or +1 555");
    nothing("id 123456789012345678901234567890");
    nothing("ratio 3/4, page 12 of 300");
  });

  it("checks the digit count (8 to 15) and runs of separators", () => {
    assert.equal(phoneDigitsValid("+1 415 555 2671"), true);
    assert.equal(phoneDigitsValid("+1 23 45"), false);
    assert.equal(phoneDigitsValid("+1234567890123456"), false);
    nothing("555 -.123-4567");
  });
});

describe("US_SSN", () => {
  it("finds valid numbers", () => {
    found("US_SSN", "123-45-6789");
    found("US_SSN", "219-09-9999", "SSN: {}.");
  });

  it("refuses area 000, 666 and 9xx, group 00, serial 0000, and longer runs", () => {
    for (const ssn of ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000"]) {
      assert.equal(ssnValid(ssn), false, ssn);
      nothing(`SSN ${ssn}`, "US_SSN");
    }
    nothing("ref 123-45-67890 and 2123-45-6789 and 12-123-45-6789");
  });
});

describe("CREDIT_CARD", () => {
  it("finds Visa, Mastercard and Amex numbers, plain or grouped with spaces or dashes", () => {
    for (const card of [
      "4111111111111111",
      "4111 1111 1111 1111",
      "4111-1111-1111-1111",
      "5555555555554444",
      "5555 5555 5555 4444",
      "5105-1051-0510-5100",
      "378282246310005",
      "3782 822463 10005",
      "3714-496353-98431",
    ]) {
      found("CREDIT_CARD", card);
    }
    found("CREDIT_CARD", "4111111111111111", "card_number_{}");
  });

  it("refuses numbers failing Luhn, doubled separators and long digit runs", () => {
    assert.equal(luhnValid("1234567812345678"), false);
    nothing("order number 1234567812345678 shipped");
    nothing("order 1234 5678 1234 5678");
    nothing("4111  1111 1111 1111", "CREDIT_CARD");
    nothing("trace 98765432109876543210987654321");
    nothing("12345678901234567890123");
  });
});

describe("IBAN", () => {
  it("finds DE, GB, FR and NL IBANs with and without spaces", () => {
    for (const iban of [
      "DE89370400440532013000",
      "DE89 3704 0044 0532 0130 00",
      "GB82WEST12345698765432",
      "GB82 WEST 1234 5698 7654 32",
      "FR1420041010050500013M02606",
      "FR14 2004 1010 0505 0001 3M02 606",
      "NL91ABNA0417164300",
      "NL91 ABNA 0417 1643 00",
    ]) {
      found("IBAN", iban);
    }
  });

  it("refuses bad checksums, wrong lengths and unknown countries", () => {
    assert.equal(ibanValid("DE88370400440532013000"), false);
    nothing("IBAN DE88 3704 0044 0532 0130 00");
    nothing("IBAN GB82WEST12345698765433");
    nothing("IBAN DE8937040044053201300");
    nothing("IBAN XX89370400440532013000");
  });
});

describe("IPV4", () => {
  it("finds addresses in prose and URLs", () => {
    found("IPV4", "192.168.1.10");
    found("IPV4", "8.8.8.8", "dns {}, fallback");
    found("IPV4", "10.1.2.3", "http://{}:8080/health");
    found("IPV4", "255.255.255.255", "mask={};");
    found("IPV4", "10.100.200.1", "gateway {} (not a phone number)");
  });

  it("ignores version numbers, out-of-range octets and longer dotted runs", () => {
    nothing("version 1.2.3.4", "IPV4");
    nothing("v1.2.3.4", "IPV4");
    nothing("release 10.0.0.1 is out", "IPV4");
    nothing("build 10.0.19045.1");
    nothing("256.1.1.1 and 1.2.3.4.5 and 1.2.3");
  });
});

describe("IPV6", () => {
  it("finds full, compressed, loopback, link-local and IPv4-mapped addresses", () => {
    for (const ip of [
      "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
      "2001:db8::8a2e:370:7334",
      "::1",
      "fe80::1",
      "::ffff:192.0.2.128",
      "64:ff9b::198.51.100.7",
    ]) {
      found("IPV6", ip);
    }
    found("IPV6", "2001:db8::1", "[{}]:443");
    found("IPV6", "fe80::1", "{}%eth0");
  });

  it("ignores times, MAC addresses, C++/Rust paths and a bare ::", () => {
    nothing("at 12:30:45");
    nothing("mac 00:1A:2B:3C:4D:5E");
    nothing("std::cout << x; use std::fmt::Debug; Foo::Bar::baz();");
    nothing("f :: Int -> Int");
  });
});

describe("AWS_ACCESS_KEY", () => {
  it("finds AKIA/ASIA ids, also as NAME=value", () => {
    found("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE");
    found("AWS_ACCESS_KEY", "ASIAY34FZKBOKMUTVV7A", "aws_access_key_id = {}");
    found("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE", "export AWS_ACCESS_KEY_ID={}");
  });

  it("refuses ids of the wrong length or glued to other capitals", () => {
    nothing("AKIAIOSFODNN7EXAMPLEX", "AWS_ACCESS_KEY");
    nothing("XAKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY");
    nothing("AKIA1234 and AKIA");
  });
});

describe("PRIVATE_KEY", () => {
  it("finds PEM blocks (RSA, PKCS#8, OpenSSH, encrypted with headers)", () => {
    found("PRIVATE_KEY", PEM, "key:\n{}\nthanks");
    found("PRIVATE_KEY", PEM.replaceAll("RSA PRIVATE", "PRIVATE"));
    found("PRIVATE_KEY", PEM.replaceAll("RSA PRIVATE", "OPENSSH PRIVATE"));
    const encrypted = PEM.replace(
      "-----\n",
      "-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89\n\n",
    );
    found("PRIVATE_KEY", encrypted);
  });

  it("ignores public keys and certificates", () => {
    nothing(PEM.replaceAll("RSA PRIVATE", "PUBLIC"), "PRIVATE_KEY");
    nothing(PEM.replaceAll("RSA PRIVATE KEY", "CERTIFICATE"), "PRIVATE_KEY");
  });

  it("finds a block without its END line: the BEGIN line and the run of base64 lines after it", () => {
    found("PRIVATE_KEY", PEM.split("\n").slice(0, 4).join("\n"), "key:\n{}\n\nthanks");
    found("PRIVATE_KEY", PEM.split("\n").slice(0, 2).join("\n"));
    nothing("-----BEGIN RSA PRIVATE KEY-----\nsee the attachment", "PRIVATE_KEY");
  });
});

describe("JWT", () => {
  it("finds three-part tokens, also after Bearer, = and #", () => {
    found("JWT", JWT);
    found("JWT", JWT, "Authorization: Bearer {}");
    found("JWT", JWT, "https://app.example/cb#id_token={}&state=x");
  });

  it("ignores two-part strings and eyJ inside a word", () => {
    const twoParts = JWT.slice(0, JWT.lastIndexOf("."));
    assert.equal(scan(twoParts).filter((f) => f.startsWith("JWT:")).length, 0);
    assert.equal(scan(`xyz${JWT}`).filter((f) => f.startsWith("JWT:")).length, 0);
  });
});

describe("API_KEY", () => {
  it("finds OpenAI, Anthropic, GitHub, Slack, Google and GitLab tokens", () => {
    for (const key of [
      "sk-4fT9qLm2ZxW8vBn3RcY7pKd1HsJ6",
      "sk-proj-Q7mN2xLp9RtV4bZc8WkY3sHd6FgJ",
      "sk-ant-api03-Xy7Qm2Lp9Rt4Vb8ZcWk3sHd",
      "ghp_R7mN2xLp9QtV4bZc8WkY3sHd6FgJ1aPe0uKo",
      "gho_R7mN2xLp9QtV4bZc8WkY3sHd6FgJ1aPe0uKo",
      "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
      "xoxb-2048-9127365410-Qm7Lp2Rt9Vb4Zc8W",
      "xoxp-1234567890-abcdefghij",
      "AIzaSyD4x7Qm2Lp9Rt4Vb8ZcWk3sHd6FgJ1aPXy",
      "glpat-Xq8Rm2Lp9Tt4Vb7ZcWk3",
    ]) {
      found("API_KEY", key);
    }
    found("API_KEY", "sk-proj-Q7mN2xLp9RtV4bZc8WkY3sHd6FgJ", "OPENAI_API_KEY={}");
  });

  it("ignores short prefixes and words that merely contain them", () => {
    nothing("sk-short, ghp_short, xoxb-1, glpat-x, AIzaShort");
    nothing("the risk-assessment-framework-document-v2 and desk-booking-service-config");
    nothing("pip install scikit-learn; import sklearn");
  });
});

describe("HIGH_ENTROPY", () => {
  it("finds long tokens mixing cases and digits; the value of NAME=value only", () => {
    found("HIGH_ENTROPY", "Zx9kP2mQ7vL4rT8wN3yB6cH1dF5gJ0sA");
    found("HIGH_ENTROPY", "Q2hhbmdlTWVQbGVhc2UxMjM0NTY3ODk=", "secret={}");
    found("HIGH_ENTROPY", "a8Fk2/Qz9+Lm4Rt7Vb1Xc6Wn3Jp0Hs5D", "password: {}");
    assert.ok(entropy("Zx9kP2mQ7vL4rT8wN3yB6cH1dF5gJ0sA") >= 4);
    assert.equal(mixedClasses("3f2a9c1e8b7d6a5f"), false);
  });

  it("ignores hex hashes, UUIDs, identifiers, prose and runs over 512 characters", () => {
    nothing("commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 merged");
    nothing("sha256 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08");
    nothing("id 550e8400-e29b-41d4-a716-446655440000");
    nothing("this_is_a_very_long_identifier_name and internationalization");
    nothing("/usr/local/lib/node_modules/typescript/lib/tsc.js");
    nothing("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1a");
    // A 600-character base64 run with high entropy and mixed classes is data, not a token.
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let run = "";
    for (let i = 0; i < 600; i++) run += alphabet[(i * 37 + ((i * i) >> 3)) % 64];
    assert.ok(entropy(run) > 5 && mixedClasses(run));
    nothing(`data:image/png;base64,${run}== end`);
  });
});

describe("findBuiltin", () => {
  it("returns sorted, non-overlapping findings with their offsets", () => {
    const text = "mail a@example.com, ip 10.0.0.1, card 4111 1111 1111 1111.";
    const findings = findBuiltin(text, ALL, OPTIONS);
    assert.deepEqual(
      findings.map((f) => [f.entity, f.start, f.end]),
      [
        ["EMAIL", 5, 18],
        ["IPV4", 23, 31],
        ["CREDIT_CARD", 38, 57],
      ],
    );
    for (const f of findings) assert.equal(text.slice(f.start, f.end), f.value);
  });

  it("reports only enabled entities; a skipped token does not hide a value inside it", () => {
    const text = "mail a@example.com, key Zx9kP2mQ7vL4rT8wN3yB6cH1dF5gJ0sA, ref_code_4111111111111111";
    assert.deepEqual(scan(text, new Set(["EMAIL"])), ["EMAIL:a@example.com"]);
    assert.deepEqual(scan(text, new Set(["CREDIT_CARD"])), ["CREDIT_CARD:4111111111111111"]);
  });

  it("a JWT wins over a high-entropy reading of its parts", () => {
    assert.deepEqual(scan(`token=${JWT}`), [`JWT:${JWT}`]);
  });

  describe("linear time on 5 MB pathological inputs", () => {
    const SIZE = 5_000_000;
    const inputs: Record<string, string> = {
      "a × 5e6": "a".repeat(SIZE),
      "sk- + a × 5e6": "sk-" + "a".repeat(SIZE),
      "'1 ' × 2.5e6": "1 ".repeat(SIZE / 2),
      "'a@' × 2.5e6": "a@".repeat(SIZE / 2),
      "'1:' × 2.5e6": "1:".repeat(SIZE / 2),
      "BEGIN RSA PRIVATE KEY repeated": "-----BEGIN RSA PRIVATE KEY-----".repeat(Math.ceil(SIZE / 31)),
      "eyJ repeated": "eyJ".repeat(Math.ceil(SIZE / 3)),
      "BEGIN and a 5 MB body without END": "-----BEGIN PRIVATE KEY-----\n" + "QUJD".repeat(SIZE / 4),
      "a'a'a'…": "a'".repeat(SIZE / 2),
      "rejected 30-character runs": "abcdefghijklmnopqrstuvwxyz0123 ".repeat(Math.ceil(SIZE / 31)),
    };
    for (const [name, text] of Object.entries(inputs)) {
      it(`${name}: under 2 s, no stack overflow`, () => {
        const started = performance.now();
        assert.doesNotThrow(() => findBuiltin(text, ALL, OPTIONS));
        const ms = performance.now() - started;
        assert.ok(ms < 2000, `${name} took ${ms.toFixed(0)} ms`);
      });
    }
  });
});
