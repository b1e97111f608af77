/**
 * Review s78 F1: `cli.ts import` of a CAR whose DAG is deeper than `dag_links.ts` `MAX_DAG_DEPTH`
 * (the review's chain was 50,000 one-link nodes deep, and took the import 3 minutes) is refused
 * `dag_too_deep` before its root is pinned; a chain at the limit is imported and pinned.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CID } from "multiformats/cid";
import { MAX_DAG_DEPTH } from "../../storage/dag_links.ts";
import { chainDag } from "../storage/_hostile_dags.ts";
import { carOf } from "../storage/_car_of.ts";
import { cli } from "./_cli_child.ts";

async function chainCar(nodes: number): Promise<{ root: string; car: Uint8Array }> {
  const dag = await chainDag(nodes);
  const blocks = [...dag.blocks].reverse().map(([cid, bytes]) => ({ cid: CID.parse(cid), bytes }));
  return { root: dag.root, car: await carOf(CID.parse(dag.root), blocks) };
}

Deno.test("s78 F1: import refuses a DAG deeper than MAX_DAG_DEPTH before its pin, and takes one at the limit", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = join(dir, "node");
    const fits = await chainCar(MAX_DAG_DEPTH);
    await Deno.writeFile(join(dir, "fits.car"), fits.car);
    const ok = await cli(["import", "--init", "--data", data, join(dir, "fits.car")]);
    assert.equal(ok.code, 0, ok.err);
    assert.equal(ok.out.trim(), fits.root);
    await Deno.stat(join(data, "store", "pins", fits.root));

    const deep = await chainCar(MAX_DAG_DEPTH + 1);
    await Deno.writeFile(join(dir, "deep.car"), deep.car);
    const refused = await cli(["import", "--data", data, join(dir, "deep.car")]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.err, /dag_too_deep/);
    await assert.rejects(Deno.stat(join(data, "store", "pins", deep.root)), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
