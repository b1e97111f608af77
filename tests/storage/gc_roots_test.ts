/**
 * GC roots across processes: what a collector must keep while other processes use the same
 * store — a put still running (the real CLI), replicas held for peers, a node's own files when
 * they live on peers — and a pinned blob that only looks like a manifest.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { cidDigest, cidFromDigest, cidOf, DAG_CBOR_CODEC } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { MANIFEST_TYPE } from "../../protocols/manifest.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type PutHandle,
  type StorageAnswers,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";
import { eventually } from "../_helpers/wait.ts";
import { packFilesUnder, pseudoRandomBytes, streamOf } from "./_helpers.ts";

const COMMAND = fileURLToPath(new URL("./_run_storage_command.ts", import.meta.url));
const CHUNK = 256 * 1024;
const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

/** Run a storage CLI command in its own process. */
async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", COMMAND, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code, out: text.decode(stdout), err: text.decode(stderr) };
}

/** The CIDs the running puts of the store at `dir` have recorded so far. */
async function pendingRecords(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(`${dir}/pending`)) {
    out.push(...(await Deno.readTextFile(`${dir}/pending/${entry.name}`)).split("\n"));
  }
  return out;
}

Deno.test("GC in a node keeps the chunks a CLI put in another process has acknowledged, even past the grace period and with its index on an old copy", async () => {
  const data = await Deno.makeTempDir();
  const dir = `${data}/store`;
  const chunk = pseudoRandomBytes(CHUNK, 31);
  // An earlier, unpinned copy of the chunk, an hour old: past the grace period.
  const old = await ChunkStore.open(dir, { clock: () => Date.now() - HOUR });
  const cid = await old.put(chunk);
  // The node's store: its index points at that old copy, and its clock runs a day ahead, as if
  // the put below had been running for longer than the grace period when this GC starts.
  const node = await ChunkStore.open(dir, { clock: () => Date.now() + DAY });
  assert.equal(await node.has(cid), true);

  const put = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", COMMAND, "put", "--init", "--data", data, "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdin = put.stdin.getWriter();
  await stdin.write(chunk);
  // The put has stored (a fresh copy of) the chunk and acknowledged it; it waits for more input.
  // It records the CID before it writes the copy (so a GC in between keeps it): wait for both.
  await eventually(async () => (await pendingRecords(dir)).includes(cid), "the put's record");
  await eventually(
    async () => (await packFilesUnder(dir)).length === 2,
    "the put's fresh copy of the chunk",
  );

  const result = await node.gc();
  assert.equal(result.removed, 0, "the running put's chunk is a root");
  assert.equal((await packFilesUnder(dir)).length, 1, "one copy is enough");

  await stdin.close();
  const { code, stdout, stderr } = await put.output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const file = new TextDecoder().decode(stdout).trim();
  const files = new FileStore(await ChunkStore.open(dir));
  assert.deepEqual(await files.bytes(file), chunk);
  // Committed: the pin roots it now, and nothing of the put is left pending.
  assert.deepEqual(await pendingRecords(dir), []);
  assert.equal((await node.gc()).removed, 0);
  assert.deepEqual(await files.bytes(file), chunk);
  await Deno.remove(data, { recursive: true });
});

Deno.test("GC (the node's own, and the CLI's in another process) keeps the replicas a node holds for peers, so it passes their audits", async () => {
  const data = await Deno.makeTempDir();
  const identity = Identity.generate(); // the holder's: its possession proofs are bound to it
  const actor = new StorageActor({ dir: `${data}/store`, identity });
  const holder = new StorageActorPeer(
    { ask: (message) => actor.receive(message) as Promise<never> },
    identity.publicKey,
  );
  const chunks = [1, 2, 3].map((seed) => pseudoRandomBytes(5000, seed));
  const cids = chunks.map((bytes) => cidOf(bytes));
  for (const [i, cid] of cids.entries()) await holder.putChunk(cid, chunks[i]);

  const gc = await cli("gc", "--data", data, "--grace-ms", "0");
  assert.equal(gc.code, 0, gc.err);
  assert.match(gc.out, /^removed 0 objects/);
  const own = unwrapReply<StorageAnswers["gc"]>(await actor.receive({ type: "gc", graceMs: -1 }));
  assert.equal(own.removed, 0);
  assert.equal(own.kept, 3);

  const auditor = new StorageAuditor({
    identity: Identity.generate(),
    reference: (cid) => Promise.resolve(chunks[cids.indexOf(cid)]),
    sampleSize: cids.length,
  });
  assert.equal((await auditor.audit(holder, cids)).passed, true);
  await Deno.remove(data, { recursive: true });
});

