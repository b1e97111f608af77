/**
 * The leaf check `cli.ts import` makes after storing a CAR (`cli/exchange_commands.ts`, review s76
 * vcar F4): each raw leaf is looked up in the store's index once (its stored length answers both
 * "is it here" and "is it the length its node says"), not once by `has` and again by
 * `storedLength`; a leaf the CAR lacks is still `incomplete_car` and nothing is pinned.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { runImport } from "../../cli/exchange_commands.ts";
import { cidOf, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { captureConsole as capture } from "../_helpers/console_capture.ts";
import { carOf } from "./_car_of.ts";

/** Five distinct raw leaves of 10 bytes and the file node over them. */
function fiveLeafFile() {
  const leaves = Array.from({ length: 5 }, (_, i) => {
    const bytes = new TextEncoder().encode(`leaf ${i}....`.slice(0, 10));
    return { cid: CID.parse(cidOf(bytes, RAW_CODEC)), bytes };
  });
  const unixfs = new UnixFS({ type: "file" });
  for (const leaf of leaves) unixfs.addBlockSize(BigInt(leaf.bytes.length));
  const bytes = dagPb.encode(dagPb.prepare({
    Data: unixfs.marshal(),
    Links: leaves.map((leaf) => ({ Hash: leaf.cid, Tsize: leaf.bytes.length })),
  }));
  return { root: { cid: CID.parse(cidOf(bytes, DAG_PB_CODEC)), bytes }, leaves };
}

/** Counts of `has` and `storedLength` calls per CID on every ChunkStore while `run` runs. */
async function countingLookups<T>(run: () => Promise<T>) {
  const proto = ChunkStore.prototype;
  const { has, storedLength } = proto;
  const lookups = new Map<string, number>();
  const count = (cid: string) => lookups.set(cid, (lookups.get(cid) ?? 0) + 1);
  proto.has = function (cid) {
    count(cid);
    return has.call(this, cid);
  };
  proto.storedLength = function (cid) {
    count(cid);
    return storedLength.call(this, cid);
  };
  try {
    return { result: await run(), lookups };
  } finally {
    proto.has = has;
    proto.storedLength = storedLength;
  }
}

Deno.test("import looks each raw leaf up once in the index after storing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { root, leaves } = fiveLeafFile();
    const car = join(dir, "file.car");
    await Deno.writeFile(car, await carOf(root.cid, [root, ...leaves]));
    const { result, lookups } = await countingLookups(() =>
      capture(() => runImport(["--init", "--data", join(dir, "d"), car]))
    );
    assert.equal(result.code, 0, result.err);
    for (const leaf of leaves) assert.equal(lookups.get(leaf.cid.toString()), 1, String(leaf.cid));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("import of a CAR that lacks a leaf is incomplete_car, naming it, and pins nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { root, leaves } = fiveLeafFile();
    const car = join(dir, "holed.car");
    await Deno.writeFile(car, await carOf(root.cid, [root, ...leaves.slice(0, 3), leaves[4]]));
    const data = join(dir, "d");
    const imported = await capture(() => runImport(["--init", "--data", data, car]));
    assert.equal(imported.code, 1);
    assert.match(imported.err, /incomplete_car/);
    assert.ok(imported.err.includes(leaves[3].cid.toString()), imported.err);
    assert.deepEqual(await (await ChunkStore.open(join(data, "store"))).pins(), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
