/**
 * How storage walks a DAG's links (`storage/dag_links.ts`) when the DAG is unusual: one block
 * linked both as a raw leaf and as a dag-pb node, and links to identity CIDs, which are stored
 * nowhere. GC, CAR import and `cli ls` all walk this way.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CarWriter } from "@ipld/car";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import {
  cidDigest,
  cidFromDigest,
  cidOf,
  DAG_PB_CODEC,
  RAW_CODEC,
  storageKey,
} from "../../protocols/cid.ts";
import { encodeManifest, MANIFEST_TYPE, MANIFEST_VERSION } from "../../protocols/manifest.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { dagBlocks } from "../../storage/dag_links.ts";
import { FileStore } from "../../storage/file_store.ts";
import { LEGACY_MANIFESTS_DIR } from "../../storage/legacy_manifests.ts";
import { runLs } from "../../cli/ls_command.ts";
import { runPut } from "../../cli/put_command.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";
import { collect, flipObjectBit } from "./_helpers.ts";

// ---- one block linked as a raw leaf and as a dag-pb node ----------------------------------------
//
// Storage under hostile input: a DAG that links one block both as a raw leaf and as a dag-pb node.
// The two CIDs name the same digest, so a walk that remembers blocks by storage key took the node
// for the leaf it had already listed and never looked below it: a CAR import called such a DAG
// complete without the blocks under the node, and pinned it, and every GC of the store then stopped
// on the missing node (`unreadable_root`). Fixed in `dag_links.ts`.
//
// And a store upgraded while a pinned pre-UnixFS manifest cannot be read recorded the old manifests
// without it (`legacy_manifests.ts` skipped a root it could not read, and the record is never made
// again), so once that manifest was repaired it was a raw leaf to GC, which collected the pinned
// file's chunks. Fixed there: such a root is recorded as undecided, and decided from its bytes when
// they are next read.

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
    args: ["run", "-A", CLI, "import", "--init", "--data", data, join(tmp, "partial.car")],
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

// ---- links to identity CIDs ---------------------------------------------------------------------
//
// How storage walks a DAG that links identity CIDs (`ipfs add --inline`: a block of up to 32 bytes,
// by default, is carried in its CID and stored nowhere). The gateway serves such DAGs and a CAR
// import pins them, but GC took every link for a stored block and asked its storage key, which an
// identity CID has none of: one such pin made every GC of the store fail with `invalid_cid`. Fixed
// in `dag_links.ts` (`blocksReferencedBy` names the stored blocks a node links, an inline node's
// own links in its place), and `cli ls` listed such a file as `ERROR invalid_cid`
// (`cli/_file_damage.ts` walks a file's links the same way now).

const encode = (text: string) => new TextEncoder().encode(text);

/** A dag-pb node's bytes. */
function pbNode(data: UnixFS, links: { name?: string; cid: string; size: number }[]): Uint8Array {
  return dagPb.encode(dagPb.prepare({
    Data: data.marshal(),
    Links: links.map((l) => ({ Name: l.name ?? "", Tsize: l.size, Hash: CID.parse(l.cid) })),
  }));
}

/** A UnixFS file node over `children`. */
function fileData(children: { size: number }[]): UnixFS {
  const unixfs = new UnixFS({ type: "file" });
  for (const child of children) unixfs.addBlockSize(BigInt(child.size));
  return unixfs;
}

Deno.test("GC of a store holding pinned DAGs that link identity CIDs (an inlined leaf, an inlined file, an inlined directory) keeps what they reach and collects the rest, instead of failing with invalid_cid", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir);
    const put = async (bytes: Uint8Array, codec: number) =>
      cidFromDigest(cidDigest(await store.put(bytes)), codec as never);
    const inline = (bytes: Uint8Array, codec: number) =>
      CID.createV1(codec, identity.digest(bytes)).toString();

    // A file whose small last chunk is inlined.
    const leaf = await put(encode("0123456789"), RAW_CODEC);
    const tiny = inline(encode("abc"), RAW_CODEC);
    const children = [{ cid: leaf, size: 10 }, { cid: tiny, size: 3 }];
    const file = await put(pbNode(fileData(children), children), DAG_PB_CODEC);
    // A directory linking a stored file and an inlined one.
    const other = await put(encode("another stored file"), RAW_CODEC);
    // A directory small enough to inline (`--inline-limit` above its ~50 bytes) that links a
    // stored file: that file is reached through the inline node only.
    const deep = await put(encode("reached through an inlined directory"), RAW_CODEC);
    const inner = inline(
      pbNode(new UnixFS({ type: "directory" }), [{ name: "d", cid: deep, size: 36 }]),
      DAG_PB_CODEC,
    );
    const site = await put(
      pbNode(new UnixFS({ type: "directory" }), [
        { name: "a.txt", cid: other, size: 19 },
        { name: "id.txt", cid: tiny, size: 3 },
        { name: "sub", cid: inner, size: 40 },
      ]),
      DAG_PB_CODEC,
    );
    const garbage = await put(encode("nobody pins this"), RAW_CODEC);
    await store.pin(file);
    await store.pin(site);

    const result = await store.gc({ graceMs: 0 });
    assert.deepEqual(result.unreadableRoots, []);
    assert.equal(result.removed, 1, "the unpinned block alone");
    assert.equal(await store.has(garbage), false);
    for (const kept of [file, leaf, site, other, deep]) {
      assert.ok(await store.has(kept), `${kept} is reached from a pin`);
    }

    // The walks GC, CAR export and listings share list the stored blocks, through the inline node.
    const listed: string[] = [];
    for await (const block of dagBlocks(site, (c) => store.get(c))) listed.push(block.cid);
    assert.deepEqual(listed, [site, other, deep]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("cli ls lists a file with an inlined (identity CID) leaf as whole, with and without --verify, not as ERROR invalid_cid", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const node = `${dir}/node`;
    await Deno.writeTextFile(`${dir}/seed.txt`, "makes the data directory");
    assert.equal(
      (await capture(() => runPut(["--init", "--data", node, `${dir}/seed.txt`]))).code,
      0,
    );
    const store = await ChunkStore.open(`${node}/store`);
    const leaf = cidFromDigest(cidDigest(await store.put(encode("0123456789"))), RAW_CODEC);
    const tiny = CID.createV1(RAW_CODEC, identity.digest(encode("abc"))).toString();
    const children = [{ cid: leaf, size: 10 }, { cid: tiny, size: 3 }];
    const file = cidFromDigest(
      cidDigest(await store.put(pbNode(fileData(children), children))),
      DAG_PB_CODEC,
    );
    await store.pin(file);
    for (const flags of [[], ["--verify"]]) {
      const listed = await capture(() => runLs(["--data", node, ...flags]));
      assert.equal(listed.code, 0, listed.err);
      const line = listed.out.split("\n").find((l) => l.startsWith(file));
      assert.ok(line !== undefined, listed.out);
      assert.doesNotMatch(line, /ERROR|DAMAGED/);
    }
    // A lost stored leaf is still counted, and the inlined one never is.
    await store.delete(leaf);
    const json = JSON.parse((await capture(() => runLs(["--data", node, "--json"]))).out);
    const entry = json.files.find((f: { cid: string }) => f.cid === file);
    assert.deepEqual(entry.damage, { missing: 1, corrupt: 0 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
