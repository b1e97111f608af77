/**
 * What a storage peer asks of this node's StorageActor (`storage_actor.ts`; the asking side is
 * `storage_actor_peer.ts`): `put_chunk` (a copy to hold for the network), and `get_chunk`,
 * `has_chunk` and `prove` (possession proofs), answered only for what this node holds for the
 * network (`_storage_scope.ts`). Taken by the actor in its `receive`, on its {@link StorageCore}:
 * `put_chunk` and `has_chunk` answered there, `prove` and `get_chunk` (which read whole chunks)
 * answered outside the mailbox within the asking key's budget (`_peer_request_budget.ts`). Not part
 * of the public API.
 *
 * @module
 */
import { isCid, storageKey } from "../protocols/cid.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { ChunkNotFoundError, ReplicaQuotaExceededError, StorageError } from "../storage/errors.ts";
import { rankPeers } from "../storage/rendezvous.ts";
import { peerIdOf } from "../storage/replicated_store.ts";
import { proveFromStore } from "../storage/storage_peer.ts";
import type { StorageCore } from "./_storage_core.ts";
import type {
  StorageGetChunkMessage,
  StorageHasChunkMessage,
  StorageProveMessage,
  StoragePutChunkMessage,
} from "./storage_actor_messages.ts";

/** The messages a storage peer sends this node's StorageActor. */
export type StoragePeerRequest =
  | StoragePutChunkMessage
  | StorageGetChunkMessage
  | StorageHasChunkMessage
  | StorageProveMessage;

/** Answer one request of a storage peer (the value named in its message type's documentation). */
export async function answerPeer(core: StorageCore, message: StoragePeerRequest): Promise<unknown> {
  const store = core.store();
  switch (message.type) {
    case "put_chunk":
      // Only a repair copy: a fresh write is another owner's put of a block it shares with the
      // file let go here, and where no next peer ranks it would stay short (review s82 vstore2,
      // F1).
      if (message.repair === true && await core.scope.refusesReplica(message.cid)) {
        // Under the code every writer and repairer (older ones too) hands on to the next peer.
        throw new StorageError(
          "replica_quota_exceeded",
          `this node holds no copy of ${message.cid} for peers: it unpinned it as its own file's`,
        );
      }
      // The writer counts this answer as a good copy here (its quorum): a copy already here is
      // verified first, and a rotten one replaced, repair or not.
      await store.put(message.bytes, {
        cid: message.cid,
        verifyExisting: true,
        replica: true,
        giver: message.from, // its fair share of what this node holds for peers
      });
      core.scope.heldForPeer(message.cid); // held for a peer now: no longer let go here
      // Holder repair judges its placement under the peer set it came in under, too.
      if (core.replicated()) {
        core.holderRepair()?.noteWrite(core.replicated()!.peers, storageKey(message.cid));
      }
      return undefined;
    // A peer is answered only for what this node holds for the network: to a peer a local-only
    // object (or an unpinned leftover) is not here.
    case "get_chunk":
      if (!await core.scope.servesPeers(message.cid)) throw new ChunkNotFoundError(message.cid);
      if (admitsLoss(core, message.from, message.cid)) throw new ChunkNotFoundError(message.cid);
      // To any other key, refused while this node challenges a holder on it: the holder's
      // relay through this node under a second key (`_challenged_chunks.ts`). A reader asks the
      // chunk's other holders (the refusal says nothing of the copy here).
      core.challenged.refuseHeld(message.cid);
      return await store.get(message.cid);
    case "has_chunk":
      return await core.scope.servesPeers(message.cid) && await store.has(message.cid);
    case "prove": {
      // Per CID: one this node cannot name (another hash, a typo) is not served here — it
      // does not fail the batch, which would read as no answer for chunks it does hold.
      const served: string[] = [];
      for (const cid of message.cids) {
        if (isCid(cid) && await core.scope.servesPeers(cid)) served.push(cid);
      }
      // Bound to this node's key, which peers know it by (`possessionProof`).
      const prover = core.options.identity?.publicKey;
      if (prover === undefined) {
        throw new VeriflowError(
          "no_identity",
          "this storage node has no identity, so it cannot prove possession to peers",
        );
      }
      const proofs = await proveFromStore(store, prover, message.nonce, served);
      // A peer counts a chunk proven to it as given here, and audits this node for it from
      // then on — where this node is one of the chunk's holders: such a chunk is held for the
      // network now, whatever pin brought it (else unpinning this node's own file that shares it
      // would collect it, and the peer blame the loss). Any other chunk of this node's own stays
      // its own, whoever asks: a proof of it made it permanent, counted for no peer, and anyone
      // who knew a node's public CIDs could keep its unpinned files on its disk (review B, s70).
      const unkept: string[] = [];
      for (let i = 0; i < served.length; i++) {
        if (proofs[i] === null || await store.isReplica(served[i])) continue;
        if (!holdsForPeers(core, prover, served[i])) continue;
        // Charged to the asker, as its `put_chunk` of the chunk would be. Past its share, the
        // chunk stays this node's own: proven all the same (the bytes are here, and an asker whose
        // record already counts it as given, as older code wrote from such a proof, must not read
        // a null as a loss: review s81 vaudit2, F1), and named unkept, so the asker neither counts
        // it as given (it signed `missing_chunk` once this node unpinned its own file: vaudit,
        // F2) nor as a copy: its repair hands the copy to the next holder. An asker that does not
        // read unkept (no `onUnkept`: older code) is answered null instead, as older code was: it
        // would record the proof as given and sign `missing_chunk` after the unpin (s82 vstore,
        // F1).
        await store.put(await store.get(served[i]), {
          cid: served[i],
          replica: true,
          giver: message.from,
        }).catch((error) => {
          if (!(error instanceof ReplicaQuotaExceededError)) throw error;
          if (message.onUnkept === undefined) proofs[i] = null;
          else unkept.push(served[i]);
        });
      }
      if (unkept.length > 0) message.onUnkept?.(unkept);
      return message.cids.map((cid) => {
        const i = served.indexOf(cid);
        return i < 0 ? null : proofs[i];
      });
    }
  }
}

