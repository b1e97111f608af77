/**
 * Stop 65: a share link's opener tells "no such share" from "the share opens, but its node does
 * not serve this block". Both are HTTP 404s; the node's error object names which
 * (`share_not_found` or `chunk_not_found`, docs/API.md "Errors"). Until now every 404 read as
 * `share_not_found` ("no share <id>"), so a node missing one chunk of a shared file sent its
 * reader looking for a revoked link.
 */
import assert from "node:assert/strict";
import { storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { createShareLink, openShareLink, ShareStore } from "../../storage/share_links.ts";
import { startGatewayNode } from "../server/_gateway_node.ts";
import { collect, pseudoRandomBytes, streamOf } from "./_helpers.ts";

const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));

/** Opens a share of a 5-chunk private file whose node answers `refusal` for its third chunk. */
async function openWithRefusedChunk(refusal: () => Response): Promise<unknown> {
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
    const refused = storageKey(chunks[2]);
    const fetchRefusing: typeof fetch = (input, init) => {
      const url = String(input instanceof Request ? input.url : input);
      const cid = url.slice(url.lastIndexOf("/") + 1);
      return cid !== put.cid && storageKey(cid) === refused
        ? Promise.resolve(refusal())
        : fetch(input, init);
    };
    const opened = await openShareLink(link, { fetch: fetchRefusing });
    return await collect(opened.stream).then(() => "read whole", (error) => error);
  } finally {
    await node.close();
  }
}

const errorObject = (code: string, message: string) =>
  new Response(
    JSON.stringify({ error: { message, type: "invalid_request_error", param: null, code } }),
    { status: 404, headers: { "content-type": "application/json" } },
  );

Deno.test("a share whose node does not serve one of its blocks fails with chunk_not_found, not share_not_found", async () => {
  const error = await openWithRefusedChunk(() =>
    errorObject("chunk_not_found", "that block is not part of the share")
  );
  assert.ok(error instanceof Error, `the read fails: ${String(error)}`);
  assert.equal((error as { code?: string }).code, "chunk_not_found", error.message);
  assert.match(error.message, /does not serve it/);
});

Deno.test("a 404 naming share_not_found, or one without an error object, is still share_not_found", async () => {
  for (
    const refusal of [
      () => errorObject("share_not_found", "no share"),
      () => new Response("not found", { status: 404 }),
      () => new Response("x".repeat(10_000), { status: 404 }),
    ]
  ) {
    const error = await openWithRefusedChunk(refusal);
    assert.ok(error instanceof Error, `the read fails: ${String(error)}`);
    assert.equal((error as { code?: string }).code, "share_not_found", error.message);
  }
});
