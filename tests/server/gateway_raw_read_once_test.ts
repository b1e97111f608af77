/**
 * A plain read of a raw CID (one block, its whole file) reads that block once: the private-manifest
 * check (review s78 F3) reads it, and the type sniff and the body are served from those bytes. It
 * was read again for the body (and a third time for the sniff of a file with no recorded type).
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { newGatewayStore } from "./_gateway_node.ts";

Deno.test("plain GET of a raw CID reads its block from storage once, for the check, the sniff and the body", async () => {
  const { dir, make } = await newGatewayStore();
  const bytes = pseudoRandomBytes(3000, 7);
  const cid = await make.putRaw(bytes);
  const system = new ActorSystem({ name: "raw-read-once" });
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir }) as never,
    });
    const port = storageGateway(storage);
    /** Every read of the file's bytes through the port: whole blocks and byte ranges. */
    const reads: string[] = [];
    const counted = (): GatewayStorage => ({
      ...port,
      block: (c, signal, options) => {
        reads.push(`block ${c}`);
        return port.block(c, signal, options);
      },
      read: (c, range, options) => {
        reads.push(`read ${c} ${range.start}-${range.end}`);
        return port.read(c, range, options);
      },
    });
    const app = createApp({ inference: {} as InferencePort });
    app.route("/", gatewayRoutes(counted));
    const whole = await app.request(`/ipfs/${cid}`);
    assert.equal(whole.status, 200);
    assert.deepEqual(new Uint8Array(await whole.arrayBuffer()), bytes);
    assert.deepEqual(reads, [`block ${cid}`], "one read of the block");
    reads.length = 0;
    const ranged = await app.request(`/ipfs/${cid}`, { headers: { range: "bytes=10-19" } });
    assert.equal(ranged.status, 206);
    assert.deepEqual(new Uint8Array(await ranged.arrayBuffer()), bytes.subarray(10, 20));
    assert.deepEqual(reads, [`block ${cid}`], "a range read once too");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
