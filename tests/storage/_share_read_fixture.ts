/**
 * A share link read whose node answers one chunk as a test chooses: a 5-chunk private file on a
 * gateway node (`../server/_gateway_node.ts`), shared, and read back through `openShareLink` with
 * a fetch that answers the file's third chunk with `answer()` and everything else from the node.
 */
import { storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { createShareLink, openShareLink, ShareStore } from "../../storage/share_links.ts";
import { startGatewayNode } from "../server/_gateway_node.ts";
import { collect, pseudoRandomBytes, streamOf } from "./_helpers.ts";

const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));

/**
 * Reads the share whole; resolves with `"read whole"`, or with what the read failed with.
 *
 * @param answer The third chunk's answer, made when it is asked for.
 * @param options `openShareLink`'s deadline and signal.
 */
export async function readShareAnsweringThirdChunk(
  answer: () => Response,
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<unknown> {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 64 });
  const put = await files.put(streamOf(pseudoRandomBytes(64 * 5, 12), 100), { key: OWNER });
  const node = await startGatewayNode(dir, { ownerKey: OWNER });
  try {
    const { link } = await createShareLink({
      cid: put.cid,
      owner: OWNER,
      files,
      shares: new ShareStore(dir),
      baseUrl: node.url,
      expiresAt: null,
      now: 0,
    });
    const chunks = (await files.blocks(put.cid)).filter((cid) => cid !== put.cid);
    const third = storageKey(chunks[2]);
    const answering: typeof fetch = (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      const cid = url.slice(url.lastIndexOf("/") + 1);
      return cid !== put.cid && storageKey(cid) === third
        ? Promise.resolve(answer())
        : fetch(input, init);
    };
    const opened = await openShareLink(link, { fetch: answering, ...options });
    return await collect(opened.stream).then(() => "read whole", (error) => error);
  } finally {
    await node.close();
  }
}
