/**
 * `Accept` as the gateway reads it beyond the block and CAR types (review s74 verify2, on a real
 * HTTP server on 127.0.0.1): `application/json` (`application/cbor`) for a stored JSON (CBOR)
 * file is that file, while the explicit IPLD types and TAR stay 406 and a directory's page is no
 * JSON; a weight that is no RFC 9110 qvalue (`q=abc`, `q=-1`, `q=1.5`) counts as absent (1), not
 * as `q=0`.
 */
import assert from "node:assert/strict";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { blockMaker, startGatewayNode } from "./_gateway_node.ts";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** A gateway over a directory holding meta.json, data.cbor and a.txt; the root's CID. */
async function gatewayWithFiles() {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store);
  const put = async (bytes: Uint8Array) => (await files.put(ReadableStream.from([bytes]))).cid;
  const root = await blockMaker(store).directory([
    { name: "a.txt", cid: await put(text("plain words")) },
    { name: "data.cbor", cid: await put(new Uint8Array([0xa1, 0x61, 0x61, 0x01])) }, // {"a": 1}
    { name: "meta.json", cid: await put(text('{"name":"nft"}')) },
  ]);
  return { node: await startGatewayNode(dir), root };
}

async function status(
  node: Awaited<ReturnType<typeof gatewayWithFiles>>["node"],
  path: string,
  accept: string,
) {
  const { response, body } = await node.get(path, { headers: { accept } });
  return { status: response.status, type: response.headers.get("content-type"), body };
}

Deno.test("Accept: application/json (or application/cbor) for a stored JSON (CBOR) file is the file; for another file or a directory's page, 406", async () => {
  const { node, root } = await gatewayWithFiles();
  try {
    for (
      const accept of [
        "application/json",
        "Application/JSON",
        "application/json;charset=utf-8",
        "application/json, application/cbor;q=0.5",
      ]
    ) {
      const answer = await status(node, `/ipfs/${root}/meta.json`, accept);
      assert.equal(answer.status, 200, accept);
      assert.equal(answer.type, "application/json", accept);
      assert.equal(decode(answer.body), '{"name":"nft"}', accept);
    }
    const cbor = await status(node, `/ipfs/${root}/data.cbor`, "application/cbor");
    assert.equal(cbor.status, 200);
    assert.deepEqual([...cbor.body], [0xa1, 0x61, 0x61, 0x01]);
    for (
      const [path, accept] of [
        ["a.txt", "application/json"],
        ["meta.json", "application/cbor"],
        ["data.cbor", "application/json"],
        ["", "application/json"], // the directory's page
        ["meta.json", "application/vnd.ipld.dag-json"],
        ["meta.json", "application/x-tar"],
      ]
    ) {
      const answer = await status(node, `/ipfs/${root}/${path}`, accept);
      assert.equal(answer.status, 406, `${path} ${accept}`);
      assert.equal(JSON.parse(decode(answer.body)).error.code, "not_acceptable");
    }
  } finally {
    await node.close();
  }
});

Deno.test("a weight that is no RFC 9110 qvalue counts as absent (q=1): application/vnd.ipld.raw;q=abc is the raw block, as is q=-1 and q=1.5; q=0 still refuses it", async () => {
  const { node, root } = await gatewayWithFiles();
  try {
    for (const q of ["abc", "-1", "1.5", "0.0001", "", "1.000"]) {
      const accept = `application/vnd.ipld.raw;q=${q}`;
      const answer = await status(node, `/ipfs/${root}/a.txt`, accept);
      assert.equal(answer.status, 200, accept);
      assert.equal(answer.type, "application/vnd.ipld.raw", accept);
    }
    for (const q of ["0", "0.0", "0.000"]) {
      const accept = `application/vnd.ipld.raw;q=${q}`;
      assert.equal((await status(node, `/ipfs/${root}/a.txt`, accept)).status, 406, accept);
    }
    // A valid weight still ranks: the heavier of raw and CAR wins.
    const ranked = await status(
      node,
      `/ipfs/${root}/a.txt`,
      "application/vnd.ipld.raw;q=0.5, application/vnd.ipld.car;q=0.501",
    );
    assert.match(ranked.type ?? "", /^application\/vnd\.ipld\.car/);
  } finally {
    await node.close();
  }
});
