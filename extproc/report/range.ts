/**
 * One byte range of an audit file read for a report, on a worker thread or in the main one: its lines
 * (those that start in the range) parsed once, their hash chain checked inside the range, and their records
 * added up. Reads go through one buffer per reader; it grows only to hold a line longer than itself.
 */
import { isUtf8 } from "node:buffer";
import { closeSync, openSync, readSync } from "node:fs";
import { ChainVerifier, type ChainRange } from "../audit/index.js";
import { Aggregator, type AggregateState } from "./aggregate.js";
import type { Dimension } from "./period.js";

/** A range to read: the lines of `file` that start at a byte in [`start`, `end`). */
export interface RangeTask {
  readonly file: string;
  readonly start: number;
  readonly end: number;
  readonly by: readonly Dimension[];
  readonly from: string | undefined;
  readonly to: string | undefined;
}

/** What a range held: its chain, for the main thread to join at the seams, and its sums. */
export interface RangeResult {
  readonly chain: ChainRange;
  readonly sums: AggregateState;
}

const NEWLINE = 0x0a;
const READ_BYTES = 1 << 20;

/** A reader's buffer, kept across the ranges it reads. */
let buffer = Buffer.allocUnsafe(READ_BYTES);

/** Reads the range `task` names (synchronously: a reader does nothing else meanwhile). */
export function readRange(task: RangeTask): RangeResult {
  const verifier = new ChainVerifier([], { midChain: true });
  const aggregator = new Aggregator(task.by, task.from, task.to);
  const fd = openSync(task.file, "r");
  try {
    // The bytes in buffer[0, filled) are the file's from `position`; a line starts at `lineStart`.
    let position = task.start > 0 ? task.start - 1 : 0;
    let filled = 0;
    let lineStart = 0;
    // A range that starts mid-line skips that line: the previous range reads it.
    let skipping = task.start > 0;
    for (;;) {
      if (lineStart > 0) {
        buffer.copy(buffer, 0, lineStart, filled);
        position += lineStart;
        filled -= lineStart;
        lineStart = 0;
      }
      if (filled === buffer.length) buffer = Buffer.concat([buffer, Buffer.allocUnsafe(buffer.length)]);
      const read = readSync(fd, buffer, filled, buffer.length - filled, position + filled);
      const atEnd = read === 0;
      filled += read;
      for (;;) {
        if (!skipping && position + lineStart >= task.end)
          return { chain: verifier.range(), sums: aggregator.state() };
        const newline = buffer.indexOf(NEWLINE, lineStart);
        if (newline === -1 || newline >= filled) {
          if (!atEnd) break;
          // The file's last line, without a newline.
          if (!skipping && lineStart < filled) line(lineStart, filled);
          return { chain: verifier.range(), sums: aggregator.state() };
        }
        if (skipping) skipping = false;
        else line(lineStart, newline);
        lineStart = newline + 1;
      }
    }
  } finally {
    closeSync(fd);
  }

  function line(from: number, to: number): void {
    const bytes = buffer.subarray(from, to);
    // A line torn mid-character is hashed as the text it decodes to, as extproc hashed it when it resumed.
    const record = verifier.check(bytes.toString("utf8"), isUtf8(bytes) ? bytes : undefined);
    if (record) aggregator.add(record);
  }
}
