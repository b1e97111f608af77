/**
 * A full CAR (`dag-scope=all`) of a DAG deeper than `storage/dag_links.ts` `MAX_DAG_DEPTH` is
 * refused `422 dag_too_deep` before its status, as its `HEAD` and a plain read are: it answered
 * `200` and then cut the body where the export's walk met the limit (review s78 follow-up,
 * `tmp/s78/sharefix_max/probe_deep_car_get.ts`). A DAG exactly at the limit is still served whole.
 */
import assert from "node:assert/strict";
import { MAX_DAG_DEPTH } from "../../storage/dag_links.ts";
import { newGatewayStore, readCar, startGatewayNode } from "./_gateway_node.ts";

/** A chain of `nodes` one-link UnixFS file nodes over one 8-byte leaf, in a served store. */
async function chainNode(nodes: number) {
  const { dir, make } = await newGatewayStore();
  let cid = await make.putRaw(new TextEncoder().encode("deepleaf"));
  for (let i = 0; i < nodes; i++) cid = await make.fileNode([{ cid, size: 8 }]);
  return { cid, node: await startGatewayNode(dir) };
}

Deno.test("CAR GET of a DAG one level deeper than MAX_DAG_DEPTH is 422 dag_too_deep before the status, not a 200 cut mid-body", async () => {
  const { cid, node } = await chainNode(MAX_DAG_DEPTH + 1);
  try {
    for (const scope of ["", "&dag-scope=all", "&dag-scope=entity"]) {
      const { response, body } = await node.get(`/ipfs/${cid}?format=car${scope}`);
      assert.equal(response.status, 422, scope);
      assert.equal(JSON.parse(new TextDecoder().decode(body)).error.code, "dag_too_deep", scope);
    }
  } finally {
    await node.close();
  }
});

Deno.test("CAR GET of a DAG exactly MAX_DAG_DEPTH deep is 200 with every block", async () => {
  const { cid, node } = await chainNode(MAX_DAG_DEPTH);
  try {
    const { response, body } = await node.get(`/ipfs/${cid}?format=car`);
    assert.equal(response.status, 200);
    const car = await readCar(body);
    assert.deepEqual(car.roots, [cid]);
    assert.equal(car.blocks.length, MAX_DAG_DEPTH + 1, "every node and the leaf");
  } finally {
    await node.close();
  }
});
