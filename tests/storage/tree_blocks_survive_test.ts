/**
 * Every block of a private file stored as a manifest tree (`storage/manifest_tree.ts`) survives
 * what the current node does to blocks: GC of the store that pins it, GC of the holders that keep
 * it for the writer, a repair after a holder leaves, and an audit of every holder left. (An older
 * node, which does not know tree roots, would collect a pinned tree's inner nodes: see
 * docs/STORAGE.md, "Manifest trees and older nodes"; `ls_tree_damage_test.ts` shows what the
 * current node does with a tree left so.)
 */
import assert from "node:assert/strict";
import { cidCodec, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { type ServedNode, servedNode } from "./_tracked_peer.ts";

const CHUNK = 64;
const LIMIT = 1024;
/** Chunks one audit round samples (a round's proofs travel in one message). */
const SAMPLE = 64;
const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(14));

Deno.test("GC of the store that pins a tree-manifest file keeps every node and chunk of it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const data = pseudoRandomBytes(CHUNK * 300 + 1, 41);
    const { cid } = await files.put(streamOf(data), { key: OWNER });
    await store.pin(cid);
    // An unpinned file's blocks go: the GC did run.
    const loose = await files.put(streamOf(pseudoRandomBytes(CHUNK * 3, 42)), { key: OWNER });
    const blocks = await files.blocks(cid);
    assert.ok(blocks.filter((c) => cidCodec(c) === DAG_CBOR_CODEC).length > 3);
    const result = await store.gc({ graceMs: 0 });
    assert.equal(result.removed, 4, "the loose file's root and 3 chunks");
    assert.equal(await store.has(loose.cid), false);
    for (const block of blocks) assert.equal(await store.has(block), true, block);
    assert.deepEqual(await files.bytes(cid, { key: OWNER }), data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a tree-manifest file's every block stays on two holders through their GC, a holder leaving, a repair, and audits of every holder left", async () => {
  const nodes: ServedNode[] = await Promise.all([0, 1, 2, 3].map(() => servedNode()));
  const live = new Set(nodes);
  try {
    const options = { replicas: 2, writeQuorum: 2, readParallelism: 1 };
    const replicated = new ReplicatedStore(nodes.map((n) => n.remote), options);
    const files = new FileStore(replicated, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const data = pseudoRandomBytes(CHUNK * 250 + 7, 43);
    const { cid } = await files.put(streamOf(data), { key: OWNER });
    const walked = await files.blocks(cid);
    const blocks = walked.map(storageKey);
    const nodeKeys = new Set(walked.filter((c) => cidCodec(c) === DAG_CBOR_CODEC).map(storageKey));
    assert.ok(blocks.length > 260, `${blocks.length} blocks: chunks and nodes`);
    const holdersOf = async (block: string) => {
      const held = await Promise.all([...live].map((n) => n.local.hasChunk(block)));
      return held.filter(Boolean).length;
    };
    const gcEveryHolder = async () => {
      for (const node of live) assert.equal((await node.store.gc({ graceMs: 0 })).removed, 0);
    };

    await gcEveryHolder();
    for (const block of blocks) assert.equal(await holdersOf(block), 2, block);

    // A holder leaves, with its copies; a repair over those left restores two of each.
    const gone = nodes[0];
    live.delete(gone);
    await gone.shutdown();
    replicated.setPeers([...live].map((n) => n.remote));
    await replicated.repair(blocks);
    await gcEveryHolder();
    for (const block of blocks) assert.equal(await holdersOf(block), 2, block);

    // Every holder left proves every block of the file it holds, inner nodes and chunks.
    const auditor = new StorageAuditor({
      identity: Identity.generate(),
      reference: (c, signal) => replicated.get(c, { signal }),
      sampleSize: SAMPLE,
    });
    for (const node of live) {
      const mine: string[] = [];
      for (const block of blocks) if (await node.local.hasChunk(block)) mine.push(block);
      assert.ok(mine.some((c) => nodeKeys.has(c)), "it holds nodes");
      // In rounds of a sample's size, so every block is sampled once.
      for (let i = 0; i < mine.length; i += SAMPLE) {
        const round = mine.slice(i, i + SAMPLE);
        const audit = await auditor.audit(node.remote, round);
        assert.deepEqual(audit.failures, []);
        assert.equal(audit.sampled.length, round.length);
        assert.equal(audit.passed, true);
      }
    }
    assert.deepEqual(await files.bytes(cid, { key: OWNER }), data);
  } finally {
    for (const node of live) await node.shutdown();
  }
});
