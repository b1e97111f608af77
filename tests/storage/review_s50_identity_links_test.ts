/**
 * Review s50 of how storage walks a DAG that links identity CIDs (`ipfs add --inline`: a block of
 * up to 32 bytes, by default, is carried in its CID and stored nowhere). The gateway serves such
 * DAGs and a CAR import pins them, but GC took every link for a stored block and asked its storage
 * key, which an identity CID has none of: one such pin made every GC of the store fail with
 * `invalid_cid`. Fixed in `dag_links.ts` (`blocksReferencedBy` names the stored blocks a node
 * links, an inline node's own links in its place), and `cli ls` listed such a file as
 * `ERROR invalid_cid` (`storage_commands.ts` walks a file's links the same way now). Each test
 * failed on the code before it.
 */
import assert from "node:assert/strict";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { cidDigest, cidFromDigest, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { dagBlocks } from "../../storage/dag_links.ts";
import { runLs, runPut } from "../../storage/storage_commands.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";

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
    assert.equal((await capture(() => runPut(["--data", node, `${dir}/seed.txt`]))).code, 0);
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
