/**
 * `cli.ts import` and the roots a CAR names (review s71, F1 and F2): what it prints as imported
 * must be what the store keeps. An identity (inlined) root's stored blocks are checked and pinned,
 * so GC keeps them; a CAR that names no root is refused before anything is stored.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CarWriter } from "@ipld/car";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { runImport } from "../../cli/exchange_commands.ts";
import { cidOf, RAW_CODEC } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { joinBytes } from "../_helpers/bytes.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";

/** The bytes of a CAR v1 naming `roots` and holding `blocks`, as `@ipld/car` writes it. */
async function carOf(
  roots: CID[],
  blocks: { cid: CID; bytes: Uint8Array }[],
): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create(roots);
  const reading = Array.fromAsync(out);
  for (const block of blocks) await writer.put(block);
  await writer.close();
  return joinBytes(await reading);
}

/**
 * What `ipfs add --inline --inline-limit 100` gives for a folder holding one small file: a root
 * that inlines a one-entry directory (identity CID) linking a stored raw leaf.
 */
function inlineDirectory() {
  const bytes = new TextEncoder().encode("the file the inline directory names: stored\n");
  const leaf = CID.parse(cidOf(bytes, RAW_CODEC));
  const dir = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "directory" }).marshal(),
    Links: [{ Name: "a.txt", Hash: leaf, Tsize: bytes.length }],
  }));
  const root = CID.createV1(0x70, identity.digest(dir));
  return { root, leaf: { cid: leaf, bytes } };
}

Deno.test("import of a CAR whose root is an identity CID pins the stored blocks it links: a GC right after keeps them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { root, leaf } = inlineDirectory();
    const car = join(dir, "inline.car");
    await Deno.writeFile(
      car,
      await carOf([root], [{ cid: root, bytes: root.multihash.digest }, leaf]),
    );
    const data = join(dir, "d");
    const imported = await capture(() => runImport(["--init", "--data", data, car]));
    assert.equal(imported.code, 0, imported.err);
    assert.equal(imported.out, root.toString());
    const store = await ChunkStore.open(join(data, "store"));
    assert.deepEqual(await store.pins(), [leaf.cid.toString()]);
    await store.gc({ graceMs: 0 });
    assert.equal(await store.has(leaf.cid.toString()), true, "GC removed the imported file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("import of a CAR whose identity root links a block the CAR lacks is incomplete_car, exit 1, and pins nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { root, leaf } = inlineDirectory();
    const car = join(dir, "inline.car");
    await Deno.writeFile(car, await carOf([root], [{ cid: root, bytes: root.multihash.digest }]));
    const data = join(dir, "d");
    const imported = await capture(() => runImport(["--init", "--data", data, car]));
    assert.equal(imported.code, 1);
    assert.match(imported.err, /incomplete_car/);
    assert.ok(imported.err.includes(leaf.cid.toString()), imported.err);
    assert.doesNotMatch(imported.err, /all verified/);
    assert.equal(imported.out, "");
    assert.deepEqual(await (await ChunkStore.open(join(data, "store"))).pins(), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("import of a CAR that names no root is refused with car_without_roots in one line, exit 1, before any block is stored", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bytes = new TextEncoder().encode("my only copy of this data\n");
    const block = { cid: CID.parse(cidOf(bytes, RAW_CODEC)), bytes };
    const car = join(dir, "rootless.car");
    await Deno.writeFile(car, await carOf([], [block]));
    const data = join(dir, "d");
    const imported = await capture(() => runImport(["--init", "--data", data, car]));
    assert.equal(imported.code, 1);
    assert.match(imported.err, /car_without_roots/);
    assert.equal(imported.err.split("\n").length, 1, imported.err);
    assert.doesNotMatch(imported.err, /all verified/);
    assert.equal(imported.out, "");
    const store = await ChunkStore.open(join(data, "store"));
    assert.equal(await store.has(block.cid.toString()), false, "a refused CAR left a block");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
