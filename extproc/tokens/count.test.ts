/**
 * Token counting: the cut into pieces that keeps BPE linear, agreement with tiktoken's own count, the guard
 * against pathological inputs, and the worker pool that keeps large inputs off the event loop.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { get_encoding } from "tiktoken";
import { countTokensSync, preloadEncoding, segments } from "./count.js";
import { DEFAULT_INLINE_LIMIT_CHARS, WorkerPool } from "../workers/index.js";
import { watchHandOffs } from "../workers/test-support.js";

const reference = get_encoding("cl100k_base");
/** tiktoken's count of the whole text, uncut. */
const exact = (text: string) => reference.encode_ordinary(text).length;

/** Longest run of characters between ASCII whitespace (what segments() cuts on), in UTF-16 code units. */
function longestRun(text: string): number {
  return Math.max(0, ...text.split(/[ \n\r\t\f]+/).map((run) => run.length));
}

/** Deterministic pseudo-random numbers (a 32-bit LCG), so every run tests the same inputs. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state / 2 ** 32;
  };
}

/** Deterministic base64 of `bytes` pseudo-random bytes. */
function base64(bytes: number): string {
  const chunks: Buffer[] = [];
  let block = Buffer.from("seed");
  for (let n = 0; n < bytes; n += 32) {
    block = createHash("sha256").update(block).digest();
    chunks.push(block);
  }
  return Buffer.concat(chunks).subarray(0, bytes).toString("base64");
}

const SENTENCES = [
  "The committee met on Tuesday to review the quarterly results.",
  "Revenue grew by 12% compared with the same period last year, while costs stayed flat.",
  "Nobody expected the new warehouse in Rotterdam to open ahead of schedule.",
  '"We\'re pleased with the progress," said the director, "but there\'s more to do."',
  "Customers in Europe and Asia asked for faster delivery, better packaging and clearer invoices.",
  "The engineering team shipped version 2.4 of the app on March 3rd.",
  "It fixes several crashes, improves battery life and adds a dark mode.",
  "Meanwhile, the support queue shrank from 1,250 open tickets to just under 400.",
  "Next year's plan focuses on hiring, training and reducing turnover.",
  "Questions? Contact the finance office before Friday afternoon.",
];

/** Ordinary English prose: `paragraphs` paragraphs of 4 to 6 sentences, joined by `separator`. */
function english(paragraphs: number, separator: string): string {
  const out: string[] = [];
  for (let p = 0; p < paragraphs; p++) {
    const sentences: string[] = [];
    for (let s = 0; s < 4 + (p % 3); s++) sentences.push(SENTENCES[(p * 7 + s * 3) % SENTENCES.length]!);
    out.push(sentences.join(" "));
  }
  return out.join(separator);
}

/** CJK text without spaces: one long run for the BPE, the worst case before the cut. */
function cjk(chars: number): string {
  return Array.from({ length: chars }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 20_000))).join(
    "",
  );
}

before(() => preloadEncoding("cl100k_base"));
after(() => reference.free());

describe("segments", () => {
  it("cuts runs without whitespace into pieces of 64", () => {
    assert.deepEqual(
      segments("a".repeat(200)).map((p) => p.length),
      [64, 64, 64, 8],
    );
    assert.deepEqual(segments("a".repeat(64)), ["a".repeat(64)]);
    assert.deepEqual(segments(` ${"b".repeat(65)}`), [` ${"b".repeat(64)}`, "b"]);
    assert.deepEqual(segments(""), []);
  });

  it("leaves ordinary text under 8 KiB whole", () => {
    const text = english(10, "\n\n");
    assert.ok(text.length < 8192);
    assert.deepEqual(segments(text), [text]);
  });

  it("cuts long text at whitespace into pieces of about 8 KiB", () => {
    const text = english(300, " ");
    const pieces = segments(text);
    assert.ok(pieces.length >= Math.floor(text.length / 8192), `${pieces.length} pieces`);
    for (const piece of pieces.slice(1)) assert.match(piece, /^ /, "each cut is made at whitespace");
    for (const piece of pieces) assert.ok(piece.length <= 2 * 8192 + 64, `piece of ${piece.length}`);
    assert.equal(pieces.join(""), text);
  });

  it("never yields a run over 64 characters, and the pieces put back together are the input", () => {
    const alphabet = ["a", "Z", "7", "é", "漢", "😀", ".", "/", "+", "=", " ", " ", "\n", "\t", "\r\n", "  "];
    const next = random(42);
    for (let round = 0; round < 200; round++) {
      const parts: string[] = [];
      const length = Math.floor(next() * 3000);
      // Mostly long runs of one character (base64-like, CJK-like) with occasional whitespace.
      while (parts.join("").length < length) {
        const char = alphabet[Math.floor(next() * alphabet.length)]!;
        parts.push(next() < 0.3 ? char.repeat(1 + Math.floor(next() * 300)) : char);
      }
      const text = parts.join("");
      const pieces = segments(text);
      assert.equal(pieces.join(""), text, `round ${round}`);
      for (const piece of pieces) {
        assert.ok(piece.length > 0, "no empty piece");
        assert.ok(longestRun(piece) <= 64, `round ${round}: a run of ${longestRun(piece)}`);
      }
    }
  });

  it("bounds pieces of long whitespace and very long inputs too", () => {
    const text = `${" ".repeat(20_000)}${"x".repeat(1000)}\n${"\n".repeat(30_000)}`;
    const pieces = segments(text);
    assert.equal(pieces.join(""), text);
    for (const piece of pieces) assert.ok(piece.length <= 2 * 8192 + 64 && longestRun(piece) <= 64);
  });
});

