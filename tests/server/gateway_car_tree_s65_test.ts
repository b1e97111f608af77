/**
 * Stop 65: the gateway's CAR of a private file stored as a manifest tree
 * (`storage/manifest_tree.ts`). Its `GET` holds the root, every inner node and every chunk; its
 * `HEAD` agrees with it: the same headers, and a `Content-Length` only where it is the `GET`'s
 * body's length, reading no chunk to say it.
 */
import assert from "node:assert/strict";
import { cidCodec, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { serve } from "../../server/serve.ts";
import { countedStorage, readCar } from "./_gateway_node.ts";

const CHUNK = 64;
const LIMIT = 1024;
const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(8));

/**
 * A node's StorageActor over the store in `dir` behind the gateway, served as the node serves it
 * (`serve.ts`, which keeps a HEAD's length as the routes say it), every block and CAR read counted.
 */
async function startNode(dir: string) {
  const { system, reads, gateway } = await countedStorage(dir, "gateway-car-tree", OWNER);
  const server = serve({ app: gatewayRoutes(gateway) });
  return {
    reads,
    get: async (path: string, init?: RequestInit) => {
      const response = await fetch(`${server.url}${path}`, init);
      return { response, body: new Uint8Array(await response.arrayBuffer()) };
    },
    close: async () => {
      await server.shutdown();
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a HEAD of a manifest-tree file's CAR agrees with its GET, whose CAR holds every node and chunk, and reads no chunk", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
  const { cid } = await files.put(streamOf(pseudoRandomBytes(CHUNK * 300 + 3, 67)), {
    key: OWNER,
  });
  const blocks = (await files.blocks(cid)).map(storageKey);
  const nodes = (await files.blocks(cid))
    .filter((c) => c !== cid && cidCodec(c) === DAG_CBOR_CODEC).map(storageKey);
  const chunks = (await files.blocks(cid))
    .filter((c) => cidCodec(c) !== DAG_CBOR_CODEC).map(storageKey);
  const node = await startNode(dir);
  try {
    assert.ok(nodes.length >= 3, `a tree: ${nodes.length} nodes`);
    for (
      const [query, expected] of [
        ["format=car", blocks],
        ["format=car&dag-scope=all", blocks],
        ["format=car&dag-scope=entity", blocks],
        ["format=car&dag-scope=block", [storageKey(cid)]],
      ] as const
    ) {
      const path = `/ipfs/${cid}?${query}`;
      const get = await node.get(path);
      assert.equal(get.response.status, 200, path);
      const car = await readCar(get.body);
      assert.deepEqual(car.roots, [cid], path);
      assert.deepEqual(car.blocks.map((b) => storageKey(b.cid)).sort(), [...expected].sort(), path);
      node.reads.blocks.length = 0;
      node.reads.cars.length = 0;
      const head = await node.get(path, { method: "HEAD" });
      assert.equal(head.response.status, 200, path);
      for (const name of ["etag", "content-type", "content-disposition", "x-ipfs-roots"]) {
        assert.equal(head.response.headers.get(name), get.response.headers.get(name), name);
      }
      // The GET streams: it names no length, or this one. The HEAD names none or the same.
      const getLength = get.response.headers.get("content-length");
      assert.ok(getLength === null || getLength === `${get.body.length}`, `${path}: GET`);
      const length = head.response.headers.get("content-length");
      assert.ok(length === null || length === `${get.body.length}`, `${path}: ${length}`);
      if (query.endsWith("block")) assert.equal(length, `${get.body.length}`, path);
      const chunksRead = node.reads.blocks.map(storageKey).filter((k) => chunks.includes(k));
      assert.deepEqual(chunksRead, [], `${path}: a HEAD reads no chunk`);
      // Nor the inner nodes: each lists chunks nothing sizes, so the length is known to be
      // unknown at the first one (an 8 GiB file's HEAD reads its root alone).
      const nodesRead = node.reads.blocks.map(storageKey).filter((k) => nodes.includes(k));
      assert.deepEqual(nodesRead, [], `${path}: a HEAD reads no inner node`);
      if (!query.endsWith("block")) assert.equal(length, null, `${path}: no length to say`);
      assert.deepEqual(node.reads.cars, [], `${path}: a HEAD exports no CAR`);
    }
  } finally {
    await node.close();
  }
});
