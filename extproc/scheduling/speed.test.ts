import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SpeedEstimate } from "./speed.js";

/** Feeds `estimate` reads every 100 ms for `ms`: `running` requests, each done after `requestMs`. */
function serve(
  estimate: SpeedEstimate,
  from: { at: number; done: number },
  ms: number,
  running: number,
  requestMs: number,
) {
  for (let t = 100; t <= ms; t += 100)
    estimate.observe(from.at + t, from.done + (running * t) / requestMs, running);
  from.at += ms;
  from.done += (running * ms) / requestMs;
}

describe("SpeedEstimate", () => {
  it("measures how fast a request runs, not how much was sent: one request at a time or four, the same speed", () => {
    for (const running of [1, 4]) {
      const estimate = new SpeedEstimate(2000);
      const clock = { at: 0, done: 0 };
      estimate.observe(0, 0, running);
      serve(estimate, clock, 3000, running, 500);
      assert.ok(Math.abs(estimate.perSecond()! - 2) < 1e-9, `${running} running: ${estimate.perSecond()}`);
    }
  });

  it("keeps a speed through an idle time, follows a change within a few windows, and forgets after a long idle", () => {
    const estimate = new SpeedEstimate(1000);
    const clock = { at: 0, done: 0 };
    estimate.observe(0, 0, 2);
    serve(estimate, clock, 3000, 2, 250);
    assert.ok(Math.abs(estimate.perSecond()! - 4) < 1e-9);
    serve(estimate, clock, 100, 0, 250); // the last requests end
    const before = estimate.perSecond()!;
    serve(estimate, clock, 5000, 0, 250);
    assert.ok(Math.abs(estimate.perSecond()! - before) < 1e-9, "idle: unchanged");
    // Four times slower from now on: after three windows the estimate is most of the way there.
    serve(estimate, clock, 3000, 2, 1000);
    const after = estimate.perSecond()!;
    assert.ok(after > 1 && after < 1.3, String(after));
    serve(estimate, clock, 30_000, 0, 1000);
    assert.equal(estimate.perSecond(), undefined, "forgotten");
  });

  it("is unknown until something finished while running was seen, and for unusable figures", () => {
    const estimate = new SpeedEstimate(1000);
    estimate.observe(0, 5, 3);
    estimate.observe(100, 5, 3);
    assert.equal(estimate.perSecond(), undefined, "nothing finished yet");
    estimate.observe(200, 6, 3);
    assert.ok(estimate.perSecond()! > 0);
    estimate.observe(300, Infinity, 3);
    assert.equal(estimate.perSecond(), undefined);
    estimate.observe(400, 7, 3);
    estimate.observe(500, 8, -1);
    assert.equal(estimate.perSecond(), undefined, "a negative running gauge is garbage");
  });
});
