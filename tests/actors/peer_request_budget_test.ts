/**
 * The StorageActor's bound on one peer's chunk-reading requests at once
 * (`actors/_peer_request_budget.ts`): a key past its bound is refused `busy`, and that spends
 * nothing of any other key's budget, so an auditor's challenge is never refused for another
 * peer's flood.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  MAX_PEER_CHUNK_READS_IN_FLIGHT,
  MAX_PEER_PROVES_IN_FLIGHT,
  MAX_STRANGER_PROVES_IN_FLIGHT,
  PeerRequestBudget,
} from "../../actors/_peer_request_budget.ts";
import { BusyError } from "../../protocols/protocol_errors.ts";

Deno.test("peer request budget: a key past its proves in flight is refused busy, another key is not", () => {
  const budget = new PeerRequestBudget();
  const releases = Array.from(
    { length: MAX_PEER_PROVES_IN_FLIGHT },
    () => budget.take("prove", "flooder"),
  );
  assert.throws(
    () => budget.take("prove", "flooder"),
    (e) => e instanceof BusyError && e.code === "busy",
  );
  // Another key (one that gave this node chunks), and another request type of the same key,
  // keep their whole budget.
  budget.take("prove", "auditor", true);
  budget.take("get_chunk", "flooder");
  // One answered: one more admitted, and no more.
  releases[0]();
  releases[0](); // a second call frees nothing more
  budget.take("prove", "flooder");
  assert.throws(() => budget.take("prove", "flooder"), BusyError);
});

Deno.test("peer request budget: chunk reads are bounded per key, and an in-process ask (no key) is not counted", () => {
  const budget = new PeerRequestBudget();
  for (let i = 0; i < MAX_PEER_CHUNK_READS_IN_FLIGHT; i++) budget.take("get_chunk", "reader");
  assert.throws(() => budget.take("get_chunk", "reader"), BusyError);
  for (let i = 0; i < MAX_PEER_CHUNK_READS_IN_FLIGHT + 1; i++) {
    budget.take("get_chunk", undefined);
    budget.take("prove", undefined);
  }
});

Deno.test("peer request budget: any number of keys that gave nothing share one lane of proves; the owner's prove is taken beside it (review s81 vaudit2, F2)", () => {
  const budget = new PeerRequestBudget();
  // The probe's flood: 32 fresh keys, each asking its 8 proves at once.
  let taken = 0;
  let refused = 0;
  for (let key = 0; key < 32; key++) {
    for (let i = 0; i < MAX_PEER_PROVES_IN_FLIGHT; i++) {
      try {
        budget.take("prove", `stranger-${key}`);
        taken++;
      } catch (error) {
        assert.ok(error instanceof BusyError && error.code === "busy");
        refused++;
      }
    }
  }
  // Work in flight: 8 proves of strangers, not 256.
  assert.equal(taken, MAX_STRANGER_PROVES_IN_FLIGHT);
  assert.equal(refused, 32 * MAX_PEER_PROVES_IN_FLIGHT - MAX_STRANGER_PROVES_IN_FLIGHT);
  assert.equal(budget.strangerProves, MAX_STRANGER_PROVES_IN_FLIGHT);
  // The key that gave this node its chunks still has its whole budget for its audits.
  const owner = Array.from(
    { length: MAX_PEER_PROVES_IN_FLIGHT },
    () => budget.take("prove", "owner", true),
  );
  assert.throws(() => budget.take("prove", "owner", true), BusyError);
  assert.equal(budget.strangerProves, MAX_STRANGER_PROVES_IN_FLIGHT);
  for (const release of owner) release();
  // Chunk reads are not in the lane.
  budget.take("get_chunk", "stranger-0");
});
