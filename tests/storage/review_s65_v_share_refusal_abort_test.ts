/**
 * Review (stop 65, helper V): a share link's reader reads a 404's error object to tell
 * `share_not_found` from `chunk_not_found`. When that body does not come (the reader's caller
 * gave up, or the node stalls past the link's timeout), the refusal is not known: the reader
 * reports its caller's abort, or `node_timeout`, not "no share" (a revoked link).
 */
import assert from "node:assert/strict";
import { storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { createShareLink, openShareLink, ShareStore } from "../../storage/share_links.ts";
import { startGatewayNode } from "../server/_gateway_node.ts";
import { collect, pseudoRandomBytes, streamOf } from "./_helpers.ts";

const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(8));

/** A 404 whose body never comes. */
const stalled404 = () =>
  new Response(new ReadableStream({ pull: () => new Promise(() => {}) }), { status: 404 });

/**
 * Reads a share of a 5-chunk private file whose node answers its third chunk with a 404 whose
 * body stalls; `onRefusal` runs as that answer is given.
 */
async function readStalled(
  options: { timeoutMs?: number; signal?: AbortSignal },
  onRefusal: () => void,
): Promise<unknown> {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 64 });
  const put = await files.put(streamOf(pseudoRandomBytes(64 * 5, 13), 100), { key: OWNER });
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
    const refused = storageKey(chunks[2]);
    const fetchStalling: typeof fetch = (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      const cid = url.slice(url.lastIndexOf("/") + 1);
      if (cid === put.cid || storageKey(cid) !== refused) return fetch(input, init);
      onRefusal();
      return Promise.resolve(stalled404());
    };
    const opened = await openShareLink(link, { fetch: fetchStalling, ...options });
    return await collect(opened.stream).then(() => "read whole", (error) => error);
  } finally {
    await node.close();
  }
}

Deno.test("a share read whose caller aborts while a 404's error body is awaited fails with the caller's abort, not share_not_found", async () => {
  const abort = new AbortController();
  const reason = new Error("the caller gave up");
  const error = await readStalled({ signal: abort.signal }, () => abort.abort(reason));
  assert.equal(error, reason, `the caller's abort: ${String(error)}`);
});

Deno.test("a share read whose node stalls a 404's error body past the link's timeout fails with node_timeout, not share_not_found", async () => {
  const error = await readStalled({ timeoutMs: 200 }, () => {});
  assert.ok(error instanceof Error, String(error));
  assert.equal((error as { code?: string }).code, "node_timeout", error.message);
});
