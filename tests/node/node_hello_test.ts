/** What the node's signed hello says, and how often it reads each fact (`node/node_hello.ts`). */
import assert from "node:assert/strict";
import { nodeHello } from "../../node/node_hello.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { emptyInferenceStats, type InferencePort } from "../../inference/inference_port.ts";

Deno.test("the hello reads the load on every call and the storage use at most every 30 s", async () => {
  let running = 0;
  const port = {
    models: () => Promise.resolve([{ cid: "bafk-m", name: "m", kind: "text" }]),
    stats: () =>
      Promise.resolve({ ...emptyInferenceStats(), activeJobs: running, queuedJobs: 1, slots: 8 }),
  } as unknown as InferencePort;
  let reads = 0;
  let used = 100;
  const storage = {
    ask: () => {
      reads++;
      return Promise.resolve({
        ok: true,
        value: { usedBytes: used, quotaBytes: null, objectCount: 0, pinCount: 0, replicaCount: 0 },
      });
    },
  } as unknown as ActorRef<StorageMessage>;
  const clock = { t: 0 };
  const describe = nodeHello({
    roles: { inference: true, storage: true, prover: true, validator: false },
    inference: () => port,
    storage: () => storage,
    queueLimit: 64,
  }, () => clock.t);
  const first = await describe();
  assert.deepEqual(first.roles, ["inference", "storage", "prover"]);
  assert.deepEqual(first.models, ["bafk-m"]);
  assert.deepEqual(first.load, { running: 0, queued: 1, slots: 8, queueLimit: 64 });
  assert.deepEqual(first.storage, { usedBytes: 100, quotaBytes: null });
  running = 3;
  used = 500;
  clock.t = 29_999;
  const second = await describe();
  assert.equal(second.load?.running, 3, "the load is read every time");
  assert.equal(second.storage?.usedBytes, 100, "the storage reading is reused");
  clock.t = 30_000;
  assert.equal((await describe()).storage?.usedBytes, 500);
  assert.equal(reads, 2);
});
