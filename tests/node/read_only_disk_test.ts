/**
 * A node whose disk is full starts read-only instead of refusing to start (stop 75 left it: the
 * ledger's open needed room, so `start` failed and the operator could not use the node's API to
 * see or free what filled the disk). Up, it says so in the log and on `/healthz` (`disk_full`, the
 * free bytes and `storage.putMinFreeBytes`) and in `cli.ts status`, serves files, metrics and ledger queries, and refuses
 * uploads and inference (its receipt is a ledger write) with `disk_full` (507),
 * leaving the ledger's files byte for byte as they were. Room that comes back ends it without a
 * restart: on the timer (the injected clock) or at the next refused write. A whole node (tiny
 * model, no peers) over HTTP; the disk's free space is the fake probe the store already reads
 * (`StartNodeOptions.disk.freeBytes`, also its `faults.freeBytes`), so no disk is filled.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseNodeConfig } from "../../node/config.ts";
import { runStatus } from "../../cli/status_command.ts";
import { startNode, type VeriflowNode } from "../../node/node.ts";
import { NODE_ACTORS } from "../../node/_actor_names.ts";
import { DISK_ROOM_CHECK_MS } from "../../node/disk_room.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";

const MiB = 1024 ** 2;
/** The floor of free disk the node needs to write (`storage.putMinFreeBytes`). */
const FLOOR = 4 * MiB;
/** A disk with room: far above the floor. */
const ROOM = 64 * MiB;
/** A full disk: below the floor. */
const FULL = 1 * MiB;
/** The ledger's files that were durable before the read-only period. */
const LEDGER_FILES = ["ledger.log", "checkpoint.cbor"];

/** A node on `dir` whose disk has `free()` bytes free. */
function start(dir: string, free: () => number, lines: string[], timers?: FakeTimers) {
  return startNode(
    parseNodeConfig({
      dataDir: dir,
      http: { port: 0 },
      heartbeatMs: 0,
      model: { workers: 0, size: "tiny" },
      network: { listening: false },
      storage: { putMinFreeBytes: FLOOR },
    }),
    { log: (line) => lines.push(line), disk: { freeBytes: free, timers } },
  );
}

/** Upload `data`; the response. */
function upload(node: VeriflowNode, data: Uint8Array): Promise<Response> {
  return fetch(`${node.url}/v1/files`, { method: "POST", body: data as Uint8Array<ArrayBuffer> });
}

