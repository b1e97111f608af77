/**
 * Reads of DAGs no reader can serve whole (review s76 F2, F3), through the file routes and the
 * gateway: each is refused with its error before the status, GET and HEAD alike, never a `200`
 * followed by a cut body.
 */
import assert from "node:assert/strict";
import { cidOf, RAW_CODEC } from "../../protocols/cid.ts";
import { SNIFF_BYTES } from "../../server/gateway_content_type.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { MAX_LINKS_PER_NODE } from "../../storage/errors.ts";
import { blockMaker, storageEdge } from "./_gateway_node.ts";

/** The error code of a JSON error answer. */
function codeOf(body: Uint8Array): string | undefined {
  return JSON.parse(new TextDecoder().decode(body)).error?.code;
}

Deno.test("a CAR of a node over the link limit is 422 block_too_large before the status, on GET as on HEAD", async () => {
  const dir = await Deno.makeTempDir();
  const make = blockMaker(await ChunkStore.open(dir));
  const leaf = await make.putRaw(new TextEncoder().encode("x"));
  // One link more than a node may have, each to the same 1-byte leaf (~720 KB: under 2 MiB).
  const wide = await make.fileNode(
    Array.from({ length: MAX_LINKS_PER_NODE + 1 }, () => ({ cid: leaf, size: 1 })),
  );
  const edge = await storageEdge(dir, "hostile-wide");
  try {
    for (const query of ["format=car", "format=car&dag-scope=all"]) {
      const got = await edge.request(`/ipfs/${wide}?${query}`);
      assert.equal(got.response.status, 422, query);
      assert.equal(codeOf(got.body), "block_too_large", query);
      const head = await edge.request(`/ipfs/${wide}?${query}`, { method: "HEAD" });
      assert.equal(head.response.status, 422, `HEAD ${query}`);
    }
    // Its own block is still served: nothing walks its links.
    const block = await edge.request(`/ipfs/${wide}?format=car&dag-scope=block`);
    assert.equal(block.response.status, 200);
  } finally {
    await edge.close();
  }
});

Deno.test("a file whose leaf is lost is 404 chunk_not_found before the status on /v1/files and /ipfs, GET and HEAD, and a CAR's HEAD; a range short of the hole is served", async () => {
  const dir = await Deno.makeTempDir();
  const make = blockMaker(await ChunkStore.open(dir));
  // The first leaf covers the bytes the gateway sniffs a type from, so only the check finds the hole.
  const first = new Uint8Array(SNIFF_BYTES * 2).fill(0x61);
  const lost = new TextEncoder().encode("the leaf this store lost");
  const held = await make.putRaw(first);
  const missing = cidOf(lost, RAW_CODEC); // never stored
  const file = await make.fileNode([
    { cid: held, size: first.length },
    { cid: missing, size: lost.length },
  ]);
  const edge = await storageEdge(dir, "hostile-missing-leaf");
  try {
    for (const path of [`/v1/files/${file}`, `/ipfs/${file}`, `/ipfs/${file}?format=car`]) {
      const head = await edge.request(path, { method: "HEAD" });
      assert.equal(head.response.status, 404, `HEAD ${path}`);
      if (path.endsWith("format=car")) continue; // a CAR's GET streams; the spec lets it stop
      const got = await edge.request(path);
      assert.equal(got.response.status, 404, path);
      assert.equal(codeOf(got.body), "chunk_not_found", path);
      assert.match(new TextDecoder().decode(got.body), new RegExp(missing));
    }
    // Asked only-if-cached, the hole is the "not held here" answer, before the status.
    for (const path of [`/ipfs/${file}`, `/ipfs/${file}?format=car`]) {
      const cached = await edge.request(path, {
        method: "HEAD",
        headers: { "cache-control": "only-if-cached" },
      });
      assert.equal(cached.response.status, 412, path);
    }
    // A CAR of a byte range is walked before its status: the range over the hole is refused.
    const ranged = await edge.request(`/ipfs/${file}?format=car&entity-bytes=1:*`);
    assert.equal(ranged.response.status, 404);
    // The check is of the range asked for: the bytes before the hole are there, and served.
    for (const path of [`/v1/files/${file}`, `/ipfs/${file}`]) {
      const part = await edge.request(path, { headers: { range: `bytes=0-${first.length - 1}` } });
      assert.equal(part.response.status, 206, path);
      assert.deepEqual(part.body, first, path);
    }
  } finally {
    await edge.close();
  }
});
