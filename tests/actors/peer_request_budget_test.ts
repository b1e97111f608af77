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
  // Another key, and another request type of the same key, keep their whole budget.
  budget.take("prove", "auditor");
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
