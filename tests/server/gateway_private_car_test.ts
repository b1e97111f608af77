/**
 * The gateway's CAR (`?format=car`) of a private file, stored flat or as a manifest tree
 * (`storage/manifest_tree.ts`), and of a directory that links one: the `GET` holds the root, every
 * inner node and every chunk, and its `HEAD` sends the same headers, with a `Content-Length` only
 * where it is the `GET`'s body's length, reading no chunk to say it.
 */
import assert from "node:assert/strict";
import { cidCodec, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { serve } from "../../server/serve.ts";
import { blockMaker, countedStorage, readCar } from "./_gateway_node.ts";
import { exportCar } from "../../storage/car.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";

// The gateway's CAR of a private file stored as a manifest tree (`storage/manifest_tree.ts`). Its
// `GET` holds the root, every inner node and every chunk; its `HEAD` agrees with it: the same
// headers, and a `Content-Length` only where it is the `GET`'s body's length, reading no chunk to
// say it.

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

// A CAR's `HEAD` (`?format=car`) of a private file, and of a directory that links one: a private
// manifest's chunks are sized by nothing the walk reads (the chunk size is sealed), so a `HEAD`
// that said their length read every chunk (from the storage peers too).

/** A gateway over a store holding one private file of 5 chunks, with every block read counted. */
async function privateFileGateway() {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 1024 });
  const key = await OwnerKey.fromSecret(new Uint8Array(32).fill(5));
  const secret = await files.put(ReadableStream.from([new Uint8Array(5000).fill(4)]), { key });
  const chunks = (await files.stat(secret.cid, { key })).chunks.map(storageKey);
  const root = await blockMaker(store).directory([{ name: "secret", cid: secret.cid }]);
  /** Storage keys of the blocks the gateway read. */
  const reads: string[] = [];
  const read = (cid: string, signal?: AbortSignal) => {
    reads.push(storageKey(cid));
    return store.get(storageKey(cid), { signal });
  };
  const port: GatewayStorage = {
    put: () => Promise.reject(new Error("not in this test")),
    block: read,
    stat: (cid) => files.stat(cid, { key }),
    read: (cid, range) => Promise.resolve(files.get(cid, { ...range, key })),
    car: (cid, scope, signal) => Promise.resolve(exportCar(cid, read, { scope, signal })),
    share: () => Promise.resolve(undefined),
  };
  const server = serve({ app: gatewayRoutes(() => port) });
  return {
    secret: secret.cid,
    root,
    chunks,
    reads,
    url: server.url,
    close: async () => {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("a HEAD of a CAR that holds a private file's chunks reads none of them, and claims no length its GET contradicts", async () => {
  const node = await privateFileGateway();
  try {
    assert.equal(node.chunks.length, 5);
    for (
      const path of [
        `/ipfs/${node.secret}?format=car`,
        `/ipfs/${node.secret}?format=car&dag-scope=entity`,
        `/ipfs/${node.root}?format=car`,
        `/ipfs/${node.root}/secret?format=car`,
      ]
    ) {
      const get = await fetch(`${node.url}${path}`);
      const body = new Uint8Array(await get.arrayBuffer());
      assert.equal(get.status, 200, path);
      node.reads.length = 0;
      const head = await fetch(`${node.url}${path}`, { method: "HEAD" });
      await head.body?.cancel();
      assert.equal(head.status, 200, path);
      assert.equal(head.headers.get("etag"), get.headers.get("etag"), path);
      assert.equal(head.headers.get("content-type"), get.headers.get("content-type"), path);
      // Its GET streams without a length: the HEAD says that one, or none (never `0`).
      const length = head.headers.get("content-length");
      assert.ok(length === null || length === `${body.length}`, `${path}: ${length}`);
      const chunksRead = node.reads.filter((key) => node.chunks.includes(key));
      assert.deepEqual(chunksRead, [], path);
    }
    // The manifest's block alone is sized by its own bytes: its HEAD keeps its length.
    const path = `/ipfs/${node.secret}?format=car&dag-scope=block`;
    const get = await fetch(`${node.url}${path}`);
    const body = new Uint8Array(await get.arrayBuffer());
    const head = await fetch(`${node.url}${path}`, { method: "HEAD" });
    await head.body?.cancel();
    assert.equal(head.headers.get("content-length"), `${body.length}`);
  } finally {
    await node.close();
  }
});

Deno.test("a HEAD whose GET's length the runtime counts (an error's JSON) says no Content-Length, never 0; one that names its length keeps it", async () => {
  const node = await privateFileGateway();
  try {
    for (const path of ["/ipfs/not-a-cid", `/ipfs/${node.root}/missing`]) {
      const get = await fetch(`${node.url}${path}`);
      const body = new Uint8Array(await get.arrayBuffer());
      assert.ok(body.length > 0, path);
      const head = await fetch(`${node.url}${path}`, { method: "HEAD" });
      await head.body?.cancel();
      assert.equal(head.status, get.status, path);
      const length = head.headers.get("content-length");
      assert.ok(length === null || length === `${body.length}`, `${path}: ${length}`);
    }
    // A raw block's HEAD names its length: kept.
    const block = await fetch(`${node.url}/ipfs/${node.secret}?format=raw`, { method: "HEAD" });
    await block.body?.cancel();
    assert.ok(Number(block.headers.get("content-length")) > 0);
  } finally {
    await node.close();
  }
});
