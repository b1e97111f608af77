/**
 * A node started on a data directory whose store is still in the first layout
 * (`store/chunks/<shard>/<cid>`), as an operator upgrading meets it (review s72 ops, findings 3
 * and 6): too large for `storage.quotaBytes`, the start stopped with a bare `quota_exceeded`
 * that said nothing of the migration, after moving part of the store; and the node never said
 * what it moved or left. How the store itself moves it is `tests/storage/legacy_chunks_test.ts`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cidOf } from "../../protocols/cid.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { runUntilStopped, type StartCommandIo } from "../../cli/start_command.ts";
import { filesUnder, pseudoRandomBytes } from "../storage/_helpers.ts";

/** Bytes of each legacy object: small, so the quota below is what refuses the migration. */
const OBJECT_BYTES = 32 * 1024;

/** Write `count` objects in the first layout under `dataDir/store/chunks`; returns their CIDs. */
async function writeLegacyStore(dataDir: string, count: number): Promise<string[]> {
  const cids: string[] = [];
  for (let seed = 1; seed <= count; seed++) {
    const bytes = pseudoRandomBytes(OBJECT_BYTES, seed);
    const cid = cidOf(bytes);
    const shard = join(dataDir, "store", "chunks", cid.slice(-2));
    await Deno.mkdir(shard, { recursive: true });
    await Deno.writeFile(join(shard, cid), bytes);
    cids.push(cid);
  }
  return cids;
}

/** A node with the quick built-in model, no peers, no proofs: only its start matters here. */
const nodeConfig = (dataDir: string, quotaBytes?: number) =>
  parseNodeConfig({
    dataDir,
    http: { port: 0 },
    heartbeatMs: 0,
    model: { workers: 0, size: "tiny" },
    network: { listening: false },
    roles: { validator: false, prover: false },
    storage: quotaBytes === undefined ? {} : { quotaBytes },
  });

Deno.test({
  name:
    "a node whose old-layout store exceeds storage.quotaBytes does not start, says it is the migration, what it needs and the key, and moves nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    try {
      await writeLegacyStore(dataDir, 6);
      const err: string[] = [];
      const io: StartCommandIo = {
        onStopSignal: () => () => {},
        out: () => {},
        err: (line) => void err.push(line),
        now: () => 0,
      };
      const code = await runUntilStopped(
        () => startNode(nodeConfig(dataDir, 3 * OBJECT_BYTES)),
        io,
      );
      assert.equal(code, 1);
      // Failed before the fix: `error [quota_exceeded]: the node did not start: storage quota
      // exceeded: need 37376 bytes, …`, with some of the objects moved.
      assert.match(
        err.join("\n"),
        /^error \[legacy_migration_over_quota\]: the node did not start: moving the store's old layout .*6 objects, 196608 bytes\) into packs needs up to \d+ bytes of quota.*Nothing was moved; raise the quota to at least \d+ bytes.*storage\.quotaBytes/,
      );
      assert.equal((await filesUnder(join(dataDir, "store", "chunks"))).length, 6);
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "a node that moves an old-layout store says in its log how many objects it moved, and what it left where and why",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir();
    try {
      const cids = await writeLegacyStore(dataDir, 3);
      const stray = join(dataDir, "store", "chunks", "README");
      await Deno.writeTextFile(stray, "not an object");
      const lines: string[] = [];
      const node = await startNode(nodeConfig(dataDir), { log: (line) => lines.push(line) });
      try {
        for (const [i, cid] of cids.entries()) {
          const block = await node.storage!.block(cid, undefined, { local: true });
          assert.deepEqual(block, pseudoRandomBytes(OBJECT_BYTES, i + 1));
        }
      } finally {
        await node.shutdown();
      }
      // Failed before the fix: no line at all, and README was deleted with chunks/.
      assert.ok(
        lines.some((line) => /^storage: moved 3 objects of the old store layout/.test(line)),
        lines.join("\n"),
      );
      assert.ok(
        lines.some((line) =>
          line.includes("1 entries of the old store layout were not moved") &&
          line.includes(`${stray} (its name is not the CID of its bytes`)
        ),
        lines.join("\n"),
      );
      assert.equal(await Deno.readTextFile(stray), "not an object");
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
