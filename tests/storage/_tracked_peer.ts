/**
 * Storage peers for tests that can be waited out before their store's directory is removed.
 *
 * A call the caller stopped waiting for goes on in the peer: a read cancelled because a faster
 * replica answered (`ReplicatedStore` reads two at a time), or one past its timeout. It still
 * re-reads the store's directories and may make `quarantine/` again, so a test that removed the
 * directory as soon as its own awaits were done failed `Deno.remove` with "Directory not empty"
 * now and then under load (CI, stop 57).
 */
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { ChunkStore, type ChunkStoreOptions } from "../../storage/chunk_store.ts";
import { ConnectionStoragePeer, serveStoragePeer } from "../../storage/connection_storage_peer.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";

/**
 * A {@link LocalStoragePeer}: it knows the calls still running on it (`settled`), which these
 * fixtures wait out before removing a store's directory. The name says what the tests rely on.
 */
export const TrackedStoragePeer = LocalStoragePeer;
/** See {@link TrackedStoragePeer}. */
export type TrackedStoragePeer = LocalStoragePeer;

/** Open a store in a new temporary directory, as a {@link TrackedStoragePeer}. */
export async function trackedPeer(options?: ChunkStoreOptions): Promise<TrackedStoragePeer> {
  const store = await ChunkStore.open(await Deno.makeTempDir(), { durable: false, ...options });
  return new TrackedStoragePeer(store, Identity.generate().publicKey);
}

/** Wait out every peer's calls, then remove its store's directory. */
export async function removePeers(peers: readonly TrackedStoragePeer[]): Promise<void> {
  for (const peer of peers) await peer.settled();
  for (const peer of peers) await Deno.remove(peer.store.dir, { recursive: true });
}

/** A storage node served over an in-memory {@link Connection}. */
export interface ServedNode {
  dir: string;
  store: ChunkStore;
  local: TrackedStoragePeer;
  /** The client side: what another node's ReplicatedStore holds for this one. */
  remote: ConnectionStoragePeer;
  /** Close both sides, wait out the served side's calls, remove the directory. */
  shutdown(): Promise<void>;
}

/** A {@link trackedPeer} served over an in-memory connection. */
export async function servedNode(options?: ChunkStoreOptions): Promise<ServedNode> {
  const local = await trackedPeer(options);
  const [a, b] = memoryDuplexPair();
  const server = serveStoragePeer(new Connection(b), local);
  const client = new Connection(a);
  return {
    dir: local.store.dir,
    store: local.store,
    local,
    remote: new ConnectionStoragePeer(client, local.publicKey),
    async shutdown() {
      await client.close();
      await server.close();
      await removePeers([local]);
    },
  };
}
