/**
 * An audit round across real peer connections: four storage nodes joined over in-memory pairs
 * (the `Connection` protocol, the NetworkActor's storage service), one of which answers every
 * possession challenge "I do not hold it" while still taking writes. The owner's round asks
 * each holder of its file over the wire, fetches its reference copies from the other holders,
 * blames that one holder alone, and writes the blocks it failed on again.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type AuditRoundHandle,
  type PutHandle,
  type StorageMessage,
  type StorageReply,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { eventually } from "../_helpers/wait.ts";
import { blocksOf, fullMesh, holds, startNode, type TestNode } from "./_storage_mesh.ts";

/** A holder that takes every write but answers every possession challenge with "not held". */
class Forgetful extends StorageActor {
  override receive(message: StorageMessage, ctx?: Parameters<StorageActor["receive"]>[1]) {
    if (message.type === "prove") {
      const none: StorageReply<null[]> = { ok: true, value: message.cids.map(() => null) };
      return Promise.resolve(none);
    }
    return super.receive(message, ctx);
  }
}

Deno.test("an audit round over peer connections blames the one holder that lost what it was given, and repairs it", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow-audit-net-" });
  const lines: string[] = [];
  const nodes: TestNode[] = [];
  try {
    // Fixed keys: placement (rendezvous over keys and block CIDs) is then the same every run.
    // With random keys the forgetful node held none of the file's three blocks about once in
    // 64 runs ((1/4)^3), and the test failed before it audited anything.
    const key = (n: number) => Identity.fromSecretKey(new Uint8Array(32).fill(n));
    nodes.push(await startNode(root, "owner", lines, undefined, key(1)));
    nodes.push(await startNode(root, "liar", lines, (options) => new Forgetful(options), key(2)));
    nodes.push(await startNode(root, "b", lines, undefined, key(3)));
    nodes.push(await startNode(root, "c", lines, undefined, key(4)));
    await fullMesh(nodes);
    const [owner, liar] = nodes;
    const handle = await owner.storage.ask<PutHandle>({
      type: "put",
      source: streamOf(pseudoRandomBytes(6 * 64 * 1024, 11)),
      name: "audited.bin",
    });
    const { cid } = await handle.done;
    // As the store and the placement name them (a root's key is its raw CID).
    const blocks = (await blocksOf(owner, cid)).map(storageKey);
    const everyone = nodes.map((n) => ({ id: n.id }));
    const liarHolds = blocks.filter((b) =>
      rankPeers(b, everyone).slice(0, 3).some((p) => p.id === liar.id)
    );
    assert.ok(liarHolds.length > 0, "the forgetful node holds some of the file");
    // Every copy the put gave (beyond its write quorum too) has landed: each was given.
    for (const block of blocks) {
      const holders = rankPeers(block, everyone).slice(0, 3).map((p) => p.id);
      await eventually(async () => {
        for (const n of nodes) if (holders.includes(n.id) && !(await holds(n, block))) return;
        return true;
      }, `the holders of ${block}`);
    }

    const report = await unwrapReply<AuditRoundHandle>(
      await owner.storage.ask({ type: "audit_round" }),
    ).done;
    assert.equal(report.files, 1);
    assert.equal(report.errors, 0, lines.join("\n"));
    const holders = new Set(blocks.flatMap((b) => rankPeers(b, everyone).slice(0, 3)))
      .size - 1; // the owner is one of them, and never audits itself
    // Each holder the owner has a record of giving a block to (its record of a write lands
    // when the write's answer does, a moment after the holder has the block).
    assert.ok(report.holders >= 2 && report.holders <= holders, `${report.holders} audited`);
    assert.equal(report.failedHolders, 1, "only the forgetful holder fails");
    assert.ok(report.failedChunks.length > 0);
    assert.ok(report.failedChunks.every((c) => liarHolds.includes(c)));
    assert.ok(lines.some((l) => /owner: storage: audited \d+ holder\(s\).*1 failed/.test(l)));
  } finally {
    for (const n of nodes) await n.system.shutdown().catch(() => {});
    await Deno.remove(root, { recursive: true });
  }
});
