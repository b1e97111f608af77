/**
 * Test fixture for put admission: a chunk store on a small disk of its own, whose free space is
 * what the store's files leave (the store's `freeBytes` test hook), and an upload run as
 * `POST /v1/files` runs it. Shared by the admission tests so both judge the same disk.
 *
 * @module
 */
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { PendingPut } from "../../storage/pending_put.ts";
import { filesUnder, streamOf } from "./_helpers.ts";

/** The chunk size uploads are cut in: the node's default, so admission costs are the real ones. */
export const CHUNK_SIZE = 256 * 1024;
/** The store's floor of free disk (`putMinFreeBytes`): the tests' rooms are counted above it. */
export const FLOOR = 24 * 1024 * 1024;

/** Bytes of every file under `dir` (a pack's temporary file may go between listing and stat). */
async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  for (const path of await filesUnder(dir)) {
    total += (await Deno.stat(path).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/** A store at `dir` on a disk of `diskBytes` whose free space is what the store's files leave. */
export async function storeOnSmallDisk(dir: string, diskBytes: number): Promise<ChunkStore> {
  return await ChunkStore.open(dir, {
    durable: false,
    putMinFreeBytes: FLOOR,
    faults: { freeBytes: async () => diskBytes - await bytesUnder(dir) },
  });
}

/** One upload as `POST /v1/files` runs it: admitted by its size, stored, pinned; its CID. */
export async function upload(store: ChunkStore, data: Uint8Array): Promise<string> {
  const pending = await PendingPut.begin(store, {
    declaredBytes: data.length,
    chunkSize: CHUNK_SIZE,
  });
  try {
    const { cid } = await new FileStore(pending, { chunkSize: CHUNK_SIZE }).put(streamOf(data));
    await pending.commit(cid);
    return cid;
  } finally {
    await pending.release();
  }
}
