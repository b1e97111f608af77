/**
 * `ls` checks the chunks held for peers too (`storage/replica_check.ts`), review s79 F2: a holder
 * whose packs were lost still counted its `replicas/` records as "chunks held for peers" and
 * `ls --verify` exited 0, so `ls --verify || alert` never told its operator.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runLs } from "../../cli/ls_command.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";
import { flipObjectBit, pseudoRandomBytes } from "../storage/_helpers.ts";

/** The hex id of the peer that gave the chunks (any key: only recorded). */
const GIVER = "ab".repeat(32);

/** A node directory holding `n` chunks for a peer, as its `put_chunk` stores them; their CIDs. */
async function holder(dir: string, n: number): Promise<{ data: string; cids: string[] }> {
  const data = join(dir, "node");
  const store = await ChunkStore.open(join(data, "store"), { durable: false });
  const cids: string[] = [];
  for (let i = 0; i < n; i++) {
    cids.push(await store.put(pseudoRandomBytes(4096, 70 + i), { replica: true, giver: GIVER }));
  }
  return { data, cids };
}

Deno.test("ls and ls --verify exit 1 and say so when the chunks held for peers are gone (their packs deleted)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-ls-replicas-" });
  try {
    const { data } = await holder(dir, 5);
    const healthy = await capture(() => runLs(["--verify", "--data", data]));
    assert.equal(healthy.code, 0, healthy.err);
    assert.doesNotMatch(healthy.out, /DAMAGED/);
    const packs = join(data, "store", "packs");
    for await (const entry of Deno.readDir(packs)) await Deno.remove(join(packs, entry.name));
    for (const args of [["--verify"], []]) {
      const ls = await capture(() => runLs([...args, "--data", data]));
      assert.match(ls.out, /DAMAGED: 5 missing of 5 chunks held for peers: /, `ls ${args}`);
      assert.equal(ls.code, 1, `ls ${args}: lost chunks held for peers fail the command`);
      assert.match(ls.err, /5 chunks held for peers missing or corrupt/);
    }
    const json = await capture(() => runLs(["--verify", "--json", "--data", data]));
    assert.equal(json.code, 1);
    assert.deepEqual(JSON.parse(json.out).replicas, { total: 5, missing: 5, corrupt: 0 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ls --verify finds a corrupt chunk held for a peer, which plain ls cannot see", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-ls-replicas-" });
  try {
    const { data, cids } = await holder(dir, 3);
    await flipObjectBit(join(data, "store"), cids[1], 9);
    const quick = await capture(() => runLs(["--data", data]));
    assert.equal(quick.code, 0, "nothing read: nothing found");
    const ls = await capture(() => runLs(["--verify", "--data", data]));
    assert.match(ls.out, /DAMAGED: 1 corrupt \(moved to quarantine\/\) of 3 chunks held for peers/);
    assert.equal(ls.code, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
