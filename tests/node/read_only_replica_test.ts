/**
 * A node read-only on a full disk (`node/disk_room.ts`: less free than `storage.putMinFreeBytes`)
 * refuses peers' chunks too, whatever `storage.replicaMinFreeBytes` says: one floor below which
 * nothing is written (`storage/_replica_cap.ts`). Before, a `replicaMinFreeBytes` set below
 * `putMinFreeBytes` had the node refuse its own uploads `disk_full` while it still took peers'
 * chunks into the room it kept for its ledger. And its heartbeat says it is read-only on every
 * beat, with the free and needed bytes, as `/healthz` and `status` do. A whole node (tiny model,
 * no peers); the disk's free space is the fake probe the store reads too
 * (`StartNodeOptions.disk.freeBytes`), so no disk is filled.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { NODE_ACTORS } from "../../node/_actor_names.ts";
import { type StorageMessage, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { cidOf } from "../../protocols/cid.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";

const MiB = 1024 ** 2;
/** The node's own puts' floor (`storage.putMinFreeBytes`): below it the node is read-only. */
const PUT_FLOOR = 4 * MiB;
/** The peers' floor, set below the node's own (`storage.replicaMinFreeBytes`). */
const REPLICA_FLOOR = 1 * MiB;
/** Free now: under the node's floor (read-only), well over the peers' one. */
const FREE = 3 * MiB;
/** The shortest heartbeat the config takes (1 s). */
const HEARTBEAT_MS = 1_000;

Deno.test({
  name:
    "a read-only node refuses a peer's chunk even with replicaMinFreeBytes below putMinFreeBytes, and its heartbeat says READ-ONLY with the free and needed bytes",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const lines: string[] = [];
    const node = await startNode(
      parseNodeConfig({
        dataDir: dir,
        http: { port: 0 },
        heartbeatMs: HEARTBEAT_MS,
        model: { workers: 0, size: "tiny" },
        network: { listening: false },
        storage: { putMinFreeBytes: PUT_FLOOR, replicaMinFreeBytes: REPLICA_FLOOR },
      }),
      {
        log: (line) => lines.push(line),
        disk: { freeBytes: () => FREE, timers: new FakeTimers() },
      },
    );
    try {
      assert.ok(lines.some((line) => line.startsWith("disk: read-only:")), lines.join("\n"));
      // A first start on a full disk: its ledger's genesis is written (the reserve is for it),
      // its own stake waits for a start with room, and the node is up.
      assert.ok(lines.some((line) => line.includes("recorded at the first start with room")));
      const storage = node.system.lookup<StorageMessage>(NODE_ACTORS.storage)!;
      const bytes = pseudoRandomBytes(64 * 1024, 3);
      const cid = cidOf(bytes);
      await assert.rejects(
        (async () =>
          unwrapReply(
            await storage.ask({ type: "put_chunk", cid, bytes, from: "ab".repeat(32) }),
          ))(),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, "replica_quota_exceeded", String(error));
          assert.match(error.message, new RegExp(`${PUT_FLOOR} bytes of disk kept free`));
          return true;
        },
        "a peer's chunk is refused while the node is read-only",
      );
      const beat = await eventually(
        () => lines.find((line) => line.startsWith("heartbeat ")),
        "a heartbeat",
      );
      assert.match(beat, / · READ-ONLY \(disk_full: 3145728 bytes free, 4194304 needed\)/);
    } finally {
      await node.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
