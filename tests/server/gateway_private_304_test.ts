/**
 * A revalidation of a private file's manifest (`If-None-Match` with its ETag) answers `304` with
 * the `Cache-Control` its `200` carries, `private, no-store` (RFC 9110 §15.4.5), for a block and a
 * CAR alike; a public block's 304 keeps the immutable header (review s80 F3).
 */
import assert from "node:assert/strict";
import { IMMUTABLE } from "../../server/gateway_request.ts";
import { PRIVATE_NO_STORE } from "../../server/private_block_cache.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { startGatewayNode } from "./_gateway_node.ts";

const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(8));

/** The 200's and the 304's status and `Cache-Control` of `path`, revalidated with its ETag. */
async function revalidated(node: Awaited<ReturnType<typeof startGatewayNode>>, path: string) {
  const first = await node.get(path);
  const etag = first.response.headers.get("etag");
  assert.ok(etag !== null, path);
  const again = await node.get(path, { headers: { "if-none-match": etag } });
  return {
    full: [first.response.status, first.response.headers.get("cache-control")],
    revalidated: [again.response.status, again.response.headers.get("cache-control")],
  };
}

Deno.test("a 304 of a private manifest's block or CAR says private, no-store as its 200 does; a public block's stays immutable", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 64 });
  const secret = await files.put(streamOf(pseudoRandomBytes(500, 3)), { key: OWNER });
  const open = await files.put(streamOf(pseudoRandomBytes(500, 4)));
  const node = await startGatewayNode(dir, { ownerKey: OWNER });
  try {
    for (const format of ["raw", "car"]) {
      assert.deepEqual(await revalidated(node, `/ipfs/${secret.cid}?format=${format}`), {
        full: [200, PRIVATE_NO_STORE],
        revalidated: [304, PRIVATE_NO_STORE], // was the public, immutable header
      }, format);
      assert.deepEqual(await revalidated(node, `/ipfs/${open.cid}?format=${format}`), {
        full: [200, IMMUTABLE],
        revalidated: [304, IMMUTABLE],
      }, format);
    }
  } finally {
    await node.close();
  }
});
