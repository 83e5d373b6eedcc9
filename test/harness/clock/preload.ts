/**
 * Loaded with `node --import` into a process the harness starts with an owned clock (see ./index.ts), before
 * any of its own code: `Date.now()`, `new Date()` and `Date()` then read the clock the test set in the file
 * named by GATEWAY_TEST_CLOCK, not the machine's. Nothing in the product knows: it reads the time as always.
 *
 * The file holds `{"at": epochMs, "setAt": wallMs, "frozen": bool, "version": n}`. An advancing clock reads
 * `at` plus the time since `setAt` (so a restarted process continues the same clock), then advances with the
 * monotonic clock; a frozen one always reads `at`. Each version seen is acknowledged in `<file>.<pid>`, so
 * the test knows when the process has moved to a new time.
 */
import { readFileSync, watchFile, writeFileSync } from "node:fs";

interface ClockSetting {
  readonly at: number;
  readonly setAt: number;
  readonly frozen: boolean;
  readonly version: number;
}

const file = process.env.GATEWAY_TEST_CLOCK;
if (!file) throw new Error("the owned-clock preload needs GATEWAY_TEST_CLOCK (the clock file)");
const clockFile: string = file;
const RealDate = Date;
const realNow = RealDate.now.bind(RealDate);

/** The owned time at `monotonicBase`, and the monotonic time then. */
let base = { owned: 0, monotonic: 0, frozen: false };

function apply(): void {
  const setting = JSON.parse(readFileSync(clockFile, "utf8")) as ClockSetting;
  base = {
    owned: setting.frozen ? setting.at : setting.at + (realNow() - setting.setAt),
    monotonic: performance.now(),
    frozen: setting.frozen,
  };
  writeFileSync(`${clockFile}.${process.pid}`, String(setting.version));
}

const ownedNow = (): number =>
  base.frozen ? base.owned : Math.floor(base.owned + (performance.now() - base.monotonic));

apply();
// Polled, not fs.watch: a rename-free rewrite of one small file is all there is to see. Unref'd: the clock
// must not keep a process alive.
watchFile(clockFile, { interval: 20, persistent: false }, () => {
  try {
    apply();
  } catch {
    // a half-written file: the next poll reads the whole one
  }
});

/** `Date` with the owned clock as "now"; every other use is the real `Date`'s. */
function OwnedDate(this: unknown, ...args: unknown[]): unknown {
  if (new.target === undefined) return new RealDate(ownedNow()).toString();
  return Reflect.construct(RealDate, args.length === 0 ? [ownedNow()] : args, new.target);
}
Object.setPrototypeOf(OwnedDate, RealDate);
OwnedDate.prototype = RealDate.prototype;
Object.defineProperty(OwnedDate, "now", { value: ownedNow, writable: true, configurable: true });
globalThis.Date = OwnedDate as unknown as DateConstructor;
