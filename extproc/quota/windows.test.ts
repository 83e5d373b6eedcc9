import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { dayWindow, formatDuration, monthWindow } from "./windows.js";

const utc = (iso: string) => Date.parse(iso);

describe("dayWindow", () => {
  it("names the UTC day and ends at the next UTC midnight", () => {
    assert.deepEqual(dayWindow(utc("2026-11-22T12:00:00Z")), {
      id: "2026-11-22",
      endsAt: utc("2026-11-23T00:00:00Z"),
    });
  });

  it("includes the first and last millisecond of the day", () => {
    const end = utc("2026-11-23T00:00:00Z");
    assert.deepEqual(dayWindow(utc("2026-11-22T00:00:00.000Z")), { id: "2026-11-22", endsAt: end });
    assert.deepEqual(dayWindow(end - 1), { id: "2026-11-22", endsAt: end });
    assert.deepEqual(dayWindow(end), { id: "2026-11-23", endsAt: utc("2026-11-24T00:00:00Z") });
  });

  it("rolls over months and years", () => {
    assert.deepEqual(dayWindow(utc("2026-01-31T08:00:00Z")), {
      id: "2026-01-31",
      endsAt: utc("2026-02-01T00:00:00Z"),
    });
    assert.deepEqual(dayWindow(utc("2026-04-30T23:59:59.999Z")), {
      id: "2026-04-30",
      endsAt: utc("2026-05-01T00:00:00Z"),
    });
    assert.deepEqual(dayWindow(utc("2026-12-31T18:30:00Z")), {
      id: "2026-12-31",
      endsAt: utc("2027-01-01T00:00:00Z"),
    });
  });

  it("knows leap days", () => {
    assert.deepEqual(dayWindow(utc("2028-02-28T12:00:00Z")), {
      id: "2028-02-28",
      endsAt: utc("2028-02-29T00:00:00Z"),
    });
    assert.deepEqual(dayWindow(utc("2028-02-29T12:00:00Z")), {
      id: "2028-02-29",
      endsAt: utc("2028-03-01T00:00:00Z"),
    });
    // Not a leap year: February 28 is followed by March 1.
    assert.deepEqual(dayWindow(utc("2027-02-28T12:00:00Z")), {
      id: "2027-02-28",
      endsAt: utc("2027-03-01T00:00:00Z"),
    });
  });

  it("is 24 hours long even on a daylight saving change day", () => {
    // Europe moves its clocks on 2026-03-29; a UTC day is unaffected.
    const { id, endsAt } = dayWindow(utc("2026-03-29T01:30:00Z"));
    assert.equal(id, "2026-03-29");
    assert.equal(endsAt - utc("2026-03-29T00:00:00Z"), 86_400_000);
  });
});

