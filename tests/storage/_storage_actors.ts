/**
 * A small storage network in one process for the repair and replication tests: `n`
 * StorageActors, each the others' storage peer through its actor (as `serveStoragePeer` does),
 * holding here, with non-durable stores in temporary directories.
 */
import { StorageActor } from "../../actors/storage_actor.ts";
import { type StorageMessage, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import type { StoragePeer } from "../../storage/storage_peer.ts";

/** What {@link storageActors} gives a test. */
export interface StorageActors {
  ids: Identity[];
  /** Each node's public key, hex (its peer id). */
  hexIds: string[];
  dirs: string[];
  actors: StorageActor[];
  /** Node `i` as the others see it: its actor, asked directly. */
  peerOf(i: number): StorageActorPeer;
  /**
   * Tell each node in `live` that the others in `live` are its peers (as `peerOf` gives them,
   * or `as`), then wait for the holder repair that set starts.
   */
  setPeers(live: number[], as?: (i: number) => StoragePeer): Promise<void>;
  /** Remove the nodes' directories. */
  remove(): Promise<void>;
}

/**
 * `n` nodes replicating `replicas` copies, a put waiting for `writeQuorum` of them; each audit
 * verdict a node signs goes to `onVerdict`, if given.
 */
export async function storageActors(
  n: number,
  replication: { replicas: number; writeQuorum: number },
  onVerdict?: (verdict: Verdict) => void,
): Promise<StorageActors> {
  const ids = Array.from({ length: n }, () => Identity.generate());
  const dirs = await Promise.all(ids.map(() => Deno.makeTempDir({ prefix: "storage-actors-" })));
  const actors = ids.map((identity, i) =>
    new StorageActor({
      dir: dirs[i],
      chunkSize: 1024,
      identity,
      holdHere: true,
      store: { durable: false },
      replication,
      ...(onVerdict === undefined ? {} : { onVerdict }),
    })
  );
  const peerOf = (i: number) =>
    new StorageActorPeer(
      { ask: (m: StorageMessage) => actors[i].receive(m) as never },
      ids[i].publicKey,
    );
  return {
    ids,
    hexIds: ids.map((identity) => toHex(identity.publicKey)),
    dirs,
    actors,
    peerOf,
    async setPeers(live, as = peerOf) {
      for (const i of live) {
        const peers = live.filter((j) => j !== i).map(as);
        unwrapReply(await actors[i].receive({ type: "set_peers", peers }));
      }
      for (const i of live) await actors[i].repairIdle();
    },
    async remove() {
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    },
  };
}
