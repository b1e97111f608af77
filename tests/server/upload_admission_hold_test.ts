/**
 * `POST /v1/files` admits an upload by its whole `Content-Length`, but the store holds only a
 * bounded part of it ahead of what the upload has written (review s75 fix-admission): held whole,
 * an upload declaring all the free room and sending at the minimum rate (1.6 KiB/s) held the room
 * for as long as it took to send (50 GB: about a year), and every other upload was `507 disk_full`
 * meanwhile. The disk is the store's `freeBytes` test hook.
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
const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK_SIZE = 256 * KiB;
const FLOOR = 24 * MiB;
/** Room above the floor: larger than one upload's hold, so holding it whole refused the others. */
const ROOM = 40 * MiB;
/** What one second at the upload's minimum rate brings. */
const TRICKLE = 1640;

Deno.test("an upload whose Content-Length claims all the free room and trickles does not refuse the next upload", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "upload-admission-hold-test" });
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () =>
        new StorageActor({
          dir,
          chunkSize: CHUNK_SIZE,
          store: {
            durable: false,
            putMinFreeBytes: FLOOR,
            faults: { freeBytes: () => FLOOR + ROOM },
          },
        }) as never,
    });
    const app = createApp({ inference: {} as InferencePort });
    app.route("/v1", fileRoutes(() => storageGateway(storage)));
    const post = (body: ReadableStream<Uint8Array>, size: number) =>
      app.request("/v1/files", {
        method: "POST",
        body,
        headers: { "content-length": String(size) },
      }, LOOPBACK as never);

    // The slow upload declares every byte of the room, sends a trickle, then nothing for now.
    let claimed = ROOM;
    while (admissionCost(claimed, CHUNK_SIZE) > ROOM) claimed -= KiB;
    const gone = Promise.withResolvers<void>();
    let slowPulls = 0;
    const slow = post(
      new ReadableStream({
        async pull(controller) {
          if (slowPulls++ === 0) return controller.enqueue(pseudoRandomBytes(TRICKLE, 1));
          await gone.promise;
          controller.error(new Error("the slow client went away"));
        },
      }),
      claimed,
    );
    while (slowPulls < 2) await new Promise((resolve) => setTimeout(resolve, 0));

    // Before: 507 disk_full, the slow upload's whole declared size held as promised room.
    const data = pseudoRandomBytes(2 * MiB, 2);
    const next = await post(ReadableStream.from([data]), data.length);
    assert.equal(next.status, 201, await next.clone().text());
    assert.equal((await next.json()).size, data.length);

    gone.resolve();
    const failed = await slow;
    assert.notEqual(failed.status, 201);
    await failed.body?.cancel();
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