describe("countTokensSync", () => {
  it("gives tiktoken's exact count for ordinary English text", () => {
    const texts = [
      "Hello, world!",
      "I'd like to book a table for two at 7:30pm, please. Can you confirm by e-mail?",
      english(1, " "),
      english(12, "\n\n"),
      "Dear team,\n\nPlease find attached the minutes of Monday's meeting.\n\tItem 1: budget (approved)\n\tItem 2: hiring - deferred to Q3\n\nBest regards,\nAlice",
      "function add(a, b) {\n  return a + b;\n}\n\nconsole.log(add(2, 3));",
    ];
    for (const text of texts) assert.equal(countTokensSync([text], "cl100k_base"), exact(text), text);
  });

  it("gives tiktoken's exact count for long English text on one line", () => {
    const text = english(300, " ");
    assert.ok(text.length > 100_000);
    assert.equal(countTokensSync([text], "cl100k_base"), exact(text));
  });

  it("gives tiktoken's exact count for long English text with paragraphs", () => {
    // 112 KB of prose in paragraphs: every 8 KiB cut must land where tiktoken would split anyway.
    const text = english(300, "\n\n");
    assert.equal(countTokensSync([text], "cl100k_base"), exact(text));
  });

  it("adds up the texts it is given", () => {
    const a = english(2, " ");
    const b = "Short one.";
    assert.equal(countTokensSync([a, b], "cl100k_base"), exact(a) + exact(b));
    assert.equal(countTokensSync([], "cl100k_base"), 0);
    assert.equal(countTokensSync([""], "cl100k_base"), 0);
  });

  it("counts with the encoding it is asked for", () => {
    const o200k = get_encoding("o200k_base");
    try {
      const text = "Ünïcödé façade — naïve café ☕ 東京タワー";
      assert.equal(countTokensSync([text], "o200k_base"), o200k.encode_ordinary(text).length);
      assert.notEqual(o200k.encode_ordinary(text).length, exact(text), "the encodings differ here");
    } finally {
      o200k.free();
    }
  });

  it("stays within 1% of tiktoken (docs/quotas.md) on base64 data", () => {
    const data = base64(150_000);
    const counted = countTokensSync([data], "cl100k_base");
    const expected = exact(data);
    assert.ok(Math.abs(counted - expected) / expected < 0.01, `${counted} vs ${expected}`);
  });

  it("stays within 1% of tiktoken (docs/quotas.md) on CJK text without spaces", () => {
    const text = cjk(6000);
    const counted = countTokensSync([text], "cl100k_base");
    const expected = exact(text);
    assert.ok(Math.abs(counted - expected) / expected < 0.01, `${counted} vs ${expected}`);
  });

  it("counts 1,000,000 'a' characters in linear time", () => {
    const text = "a".repeat(1_000_000);
    const start = performance.now();
    const counted = countTokensSync([text], "cl100k_base");
    const elapsed = performance.now() - start;
    // Without the cut BPE is quadratic here: 100,000 'a' alone take ~15 s.
    assert.ok(elapsed < 2000, `${elapsed.toFixed(0)} ms`);
    // tiktoken's exact count per character, on a length it can still encode quickly.
    const perChar = exact("a".repeat(8000)) / 8000;
    assert.ok(Math.abs(counted / 1_000_000 - perChar) / perChar < 0.01, `${counted} tokens`);
  });

  it("counts 300,000 CJK characters in linear time", () => {
    const text = cjk(300_000);
    const start = performance.now();
    const counted = countTokensSync([text], "cl100k_base");
    const elapsed = performance.now() - start;
    assert.ok(elapsed < 2000, `${elapsed.toFixed(0)} ms`);
    const sample = cjk(3000);
    const perChar = exact(sample) / sample.length;
    assert.ok(Math.abs(counted / text.length - perChar) / perChar < 0.05, `${counted} tokens`);
  });
});

