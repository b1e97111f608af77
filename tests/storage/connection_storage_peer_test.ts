import assert from "node:assert/strict";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { verifyVerdict } from "../../protocols/verdict.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { ChunkNotFoundError, CorruptChunkError } from "../../storage/errors.ts";
import { FileStore } from "../../storage/file_store.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import { flipObjectBit, pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { type ServedNode, servedNode } from "./_tracked_peer.ts";

async function shutdown(nodes: ServedNode[]) {
  for (const n of nodes) await n.shutdown();
}

Deno.test("chunks cross a Connection verified; remote failures keep their storage codes", async () => {
  const node = await servedNode();
  const bytes = pseudoRandomBytes(100_000);
  const cid = cidOf(bytes);
  await node.remote.putChunk(cid, bytes);
  assert.deepEqual(await node.remote.getChunk(cid), bytes);
  assert.equal(await node.remote.hasChunk(cid), true);
  await assert.rejects(node.remote.getChunk(cidOf(new Uint8Array([1]))), ChunkNotFoundError);
  await assert.rejects(
    node.remote.putChunk(cidOf(new Uint8Array([1])), new Uint8Array([2])),
    CorruptChunkError,
  );
  await assert.rejects(
    node.remote.proveChunks(new Uint8Array(5), [cid]),
    (e: { code: string }) => e.code === "invalid_body",
  );
  await shutdown([node]);
});

Deno.test("a file replicated over connections survives a bit flip and audits fail a dropper", async () => {
  const nodes = await Promise.all([servedNode(), servedNode(), servedNode()]);
  const store = new ReplicatedStore(nodes.map((n) => n.remote), {
    replicas: 2,
    writeQuorum: 2,
    readParallelism: 1,
  });
  const files = new FileStore(store, { chunkSize: 64 * 1024 });
  const data = pseudoRandomBytes(600_000, 11);
  const { cid } = await files.put(streamOf(data, 50_000));
  const chunks = (await files.stat(cid)).chunks;
  // Rot the first holder's copy of chunk 3.
  const holder = store.holders(chunks[3])[0];
  const node = nodes.find((n) => n.remote.id === holder.id)!;
  await flipObjectBit(node.dir, chunks[3], 7);
  assert.deepEqual(await files.bytes(cid), data);
  await store.flush();
  assert.deepEqual(await node.local.getChunk(chunks[3]), await store.get(chunks[3]));

  // Audit every node on what it should hold; one of them dropped a chunk. The keys are random,
  // so which node holds what is too: node 0 held none of the 10 chunks in ~0.002 % of runs
  // ((1/3)^10). The victim is a node that holds some (with r = 2 of 3, two nodes always do).
  const heldBy = (node: ServedNode) =>
    chunks.filter((c) => store.holders(c).some((p) => p.id === node.remote.id));
  const victim = nodes.find((n) => heldBy(n).length > 0)!;
  const held = heldBy(victim);
  assert.ok(held.length > 0);
  await victim.local.store.delete(held[0]); // the node lost it
  const auditor = new StorageAuditor({
    identity: Identity.generate(),
    reference: (c, signal) => store.get(c, { signal }),
    sampleSize: 64,
  });
  const result = await auditor.audit(victim.remote, held);
  assert.equal(result.passed, false);
  assert.equal(result.failures[0].reason, "missing_chunk");
  assert.equal(verifyVerdict(result.verdict), true);
  for (const other of nodes.filter((n) => n !== victim)) {
    assert.equal((await auditor.audit(other.remote, heldBy(other))).passed, true);
  }
  await shutdown(nodes);
});
