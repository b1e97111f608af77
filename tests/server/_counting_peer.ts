/** A storage peer for gateway tests that records every read it is asked for. */
import { LocalStoragePeer, type PeerCallOptions } from "../../storage/storage_peer.ts";

/** A {@link LocalStoragePeer} that counts every read it is asked for (`getChunk`, `hasChunk`). */
export class CountingPeer extends LocalStoragePeer {
  /** CIDs this node asked the peer to read, or whether it holds. */
  readonly asked: string[] = [];

  override getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    this.asked.push(cid);
    return super.getChunk(cid, options);
  }

  override hasChunk(cid: string): Promise<boolean> {
    this.asked.push(cid);
    return super.hasChunk(cid);
  }
}