describe("token counting on the worker pool", () => {
  /** A pool that counts inputs over `inlineLimitChars` on its `workers`. */
  const pool = (workers: number, inlineLimitChars: number) =>
    new WorkerPool({
      workers,
      inlineLimitChars: { ...DEFAULT_INLINE_LIMIT_CHARS, countTokens: inlineLimitChars },
    });

  /** ~2 MB of prose and some base64: about a second to count on one thread. */
  const LARGE = `${english(600, "\n\n")}\n${base64(150_000)}\n${english(4400, " ")}`;
  const MEDIUM = english(40, "\n");

  // Workers are unref'd (they must not keep the process alive); keep the test process alive while waiting.
  let keepAlive: NodeJS.Timeout;
  before(() => {
    keepAlive = setInterval(() => {}, 1000);
  });
  after(() => clearInterval(keepAlive));

  /** Races `promise` against a timer: whether it settled (resolved or rejected) within `ms`. */
  async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
    const settled = promise.then(
      () => true,
      () => true,
    );
    const result = await Promise.race([settled, timeout]);
    clearTimeout(timer);
    return result;
  }

  it("counts small inputs inline and large ones in a worker, with the same result", async (t) => {
    const posted = watchHandOffs(t);
    const counter = pool(1, 32 * 1024);
    try {
      const small = "Count me inline, please.";
      assert.equal(await counter.countTokens([small], "cl100k_base"), exact(small));
      assert.equal(posted.count(), 0);

      const inline = countTokensSync([LARGE], "cl100k_base");
      assert.equal(await counter.countTokens([LARGE], "cl100k_base"), inline);
      assert.equal(posted.count(), 1);
      // The limit counts all texts together.
      const parts = [MEDIUM, MEDIUM, MEDIUM, MEDIUM];
      assert.ok(MEDIUM.length < 32 * 1024 && MEDIUM.length * 4 > 32 * 1024);
      assert.equal(await counter.countTokens(parts, "cl100k_base"), 4 * exact(MEDIUM));
      assert.equal(posted.count(), 2);
    } finally {
      await counter.close();
    }
  });

  it("counts inline when configured without workers", async (t) => {
    const posted = watchHandOffs(t);
    const counter = pool(0, 10);
    assert.equal(await counter.countTokens([MEDIUM], "cl100k_base"), exact(MEDIUM));
    assert.equal(posted.count(), 0);
    await counter.close();
  });

  it("answers concurrent counts on several workers each with its own result", async () => {
    const counter = pool(2, 1000);
    try {
      const inputs = [MEDIUM, english(41, " "), base64(5000), `${MEDIUM}\n${MEDIUM}`, cjk(2000)];
      const counts = await Promise.all(inputs.map((text) => counter.countTokens([text], "cl100k_base")));
      assert.deepEqual(
        counts,
        inputs.map((text) => countTokensSync([text], "cl100k_base")),
      );
      assert.equal(new Set(counts).size, inputs.length, "the inputs have different counts");
    } finally {
      await counter.close();
    }
  });

  /** Counts LARGE with `counter` while a 10 ms interval runs; the longest gap between its ticks. */
  async function longestStall(counter: WorkerPool): Promise<{ gap: number; ticks: number; ms: number }> {
    let ticks = 0;
    let last = performance.now();
    let gap = 0;
    const interval = setInterval(() => {
      const now = performance.now();
      gap = Math.max(gap, now - last);
      last = now;
      ticks++;
    }, 10);
    const start = performance.now();
    try {
      await counter.countTokens([LARGE], "cl100k_base");
    } finally {
      clearInterval(interval);
    }
    const ms = performance.now() - start;
    return { gap: Math.max(gap, performance.now() - last), ticks, ms };
  }

  it("does not block the event loop while a 2 MB input is counted in a worker", async () => {
    assert.ok(LARGE.length > 2_000_000);
    const counter = pool(1, 32 * 1024);
    try {
      const inWorker = await longestStall(counter);
      assert.ok(inWorker.gap < 200, `the event loop stalled for ${inWorker.gap.toFixed(0)} ms`);
      assert.ok(inWorker.ticks >= inWorker.ms / 10 / 3, `${inWorker.ticks} ticks in ${inWorker.ms} ms`);
    } finally {
      await counter.close();
    }
    // The same input counted inline stalls the loop for as long as the count takes (so the above means something).
    const inline = await longestStall(pool(0, 0));
    assert.ok(
      inline.gap > 150 && inline.ticks <= 1,
      `inline: ${inline.gap.toFixed(0)} ms, ${inline.ticks} ticks`,
    );
  });

  it("terminates its workers on close", async (t) => {
    const posted = watchHandOffs(t);
    const counter = pool(2, 10);
    await Promise.all([
      counter.countTokens([MEDIUM], "cl100k_base"),
      counter.countTokens([MEDIUM], "cl100k_base"),
    ]);
    const workers = new Set(posted.workers());
    assert.equal(workers.size, 2);
    for (const worker of workers) assert.ok(worker.threadId > 0, "running");
    await counter.close();
    // threadId is -1 once a worker thread has stopped.
    for (const worker of workers) assert.equal(worker.threadId, -1);
  });

  it("settles a count that is in flight when it is closed", async () => {
    const counter = pool(1, 10);
    const pending = counter.countTokens([LARGE], "cl100k_base");
    await counter.close();
    assert.ok(await settlesWithin(pending, 3000), "the count never resolved nor rejected");
  });

  it("settles a count asked for after it is closed", async () => {
    const counter = pool(1, 10);
    await counter.countTokens([MEDIUM], "cl100k_base");
    await counter.close();
    assert.ok(
      await settlesWithin(counter.countTokens([MEDIUM], "cl100k_base"), 3000),
      "the count never resolved nor rejected",
    );
  });
});
