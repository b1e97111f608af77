/**
 * A public file whose stored leaf is shorter than its parent node says (review s71, F5): every
 * plain read of it (`/ipfs/{cid}` typed by `?filename=` or not, `/v1/files/{cid}`) is the same
 * `422 invalid_manifest`, decided before the status is sent, never a `200` with the parent's
 * length and then a cut body (which Deno's server also printed as an uncaught stack trace).
 */
import assert from "node:assert/strict";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { blockMaker, countedStorage } from "./_gateway_node.ts";

Deno.test("a file whose leaf is shorter than its link says is 422 invalid_manifest on every plain read, before any status is sent", async () => {
  const dir = await Deno.makeTempDir();
  const make = blockMaker(await ChunkStore.open(dir));
  const leaf = await make.putRaw(new TextEncoder().encode("0123456789"));
  // The file node's link and blocksizes say 1,000,000 bytes; the leaf holds 10.
  const liar = await make.fileNode([{ cid: leaf, size: 1_000_000 }]);
  const { system, gateway } = await countedStorage(dir, "short-leaf-test");
  const app = createApp({ inference: {} as InferencePort });
  app.route("/v1", fileRoutes(gateway));
  app.route("/", gatewayRoutes(gateway));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request, info) => app.fetch(request, info),
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  try {
    for (
      const path of [
        `/ipfs/${liar}`,
        `/ipfs/${liar}?filename=a.txt`,
        `/ipfs/${liar}?download=true`,
        `/v1/files/${liar}`,
      ]
    ) {
      const response = await fetch(`${url}${path}`);
      const text = await response.text();
      assert.equal(response.status, 422, `${path}: ${text}`);
      assert.equal(JSON.parse(text).error.code, "invalid_manifest", path);
      // A Range that starts inside the leaf's claimed stretch is refused alike.
      const ranged = await fetch(`${url}${path}`, { headers: { range: "bytes=0-99" } });
      assert.equal(ranged.status, 422, `${path} (Range): ${await ranged.text()}`);
    }
  } finally {
    await server.shutdown();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
