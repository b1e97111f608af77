/**
 * Review (stop 49) of presence repair (`storage/replicated_store.ts`, `RepairOptions.presence`)
 * against a holder that claims a chunk it does not hold: it answers every `prove` with 32 bytes
 * of its own making. A repairer without a verified copy of its own (its copy rotted, or it holds
 * none) takes any proof as presence so that nothing is read while every holder has its copy — but
 * once another holder lacks the chunk and a verified copy is fetched anyway, the claims must be
 * checked against it: a false claim counted as a copy leaves the chunk with fewer than r real
 * copies, and nobody repairs it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type PutHandle, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { cidOfAsync } from "../../storage/_hash.ts";
import type { LocalStoragePeer, PeerCallOptions, StoragePeer } from "../../storage/storage_peer.ts";
import { flipObjectBit, pseudoRandomBytes } from "./_helpers.ts";
import { storageActors } from "./_storage_actors.ts";
import { removePeers, TrackedStoragePeer } from "./_tracked_peer.ts";

/**
 * A holder that stores what it is sent but claims, with made-up proofs, what it lacks; asked for
 * a chunk, it stalls until the reader gives up (so a read repair never hands it one by chance).
 */
class ClaimingPeer extends TrackedStoragePeer {
  override getChunk(_cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    return new Promise((_, reject) => {
      const signal = options?.signal;
      if (signal?.aborted) return reject(signal.reason);
      signal?.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }

  override async proveChunks(
    nonce: Uint8Array,
    cids: readonly string[],
  ): Promise<(Uint8Array | null)[]> {
    const honest = await super.proveChunks(nonce, cids);
    return honest.map((proof) => proof ?? crypto.getRandomValues(new Uint8Array(32)));
  }
}

/** A holder over a store in a new temporary directory, kept in `peers` to be removed. */
async function holder<P extends TrackedStoragePeer>(
  peers: TrackedStoragePeer[],
  Peer: new (store: ChunkStore, publicKey: Uint8Array) => P,
): Promise<P> {
  const dir = await Deno.makeTempDir({ prefix: "review_s49_" });
  const peer = new Peer(
    await ChunkStore.open(dir, { durable: false }),
    Identity.generate().publicKey,
  );
  peers.push(peer);
  return peer;
}

/** How many of `peers` really hold a verified copy of `cid` (the network's count). */
async function realCopies(peers: LocalStoragePeer[], cid: string): Promise<number> {
  let n = 0;
  for (const peer of peers) {
    try {
      await peer.store.get(cid);
      n++;
    } catch { /* not here */ }
  }
  return n;
}

Deno.test("a presence repair that fetched a copy checks every holder's proof against it: a holder claiming a chunk it lacks gets a copy", async () => {
  const peers: TrackedStoragePeer[] = [];
  try {
    const honest = await holder(peers, TrackedStoragePeer);
    await holder(peers, TrackedStoragePeer); // missed the write
    const claimer = await holder(peers, ClaimingPeer);
    const bytes = pseudoRandomBytes(4096, 49);
    const cid = await cidOfAsync(bytes);
    await honest.putChunk(cid, bytes); // the only real copy; the other two hold none
    const store = new ReplicatedStore(peers, { replicas: 3, writeQuorum: 1 });

    const report = await store.repair([cid], { presence: true });
    await store.flush();

    assert.deepEqual(report.lost, []);
    assert.equal(await realCopies(peers, cid), 3, "r real copies after the repair");
    assert.equal(report.repaired, 2);
    assert.ok(store.wasGiven(claimer.id, cid), "the claimer was given the copy it lacked");
  } finally {
    await removePeers(peers); // a read a faster holder won still runs in the slower one
  }
});

Deno.test("after a departure, a survivor whose own copy rotted does not count a new holder's false claim as a copy (StorageActors)", async () => {
  const R = 3;
  const net = await storageActors(5, { replicas: R, writeQuorum: R });
  const { hexIds, dirs, actors } = net;
  const CLAIMER = 3;
  try {
    for (const a of actors) await a.preStart();
    const peerOf = (i: number): StoragePeer => {
      const peer = net.peerOf(i);
      if (i !== CLAIMER) return peer;
      // Node 3 as the others see it: it claims what it lacks, and serves no reads.
      return {
        id: peer.id,
        publicKey: peer.publicKey,
        putChunk: (cid, bytes, o) => peer.putChunk(cid, bytes, o),
        hasChunk: () => Promise.resolve(true),
        getChunk: (_cid, o) =>
          new Promise((_, reject) => {
            if (o?.signal?.aborted) return reject(o.signal.reason);
            o?.signal?.addEventListener("abort", () => reject(o.signal!.reason), { once: true });
          }),
        proveChunks: async (nonce, cids, o) =>
          (await peer.proveChunks(nonce, cids, o)).map((p) =>
            p ?? crypto.getRandomValues(new Uint8Array(32))
          ),
      };
    };
    const setPeers = (live: number[]) => net.setPeers(live, peerOf);
    await setPeers([0, 1, 2, 3, 4]);
    const data = pseudoRandomBytes(64 * 1024, 51);
    const handle = await actors[0].receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    for (const a of actors) await a.postStop();
    const blocks = (await new FileStore(await ChunkStore.open(dirs[0])).blocks(cid)).map(
      storageKey,
    );
    // Chunks the leaver held and the claimer ranks next for (it takes the leaver's place, with
    // no copy): the best survivor's own copy rots before the departure. The keys are random, so
    // which chunks those are is too: with node 4 always the leaver, none was in ~0.003 % of runs
    // (0.85^65). The leaver is the first of nodes 4, 2 and 1 (not the writer, not the claimer)
    // that has such chunks: any does whenever the claimer ranks next for a block at all.
    const all = hexIds.map((id) => ({ id }));
    const targetsOf = (leaver: number) =>
      blocks.filter((b) => {
        const ranked = rankPeers(b, all).map((p) => hexIds.indexOf(p.id));
        return ranked.slice(0, R).includes(leaver) && ranked[R] === CLAIMER;
      });
    const leaver = [4, 2, 1].find((i) => targetsOf(i).length > 0);
    assert.ok(leaver !== undefined, "some chunk puts the claimer in a leaver's place");
    const targets = targetsOf(leaver);
    for (const b of targets) {
      const best = rankPeers(b, all).map((p) => hexIds.indexOf(p.id)).find((i) => i !== leaver)!;
      await flipObjectBit(dirs[best], b, 7);
    }
    const live = [0, 1, 2, 3, 4].filter((i) => i !== leaver);
    await setPeers(live);
    for (const a of actors) await a.postStop();
    const short: string[] = [];
    for (const b of targets) {
      let copies = 0;
      for (const i of live) {
        const [proof] = unwrapReply<(Uint8Array | null)[]>(
          await actors[i].receive({ type: "prove", nonce: new Uint8Array(32), cids: [b] }),
        );
        if (proof) copies++;
      }
      if (copies < R) short.push(b);
    }
    assert.deepEqual(short, [], `${short.length} of ${targets.length} chunks below r real copies`);
  } finally {
    await net.remove();
  }
});
