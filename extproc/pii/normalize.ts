/**
 * The text the PII detectors read: what a reader (or a model) sees, not the code points an attacker chose.
 * An address written `jo\u200Bhn＠example.com` or a card number grouped with no-break spaces reads as the
 * plain value, so the detectors must see the plain value; the action then replaces the original characters.
 *
 * The view is the text with, in this order:
 * - default-ignorable code points removed (zero-width spaces and joiners, soft hyphen, BOM, bidi controls,
 *   variation selectors, tag characters);
 * - NFKC applied to each character together with the combining marks that follow it (fullwidth and other
 *   compatibility forms become their plain forms: `＠` → `@`, `１` → `1`, `ﬁ` → `fi`, no-break and other
 *   typographic spaces → ` `);
 * - separators folded: every space (`\p{Zs}`) to ` `, dashes and the minus sign to `-`, dot-like marks
 *   (one dot leader, middle dots, ideographic full stop) to `.`, and decimal digits of every script to
 *   ASCII digits.
 *
 * Each changed stretch of the original (a character with its marks, or a run of removed characters) is
 * recorded with its position in both texts, so that any span of the view maps back to the original
 * characters it came from. Texts with nothing to change (all ASCII, the usual case) get no records.
 */
import { Buffer } from "node:buffer";

/** Dashes and the minus sign (NFKC already maps the fullwidth and small hyphen-minus to `-`). */
const DASHES = "\u2010-\u2015\u2212\u2E3A\u2E3B\uFE58";
/** Dot-like marks read as a dot between digits or labels (IDNA also treats U+3002 as a label dot). */
const DOTS = "\u00B7\u2027\u2219\u22C5\u2E31\u3002\u30FB";

const INVISIBLE = /\p{Default_Ignorable_Code_Point}/u;
/** Code points that normalize together with the one before them (combining marks, conjoining jamo, kana voicing marks). */
const ATTACHES = /[\p{M}\u1160-\u11FF\uD7B0-\uD7FF\uFF9E\uFF9F]/u;
const FOLDED = new RegExp(`(?![\\0-\\x7F])[\\p{Zs}\\p{Nd}${DASHES}${DOTS}]`, "gu");
const DASH = new RegExp(`[${DASHES}]`, "u");
const DOT = new RegExp(`[${DOTS}]`, "u");
const SPACE = /\p{Zs}/u;
const DECIMAL_DIGIT = /\p{Nd}/u;

/** Decimal digit values of non-ASCII digits, found when first seen. */
const digitValues = new Map<string, string>();

/**
 * The value of a decimal digit: Unicode encodes each script's digits 0 to 9 as one contiguous run, so the
 * value is the distance from the start of the run of digits it sits in, modulo 10 (runs can abut).
 */
function digitValue(digit: string): string {
  let value = digitValues.get(digit);
  if (value === undefined) {
    let cp = digit.codePointAt(0)!;
    let steps = 0;
    while (DECIMAL_DIGIT.test(String.fromCodePoint(cp - 1))) {
      cp--;
      steps++;
    }
    value = String(steps % 10);
    digitValues.set(digit, value);
  }
  return value;
}

function foldOne(ch: string): string {
  if (SPACE.test(ch)) return " ";
  if (DASH.test(ch)) return "-";
  if (DOT.test(ch)) return ".";
  return digitValue(ch);
}

/** Segments already normalized: a text repeats few distinct ones, and a normalize call costs ~0.4 µs. */
const normalizedSegments = new Map<string, string>();
const MAX_CACHED_SEGMENTS = 65_536;

/** NFKC of one character with its marks, then separators and digits folded. */
const normalizeOnce = (segment: string): string => segment.normalize("NFKC").replace(FOLDED, foldOne);

/** {@link normalizeOnce}, cached. */
function normalizeSegment(segment: string): string {
  let normalized = normalizedSegments.get(segment);
  if (normalized === undefined) {
    normalized = normalizeOnce(segment);
    if (normalizedSegments.size >= MAX_CACHED_SEGMENTS) normalizedSegments.clear();
    normalizedSegments.set(segment, normalized);
  }
  return normalized;
}

