/**
 * Test fixture: a {@link BlockStore} in memory, keyed as the chunk store keys blocks
 * (`storageKey`), that counts its puts: what the CAR import tests store into.
 *
 * @module
 */
import { storageKey } from "../../protocols/cid.ts";
import { cidOfAsync } from "../../storage/_hash.ts";
import type { BlockStore } from "../../storage/block_store.ts";

/** A {@link BlockStore} in memory that keeps what was put and counts the puts. */
export class MemoryBlockStore implements BlockStore {
  /** The blocks put, by CID. */
  readonly blocks = new Map<string, Uint8Array>();
  /** How many times `put` was called (a block put twice counts twice). */
  puts = 0;
  /** Keep `bytes` under its CID. */
  async put(bytes: Uint8Array): Promise<string> {
    this.puts++;
    const cid = await cidOfAsync(bytes);
    this.blocks.set(cid, bytes);
    return cid;
  }
  /** The block `cid`, or a rejection when it was never put. */
  get(cid: string): Promise<Uint8Array> {
    const bytes = this.blocks.get(storageKey(cid));
    return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no ${cid}`));
  }
  /** Whether `cid` was put. */
  has(cid: string): Promise<boolean> {
    return Promise.resolve(this.blocks.has(storageKey(cid)));
  }
}
