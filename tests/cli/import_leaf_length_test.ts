/**
 * A UnixFS file whose raw leaf is not the length its file node says (review s76 F1): every read of
 * it fails with `invalid_manifest`, so `cli.ts import` refuses it before pinning anything (it said
 * "all verified" and pinned it), and `cli.ts ls` flags one already stored (it listed it as sound).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { runImport } from "../../cli/exchange_commands.ts";
import { runLs } from "../../cli/ls_command.ts";
import { runPut } from "../../cli/put_command.ts";
import { cidOf, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";
import { carOf } from "../storage/_car_of.ts";

/** The leaf every file below links: 10 bytes. */
const LEAF = new TextEncoder().encode("0123456789");

/** A dag-pb file node linking {@link LEAF} as `declared` bytes, and the leaf. */
function fileDeclaring(declared: number) {
  const leaf = { cid: CID.parse(cidOf(LEAF, RAW_CODEC)), bytes: LEAF };
  const unixfs = new UnixFS({ type: "file" });
  unixfs.addBlockSize(BigInt(declared));
  const bytes = dagPb.encode(dagPb.prepare({
    Data: unixfs.marshal(),
    Links: [{ Hash: leaf.cid, Tsize: LEAF.length }],
  }));
  return { root: { cid: CID.parse(cidOf(bytes, DAG_PB_CODEC)), bytes }, leaf };
}

Deno.test("import of a file whose raw leaf is shorter or longer than its file node says is invalid_manifest, exit 1, and pins nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const declared of [1000, 4]) {
      const { root, leaf } = fileDeclaring(declared);
      const car = join(dir, `declared-${declared}.car`);
      await Deno.writeFile(car, await carOf(root.cid, [root, leaf]));
      const data = join(dir, `d-${declared}`);
      const imported = await capture(() => runImport(["--init", "--data", data, car]));
      assert.equal(imported.code, 1, `declared ${declared}`);
      assert.match(imported.err, /invalid_manifest/);
      assert.ok(imported.err.includes(`holds ${LEAF.length} bytes, not ${declared}`), imported.err);
      assert.doesNotMatch(imported.err, /all verified/);
      assert.equal(imported.out, "");
      assert.deepEqual(await (await ChunkStore.open(join(data, "store"))).pins(), []);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ls flags a stored file whose raw leaf is not the length its file node says: DAMAGED, invalid_manifest, exit 1", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    await Deno.writeFile(join(dir, "sound.txt"), new TextEncoder().encode("a sound file\n"));
    const put = await capture(() => runPut(["--init", "--data", data, join(dir, "sound.txt")]));
    assert.equal(put.code, 0, put.err);
    // Stored and pinned as a peer's fetch or the library's importCar leaves it.
    const { root, leaf } = fileDeclaring(1000);
    const store = await ChunkStore.open(join(data, "store"));
    await store.put(leaf.bytes);
    await store.put(root.bytes);
    await store.pin(root.cid.toString());
    for (const args of [[], ["--verify"]]) {
      const listed = await capture(() => runLs(["--data", data, ...args]));
      assert.equal(listed.code, 1, `ls ${args}`);
      const line = listed.out.split("\n").find((l) => l.startsWith(root.cid.toString()));
      assert.match(line ?? "", /DAMAGED: .*invalid_manifest/, listed.out);
      assert.match(listed.err, /1 file damaged/);
      const sound = listed.out.split("\n").find((l) => l.includes("sound.txt"));
      assert.doesNotMatch(sound ?? "", /DAMAGED/, listed.out);
    }
    const json = await capture(() => runLs(["--data", data, "--json"]));
    const files = JSON.parse(json.out).files as { cid: string; damage?: { invalid?: number } }[];
    assert.equal(files.find((f) => f.cid === root.cid.toString())?.damage?.invalid, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
