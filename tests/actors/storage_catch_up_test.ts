/**
 * Catch-up of copies never sent (`actors/_storage_catch_up.ts`, `HolderRepair.catchUp`), review
 * s79 F1: a file put with `cli.ts put` into a running node's directory, and a holder that was away
 * during a put, reach r copies when the node sees the pin or the holder come back, not at 4
 * chunks per holder per audit round. Three StorageActors in one process, each the others' storage
 * peer through its actor; no audit round runs (no timer: `auditIntervalMs` is 0).
 */
import assert from "node:assert/strict";
import type { StorageActor } from "../../actors/storage_actor.ts";
import {
  type PutHandle,
  type StorageCapacity,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { AUDIT_CHUNKS_PER_HOLDER } from "../../storage/audit_round.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { PendingPut } from "../../storage/pending_put.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { storageActors } from "../storage/_storage_actors.ts";

/** The fixture's chunk size: a file of this many KiB has as many leaves. */
const CHUNK = 1024;
/** Leaves of the test files: many more than an audit round's placement check places. */
const LEAVES = 48;

/** Whether node `actor` holds `block` (a storage key). */
async function holds(actor: StorageActor, block: string): Promise<boolean> {
  return unwrapReply<boolean>(await actor.receive({ type: "has_chunk", cid: block }));
}

/** The storage keys of the blocks of `cid`, read from the store in `dir`. */
async function blocksOf(dir: string, cid: string): Promise<string[]> {
  const store = await ChunkStore.open(dir, { durable: false });
  return (await new FileStore(store).blocks(cid)).map(storageKey);
}

/** How many of `blocks` node `actor` holds. */
async function heldOf(actor: StorageActor, blocks: string[]): Promise<number> {
  let n = 0;
  for (const block of blocks) if (await holds(actor, block)) n++;
  return n;
}

async function chunksShort(actor: StorageActor): Promise<number> {
  return unwrapReply<StorageCapacity>(await actor.receive({ type: "capacity" })).chunksShort;
}

Deno.test("a file put with the CLI into a running node's directory reaches every holder at the next pins check, without an audit round", async () => {
  const lines: string[] = [];
  const net = await storageActors(3, { replicas: 3, writeQuorum: 3 }, undefined, (i, line) => {
    if (i === 0) lines.push(line);
  });
  const { dirs, actors, setPeers } = net;
  try {
    for (const a of actors) await a.preStart();
    await setPeers([0, 1, 2]);
    // What `cli.ts put --data` does beside the node: its own store handle on the directory, a
    // pending put committed as a pin. The node did not write it and no peer was given a chunk.
    const data = pseudoRandomBytes(LEAVES * CHUNK, 79);
    const cli = await ChunkStore.open(dirs[0], { durable: false });
    const pending = await PendingPut.begin(cli);
    const { cid } = await new FileStore(pending, { chunkSize: CHUNK }).put(
      ReadableStream.from([data]),
    );
    await pending.commit(cid);
    await pending.release();
    const blocks = await blocksOf(dirs[0], cid);
    assert.ok(blocks.length > LEAVES, `${blocks.length} blocks: the leaves and the root`);
    assert.equal(await heldOf(actors[1], blocks), 0, "node 1 has nothing of it yet");
    assert.equal(await heldOf(actors[2], blocks), 0, "node 2 has nothing of it yet");

    const found = unwrapReply<number>(await actors[0].receive({ type: "pins_check" }));
    assert.equal(found, 1, "the new pin is seen");
    await actors[0].repairIdle();

    // With r = 3 of 3 nodes every node holds every block: all of them, where an audit round's
    // placement check would have placed 4 per holder.
    assert.ok(blocks.length > 2 * AUDIT_CHUNKS_PER_HOLDER);
    assert.equal(await heldOf(actors[1], blocks), blocks.length, "node 1 holds every block");
    assert.equal(await heldOf(actors[2], blocks), blocks.length, "node 2 holds every block");
    assert.equal(await chunksShort(actors[0]), 0, "nothing left short");
    assert.ok(
      lines.some((l) => l.includes(`catching up`) && l.includes(`${blocks.length} chunk(s)`)),
      `a line says how many are short: ${lines.join(" | ")}`,
    );
    assert.ok(
      lines.some((l) =>
        l.includes("catch-up done") && l.includes(`${2 * blocks.length} copies placed`)
      ),
      `a line says it is done: ${lines.join(" | ")}`,
    );
    // The file was listed from node 0's own store: its holders were not asked for blocks they lack.
    assert.deepEqual(lines.filter((l) => l.includes("failed: missing")), []);
    // Nothing new since: a second check starts nothing. Nor does this node's own put: its chunks
    // went to the holders with it.
    assert.equal(unwrapReply<number>(await actors[0].receive({ type: "pins_check" })), 0);
    const own = await actors[0].receive({
      type: "put",
      source: ReadableStream.from([pseudoRandomBytes(4 * CHUNK, 81)]),
    });
    await (own as PutHandle).done;
    assert.equal(unwrapReply<number>(await actors[0].receive({ type: "pins_check" })), 0);
  } finally {
    await net.remove();
  }
});

Deno.test("a holder that was away during a put gets every chunk it holds a place for when it comes back", async () => {
  const net = await storageActors(3, { replicas: 3, writeQuorum: 2 });
  const { dirs, actors, setPeers } = net;
  try {
    for (const a of actors) await a.preStart();
    await setPeers([0, 1, 2]);
    // Node 2 is away while the file is written over nodes 0 and 1 (w = 2).
    await setPeers([0, 1]);
    const data = pseudoRandomBytes(LEAVES * CHUNK, 80);
    const handle = await actors[0].receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    for (const a of actors) await a.postStop(); // the copies past the quorum land
    const blocks = await blocksOf(dirs[0], cid);
    assert.equal(await heldOf(actors[1], blocks), blocks.length, "node 1 got its copies");
    assert.equal(await heldOf(actors[2], blocks), 0, "node 2 was away");

    await setPeers([0, 1, 2]); // node 2 is back (and waits for the passes it starts)

    assert.equal(await heldOf(actors[2], blocks), blocks.length, "node 2 holds every block");
    assert.equal(await chunksShort(actors[0]), 0, "nothing left short");
    assert.deepEqual(
      unwrapReply<Uint8Array>(await actors[2].receive({ type: "get_bytes", cid })),
      data,
      "read back through the holder that came back",
    );
  } finally {
    await net.remove();
  }
});
