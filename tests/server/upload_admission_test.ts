/**
 * `POST /v1/files` admits an upload by its `Content-Length` against the store's floor of free
 * disk before reading it, with the uploads under way holding their room (review s75 vcrash F2):
 * one that does not fit is a 507 at once, its body unread. The disk is the store's `freeBytes`
 * test hook.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import { admissionCost } from "../../storage/_put_admission.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";

const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } };
const CHUNK_SIZE = 1024;
const FLOOR = 1024 * 1024;
const SIZE = 20 * CHUNK_SIZE;

Deno.test("an upload whose Content-Length does not fit beside the uploads under way is 507 disk_full at once, its body unread", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "upload-admission-test" });
  try {
    const cost = admissionCost(SIZE, CHUNK_SIZE);
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () =>
        new StorageActor({
          dir,
          chunkSize: CHUNK_SIZE,
          // Room above the floor for one upload of SIZE and half of another.
          store: {
            durable: false,
            putMinFreeBytes: FLOOR,
            faults: { freeBytes: () => FLOOR + cost * 1.5 },
          },
        }) as never,
    });
    const app = createApp({ inference: {} as InferencePort });
    app.route("/v1", fileRoutes(() => storageGateway(storage)));
    const post = (body: ReadableStream<Uint8Array>) =>
      app.request("/v1/files", {
        method: "POST",
        body,
        headers: { "content-length": String(SIZE) },
      }, LOOPBACK as never);

    // The first upload is under way: its first piece sent, the rest held back.
    const bytes = pseudoRandomBytes(SIZE, 5);
    const rest = Promise.withResolvers<void>();
    let firstPulls = 0;
    const first = post(
      new ReadableStream({
        async pull(controller) {
          if (firstPulls++ === 0) return controller.enqueue(bytes.subarray(0, CHUNK_SIZE));
          await rest.promise;
          controller.enqueue(bytes.subarray(CHUNK_SIZE));
          controller.close();
        },
      }),
    );
    while (firstPulls < 2) await new Promise((resolve) => setTimeout(resolve, 0));

    let secondPulls = 0;
    const second = await post(
      new ReadableStream({
        pull(controller) {
          secondPulls++;
          controller.enqueue(pseudoRandomBytes(SIZE, 6));
          controller.close();
        },
      }, { highWaterMark: 0 }), // pulled only when read
    );
    assert.equal(second.status, 507);
    assert.equal((await second.json()).error.code, "disk_full");
    assert.equal(secondPulls, 0, "the refused upload's body was read");

    rest.resolve();
    const stored = await first;
    assert.equal(stored.status, 201, await stored.clone().text());
    assert.equal((await stored.json()).size, SIZE);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
