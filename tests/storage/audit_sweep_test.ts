/**
 * Once a holder fails an audit of this node's, every chunk it was recorded as given is checked in
 * slices of `SWEEP_CHUNKS_PER_ROUND` per round (review s75, finding 2): a liar that acknowledged
 * every copy and kept nothing was found in round 1, and sampling alone restored about 4 of its
 * chunks a round (164 of 378 short chunks still short after 12 rounds; about 100 rounds with a
 * reconnect after each). Wired as `actors/_storage_audits.ts` wires the real round.
 */
import assert from "node:assert/strict";
import { SWEEP_CHUNKS_PER_ROUND } from "../../storage/audit_sweeps.ts";
import { MemoryPeer } from "./_memory_peer.ts";
import { Liar, sweepOwner } from "./_sweep_owner.ts";

const FILES = 20;
const CHUNKS_PER_FILE = 40;

/** A store over `peers` with the review's 800 chunks (or as many as asked), and its rounds. */
function owner(peers: MemoryPeer[], fileCount = FILES, chunksPerFile = CHUNKS_PER_FILE) {
  return sweepOwner(peers, fileCount, chunksPerFile);
}

for (const reconnects of [false, true]) {
  Deno.test(`a liar's chunks are all back to r real copies within 2 rounds of its first failed audit (reconnects: ${reconnects})`, async () => {
    const honest = Array.from({ length: 5 }, () => new MemoryPeer());
    const liar = new Liar();
    const { store, given: record, round, all } = await owner([...honest, liar]);
    const short = () => all.filter((k) => honest.filter((p) => p.chunks.has(k)).length < 3);
    const given = record.chunksOf(liar.id).length;
    assert.ok(given > SWEEP_CHUNKS_PER_ROUND, `the liar was given ${given}: more than one slice`);
    assert.ok(short().length > SWEEP_CHUNKS_PER_ROUND / 2, "the liar left chunks short");
    for (let i = 0; i < 2; i++) {
      await round();
      if (reconnects) {
        store.setPeers(honest);
        store.setPeers([...honest, liar]);
      }
    }
    assert.equal(short().length, 0);
  });
}

Deno.test("an honest holder that lost one chunk is swept once: every other chunk passes, one verdict", async () => {
  const peers = Array.from({ length: 5 }, () => new MemoryPeer());
  // Few chunks, so a round's 4 soon sample the lost one.
  const { store, round, verdicts, all } = await owner(peers, 2, 6);
  const victim = peers[0];
  const lost = all.find((k) => store.wasGiven(victim.id, k) && victim.chunks.has(k))!;
  victim.chunks.delete(lost);
  // Until a round samples the lost chunk, then a few more: the sweep ends and starts no other.
  for (let i = 0; i < 100 && verdicts.length === 0; i++) await round();
  assert.equal(verdicts.length, 1, "the lost chunk was never sampled");
  for (let i = 0; i < 4; i++) await round();
  assert.deepEqual(verdicts.map((v) => v.reason), ["missing_chunk"]);
  assert.equal(peers.filter((p) => p.chunks.has(lost)).length, 3);
});
