/**
 * A surviving holder that answers every `prove` just before the peer timeout (never silent, so the
 * repair never stops asking it) no longer holds a departure's pass one chunk at a time (review s82
 * repair, F3): the pass checks `REPAIR_IN_FLIGHT` chunks at once, and never has more than that
 * many proofs in flight to the slow holder. Its answers are held by a gate (no clock) and let go
 * in waves: each wave lets go every answer waiting. One at a time, a wave freed one chunk.
 */
import assert from "node:assert/strict";
import { HolderRepair, REPAIR_IN_FLIGHT } from "../../storage/holder_repair.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import type { StoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { removePeers, trackedPeer } from "./_tracked_peer.ts";

/** Turns of the event loop: what the pass does next without any answer from the slow holder. */
async function turns(k: number): Promise<void> {
  for (let i = 0; i < k; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

Deno.test("a holder slow to prove does not hold a departure's repair one chunk at a time", async () => {
  const N = 5;
  const GONE = 4;
  const SLOW = 3;
  const base = await Promise.all(Array.from({ length: N }, () => trackedPeer()));
  const held: (() => void)[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let gated = false;
  /** Node `j` as node 0 asks it: node 3's proofs wait for the gate once it is shut. */
  const link = (j: number): StoragePeer => {
    const peer = base[j];
    return {
      id: peer.id,
      publicKey: peer.publicKey,
      putChunk: (cid, bytes, options) => peer.putChunk(cid, bytes, options),
      getChunk: (cid, options) => peer.getChunk(cid, options),
      hasChunk: (cid) => peer.hasChunk(cid),
      proveChunks: async (nonce, cids) => {
        if (gated && j === SLOW) {
          inFlight++;
          maxInFlight = Math.max(maxInFlight, inFlight);
          await new Promise<void>((resolve) => held.push(resolve));
          inFlight--;
        }
        return peer.proveChunks(nonce, cids);
      },
    };
  };
  try {
    const writer = new ReplicatedStore(base, { replicas: 3, writeQuorum: 3 });
    const cids: string[] = [];
    for (let i = 0; i < 240; i++) cids.push(await writer.put(pseudoRandomBytes(1024, 7000 + i)));
    await writer.flush();
    const all = base.map((_, j) => j);
    const store = new ReplicatedStore(all.map(link), { replicas: 3 });
    const own = base[0].store;
    const repair = new HolderRepair({
      selfId: base[0].id,
      held: () => own.list(),
      read: (cid) => own.get(cid),
    });
    // The chunks node 0 repairs that ask node 3 (node 4 held them, node 0 is the best survivor).
    const ids = base.map((p) => ({ id: p.id }));
    const before = store.peers;
    const mine = cids.filter((cid) => {
      const holders = rankPeers(cid, ids).slice(0, 3).map((p) => p.id);
      const survivors = holders.filter((id) => id !== base[GONE].id);
      const after = rankPeers(cid, ids.filter((_, j) => j !== GONE)).slice(0, 3).map((p) => p.id);
      return survivors.length < 3 && survivors[0] === base[0].id && after.includes(base[SLOW].id);
    });
    assert(mine.length >= 4, `${mine.length} chunks ask the slow holder`);
    gated = true;
    store.setPeers(all.filter((j) => j !== GONE).map(link));
    let done = false;
    const pass = repair.peersChanged(store, before).then(() => done = true);
    let waves = 0;
    let released = 0;
    for (;;) {
      await turns(100);
      if (done) break;
      assert(held.length > released, "the pass waits for nothing but the slow holder");
      waves++;
      while (released < held.length) held[released++]();
    }
    await pass;
    assert(maxInFlight > 1, `at most ${maxInFlight} proof in flight to the slow holder`);
    assert(maxInFlight <= REPAIR_IN_FLIGHT, `${maxInFlight} proofs in flight to one holder`);
    assert(
      waves <= Math.ceil(held.length / REPAIR_IN_FLIGHT) + 1,
      `${waves} waves of answers for ${held.length} proofs`,
    );
    // Every chunk of the pass is back at r = 3 on the four nodes left.
    for (const cid of mine) {
      let copies = 0;
      for (const j of all) if (j !== GONE && await base[j].store.has(cid)) copies++;
      assert.equal(copies, 3, cid);
    }
    repair.stop();
    await store.flush();
  } finally {
    gated = false;
    for (const resolve of held) resolve();
    await removePeers(base);
  }
});
