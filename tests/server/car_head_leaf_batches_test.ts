/**
 * A CAR's `HEAD` and ranged `GET` (`server/gateway_car.ts`, `storage/car.ts` `carLength`) check
 * that every leaf they list is held before their status (review s76 F3), and ask the storage per
 * batch of leaves (`storage/_leaf_batch.ts`), as the file routes' range check does: one ask per
 * leaf made a 4 GiB file's CAR `HEAD` 16,384 mailbox turns (stop 77).
 */
import assert from "node:assert/strict";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { serve } from "../../server/serve.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { cidOf, RAW_CODEC } from "../../protocols/cid.ts";
import { blockMaker, countedStorage } from "./_gateway_node.ts";

/** Leaves per inner node, and inner nodes per file: 300 leaves, more than a node's 174. */
const LEAVES_PER_NODE = 100;
const NODES = 3;
/** Bytes of each leaf. */
const LEAF_BYTES = 8;

Deno.test("a CAR's HEAD and ranged GET check the leaves in batches, never one ask per leaf, and a lost leaf is a 404 before any byte", async () => {
  const dir = await Deno.makeTempDir();
  const make = blockMaker(await ChunkStore.open(dir));
  const inner: { cid: string; size: number }[] = [];
  for (let n = 0; n < NODES; n++) {
    const leaves = [];
    for (let i = 0; i < LEAVES_PER_NODE; i++) {
      const bytes = new Uint8Array(LEAF_BYTES).fill(n);
      new DataView(bytes.buffer).setUint32(0, i);
      leaves.push({ cid: await make.putRaw(bytes), size: LEAF_BYTES });
    }
    inner.push({ cid: await make.fileNode(leaves), size: LEAVES_PER_NODE * LEAF_BYTES });
  }
  const whole = await make.fileNode(inner);
  // The same file but for its last node, whose last leaf was never stored.
  const lost = cidOf(new Uint8Array(LEAF_BYTES).fill(0xee), RAW_CODEC);
  const holed = await make.fileNode([
    ...inner.slice(0, NODES - 1),
    {
      cid: await make.fileNode([
        ...Array.from({ length: LEAVES_PER_NODE - 1 }, (_, i) => {
          const bytes = new Uint8Array(LEAF_BYTES).fill(NODES - 1);
          new DataView(bytes.buffer).setUint32(0, i);
          return { cid: cidOf(bytes, RAW_CODEC), size: LEAF_BYTES };
        }),
        { cid: lost, size: LEAF_BYTES },
      ]),
      size: LEAVES_PER_NODE * LEAF_BYTES,
    },
  ]);
  const { system, gateway } = await countedStorage(dir, "car-head-leaf-batches");
  /** Leaves each batched ask carried, and single-leaf asks. */
  const batches: number[] = [];
  let single = 0;
  const counted = (): GatewayStorage => {
    const port = gateway();
    return {
      ...port,
      mayRead: (cid, options) => {
        single++;
        return port.mayRead!(cid, options);
      },
      leavesReadable: (cids, options) => {
        batches.push(cids.length);
        return port.leavesReadable!(cids, options);
      },
    };
  };
  // Mounted as the node mounts it, so a refusal is answered as the node answers it.
  const app = createApp({ inference: {} as InferencePort });
  app.route("/", gatewayRoutes(counted));
  const server = serve({ app });
  const total = NODES * LEAVES_PER_NODE;
  try {
    const last = total * LEAF_BYTES - 1;
    /** Each request, and the leaves its first ask carries (the first node's in range). */
    const asks: [string, RequestInit, number][] = [
      [`/ipfs/${whole}?format=car`, { method: "HEAD" }, LEAVES_PER_NODE],
      // A byte range's CAR (all but the first leaf) is walked before its status too.
      [`/ipfs/${whole}?format=car&entity-bytes=${LEAF_BYTES}:${last}`, {}, LEAVES_PER_NODE - 1],
    ];
    for (const [path, init, first] of asks) {
      batches.length = 0;
      single = 0;
      const held = await fetch(`${server.url}${path}`, init);
      await held.body?.cancel();
      assert.equal(held.status, 200, path);
      assert.equal(single, 0, `${path}: ${single} asks of one leaf`);
      // Every leaf is checked, the first node's at once, the rest in one ask.
      assert.deepEqual(batches, [first, total - LEAVES_PER_NODE], path);
    }
    const refused = await fetch(`${server.url}/ipfs/${holed}?format=car`, { method: "HEAD" });
    await refused.body?.cancel();
    assert.equal(refused.status, 404);
    const ranged = await fetch(`${server.url}/ipfs/${holed}?format=car&entity-bytes=0:${last}`);
    const body = await ranged.text();
    assert.equal(ranged.status, 404);
    assert.match(body, /chunk_not_found/);
    assert.match(body, new RegExp(lost));
  } finally {
    await server.shutdown();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