Deno.test("a node whose files live on peers holds their manifests: GC in another process collects its garbage and list names its files", async () => {
  const data = await Deno.makeTempDir();
  const peerDirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  const peers = await Promise.all(
    peerDirs.map(async (d) =>
      new LocalStoragePeer(await ChunkStore.open(d), Identity.generate().publicKey)
    ),
  );
  const actor = new StorageActor({
    dir: `${data}/store`,
    chunkSize: 1024,
    peers,
    replication: { replicas: 2, writeQuorum: 2 },
  });
  const bytes = pseudoRandomBytes(5000, 4);
  const handle = await actor.receive({ type: "put", source: streamOf(bytes), name: "kept.bin" });
  const { cid } = await (handle as PutHandle).done;
  // Something unreferenced in the node's own store, written by another process.
  const junk = await (await ChunkStore.open(`${data}/store`)).put(pseudoRandomBytes(3000, 9));

  const gc = await cli("gc", "--data", data, "--grace-ms", "0");
  assert.equal(gc.code, 0, gc.err);
  assert.match(gc.out, /^removed 1 object \(/);
  const after = await ChunkStore.open(`${data}/store`);
  assert.equal(await after.has(junk), false);
  assert.equal(await after.has(cid), true, "the pinned manifest is held here");
  const list = unwrapReply<StorageAnswers["list"]>(await actor.receive({ type: "list" }));
  assert.deepEqual(list.map((f) => [f.cid, f.name, f.size]), [[cid, "kept.bin", bytes.length]]);
  assert.deepEqual(unwrapReply(await actor.receive({ type: "get_bytes", cid })), bytes);
  await actor.postStop(); // background replication and read repairs end before cleanup
  for (const d of [data, ...peerDirs]) await Deno.remove(d, { recursive: true });
});

Deno.test("a pinned dag-cbor blob with the manifest tag but not a manifest's shape never makes GC throw; CIDs it lists are kept", async () => {
  const data = await Deno.makeTempDir();
  const store = await ChunkStore.open(`${data}/store`);
  const listed = await store.put(pseudoRandomBytes(2000, 5));
  const junk = await store.put(pseudoRandomBytes(2000, 6));
  for (
    const shape of [
      { type: MANIFEST_TYPE, chunks: "not a list" },
      { type: MANIFEST_TYPE, v: 9, chunks: [listed, 42, "not a cid"] },
      { type: MANIFEST_TYPE },
    ]
  ) {
    // dag-cbor: a raw object is a leaf, whatever its bytes (see the unixfs tests).
    const cid = cidFromDigest(cidDigest(await store.put(encodeCanonical(shape))), DAG_CBOR_CODEC);
    await store.pin(cid);
  }
  await Deno.writeTextFile(`${data}/store/pins/${listed}~`, ""); // an editor's backup: no pin
  assert.equal((await store.gc({ graceMs: -1 })).removed, 1);
  assert.equal(await store.has(junk), false);
  const again = await store.put(pseudoRandomBytes(2000, 6));
  const gc = await cli("gc", "--data", data, "--grace-ms", "0");
  assert.equal(gc.code, 0, gc.err);
  assert.match(gc.out, /^removed 1 object \(/);
  const after = await ChunkStore.open(`${data}/store`);
  assert.equal(await after.has(again), false);
  assert.equal(await after.has(listed), true);
  assert.equal((await after.stats()).objectCount, 4);
  await Deno.remove(data, { recursive: true });
});
