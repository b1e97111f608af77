/**
 * The `Content-Length` of a CAR's `HEAD` (`server/gateway_car.ts`, review s71 F4): never one its
 * `GET` does not send. A link's `Tsize` is the writer's word for a leaf's length, which nothing
 * checks (other tools write 0 or omit it, a hostile DAG says anything), so a CAR that holds a leaf
 * gets no length; a CAR of blocks the `HEAD` reads anyway gets the `GET`'s exact length.
 */
import assert from "node:assert/strict";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { serve } from "../../server/serve.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { blockMaker, countedStorage, readCar } from "./_gateway_node.ts";

Deno.test("a CAR's HEAD sends no Content-Length its GET contradicts when links lie about their leaves' Tsize, and the exact one for a CAR of the blocks it reads", async () => {
  const dir = await Deno.makeTempDir();
  const make = blockMaker(await ChunkStore.open(dir));
  const leaf = await make.putRaw(new TextEncoder().encode("0123456789"));
  // A directory whose link to the 10-byte leaf says Tsize 1, and a file node whose says 1,000,000.
  const folder = await make.directory([{ name: "a.txt", cid: leaf, tsize: 1 }]);
  const liar = await make.fileNode([{ cid: leaf, size: 1_000_000 }]);
  // Served as the node serves it (`serve.ts`, which keeps a HEAD's length as the routes say it).
  const { system, gateway } = await countedStorage(dir, "gateway-car-length");
  const server = serve({ app: gatewayRoutes(gateway) });
  try {
    const lengths = async (path: string) => {
      const head = await fetch(`${server.url}${path}`, { method: "HEAD" });
      await head.body?.cancel();
      assert.equal(head.status, 200, path);
      const get = await fetch(`${server.url}${path}`);
      const body = new Uint8Array(await get.arrayBuffer());
      assert.equal(get.status, 200, path);
      await readCar(body); // a whole, well-formed CAR
      return { head: head.headers.get("content-length"), sent: body.length };
    };
    // Each of these CARs holds the leaf: its length is not known without reading it.
    for (
      const path of [
        `/ipfs/${folder}?format=car`,
        `/ipfs/${liar}?format=car`,
        `/ipfs/${liar}?format=car&dag-scope=entity`,
      ]
    ) {
      const { head, sent } = await lengths(path);
      assert.equal(head, null, `${path}: HEAD says ${head}, GET sent ${sent}`);
    }
    // These hold only blocks the HEAD reads: it says the GET's exact length.
    for (
      const path of [
        `/ipfs/${folder}?format=car&dag-scope=entity`,
        `/ipfs/${liar}?format=car&dag-scope=block`,
        `/ipfs/${leaf}?format=car`,
        // The leaf named by the path is the CAR's root, read: its length is its bytes'.
        `/ipfs/${folder}/a.txt?format=car`,
      ]
    ) {
      const { head, sent } = await lengths(path);
      assert.equal(head, `${sent}`, path);
    }
  } finally {
    await server.shutdown();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
