/**
 * A clock a test owns, for the processes the harness starts with it (extproc): day and month windows then
 * never meet a real midnight or 1st of the month mid-test, and a test can put the clock just before one.
 * The processes load ./preload.ts, which reads the time from the clock file this module writes.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "../../../deploy/render/files.js";

/** The preload module, as `node --import` takes it. */
export const CLOCK_PRELOAD = path.join(ROOT, "dist/test/harness/clock/preload.js");

/** The environment variable naming the clock file for the preload. */
export const CLOCK_FILE_VARIABLE = "GATEWAY_TEST_CLOCK";

/**
 * A time far from any day or month edge (2026-06-15 12:00 UTC): where tests that spend day or month limits
 * start their owned clock, so no window resets under them.
 */
export const CLEAR_OF_WINDOW_EDGES = Date.UTC(2026, 5, 15, 12);

/** How to set an {@link OwnedClock}. */
export interface ClockSettingOptions {
  /** The clock stands still at the time set (by default it advances from it, as a real clock does). */
  readonly frozen?: boolean;
}

/** A clock the test sets; processes started with it read their time from it. */
export class OwnedClock {
  private version = 0;
  private setting = { at: 0, setAt: 0, frozen: false };

  /** A clock in `file` that starts at `at` (epoch ms). */
  constructor(
    readonly file: string,
    at: number,
    options: ClockSettingOptions = {},
  ) {
    this.write(at, options);
  }

  /** What the clock reads now (epoch ms). */
  now(): number {
    const { at, setAt, frozen } = this.setting;
    return frozen ? at : at + (Date.now() - setAt);
  }

  /** Sets the clock to `at` (epoch ms) and waits until each process in `pids` reads the new time. */
  async set(at: number, pids: readonly number[], options: ClockSettingOptions = {}): Promise<void> {
    const version = this.write(at, options);
    const deadline = Date.now() + 10_000;
    for (const pid of pids) {
      while (this.seenBy(pid) < version) {
        if (Date.now() > deadline) throw new Error(`process ${pid} did not read the owned clock in 10 s`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  }

  private write(at: number, options: ClockSettingOptions): number {
    this.setting = { at, setAt: Date.now(), frozen: options.frozen ?? false };
    this.version++;
    // Whole or not at all: the preload polls the file and must never read half of it.
    writeFileSync(`${this.file}.new`, JSON.stringify({ ...this.setting, version: this.version }));
    renameSync(`${this.file}.new`, this.file);
    return this.version;
  }

  private seenBy(pid: number): number {
    try {
      return Number(readFileSync(`${this.file}.${pid}`, "utf8"));
    } catch {
      return 0;
    }
  }
}
