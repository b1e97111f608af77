/**
 * What the catch-up of copies never sent costs (`actors/_storage_catch_up.ts`, review s79
 * findings F4–F6), counted as work done, not time: listings of `pins/` by a pins check, blocks a
 * holder's rejoin walks, and copies of a file unpinned before its catch-up's turn. Three
 * StorageActors in one process, each the others' storage peer through its actor; no timers run.
 */
import assert from "node:assert/strict";
import type { StorageActor } from "../../actors/storage_actor.ts";
import { LaterReply } from "../../actors/actor.ts";
import { type PutHandle, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { HolderRepair } from "../../storage/holder_repair.ts";
import { PendingPut } from "../../storage/pending_put.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { storageActors } from "../storage/_storage_actors.ts";

/** The fixture's chunk size: a file of this many KiB has as many leaves. */
const CHUNK = 1024;
/** Leaves of the test files. */
const LEAVES = 16;

/** How many of `blocks` node `actor` holds. */
async function heldOf(actor: StorageActor, blocks: string[]): Promise<number> {
  let n = 0;
  for (const cid of blocks) {
    if (unwrapReply<boolean>(await actor.receive({ type: "has_chunk", cid }))) n++;
  }
  return n;
}

/** The storage keys of the blocks of `cid`, read from the store in `dir`. */
async function blocksOf(dir: string, cid: string): Promise<string[]> {
  const store = await ChunkStore.open(dir, { durable: false });
  return (await new FileStore(store).blocks(cid)).map(storageKey);
}

/** Node `actor`'s own put of a file of {@link LEAVES} chunks made from `seed`. */
async function put(actor: StorageActor, seed: number): Promise<string> {
  const handle = await actor.receive({
    type: "put",
    source: ReadableStream.from([pseudoRandomBytes(LEAVES * CHUNK, seed)]),
  });
  return (await (handle as PutHandle).done).cid;
}

/** What `cli.ts put` does beside a running node: its own handle on `dir`, a pending put pinned. */
async function cliPut(dir: string, seed: number): Promise<string> {
  const cli = await ChunkStore.open(dir, { durable: false });
  const pending = await PendingPut.begin(cli);
  const { cid } = await new FileStore(pending, { chunkSize: CHUNK }).put(
    ReadableStream.from([pseudoRandomBytes(LEAVES * CHUNK, seed)]),
  );
  await pending.commit(cid);
  await pending.release();
  return cid;
}

/** Counts the calls of `ChunkStore.pins` (a listing of `pins/`) until `restore`. */
function countListings(): { count: () => number; restore: () => void } {
  const original = ChunkStore.prototype.pins;
  let calls = 0;
  ChunkStore.prototype.pins = function (this: ChunkStore) {
    calls++;
    return original.call(this);
  };
  return { count: () => calls, restore: () => ChunkStore.prototype.pins = original };
}

/** Counts the blocks `FileStore.blocks` lists (what a catch-up walks) until `restore`. */
function countWalked(): { count: () => number; restore: () => void } {
  const original = FileStore.prototype.blocks;
  let walked = 0;
  FileStore.prototype.blocks = async function (this: FileStore, ...args) {
    const blocks = await original.apply(this, args);
    walked += blocks.length;
    return blocks;
  };
  return { count: () => walked, restore: () => FileStore.prototype.blocks = original };
}

Deno.test("a pins check runs outside the mailbox and does not list pins/ when only the node's own puts changed it", async () => {
  const net = await storageActors(3, { replicas: 3, writeQuorum: 3 });
  const { dirs, actors, setPeers } = net;
  const listings = countListings();
  try {
    for (const a of actors) await a.preStart();
    await setPeers([0, 1, 2]);
    const reply = actors[0].receive({ type: "pins_check" });
    assert.ok(reply instanceof LaterReply, "answered later: its listing is not in the mailbox");
    await reply;

    await put(actors[0], 1);
    await put(actors[0], 2);
    let before = listings.count();
    assert.equal(unwrapReply<number>(await actors[0].receive({ type: "pins_check" })), 0);
    assert.equal(listings.count() - before, 0, "own pins moved the stamp: no listing");

    // Another process's pin beside the node's own: listed, and found.
    await put(actors[0], 3);
    const cid = await cliPut(dirs[0], 4);
    before = listings.count();
    assert.equal(unwrapReply<number>(await actors[0].receive({ type: "pins_check" })), 1);
    assert.equal(listings.count() - before, 1, "a pin not this node's: listed once");
    await actors[0].repairIdle();
    const blocks = await blocksOf(dirs[0], cid);
    assert.equal(await heldOf(actors[1], blocks), blocks.length, "node 1 was given the CLI file");

    // The node's own unpin moves the stamp too; a CLI re-pin of that root after it is still seen.
    assert.equal(unwrapReply(await actors[0].receive({ type: "unpin", cid })), true);
    before = listings.count();
    assert.equal(unwrapReply<number>(await actors[0].receive({ type: "pins_check" })), 0);
    assert.equal(listings.count() - before, 0, "own unpin: no listing");
    const again = await ChunkStore.open(dirs[0], { durable: false });
    await again.pin(cid);
    assert.equal(unwrapReply<number>(await actors[0].receive({ type: "pins_check" })), 1);
  } finally {
    listings.restore();
    await net.remove();
  }
});

Deno.test("a holder back with nothing pinned since its catch-up walks no block; one back after a put walks that file's only and gets it", async () => {
  const net = await storageActors(3, { replicas: 3, writeQuorum: 2 });
  const { dirs, actors, setPeers } = net;
  const walked = countWalked();
  try {
    for (const a of actors) await a.preStart();
    await setPeers([0, 1, 2]);
    for (let f = 0; f < 3; f++) await put(actors[0], 10 + f);
    for (const a of actors) await a.postStop(); // the copies past the quorum land

    // The first rejoin goes over the files pinned since the start's catch-up (a put's copies past
    // its quorum may have missed the holder); the rejoins after it find nothing pinned since.
    const rejoins: number[] = [];
    for (let k = 0; k < 3; k++) {
      await setPeers([0, 1]);
      const before = walked.count();
      await setPeers([0, 1, 2]); // waits for the passes (and catch-ups) it starts
      rejoins.push(walked.count() - before);
    }
    assert.deepEqual(rejoins, [3 * (LEAVES + 1), 0, 0], "blocks walked per rejoin");

    await setPeers([0, 1]);
    const cid = await put(actors[0], 20); // node 2 away: written to nodes 0 and 1
    for (const a of actors) await a.postStop();
    const blocks = await blocksOf(dirs[0], cid);
    assert.equal(await heldOf(actors[2], blocks), 0, "node 2 was away");
    const before = walked.count();
    await setPeers([0, 1, 2]);
    assert.equal(walked.count() - before, blocks.length, "only the file pinned since is walked");
    assert.equal(await heldOf(actors[2], blocks), blocks.length, "node 2 got every block of it");
  } finally {
    walked.restore();
    await net.remove();
  }
});

Deno.test("a file unpinned after the pins check saw it, before its catch-up's turn, is not copied", async () => {
  const net = await storageActors(3, { replicas: 3, writeQuorum: 3 });
  const { dirs, actors, setPeers } = net;
  const original = HolderRepair.prototype.catchUp;
  // The catch-up the check asks waits for the unpin: its turn comes after it, deterministically.
  let open = () => {};
  const gate = new Promise<void>((resolve) => open = resolve);
  const started: Promise<void>[] = [];
  try {
    for (const a of actors) await a.preStart();
    await setPeers([0, 1, 2]); // the catch-ups of the start run (and find nothing)
    HolderRepair.prototype.catchUp = function (this: HolderRepair, ...args) {
      const run = gate.then(() => original.apply(this, args));
      started.push(run);
      return run;
    };
    const cid = await cliPut(dirs[0], 30);
    const blocks = await blocksOf(dirs[0], cid);
    assert.equal(unwrapReply<number>(await actors[0].receive({ type: "pins_check" })), 1);
    assert.equal(unwrapReply(await actors[0].receive({ type: "unpin", cid })), true);
    open();
    await Promise.all(started);
    await actors[0].repairIdle();
    assert.equal(await heldOf(actors[1], blocks), 0, "node 1 was given no copy");
    assert.equal(await heldOf(actors[2], blocks), 0, "node 2 was given no copy");
  } finally {
    HolderRepair.prototype.catchUp = original;
    await net.remove();
  }
});