/** Int32 columns that grow by doubling. */
class Column {
  values = new Int32Array(16);
  push(index: number, value: number): void {
    if (index === this.values.length) {
      const grown = new Int32Array(this.values.length * 2);
      grown.set(this.values);
      this.values = grown;
    }
    this.values[index] = value;
  }
}

/**
 * The changed stretches, in order: view [viewStart, viewEnd) came from original [originalStart,
 * originalEnd). Between two stretches (and before the first) the texts agree unit for unit.
 */
class Stretches {
  count = 0;
  readonly viewStart = new Column();
  readonly viewEnd = new Column();
  readonly originalStart = new Column();
  readonly originalEnd = new Column();

  add(viewStart: number, viewEnd: number, originalStart: number, originalEnd: number): void {
    const last = this.count - 1;
    // Adjacent removed runs become one stretch (a thousand zero-width spaces are one record).
    if (
      viewStart === viewEnd &&
      last >= 0 &&
      this.viewStart.values[last] === viewStart &&
      this.viewEnd.values[last] === viewStart &&
      this.originalEnd.values[last] === originalStart
    ) {
      this.originalEnd.values[last] = originalEnd;
      return;
    }
    this.viewStart.push(this.count, viewStart);
    this.viewEnd.push(this.count, viewEnd);
    this.originalStart.push(this.count, originalStart);
    this.originalEnd.push(this.count, originalEnd);
    this.count++;
  }

  /** Index of the last stretch starting at or before view position `at`, or -1 (binary search). */
  lastAtOrBefore(at: number): number {
    let low = 0;
    let high = this.count - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (this.viewStart.values[mid]! <= at) {
        found = mid;
        low = mid + 1;
      } else {
        high = mid - 1;
      }
    }
    return found;
  }
}

/** A text as the detectors read it, and the way back to the original text's positions. */
export class DetectionView {
  private constructor(
    /** The normalized text the detectors run on. */
    readonly text: string,
    /** Whether the view is the original text itself. */
    readonly unchanged: boolean,
    private readonly stretches: Stretches | undefined,
  ) {}

  /** The detection view of `original`; linear in its length. */
  static of(original: string): DetectionView {
    if (Buffer.byteLength(original, "utf8") === original.length)
      return new DetectionView(original, true, undefined);
    const builder = new ViewBuilder(original);
    const text = builder.build();
    return new DetectionView(text, !builder.changed, builder.stretches);
  }

  /**
   * The original span that view span [start, end) came from (start < end). A span that begins or ends
   * inside a changed stretch (one half of `ﬁ`'s `fi`) takes the whole stretch; removed characters inside
   * the span are part of it, those just before or after it are not.
   */
  originalSpan(start: number, end: number): [number, number] {
    if (this.stretches === undefined || this.stretches.count === 0) return [start, end];
    return [this.original(start, "start"), this.original(end - 1, "end")];
  }

  /** Original start (or end) of the character at view position `at`. */
  private original(at: number, side: "start" | "end"): number {
    const s = this.stretches!;
    const k = s.lastAtOrBefore(at);
    const after = side === "end" ? 1 : 0;
    if (k === -1) return at + after;
    const viewEnd = s.viewEnd.values[k]!;
    if (at < viewEnd) return side === "start" ? s.originalStart.values[k]! : s.originalEnd.values[k]!;
    return s.originalEnd.values[k]! + (at - viewEnd) + after;
  }
}

/** What a character is to the view. */
const PLAIN = 0; // kept as it is
const REMOVED = 1; // invisible
const ATTACHED = 2; // normalizes with the character before it
const CHANGED = 3; // normalized or folded on its own

function classOf(ch: string): number {
  if (INVISIBLE.test(ch)) return REMOVED;
  if (ATTACHES.test(ch)) return ATTACHED;
  return normalizeOnce(ch) === ch ? PLAIN : CHANGED;
}

let bmpClasses: Uint8Array | undefined;
const astralClasses = new Map<number, number>();
/** The view of single BMP characters, as they are first met. */
const bmpNormalized: Array<string | undefined> = [];

/**
 * The class of every BMP character, computed once (about 30 ms) for the first non-ASCII text: a regex
 * test and a normalize call per character would make the pass ten times slower.
 */
function bmpClass(): Uint8Array {
  if (bmpClasses === undefined) {
    bmpClasses = new Uint8Array(0x10000);
    for (let code = 0x80; code < 0x10000; code++)
      if (code < 0xd800 || code > 0xdfff) bmpClasses[code] = classOf(String.fromCharCode(code));
  }
  return bmpClasses;
}

