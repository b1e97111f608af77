/**
 * Review s55 of a CAR's `HEAD` (`?format=car`) of a private file, and of a directory that links
 * one: a private manifest's chunks are sized by nothing the walk reads (the chunk size is
 * sealed), so a `HEAD` that said their length read every chunk (from the storage peers too).
 * Each test here failed on the code before its fix.
 */
import assert from "node:assert/strict";
import { storageKey } from "../../protocols/cid.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { serve } from "../../server/serve.ts";
import { exportCar } from "../../storage/car.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { blockMaker } from "./_gateway_node.ts";

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