/**
 * True when the asker `from` counts as a copy of `cid` here — this node gave it the chunk and it
 * ranks among its holders (`ReplicatedStore.holdsCopy`) — and so, by asking, says it holds none:
 * then it is answered `chunk_not_found`, placed last for the chunk as by a failed audit
 * (`ReplicatedStore.admittedLoss`), and the chunk repaired onto the next peer (holder repair's
 * retry pass). Served, a holder that keeps nothing answered every audit by fetching the chunk from
 * this node, its auditor, and passed, while the chunk's r copies were this node's one (review s71,
 * finding 1). A relay through a third holder is not seen here (`docs/STORAGE.md`).
 */
function admitsLoss(core: StorageCore, from: string | undefined, cid: string): boolean {
  const replicated = core.replicated();
  if (from === undefined || replicated === null || !isCid(cid)) return false;
  const key = storageKey(cid);
  if (!replicated.holdsCopy(from, key)) return false;
  replicated.admittedLoss(from, key);
  core.holderRepair()?.repairSoon(replicated, key);
  return true;
}

/**
 * True when this node (its key `self`) ranks among the first r holders of `cid` under its peer
 * set, itself included: where a writer's placement (`rankPeers`, as `ReplicatedStore.holders`)
 * puts a copy of it, so a peer's put, repair or audit counts on this node for it. A node with no
 * storage peers holds nobody's chunks but its own. A holder that a newcomer pushed down (a
 * stand-in) was among the first r when its copy was given or first proven, and kept it then.
 */
function holdsForPeers(core: StorageCore, self: Uint8Array, cid: string): boolean {
  const replicated = core.replicated();
  if (replicated === null) return false;
  const selfId = peerIdOf(self);
  const peers: readonly { readonly id: string }[] = replicated.peers.some((p) => p.id === selfId)
    ? replicated.peers
    : [{ id: selfId }, ...replicated.peers];
  return rankPeers(cid, peers).slice(0, replicated.replicas).some((p) => p.id === selfId);
}
