/**
 * A node that was down while holders left repairs when it starts again (review s82 repair, F1).
 * Three of five nodes go down at once; two never come back, one (node 0) restarts. The chunks
 * whose three holders were exactly those three have one copy left, on node 0: its restart built a
 * fresh store and saw no departure, so they stayed at one copy for good. Now the peer set it last
 * judged is on disk (`judged_peers.json`), and its start judges the departures against it.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import { type PutHandle, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { storageActors } from "./_storage_actors.ts";

/** What node 0's restart left. */
interface Outcome {
  /** Per block node 0 was a holder of: copies on the live nodes. */
  held: number[];
  /** Per block: copies on the live nodes. */
  all: number[];
  /** The blocks whose holders all went down. */
  onlyDown: number;
  /** Node 0's log after its restart. */
  log: string[];
}

/**
 * Five nodes, r = 3; node 4 puts a file; node 0 and the nodes `gone` go down (and stay gone) while
 * the others see them leave; node 0 restarts. Copies are counted on the nodes still up.
 */
async function restart(gone: number[]): Promise<Outcome> {
  const log: string[] = [];
  let restarted = false;
  const net = await storageActors(
    5,
    { replicas: 3, writeQuorum: 3 },
    undefined,
    (i, line) => i === 0 && restarted && log.push(line),
  );
  const { dirs, actors, setPeers, ids } = net;
  try {
    for (const a of actors) await a.preStart();
    await setPeers([0, 1, 2, 3, 4]);
    const data = pseudoRandomBytes(64 * 1024, 44);
    const handle = await actors[4].receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    for (const a of actors) await a.postStop();
    const blocks = (await new FileStore(await ChunkStore.open(dirs[4])).blocks(cid)).map(
      storageKey,
    );
    await actors[0].postStop();
    const live = [0, 1, 2, 3, 4].filter((i) => !gone.includes(i));
    await setPeers(live.slice(1)); // node 0 and the `gone` are down; the others see them leave
    restarted = true;
    actors[0] = new StorageActor({
      dir: dirs[0],
      chunkSize: 1024,
      identity: ids[0],
      holdHere: true,
      store: { durable: false },
      replication: { replicas: 3, writeQuorum: 3 },
      log: (line) => log.push(line),
      repairStartGraceMs: 0, // every peer comes in one `set_peers` here
    });
    await actors[0].preStart();
    await setPeers(live);
    for (const a of actors) await a.postStop();
    const everyone = net.hexIds.map((id) => ({ id }));
    const outcome: Outcome = { held: [], all: [], onlyDown: 0, log };
    for (const b of blocks) {
      const was = rankPeers(b, everyone).slice(0, 3).map((p) => net.hexIds.indexOf(p.id));
      let n = 0;
      for (const i of live) {
        if (unwrapReply<boolean>(await actors[i].receive({ type: "has_chunk", cid: b }))) n++;
      }
      outcome.all.push(n);
      if (was.includes(0)) outcome.held.push(n);
      if (was.every((i) => i === 0 || gone.includes(i))) outcome.onlyDown++;
    }
    return outcome;
  } finally {
    await net.remove();
  }
}

Deno.test("a node down while holders left repairs what it holds once it restarts", async () => {
  const { held, all, onlyDown, log } = await restart([3, 4]);
  assert(onlyDown > 0, "some blocks had only the nodes that went down as holders");
  // Every block node 0 held is back at r = 3 on the three live nodes: none at one copy.
  assert.deepEqual(held.filter((n) => n < 3), [], `node 0's log: ${log.join(" | ")}`);
  // And those it did not hold, which 1 and 2 alone could keep at two copies only, reach node 0
  // too: its return is a join to them, which judges again the departures they could not repair.
  assert.deepEqual(all.filter((n) => n < 3), []);
  assert(log.some((line) => /2 holder\(s\) left; repaired [1-9]\d* copies/.test(line)), log.join());
});

Deno.test("a restart with every peer back starts no repair pass of its own", async () => {
  const { all, log } = await restart([]);
  assert.deepEqual(all.filter((n) => n < 3), []);
  assert.deepEqual(log.filter((line) => /holder\(s\) left/.test(line)), []);
});
