/**
 * A storage node served over an in-memory {@link Connection}, for tests: its store, the client
 * side a {@link ReplicatedStore} talks to, and a `shutdown` that waits out the calls still running
 * on the served side before it removes the store's directory. A read the client cancelled (a
 * faster replica answered) goes on here after its caller stopped waiting (it re-reads the store's
 * directories, and may make `quarantine/` again); removed under it, the directory failed
 * `Deno.remove` with "Directory not empty" in CI.
 */
import { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { ChunkStore, type ChunkStoreOptions } from "../../storage/chunk_store.ts";
import { ConnectionStoragePeer, serveStoragePeer } from "../../storage/connection_storage_peer.ts";
import { LocalStoragePeer, type StoragePeer } from "../../storage/storage_peer.ts";

export interface ServedNode {
  dir: string;
  store: ChunkStore;
  local: LocalStoragePeer;
  /** The client side: what another node's ReplicatedStore holds for this one. */
  remote: ConnectionStoragePeer;
  /** Close both sides, wait for the served side's calls to settle, remove the directory. */
  shutdown(): Promise<void>;
}

/** Open a store in a new temporary directory and serve it over an in-memory connection. */
export async function servedNode(options?: ChunkStoreOptions): Promise<ServedNode> {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir, { durable: false, ...options });
  const local = new LocalStoragePeer(store, Identity.generate().publicKey);
  const calls = new Set<Promise<unknown>>();
  const track = <T>(call: Promise<T>): Promise<T> => {
    calls.add(call);
    call.then(() => calls.delete(call), () => calls.delete(call));
    return call;
  };
  const served: StoragePeer = {
    id: local.id,
    publicKey: local.publicKey,
    putChunk: (cid, bytes, o) => track(local.putChunk(cid, bytes, o)),
    getChunk: (cid, o) => track(local.getChunk(cid, o)),
    hasChunk: (cid) => track(local.hasChunk(cid)),
    proveChunks: (nonce, cids) => track(local.proveChunks(nonce, cids)),
  };
  const [a, b] = memoryDuplexPair();
  const server = serveStoragePeer(new Connection(b), served);
  const client = new Connection(a);
  return {
    dir,
    store,
    local,
    remote: new ConnectionStoragePeer(client, local.publicKey),
    async shutdown() {
      await client.close();
      await server.close();
      while (calls.size > 0) await Promise.allSettled([...calls]);
      await Deno.remove(dir, { recursive: true });
    },
  };
}
