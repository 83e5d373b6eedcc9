import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { loadOf, pickEndpoint, queueOf, stringHash, type EndpointState } from "./picker.js";

const state = (address: string, over: Partial<EndpointState> = {}): EndpointState => ({
  address,
  known: true,
  waiting: 0,
  running: 0,
  kvUsage: 0,
  assigned: 0,
  inFlight: 0,
  speed: undefined,
  ...over,
});
const SETTINGS = { queueMargin: 2 };
/** Random endpoint states but for the speed, for the properties. */
const ENDPOINT_FIELDS = {
  address: fc.constantFrom("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "[fd00::1]:80"),
  known: fc.boolean(),
  waiting: fc.nat(100),
  running: fc.nat(100),
  kvUsage: fc.double({ min: 0, max: 1, noNaN: true }),
  assigned: fc.nat(20),
  inFlight: fc.nat(40),
};

describe("pickEndpoint", () => {
  it("chooses the lowest load: the server's waiting + running and what was sent since, or what is in flight", () => {
    const a = state("10.0.0.1:8000", { waiting: 3, running: 4 });
    const b = state("10.0.0.2:8000", { waiting: 1, running: 4 });
    assert.deepEqual(pickEndpoint([a, b], undefined, SETTINGS), { endpoint: b.address, reason: "queue" });
    assert.equal(pickEndpoint([a, { ...b, assigned: 3 }], undefined, SETTINGS).endpoint, a.address);
    // More of this replica's requests in flight than the (older) read shows: the in-flight count decides.
    assert.equal(pickEndpoint([a, { ...b, inFlight: 8 }], undefined, SETTINGS).endpoint, a.address);
    assert.equal(loadOf({ ...b, inFlight: 8 }), 8);
    // Equal load: the emptier KV cache, then the lower address.
    const [x, y] = [state("x:1", { kvUsage: 0.9, running: 1 }), state("y:1", { kvUsage: 0.2, waiting: 1 })];
    assert.equal(pickEndpoint([x, y], undefined, SETTINGS).endpoint, "y:1");
    assert.equal(pickEndpoint([state("y:1"), state("x:1")], undefined, SETTINGS).endpoint, "x:1");
  });

  it("weighs load by speed: a faster server takes more, an unknown speed counts as the pool's mean", () => {
    const slow = state("10.0.0.1:8000", { running: 2, speed: 1 });
    const fast = state("10.0.0.2:8000", { running: 2, speed: 3 });
    assert.deepEqual(pickEndpoint([slow, fast], undefined, SETTINGS), {
      endpoint: fast.address,
      reason: "queue",
    });
    // (load + 1) / speed: the fast one while its load is below three times the slow one's and two more;
    // at that load both are equally soon done, and the lower address goes first.
    assert.equal(pickEndpoint([slow, { ...fast, waiting: 5 }], undefined, SETTINGS).endpoint, fast.address);
    assert.equal(pickEndpoint([slow, { ...fast, waiting: 6 }], undefined, SETTINGS).endpoint, slow.address);
    // A new server (no speed yet) counts as average (2): idle, it beats both.
    const fresh = state("10.0.0.3:8000");
    assert.equal(pickEndpoint([slow, fast, fresh], undefined, SETTINGS).endpoint, fresh.address);
    assert.equal(
      pickEndpoint([slow, fast, { ...fresh, running: 2 }], undefined, SETTINGS).endpoint,
      fast.address,
      "with equal load it is between the two",
    );
    assert.equal(
      pickEndpoint(
        [
          { ...slow, speed: 0 },
          { ...fresh, running: 2 },
        ],
        undefined,
        SETTINGS,
      ).endpoint,
      "10.0.0.1:8000",
      "a speed of 0 is unknown, not infinitely slow",
    );
    // Unknown endpoints' speeds do not count towards the mean (else the fresh one would count as 50 and
    // win outright; as 1 it ties with the slow one, and a tie goes to the one not measured yet), and the
    // fastest unknown one is never chosen.
    const gone = state("10.0.0.4:8000", { known: false, speed: 100 });
    assert.equal(
      pickEndpoint([slow, gone, { ...fresh, running: 2 }], undefined, SETTINGS).endpoint,
      fresh.address,
    );
    assert.equal(
      pickEndpoint([slow, gone, { ...fresh, running: 3 }], undefined, SETTINGS).endpoint,
      slow.address,
    );
  });

  it("sends nothing to a full endpoint (maxSequences) while another has a free sequence, however fast", () => {
    const fast = state("10.0.0.2:8000", { running: 4, speed: 3 });
    const slow = state("10.0.0.1:8000", { running: 2, speed: 1 });
    // By speed alone the full fast server wins: (4 + 1) / 3 < (2 + 1) / 1.
    assert.equal(pickEndpoint([fast, slow], undefined, SETTINGS).endpoint, fast.address);
    const settings = { ...SETTINGS, maxSequences: 4 };
    assert.equal(pickEndpoint([fast, slow], undefined, settings).endpoint, slow.address);
    // Affinity does not override it either.
    const key = [...Array(64).keys()]
      .map((i) => stringHash(`p${i}`))
      .find(
        (k) =>
          pickEndpoint([fast, { ...slow, running: 0 }], k, SETTINGS).reason === "affinity" &&
          pickEndpoint([fast, { ...slow, running: 0 }], k, SETTINGS).endpoint === fast.address,
      )!;
    assert.equal(pickEndpoint([fast, slow], key, settings).endpoint, slow.address);
    // All full: by expected wait again.
    assert.equal(pickEndpoint([fast, { ...slow, running: 4 }], undefined, settings).endpoint, fast.address);
  });

  it("gives a tie to the endpoint whose speed is not known yet, so a new server gets measured", () => {
    const known = state("10.0.0.1:8000", { speed: 2 });
    const fresh = state("10.0.0.2:8000");
    assert.equal(pickEndpoint([known, fresh], undefined, SETTINGS).endpoint, fresh.address);
  });

  it("never picks an unknown endpoint, and names none when nothing is known", () => {
    const idle = state("10.0.0.1:8000", { known: false });
    const busy = state("10.0.0.2:8000", { waiting: 50 });
    assert.equal(pickEndpoint([idle, busy], undefined, SETTINGS).endpoint, busy.address);
    assert.deepEqual(pickEndpoint([idle], stringHash("p"), SETTINGS), {
      endpoint: undefined,
      reason: "no_state",
    });
    assert.deepEqual(pickEndpoint([], undefined, SETTINGS), { endpoint: undefined, reason: "no_state" });
  });

  it("sends one prefix to one endpoint, different prefixes to both, and drops affinity beyond the queue margin", () => {
    const endpoints = [state("10.0.0.1:8000"), state("10.0.0.2:8000")];
    const chosen = new Set<string>();
    for (let i = 0; i < 64; i++) {
      const key = stringHash(`system prompt ${i}`);
      const first = pickEndpoint(endpoints, key, SETTINGS);
      assert.equal(first.reason, "affinity");
      assert.deepEqual(pickEndpoint([...endpoints].reverse(), key, SETTINGS), first, "order does not matter");
      chosen.add(first.endpoint!);
      const affine = endpoints.find((e) => e.address === first.endpoint)!;
      const other = endpoints.find((e) => e !== affine)!;
      // Within the margin it stays; one more request beyond it and the shorter queue wins.
      // Running sequences are load, not queue: they do not break affinity.
      const within = [{ ...affine, waiting: 2, running: 3 }, other];
      assert.deepEqual(pickEndpoint(within, key, SETTINGS), first);
      const beyond = [{ ...affine, waiting: 2, running: 3, assigned: 1 }, other];
      assert.deepEqual(pickEndpoint(beyond, key, SETTINGS), { endpoint: other.address, reason: "queue" });
    }
    assert.equal(chosen.size, 2, "prefixes spread over the endpoints");
  });

  it("property: the pick is a known endpoint of the pool whenever one is known, else none", () => {
    const endpoint = fc.record({
      ...ENDPOINT_FIELDS,
      speed: fc.option(fc.double({ min: 0, max: 50, noNaN: true }), { nil: undefined }),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(endpoint, { selector: (e) => e.address, maxLength: 4 }),
        fc.option(fc.nat(), { nil: undefined }),
        fc.nat(10),
        (endpoints, key, queueMargin) => {
          const pick = pickEndpoint(endpoints, key, { queueMargin });
          const known = endpoints.filter((e) => e.known);
          if (known.length === 0) return pick.endpoint === undefined && pick.reason === "no_state";
          const chosen = known.find((e) => e.address === pick.endpoint);
          if (!chosen) return false;
          // The soonest done, or (affinity) one whose queue is within the margin of the soonest one's.
          const rated = known.filter((e) => e.speed !== undefined && e.speed > 0).map((e) => e.speed!);
          const mean = rated.length === 0 ? 1 : rated.reduce((a, b) => a + b, 0) / rated.length;
          const wait = (e: EndpointState) => (loadOf(e) + 1) / (e.speed! > 0 ? e.speed! : mean);
          const soonest = Math.min(...known.map(wait));
          if (pick.reason === "queue") return wait(chosen) === soonest;
          return known.some((l) => wait(l) === soonest && queueOf(chosen) - queueOf(l) <= queueMargin);
        },
      ),
    );
  });

  it("property: with every speed equal (or none known) the choice is the one by load alone", () => {
    const endpoint = fc.record(ENDPOINT_FIELDS);
    fc.assert(
      fc.property(
        fc.uniqueArray(endpoint, { selector: (e) => e.address, maxLength: 4 }),
        fc.option(fc.double({ min: 1e-3, max: 1e3, noNaN: true }), { nil: undefined }),
        (endpoints, speed) => {
          const pick = pickEndpoint(
            endpoints.map((e) => ({ ...e, speed })),
            undefined,
            SETTINGS,
          );
          // The old order: lowest load, then lowest KV usage, then lowest address.
          const [first] = endpoints
            .filter((e) => e.known)
            .sort(
              (a, b) =>
                loadOf({ ...a, speed }) - loadOf({ ...b, speed }) ||
                a.kvUsage - b.kvUsage ||
                (a.address < b.address ? -1 : 1),
            );
          return pick.endpoint === first?.address;
        },
      ),
    );
  });
});
