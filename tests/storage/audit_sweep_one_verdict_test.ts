/**
 * One loss, one verdict, also where every peer is a holder (peers ≤ r): a sweep does not ask a
 * holder again for a chunk it already failed (review s75 verify, finding 3: with 3 peers and
 * r = 3 the round that found a lost chunk signed two verdicts for it, the sample's and the
 * sweep's, since a failed holder placed last is still among the first r).
 */
import assert from "node:assert/strict";
import { MemoryPeer } from "./_memory_peer.ts";
import { sweepOwner } from "./_sweep_owner.ts";

Deno.test("an honest holder in a network of r peers that lost one chunk gets one verdict for it", async () => {
  const peers = Array.from({ length: 3 }, () => new MemoryPeer());
  const { store, round, verdicts, all, sweeps } = await sweepOwner(peers, 2, 6);
  const victim = peers[0];
  const lost = all.find((k) => store.wasGiven(victim.id, k) && victim.chunks.has(k))!;
  victim.chunks.delete(lost);
  // Until a round samples the lost chunk (about 1 in 3 a round), then until its sweep ends.
  for (let i = 0; i < 100 && verdicts.length === 0; i++) await round();
  assert.ok(verdicts.length > 0, "the lost chunk was never sampled");
  for (let i = 0; i < 4 && sweeps.pending().length > 0; i++) await round();
  assert.deepEqual(verdicts.map((v) => v.reason), ["missing_chunk"]);
  assert.equal(verdicts[0].details?.firstFailedCid, lost);
});
