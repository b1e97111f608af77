/**
 * A small storage network in one process for the repair and replication tests: `n`
 * StorageActors, each the others' storage peer through its actor (as `serveStoragePeer` does),
 * holding here, with non-durable stores in temporary directories.
 *
 * A call the asking node stopped waiting for goes on in the node asked: a read cancelled because
 * a faster replica answered (`ReplicatedStore` reads two at a time), or one past its timeout. The
 * node's actor still reads its store and may make `quarantine/` again, so {@link StorageActors.remove}
 * stops every node and waits out the calls still running in one before it removes a directory
 * (the shape of the stop 57 CI failure, `_tracked_peer.ts`; review s59, the fixture's cleanup
 * test in `holder_repair_test.ts`).
 */
import { StorageActor } from "../../actors/storage_actor.ts";
import { type StorageMessage, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { StorageActorPeer, type StorageAsker } from "../../actors/storage_actor_peer.ts";
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
  /**
   * Node `i`'s actor asked as its peers ask it: each call is known until it ends, so
   * {@link remove} waits for it. A test that wraps a node's answers builds on this one.
   */
  askerOf(i: number): StorageAsker;
  /** Node `i` as the others see it: its actor, asked directly ({@link askerOf}). */
  peerOf(i: number): StorageActorPeer;
  /**
   * Tell each node in `live` that the others in `live` are its peers (as `peerOf` gives them,
   * or `as`), then wait for the holder repair that set starts.
   */
  setPeers(live: number[], as?: (i: number) => StoragePeer): Promise<void>;
  /**
   * Stop every node (`postStop`: its copies past the quorum, late reads, read repairs and repair
   * passes land), wait out every call still running in one ({@link askerOf}), then remove the
   * nodes' directories.
   */
  remove(): Promise<void>;
}

/**
 * `n` nodes replicating `replicas` copies, a put waiting for `writeQuorum` of them; each audit
 * verdict a node signs goes to `onVerdict`, if given, and each line node `i` logs to `log`.
 */
export async function storageActors(
  n: number,
  replication: { replicas: number; writeQuorum: number },
  onVerdict?: (verdict: Verdict) => void,
  log?: (i: number, line: string) => void,
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
      ...(log === undefined ? {} : { log: (line: string) => log(i, line) }),
    })
  );
  /** The calls running in the nodes, asked through {@link StorageActors.askerOf}. */
  const calls = new Set<Promise<unknown>>();
  const askerOf = (i: number): StorageAsker => ({
    // The caller's signal is not passed on: the node goes on with a call its caller gave up on
    // (the call `remove` waits out).
    ask: <R>(m: StorageMessage) => {
      const call = actors[i].receive(m);
      calls.add(call);
      const done = () => calls.delete(call);
      call.then(done, done);
      return call as Promise<R>;
    },
  });
  const peerOf = (i: number) => new StorageActorPeer(askerOf(i), ids[i].publicKey);
  return {
    ids,
    hexIds: ids.map((identity) => toHex(identity.publicKey)),
    dirs,
    actors,
    askerOf,
    peerOf,
    async setPeers(live, as = peerOf) {
      for (const i of live) {
        const peers = live.filter((j) => j !== i).map(as);
        unwrapReply(await actors[i].receive({ type: "set_peers", peers }));
      }
      for (const i of live) await actors[i].repairIdle();
    },
    async remove() {
      // A node's stop waits for what it asked the others, but not for a call it cancelled, which
      // may leave work behind in the node asked: again until a round finds no call running.
      let running: number;
      do {
        for (const actor of actors) await actor.postStop();
        running = calls.size;
        while (calls.size > 0) await Promise.allSettled([...calls]);
      } while (running > 0);
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    },
  };
}
