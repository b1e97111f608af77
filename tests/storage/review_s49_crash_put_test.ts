/**
 * Review (stop 49) of what restores r copies after an owner crashes in the middle of a put
 * (`storage/audit_round.ts`, run by the StorageActor): a replicated put is done, and the file
 * pinned, once w holders acknowledged each chunk; the copies past the quorum finish in the
 * background. An owner killed in that window restarts with the file pinned and some chunks at w
 * copies. Nothing in memory survives (the put's pending writes, the replicated store's record of
 * missed writes), no holder left (no holder repair runs), and the audit round only asks a holder
 * for chunks it was given — the holder whose copy never arrived is never asked, never fails, and
 * the chunk stayed below r copies for good. The round now also checks a few chunks per holder
 * that it was never given, and gives it those it lacks, without blaming it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type AuditRoundHandle,
  type PutHandle,
  type StorageMessage,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import { storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { AUDIT_CHUNKS_PER_HOLDER } from "../../storage/audit_round.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import type { PeerCallOptions, StoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";

const R = 3;
const CHUNKS = 16;

Deno.test("an owner killed between a put's quorum and its last copies: audit rounds after its restart bring every chunk back to r copies, blaming no one", async () => {
  const ids = Array.from({ length: 4 }, () => Identity.generate());
  const dirs = await Promise.all(ids.map(() => Deno.makeTempDir({ prefix: "review_s49_" })));
  const verdicts: Verdict[] = [];
  const make = (i: number) =>
    new StorageActor({
      dir: dirs[i],
      chunkSize: 1024,
      identity: ids[i],
      holdHere: true,
      store: { durable: false },
      onVerdict: (v) => void verdicts.push(v),
      // The owner's writes wait as long as it takes: only its crash ends them.
      replication: { replicas: R, writeQuorum: 2, peerTimeoutMs: 1e9 },
    });
  const actors = ids.map((_, i) => make(i));
  /** Whether node 0 is its restarted incarnation (the killed one is never stopped). */
  let restarted = false;
  /**
   * The calls running in the nodes (each until it ends): a read asks two holders and cancels the
   * slower, which goes on in its node, so cleanup waits for them (as `_storage_actors.ts` does).
   */
  const calls = new Set<Promise<unknown>>();
  const peerOf = (i: number) =>
    new StorageActorPeer({
      ask: (m: StorageMessage) => {
        const call = actors[i].receive(m);
        calls.add(call);
        const done = () => calls.delete(call);
        call.then(done, done);
        return call as never;
      },
    }, ids[i].publicKey);
  try {
    for (const a of actors) await a.preStart();
    // Node 1 is slow: the owner (node 0) crashes before any of its copies arrive.
    const slow = peerOf(1);
    const slowPeer: StoragePeer = {
      id: slow.id,
      publicKey: slow.publicKey,
      putChunk: () => new Promise<void>(() => {}),
      getChunk: (cid: string, o?: PeerCallOptions) => slow.getChunk(cid, o),
      hasChunk: (cid: string, o?: PeerCallOptions) => slow.hasChunk(cid, o),
      proveChunks: (n: Uint8Array, cids: readonly string[], o?: PeerCallOptions) =>
        slow.proveChunks(n, cids, o),
    };
    unwrapReply(
      await actors[0].receive({ type: "set_peers", peers: [slowPeer, peerOf(2), peerOf(3)] }),
    );
    for (const i of [1, 2, 3]) {
      const peers = [0, 1, 2, 3].filter((j) => j !== i).map(peerOf);
      unwrapReply(await actors[i].receive({ type: "set_peers", peers }));
    }
    const data = pseudoRandomBytes(CHUNKS * 1024, 49);
    const handle = await actors[0].receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    const leaves = (await new FileStore(await ChunkStore.open(dirs[0])).blocks(cid))
      .map(storageKey)
      .filter((b) => b !== storageKey(cid));
    const short = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const b of leaves) {
        let copies = 0;
        for (const a of actors) {
          const [proof] = unwrapReply<(Uint8Array | null)[]>(
            await a.receive({ type: "prove", nonce: new Uint8Array(32), cids: [b] }),
          );
          if (proof) copies++;
        }
        if (copies < R) out.push(b);
      }
      return out;
    };
    const shortAtCrash = (await short()).length;
    assert.ok(shortAtCrash > 0, "the crash left chunks below r copies");

    // Killed: no postStop, nothing in memory kept. The restarted owner sees the same peers.
    actors[0] = make(0);
    restarted = true;
    await actors[0].preStart();
    unwrapReply(await actors[0].receive({ type: "set_peers", peers: [1, 2, 3].map(peerOf) }));
    const rounds = Math.ceil(CHUNKS / AUDIT_CHUNKS_PER_HOLDER) + 1;
    for (let i = 0; i < rounds; i++) {
      await unwrapReply<AuditRoundHandle>(await actors[0].receive({ type: "audit_round" })).done;
    }
    assert.deepEqual(
      await short(),
      [],
      `after ${rounds} rounds, of ${shortAtCrash} chunks below r at the crash`,
    );
    assert.equal(verdicts.length, 0, "the holder that never got its copies is not blamed");
  } finally {
    // Every node running is stopped: the restarted owner too, whose audit rounds' read repairs
    // and cancelled reads may still ask the others. The killed owner is not: its copies to the
    // slow node never end (a crashed process's writes); its asks of the others are waited for.
    const live = restarted ? actors : actors.slice(1);
    let running: number;
    do {
      for (const a of live) await a.postStop();
      running = calls.size;
      while (calls.size > 0) await Promise.allSettled([...calls]);
    } while (running > 0);
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }
});
