/**
 * The bounds of peers' stream proofs (`actors/_stream_proof_bounds.ts`): each proof held — being
 * checked, or left undecided and remembered — counts against its accuser's stake; past
 * `MAX_PEER_PROOFS_CHECKING` the newest proof of the accuser holding the most gives way to an
 * accuser holding fewer; the undecided memory forgets its oldest past its bound, releasing it.
 */
import assert from "node:assert/strict";
import {
  MAX_PEER_PROOFS_CHECKING,
  MAX_UNDECIDED_STREAM_PROOFS,
  StreamProofBounds,
} from "../../actors/_stream_proof_bounds.ts";

/** Bounds whose counts go to `held`. */
function counted() {
  const held = new Map<string, number>();
  const bounds = new StreamProofBounds((accuser, delta) =>
    held.set(accuser, (held.get(accuser) ?? 0) + delta)
  );
  return { bounds, held };
}

Deno.test("stream proof bounds: a full queue makes the newest proof of the accuser holding the most give way to another accuser's, never to its own", () => {
  const { bounds, held } = counted();
  for (let i = 0; i < MAX_PEER_PROOFS_CHECKING; i++) bounds.take(`x${i}`, "flooder", `s${i}`);
  assert.equal(held.get("flooder"), MAX_PEER_PROOFS_CHECKING);
  // Failed before review s69: one staked key filled the queue, and an honest router's proof
  // (and this node's own claims, bounded apart now) came back busy.
  assert.equal(bounds.room("honest"), `x${MAX_PEER_PROOFS_CHECKING - 1}`);
  assert.equal(bounds.room("flooder"), false, "the flooder does not push out its own");
  bounds.done(`x${MAX_PEER_PROOFS_CHECKING - 1}`);
  bounds.take("h0", "honest", "t0");
  assert.equal(held.get("flooder"), MAX_PEER_PROOFS_CHECKING - 1);
  assert.equal(held.get("honest"), 1);
  // Two accusers holding as much: neither gives way to the other.
  const even = counted().bounds;
  for (let i = 0; i < MAX_PEER_PROOFS_CHECKING; i++) {
    even.take(`p${i}`, i % 2 === 0 ? "a" : "b", `s${i}`);
  }
  assert.equal(even.room("a"), false);
  assert.equal(typeof even.room("c"), "string");
});

Deno.test("stream proof bounds: an accusation is remembered while being checked and after it is left undecided, counted against its accuser all the while; settled, it is released; past the undecided bound the accuser holding the most forgets its own oldest, never another's", () => {
  const { bounds, held } = counted();
  bounds.take("p1", "acc", "s1");
  assert.equal(bounds.accused("acc", "s1"), true);
  assert.equal(bounds.accused("other", "s1"), false);
  bounds.done("p1", true);
  assert.equal(bounds.accused("acc", "s1"), true, "undecided: remembered");
  assert.equal(held.get("acc"), 1, "still counted");
  bounds.take("p2", "acc", "s2");
  bounds.done("p2");
  assert.equal(bounds.accused("acc", "s2"), false, "settled: the ledger remembers it");
  assert.equal(held.get("acc"), 1);
  // A flood of another key's undecided proofs. Failed before review s69's fourth round: the
  // oldest of all went first, releasing acc's backing, and its same proof was replayed again.
  for (let i = 0; i < MAX_UNDECIDED_STREAM_PROOFS + 10; i++) {
    bounds.take(`q${i}`, "many", `u${i}`);
    bounds.done(`q${i}`, true);
  }
  assert.equal(bounds.accused("acc", "s1"), true, "acc's kept");
  assert.equal(held.get("acc"), 1, "and still counted");
  assert.equal(bounds.accused("many", "u0"), false, "the flooder's oldest forgotten");
  assert.equal(bounds.accused("many", `u${MAX_UNDECIDED_STREAM_PROOFS + 9}`), true);
  assert.equal(held.get("many"), MAX_UNDECIDED_STREAM_PROOFS - 1);
});