/** One short completion on the node's model; the response. */
async function complete(node: VeriflowNode, prompt: string): Promise<Response> {
  const [model] = await node.inference!.models();
  return await fetch(`${node.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: model.cid, prompt, max_tokens: 3 }),
  });
}

/** The error code of a refused response, checking its status. */
async function refusedWith(response: Response, status: number): Promise<string> {
  const body = await response.json();
  assert.equal(response.status, status, JSON.stringify(body));
  return body.error.code;
}

/** The ledger's durable files, byte for byte. */
async function ledgerBytes(dir: string): Promise<Uint8Array[]> {
  return await Promise.all(LEDGER_FILES.map((f) => Deno.readFile(join(dir, "ledger", f))));
}

/** A node started with room, one file stored and one job's receipt recorded; the file's CID. */
async function nodeWithHistory(dir: string): Promise<{ cid: string; data: Uint8Array }> {
  const data = pseudoRandomBytes(5_000, 7);
  const node = await start(dir, () => ROOM, []);
  try {
    const stored = await upload(node, data);
    assert.equal(stored.status, 201);
    const { cid } = await stored.json();
    const done = await complete(node, "before");
    assert.equal(done.status, 200, await done.clone().text());
    await done.body?.cancel();
    return { cid, data };
  } finally {
    await node.shutdown();
  }
}

/** `/healthz`'s body. */
async function healthz(node: VeriflowNode): Promise<{ status: string; conditions?: unknown[] }> {
  const response = await fetch(`${node.url}/healthz`);
  return await response.json();
}

/** The `disk` condition `/healthz` lists, if any. */
async function diskCondition(node: VeriflowNode) {
  const { conditions } = await healthz(node);
  return (conditions as { component: string; code: string; message: string }[] | undefined)
    ?.find((c) => c.component === "disk");
}

Deno.test({
  name:
    "a node on a full disk starts read-only: it says so, serves files, metrics and ledger queries, refuses puts and inference with disk_full, and leaves the ledger's files byte-identical",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const { cid, data } = await nodeWithHistory(dir);
      const before = await ledgerBytes(dir);
      const lines: string[] = [];
      const node = await start(dir, () => FULL, lines, new FakeTimers());
      try {
        const said = lines.find((line) => line.startsWith("disk: read-only:"));
        assert.ok(said, lines.join("\n"));
        assert.match(said, /1048576 bytes free/);
        assert.match(said, /needs 4194304 \(storage\.putMinFreeBytes\)/);
        const condition = await diskCondition(node);
        assert.equal(condition?.code, "disk_full");
        assert.match(condition!.message, /read-only: 1048576 bytes free, 4194304 needed/);
        assert.equal((await healthz(node)).status, "degraded");
        // `cli.ts status` says it too.
        const out: string[] = [];
        const status = await runStatus(["--url", node.url!], {
          out: (line) => void out.push(line),
          err: (line) => void out.push(line),
          env: () => undefined,
        });
        assert.equal(status, 0, out.join("\n"));
        assert.ok(
          out.some((line) => line.includes("READ-ONLY: 1048576 bytes free, 4194304 needed")),
          out.join("\n"),
        );

        // Reads are served.
        const got = await fetch(`${node.url}/v1/files/${cid}`);
        assert.equal(got.status, 200);
        assert.deepEqual(new Uint8Array(await got.arrayBuffer()), data);
        const gateway = await fetch(`${node.url}/ipfs/${cid}`);
        assert.equal(gateway.status, 200);
        await gateway.body?.cancel();
        const metrics = await fetch(`${node.url}/metrics`);
        assert.equal(metrics.status, 200);
        await metrics.body?.cancel();
        const account = await node.ledger!.account(node.identity.publicKey);
        assert.ok(account.stake > 0, "the stake recorded before is read");

        // Writes are refused, typed.
        assert.equal(
          await refusedWith(await upload(node, pseudoRandomBytes(100, 8)), 507),
          "disk_full",
        );
        assert.equal(await refusedWith(await complete(node, "during"), 507), "disk_full");
        // The validator opened its ledger and answers (before the fix the start failed there).
        const validator = node.system.lookup<ValidatorMessage>(NODE_ACTORS.validator)!;
        assert.equal(
          await validator.ask({ type: "has_staked", key: node.identity.publicKey }),
          true,
        );
      } finally {
        await node.shutdown();
      }
      // Nothing durable changed, the shutdown's checkpoint included.
      assert.deepEqual(await ledgerBytes(dir), before);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "room freed under a read-only node ends read-only without a restart: at the next refused write and on the timer, saying so; a disk that fills again makes it read-only again",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      await nodeWithHistory(dir);
      let free = FULL;
      const lines: string[] = [];
      const timers = new FakeTimers();
      const node = await start(dir, () => free, lines, timers);
      const ended = () => lines.filter((line) => line.includes("writes are taken again")).length;
      try {
        assert.equal(await refusedWith(await complete(node, "full"), 507), "disk_full");
        // Room back: the next write asks the disk itself, and is taken (no timer fired).
        free = ROOM;
        const done = await complete(node, "after");
        assert.equal(done.status, 200, await done.clone().text());
        await done.body?.cancel();
        assert.equal(ended(), 1, lines.join("\n"));
        assert.equal(await diskCondition(node), undefined);

        // The disk fills under the running node: the timer sees it.
        free = FULL;
        timers.fireFor(DISK_ROOM_CHECK_MS);
        await eventually(async () => (await diskCondition(node)) !== undefined, "read-only again");
        assert.equal(lines.filter((line) => line.startsWith("disk: read-only:")).length, 2);
        assert.equal(
          await refusedWith(await upload(node, pseudoRandomBytes(100, 9)), 507),
          "disk_full",
        );
        // Room back, seen by the timer alone.
        free = ROOM;
        timers.fireFor(DISK_ROOM_CHECK_MS);
        await eventually(() => ended() === 2, "the log saying read-only ended again");
        assert.match(lines.at(-1)!, /^disk: 67108864 bytes free: writes are taken again/);
        assert.equal(await diskCondition(node), undefined);
        const stored = await upload(node, pseudoRandomBytes(100, 10));
        assert.equal(stored.status, 201, await stored.clone().text());
        await stored.body?.cancel();
      } finally {
        await node.shutdown();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
