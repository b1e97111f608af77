/**
 * A storage holder in memory for the replicated-store tests (`replicated_store_test.ts`,
 * `misbehaving_holders_test.ts`): it keeps what it is given and proves what it keeps; tests
 * extend it to hold writes back or stall reads.
 */
import { Identity } from "../../protocols/identity.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import {
  type PeerCallOptions,
  possessionProof,
  type StoragePeer,
} from "../../storage/storage_peer.ts";

/** A holder in memory under a fresh key. */
export class MemoryPeer implements StoragePeer {
  readonly id: string;
  readonly publicKey: Uint8Array;
  /** The chunks it holds, by CID. */
  readonly chunks = new Map<string, Uint8Array>();

  constructor() {
    this.publicKey = Identity.generate().publicKey;
    this.id = Array.from(this.publicKey, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  putChunk(cid: string, bytes: Uint8Array, _options?: PeerCallOptions): Promise<void> {
    this.chunks.set(cid, bytes);
    return Promise.resolve();
  }

  getChunk(cid: string, _options?: PeerCallOptions): Promise<Uint8Array> {
    const bytes = this.chunks.get(cid);
    return bytes ? Promise.resolve(bytes) : Promise.reject(new ChunkNotFoundError(cid));
  }

  hasChunk(cid: string): Promise<boolean> {
    return Promise.resolve(this.chunks.has(cid));
  }

  async proveChunks(nonce: Uint8Array, cids: readonly string[]): Promise<(Uint8Array | null)[]> {
    const out: (Uint8Array | null)[] = [];
    for (const cid of cids) {
      const bytes = this.chunks.get(cid);
      out.push(bytes ? await possessionProof(nonce, this.publicKey, bytes) : null);
    }
    return out;
  }
}
