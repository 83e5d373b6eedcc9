import { createRequire } from "node:module";
import type { Tiktoken, TiktokenEncoding } from "tiktoken";

/** BPE encodings extproc can count with (all bundled with the `tiktoken` package: no download). */
export const ENCODINGS = ["cl100k_base", "o200k_base", "p50k_base", "r50k_base"] as const;
/** One of {@link ENCODINGS}. */
export type EncodingName = (typeof ENCODINGS)[number];

/**
 * Longest run of non-whitespace characters encoded in one piece. BPE merging is quadratic in the length of
 * a piece, so a long run without spaces (base64, minified code, CJK text) could take seconds; cutting runs
 * at 64 characters keeps counting linear, and the count stays within about 1 % of an uncut encoding.
 */
const MAX_RUN = 64;
/** Text is also cut between words every ~8 KiB so no single encode call grows large. */
const MAX_SEGMENT = 8192;

const cache = new Map<EncodingName, Tiktoken>();

/**
 * tiktoken's WebAssembly module, loaded with the first encoding (~16 MB resident): a process whose policy
 * counts no tokens never loads it.
 */
let tiktoken: typeof import("tiktoken") | undefined;

function encoding(name: EncodingName): Tiktoken {
  let enc = cache.get(name);
  if (!enc) {
    tiktoken ??= createRequire(import.meta.url)("tiktoken") as typeof import("tiktoken");
    enc = tiktoken.get_encoding(name as TiktokenEncoding);
    cache.set(name, enc);
  }
  return enc;
}

const isSpace = (code: number): boolean =>
  code === 32 || code === 10 || code === 13 || code === 9 || code === 12;

/** Splits text into pieces with no non-whitespace run over {@link MAX_RUN} characters. */
export function segments(text: string): string[] {
  const out: string[] = [];
  let start = 0;
  let run = 0;
  for (let i = 0; i < text.length; i++) {
    const space = isSpace(text.charCodeAt(i));
    if (space) {
      run = 0;
      // Cut only at a single space between two words, where BPE never merges across anyway.
      const betweenWords =
        text.charCodeAt(i) === 32 && !isSpace(text.charCodeAt(i - 1)) && !isSpace(text.charCodeAt(i + 1));
      // Whitespace-only stretches have no word boundary: cut them anywhere past twice the size.
      if ((i - start >= MAX_SEGMENT && betweenWords) || i - start >= 2 * MAX_SEGMENT) {
        out.push(text.slice(start, i));
        start = i;
      }
    } else if (++run > MAX_RUN) {
      out.push(text.slice(start, i));
      start = i;
      run = 1;
    }
  }
  if (start < text.length) out.push(text.slice(start));
  return out;
}

/** Counts the tokens of `texts` with `name`, in time linear in their length. Synchronous: keep inputs small. */
export function countTokensSync(texts: readonly string[], name: EncodingName): number {
  const enc = encoding(name);
  let total = 0;
  for (const text of texts) for (const piece of segments(text)) total += enc.encode_ordinary(piece).length;
  return total;
}

/** Loads an encoding ahead of the first request (the first load takes ~300 ms). */
export function preloadEncoding(name: EncodingName): void {
  encoding(name);
}
