/**
 * Review at stop 44 (storage under hostile input): a DAG that links one block both as a raw leaf
 * and as a dag-pb node. The two CIDs name the same digest, so a walk that remembers blocks by
 * storage key took the node for the leaf it had already listed and never looked below it: a CAR
 * import called such a DAG complete without the blocks under the node, and pinned it, and every GC
 * of the store then stopped on the missing node (`unreadable_root`). Fixed in `dag_links.ts`.
 *
 * And a store upgraded while a pinned pre-UnixFS manifest cannot be read recorded the old
 * manifests without it (`legacy_manifests.ts` skipped a root it could not read, and the record is
 * never made again), so once that manifest was repaired it was a raw leaf to GC, which collected
 * the pinned file's chunks. Fixed there: such a root is recorded as undecided, and decided from its
 * bytes when they are next read.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CarWriter } from "@ipld/car";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { cidOf, DAG_PB_CODEC, RAW_CODEC, storageKey } from "../../protocols/cid.ts";
import { encodeManifest, MANIFEST_TYPE, MANIFEST_VERSION } from "../../protocols/manifest.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { dagBlocks } from "../../storage/dag_links.ts";
import { FileStore } from "../../storage/file_store.ts";
import { LEGACY_MANIFESTS_DIR } from "../../storage/legacy_manifests.ts";
import { collect, flipObjectBit } from "./_helpers.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

interface Block {
  cid: CID;
  bytes: Uint8Array;
}

function fileNode(children: { cid: CID; size: number }[]): Block {
  const unixfs = new UnixFS({ type: "file" });
  for (const child of children) unixfs.addBlockSize(BigInt(child.size));
  const bytes = dagPb.encode(dagPb.prepare({
    Data: unixfs.marshal(),
    Links: children.map((c) => ({ Name: "", Tsize: c.size, Hash: c.cid })),
  }));
  return { cid: CID.parse(cidOf(bytes, DAG_PB_CODEC)), bytes };
}

/**
 * A directory whose entry `a` names node X's bytes as a raw leaf and entry `b` names X itself;
 * X links inner node Y, which links two raw leaves. Returns every block.
 */
function aliasedDag() {
  const leaves = [1, 2].map((n): Block => {
    const bytes = new Uint8Array(100).fill(n);
    return { cid: CID.parse(cidOf(bytes, RAW_CODEC)), bytes };
  });
  const y = fileNode(leaves.map((l) => ({ cid: l.cid, size: l.bytes.length })));
  const x = fileNode([{ cid: y.cid, size: 200 }]);
  const xAsRaw = CID.parse(cidOf(x.bytes, RAW_CODEC));
  const dirBytes = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "directory" }).marshal(),
    Links: [
      { Name: "a", Tsize: x.bytes.length, Hash: xAsRaw },
      { Name: "b", Tsize: x.bytes.length + 200, Hash: x.cid },
    ],
  }));
  const dir: Block = { cid: CID.parse(cidOf(dirBytes, DAG_PB_CODEC)), bytes: dirBytes };
  return { dir, x, y, leaves };
}

async function carOf(roots: CID[], blocks: Block[]): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create(roots);
  const reading = collect(ReadableStream.from(out));
  for (const block of blocks) await writer.put(block);
  await writer.close();
  return await reading;
}

Deno.test("a DAG walk reads a node it met before as a raw leaf of the same bytes, and lists what it links", async () => {
  const { dir, x, y, leaves } = aliasedDag();
  const stored = new Map([dir, x, y].map((b) => [storageKey(b.cid.toString()), b.bytes]));
  const get = (cid: string) => {
    const bytes = stored.get(storageKey(cid));
    return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no ${cid}`));
  };
  const listed = new Set<string>();
  for await (const block of dagBlocks(dir.cid.toString(), get)) {
    listed.add(storageKey(block.cid));
  }
  for (const block of [dir, x, y, ...leaves]) {
    assert.ok(listed.has(storageKey(block.cid.toString())), `${block.cid} not listed`);
  }
});

Deno.test("cli import refuses a CAR missing a node its DAG links under a second CID of a block it holds, so no GC stops on it", async () => {
  const tmp = await Deno.makeTempDir();
  const { dir, x } = aliasedDag();
  // Y and the leaves are not in the CAR: X arrives (under its dag-pb CID), Y does not.
  await Deno.writeFile(join(tmp, "partial.car"), await carOf([dir.cid], [dir, x]));
  const data = join(tmp, "data");
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, "import", "--data", data, join(tmp, "partial.car")],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 1, err);
  assert.match(err, /chunk_not_found|incomplete_car/);
  const store = await ChunkStore.open(join(data, "store"));
  assert.deepEqual(await store.pins(), []);
  assert.deepEqual((await store.gc({ graceMs: 0 })).unreadableRoots, []);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("a pinned pre-UnixFS manifest unreadable when the store is upgraded keeps its chunks once it is repaired", async () => {
  const dir = await Deno.makeTempDir();
  let store = await ChunkStore.open(dir);
  const chunks = [await store.put(new Uint8Array([1, 2])), await store.put(new Uint8Array([3]))];
  const manifest = encodeManifest({
    type: MANIFEST_TYPE,
    v: MANIFEST_VERSION,
    tier: "public",
    size: 3,
    chunkSize: 2,
    chunks,
  });
  const legacy = await store.put(manifest);
  await store.pin(legacy);
  // A store written before the record of old manifests, whose manifest rotted: the first open
  // makes the record while it cannot be read.
  await Deno.remove(join(dir, LEGACY_MANIFESTS_DIR), { recursive: true });
  await flipObjectBit(dir, legacy, 3);
  store = await ChunkStore.open(dir);
  // Repaired (the file put again, or a peer's good copy): it reads as the file it always was.
  await store.put(manifest, { verifyExisting: true });
  assert.equal((await store.gc({ graceMs: -1 })).removed, 0, "a pinned file's chunks collected");
  assert.deepEqual(await new FileStore(store).bytes(legacy), new Uint8Array([1, 2, 3]));
  await Deno.remove(dir, { recursive: true });
});
