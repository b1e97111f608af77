/**
 * Review s78 F3: a private file's manifest asked for under the raw-codec CID of its digest
 * (`bafkrei…` for `bafyrei…`, a CID anyone can write) is answered as under its own CID: the plain
 * read `403 key_required`, its block and its CAR `Cache-Control: private, no-store`. What decides
 * is the bytes, not the CID's codec; a public raw block is still cached for a year.
 */
import assert from "node:assert/strict";
import { cidDigest, cidFromDigest, RAW_CODEC } from "../../protocols/cid.ts";
import { IMMUTABLE } from "../../server/gateway_request.ts";
import { PRIVATE_NO_STORE } from "../../server/private_block_cache.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { newGatewayStore, startGatewayNode } from "./_gateway_node.ts";

const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(9));

Deno.test("s78 F3: a private manifest under its raw-codec CID is 403 key_required as a plain read, and private, no-store as a block and a CAR", async () => {
  const { dir, files } = await newGatewayStore({ chunkSize: 1024 });
  const { cid } = await files.put(streamOf(pseudoRandomBytes(4096, 3)), { key: OWNER });
  const alias = cidFromDigest(cidDigest(cid), RAW_CODEC);
  assert.notEqual(alias, cid);
  const publicRaw = (await files.put(streamOf(pseudoRandomBytes(100, 4)))).cid;
  const node = await startGatewayNode(dir, { ownerKey: OWNER });
  try {
    for (const name of [cid, alias]) {
      const plain = await node.get(`/ipfs/${name}`);
      assert.equal(plain.response.status, 403, name);
      assert.equal(JSON.parse(new TextDecoder().decode(plain.body)).error.code, "key_required");
      const head = await fetch(`${node.url}/ipfs/${name}`, { method: "HEAD" });
      assert.equal(head.status, 403, `HEAD ${name}`);
      for (const format of ["raw", "car"]) {
        const { response } = await node.get(`/ipfs/${name}?format=${format}`);
        assert.equal(response.status, 200, `${name} ${format}`);
        assert.equal(response.headers.get("cache-control"), PRIVATE_NO_STORE, `${name} ${format}`);
      }
    }
    // A public file's raw block keeps the year-long header, as a file and as a block.
    const plain = await node.get(`/ipfs/${publicRaw}`);
    assert.equal(plain.response.status, 200);
    assert.equal(plain.response.headers.get("cache-control"), IMMUTABLE);
    const raw = await node.get(`/ipfs/${publicRaw}?format=raw`);
    assert.equal(raw.response.headers.get("cache-control"), IMMUTABLE);
  } finally {
    await node.close();
  }
});