describe("monthWindow", () => {
  it("names the UTC month and ends at the first of the next month", () => {
    assert.deepEqual(monthWindow(utc("2026-11-22T12:00:00Z")), {
      id: "2026-11",
      endsAt: utc("2026-12-01T00:00:00Z"),
    });
    assert.deepEqual(monthWindow(utc("2026-01-31T23:59:59.999Z")), {
      id: "2026-01",
      endsAt: utc("2026-02-01T00:00:00Z"),
    });
    assert.deepEqual(monthWindow(utc("2026-02-01T00:00:00Z")), {
      id: "2026-02",
      endsAt: utc("2026-03-01T00:00:00Z"),
    });
  });

  it("rolls December over into January of the next year", () => {
    assert.deepEqual(monthWindow(utc("2026-12-31T23:59:59.999Z")), {
      id: "2026-12",
      endsAt: utc("2027-01-01T00:00:00Z"),
    });
    assert.deepEqual(monthWindow(utc("2027-01-01T00:00:00Z")), {
      id: "2027-01",
      endsAt: utc("2027-02-01T00:00:00Z"),
    });
  });

  it("gives February 29 days in a leap year and 28 otherwise", () => {
    const leap = monthWindow(utc("2028-02-29T12:00:00Z"));
    assert.deepEqual(leap, { id: "2028-02", endsAt: utc("2028-03-01T00:00:00Z") });
    assert.equal(leap.endsAt - utc("2028-02-01T00:00:00Z"), 29 * 86_400_000);
    const common = monthWindow(utc("2027-02-15T00:00:00Z"));
    assert.equal(common.endsAt - utc("2027-02-01T00:00:00Z"), 28 * 86_400_000);
  });

  it("uses UTC whatever the process time zone", () => {
    const saved = process.env.TZ;
    try {
      // UTC+14: 2026-12-31T20:00Z is already 2027-01-01 locally.
      process.env.TZ = "Pacific/Kiritimati";
      const now = utc("2026-12-31T20:00:00Z");
      assert.equal(new Date(now).getDate(), 1, "the time zone change took effect");
      assert.deepEqual(dayWindow(now), { id: "2026-12-31", endsAt: utc("2027-01-01T00:00:00Z") });
      assert.deepEqual(monthWindow(now), { id: "2026-12", endsAt: utc("2027-01-01T00:00:00Z") });
      // UTC-10: 2026-03-01T05:00Z is still February 28 locally.
      process.env.TZ = "Pacific/Honolulu";
      const early = utc("2026-03-01T05:00:00Z");
      assert.deepEqual(dayWindow(early), { id: "2026-03-01", endsAt: utc("2026-03-02T00:00:00Z") });
      assert.deepEqual(monthWindow(early), { id: "2026-03", endsAt: utc("2026-04-01T00:00:00Z") });
    } finally {
      if (saved === undefined) delete process.env.TZ;
      else process.env.TZ = saved;
    }
  });
});

/** Durations as Go prints them (what OpenAI sends): `999ms`, `59.999s`, `1m0s`, `2h3m0s`. */
const CANONICAL = /^(?:(?:[1-9]\d{0,2}|0)ms|(?:[1-9]\d*h)?(?:[0-5]?\d)m[0-5]?\ds|[1-5]?\d(?:\.\d+)?s)$/;

describe("formatDuration", () => {
  it("prints sub-second durations in whole milliseconds, rounded up", () => {
    assert.equal(formatDuration(0), "0ms");
    assert.equal(formatDuration(0.4), "1ms");
    assert.equal(formatDuration(250), "250ms");
    assert.equal(formatDuration(999), "999ms");
  });

  it("never prints a negative duration", () => {
    assert.equal(formatDuration(-5), "0ms");
  });

  it("prints seconds with up to three decimals and no trailing zeros", () => {
    assert.equal(formatDuration(1000), "1s");
    assert.equal(formatDuration(1500), "1.5s");
    assert.equal(formatDuration(1234.5678), "1.235s");
    assert.equal(formatDuration(20_000), "20s");
    assert.equal(formatDuration(59_999), "59.999s");
  });

  it("prints minutes and hours with whole seconds, as OpenAI does", () => {
    assert.equal(formatDuration(60_000), "1m0s");
    assert.equal(formatDuration(61_000), "1m1s");
    assert.equal(formatDuration(360_000), "6m0s");
    assert.equal(formatDuration(3_599_999), "59m59s");
    assert.equal(formatDuration(3_600_000), "1h0m0s");
    assert.equal(formatDuration(2 * 3_600_000 + 3 * 60_000), "2h3m0s");
    assert.equal(formatDuration(86_400_000), "24h0m0s");
  });

  it("prints the canonical form for every integer duration the stores report", () => {
    for (const ms of [
      0, 1, 17, 999, 1000, 1001, 9_999, 59_000, 59_999, 60_000, 60_001, 3_599_999, 86_399_999,
    ]) {
      assert.match(formatDuration(ms), CANONICAL, `${ms} ms`);
    }
  });

  it("carries a fraction that rounds up to a whole unit into that unit (never 1000ms or 60s)", () => {
    // 999.2 ms rounds up to 1000 ms: that is "1s", not "1000ms"; 59.9996 s rounds to 60 s: "1m0s", not "60s".
    for (const ms of [999.2, 999.9995, 59_999.5, 59_999.6, 59_999.9]) {
      assert.match(formatDuration(ms), CANONICAL, `${ms} ms gave ${formatDuration(ms)}`);
    }
    assert.equal(formatDuration(999.2), "1s");
    assert.equal(formatDuration(59_999.6), "1m0s");
  });
});
