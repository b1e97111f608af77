/**
 * Pinning a file whose blocks only the peers hold walks its DAG no deeper than
 * `storage/dag_links.ts` `MAX_DAG_DEPTH`, as a CAR export and an import do: a replica deeper than
 * that made this node fetch a node per level for as deep as the peer chose (review s78
 * follow-up). Past it the pin is refused `dag_too_deep`, logged, nothing is pinned, and the walk
 * stops at the limit. A file in it deeper than `unixfs.ts` `MAX_UNIXFS_DEPTH` is refused the same
 * way (stop 79), so a replica at the limit is directories over a file at its own.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import type { VeriflowError } from "../../protocols/errors.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { MAX_DAG_DEPTH } from "../../storage/dag_links.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { chainDag, dirsOverChainDag, type MemoryDag } from "../storage/_hostile_dags.ts";
import { MAX_UNIXFS_DEPTH } from "../../storage/unixfs.ts";
import { MemoryPeer } from "../storage/_memory_peer.ts";

/** A holder that records which blocks were asked of it (a read may ask every holder). */
class CountingPeer extends MemoryPeer {
  readonly asked = new Set<string>();

  override getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    this.asked.add(cid);
    return super.getChunk(cid, options);
  }
}

/** Pin `dag`, held by two peers only, on a fresh node: its reply, log, pins and peer reads. */
async function pinFromPeers(dag: MemoryDag) {
  const dir = await Deno.makeTempDir();
  const peers = [new CountingPeer(), new CountingPeer()];
  for (const peer of peers) {
    for (const [cid, bytes] of dag.blocks) peer.chunks.set(storageKey(cid), bytes);
  }
  const log: string[] = [];
  const actor = new StorageActor({
    dir,
    store: { durable: false },
    peers,
    replication: { replicas: 2, writeQuorum: 2 },
    log: (line) => log.push(line),
  });
  try {
    await actor.preStart();
    const reply = await actor.receive({ type: "pin", cid: dag.root });
    const pins = await (await ChunkStore.open(dir, { durable: false })).pins();
    return { reply, log, pins, reads: new Set([...peers[0].asked, ...peers[1].asked]).size };
  } finally {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("pinning a peers' replica deeper than MAX_DAG_DEPTH is refused dag_too_deep, logged, not pinned, and its walk stops at the limit", async () => {
  const dag = await chainDag(MAX_DAG_DEPTH + 50);
  const { reply, log, pins, reads } = await pinFromPeers(dag);
  assert.throws(
    () => unwrapReply<boolean>(reply),
    (error: VeriflowError) => error.code === "dag_too_deep",
  );
  assert.deepEqual(pins, [], "nothing pinned");
  assert.ok(reads <= MAX_DAG_DEPTH + 1, `${reads} nodes fetched: the walk went past the limit`);
  assert.ok(
    log.some((line) => line.includes(dag.root) && line.includes("refused")),
    `logged: ${log.join(" | ")}`,
  );
});

Deno.test("pinning a peers' replica exactly MAX_DAG_DEPTH deep (directories over a file MAX_UNIXFS_DEPTH deep) succeeds", async () => {
  const dag = await dirsOverChainDag(MAX_DAG_DEPTH - MAX_UNIXFS_DEPTH, MAX_UNIXFS_DEPTH);
  const { reply, pins } = await pinFromPeers(dag);
  assert.equal(unwrapReply<boolean>(reply), true);
  assert.deepEqual(pins, [dag.root]);
});
