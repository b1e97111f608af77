/**
 * Review s78 F1: `cli.ts import` of a CAR whose DAG is deeper than `dag_links.ts` `MAX_DAG_DEPTH`
 * (the review's chain was 50,000 one-link nodes deep, and took the import 3 minutes) is refused
 * `dag_too_deep` before its root is pinned; so is a file deeper than `unixfs.ts`
 * `MAX_UNIXFS_DEPTH`, which no plain read serves (stop 79: a file 33 to 96 levels deep was
 * imported while its reads were `422`). A DAG at both limits is imported and pinned.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CID } from "multiformats/cid";
import { MAX_DAG_DEPTH } from "../../storage/dag_links.ts";
import { MAX_UNIXFS_DEPTH } from "../../storage/unixfs.ts";
import { chainDag, dirsOverChainDag, type MemoryDag } from "../storage/_hostile_dags.ts";
import { carOf } from "../storage/_car_of.ts";
import { cli } from "./_cli_child.ts";

async function dagCar(dag: MemoryDag): Promise<{ root: string; car: Uint8Array }> {
  const blocks = [...dag.blocks].reverse().map(([cid, bytes]) => ({ cid: CID.parse(cid), bytes }));
  return { root: dag.root, car: await carOf(CID.parse(dag.root), blocks) };
}

/** Directories above a file at `MAX_UNIXFS_DEPTH`, `MAX_DAG_DEPTH` (plus `extra`) deep in all. */
function dirsOverDeepestFile(extra = 0): Promise<MemoryDag> {
  return dirsOverChainDag(MAX_DAG_DEPTH - MAX_UNIXFS_DEPTH + extra, MAX_UNIXFS_DEPTH);
}

Deno.test("s78 F1: import refuses a DAG deeper than MAX_DAG_DEPTH before its pin, and takes one at the limit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    const fits = await dagCar(await dirsOverDeepestFile());
    await Deno.writeFile(join(dir, "fits.car"), fits.car);
    const ok = await cli(["import", "--init", "--data", data, join(dir, "fits.car")]);
    assert.equal(ok.code, 0, ok.err);
    assert.equal(ok.out.trim(), fits.root);
    await Deno.stat(join(data, "store", "pins", fits.root));

    const deep = await dagCar(await dirsOverDeepestFile(1));
    await Deno.writeFile(join(dir, "deep.car"), deep.car);
    const refused = await cli(["import", "--data", data, join(dir, "deep.car")]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.err, /dag_too_deep/);
    await assert.rejects(Deno.stat(join(data, "store", "pins", deep.root)), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("import refuses a file one level deeper than MAX_UNIXFS_DEPTH (its plain reads are 422), naming the file, and takes one at the limit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    const fits = await dagCar(await chainDag(MAX_UNIXFS_DEPTH));
    await Deno.writeFile(join(dir, "fits.car"), fits.car);
    const ok = await cli(["import", "--init", "--data", data, join(dir, "fits.car")]);
    assert.equal(ok.code, 0, ok.err);
    await Deno.stat(join(data, "store", "pins", fits.root));

    // Under three directories: the error names the file, not the CAR's root.
    const file = await chainDag(MAX_UNIXFS_DEPTH + 1);
    const deep = await dagCar(await dirsOverChainDag(3, MAX_UNIXFS_DEPTH + 1));
    await Deno.writeFile(join(dir, "deep.car"), deep.car);
    const refused = await cli(["import", "--data", data, join(dir, "deep.car")]);
    assert.equal(refused.code, 1, refused.err);
    assert.match(
      refused.err,
      new RegExp(
        `dag_too_deep\\]: ${file.root} links blocks more than ${MAX_UNIXFS_DEPTH} levels below ` +
          "it.*does not read, serve, import or pin it",
      ),
    );
    await assert.rejects(Deno.stat(join(data, "store", "pins", deep.root)), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