function astralClass(codePoint: number): number {
  let kind = astralClasses.get(codePoint);
  if (kind === undefined) astralClasses.set(codePoint, (kind = classOf(String.fromCodePoint(codePoint))));
  return kind;
}

const INVISIBLE_ALL = new RegExp(INVISIBLE.source, "gu");

/** Builds a view in one pass: unchanged stretches are copied whole, each changed one is recorded. */
class ViewBuilder {
  readonly stretches = new Stretches();
  /** Whether any character was changed. */
  changed = false;
  private readonly parts: string[] = [];
  private length = 0;
  /** Start of the original text not yet in the view (unchanged so far). */
  private pending = 0;

  constructor(private readonly original: string) {}

  /**
   * The view. A segment is one character with what follows it up to the next character: combining marks,
   * which normalize with it, and removed characters, which belong to no value (a removed character at the
   * very start is a segment of its own).
   */
  build(): string {
    const text = this.original;
    const table = bmpClass();
    for (let at = 0; at < text.length;) {
      if (text.charCodeAt(at) < 0x80) {
        at++;
        continue;
      }
      const kind = this.kindAt(at, table);
      if (kind === PLAIN) {
        at += this.widthAt(at);
        continue;
      }
      // A mark or removed character joins the character before it (that one was PLAIN: a changed one's
      // segment would have taken this one in).
      let start = at;
      if (kind !== CHANGED && at > this.pending) start = at - (this.isPairEnd(at) ? 2 : 1);
      let end = at + this.widthAt(at);
      let removed = kind === REMOVED;
      while (end < text.length) {
        const next = this.kindAt(end, table);
        if (next !== REMOVED && next !== ATTACHED) break;
        removed ||= next === REMOVED;
        end += this.widthAt(end);
      }
      this.segment(start, end, removed);
      at = end;
    }
    if (!this.changed) return text;
    this.copy(text.length);
    return this.parts.join("");
  }

  private widthAt(at: number): number {
    const code = this.original.charCodeAt(at);
    if (code < 0xd800 || code > 0xdbff) return 1;
    const low = this.original.charCodeAt(at + 1);
    return low >= 0xdc00 && low <= 0xdfff ? 2 : 1;
  }

  private isPairEnd(at: number): boolean {
    const low = this.original.charCodeAt(at - 1);
    const high = at >= 2 ? this.original.charCodeAt(at - 2) : 0;
    return low >= 0xdc00 && low <= 0xdfff && high >= 0xd800 && high <= 0xdbff;
  }

  private kindAt(at: number, table: Uint8Array): number {
    const code = this.original.charCodeAt(at);
    if (code < 0x80) return PLAIN;
    if (this.widthAt(at) === 1) return table[code]!;
    return astralClass(this.original.codePointAt(at)!);
  }

  /** Adds the unchanged original text up to `end`. */
  private copy(end: number): void {
    if (end > this.pending) {
      this.parts.push(this.original.slice(this.pending, end));
      this.length += end - this.pending;
    }
    this.pending = end;
  }

  /** The view of one BMP character on its own (changed or removed). */
  private single(code: number): string {
    let normalized = bmpNormalized[code];
    if (normalized === undefined) {
      const ch = String.fromCharCode(code);
      bmpNormalized[code] = normalized = INVISIBLE.test(ch) ? "" : normalizeSegment(ch);
    }
    return normalized;
  }

  /** Adds the normalized form of original [start, end), a character with what follows it. */
  private segment(start: number, end: number, removed: boolean): void {
    const segment = this.original.slice(start, end);
    const normalized =
      end - start === 1
        ? this.single(segment.charCodeAt(0))
        : normalizeSegment(removed ? segment.replace(INVISIBLE_ALL, "") : segment);
    if (normalized === segment) return;
    this.copy(start);
    // One unit for one (`＠` → `@`) needs no record: positions on both sides stay in step.
    if (!(end - start === 1 && normalized.length === 1))
      this.stretches.add(this.length, this.length + normalized.length, start, end);
    this.changed = true;
    this.parts.push(normalized);
    this.length += normalized.length;
    this.pending = end;
  }
}
