/**
 * A holder swept after it showed a loss that goes silent on sweep challenges (their size tells
 * them from a round's sample of 4) is repaired as fast as a plain liar: the rest of its slice is
 * re-placed unproven, not put back for a later round (review s75 verify, finding 2: 6 rounds
 * where a plain liar took 2).
 */
import assert from "node:assert/strict";
import { AUDIT_CHUNKS_PER_HOLDER } from "../../storage/audit_round.ts";
import { MemoryPeer } from "./_memory_peer.ts";
import { Liar, sweepOwner } from "./_sweep_owner.ts";

/** Keeps nothing; answers a round's sample with "missing", and never answers a larger challenge. */
class SweepDodger extends Liar {
  override proveChunks(nonce: Uint8Array, cids: readonly string[]) {
    // Rejected at once, as a 30 s silence ends: the auditor calls it no_response.
    if (cids.length > AUDIT_CHUNKS_PER_HOLDER) return Promise.reject(new Error("timed out"));
    return super.proveChunks(nonce, cids);
  }
}

/** Rounds until every chunk has 3 real copies on the honest peers (at most 30). */
async function roundsToRepair(liar: MemoryPeer): Promise<{ rounds: number; reasons: string[] }> {
  const honest = Array.from({ length: 5 }, () => new MemoryPeer());
  const { round, all, verdicts } = await sweepOwner([...honest, liar], 20, 40);
  const short = () => all.filter((k) => honest.filter((p) => p.chunks.has(k)).length < 3).length;
  assert.ok(short() > 0, "the liar left chunks short of 3 real copies");
  let rounds = 0;
  for (; rounds < 30 && short() > 0; rounds++) await round();
  return { rounds, reasons: verdicts.map((v) => v.reason) };
}

Deno.test("a liar silent on every sweep challenge is repaired within 2 rounds, as a plain liar", async () => {
  const plain = await roundsToRepair(new Liar());
  const dodger = await roundsToRepair(new SweepDodger());
  assert.equal(plain.rounds, 2, `plain liar: ${plain.rounds} rounds`);
  assert.equal(dodger.rounds, 2, `dodger: ${dodger.rounds} rounds`);
  // Its first sampled audit shows the loss; silence on a sweep is no_response, one per round.
  assert.equal(dodger.reasons[0], "missing_chunk");
  assert.ok(dodger.reasons.filter((r) => r === "no_response").length <= dodger.rounds);
});

Deno.test("a holder silent on its sweep gets no verdict for the chunks re-placed unproven", async () => {
  const honest = Array.from({ length: 5 }, () => new MemoryPeer());
  const dodger = new SweepDodger();
  const { round, verdicts, store, given } = await sweepOwner([...honest, dodger], 20, 40);
  const recorded = given.chunksOf(dodger.id);
  await round();
  // Signed: its sample (missing_chunk) and the one sweep challenge it was silent on.
  assert.deepEqual(verdicts.map((v) => v.reason).sort(), ["missing_chunk", "no_response"]);
  const notCounted = recorded.filter((k) => store.failedAuditOf(dodger.id, k)).length;
  assert.ok(notCounted > 64, `${notCounted} chunks no longer counted as its copies`);
});
