/**
 * A full CAR (`dag-scope=all`) of a DAG deeper than `storage/dag_links.ts` `MAX_DAG_DEPTH` is
 * refused `422 dag_too_deep` before its status, as its `HEAD` and a plain read are: it answered
 * `200` and then cut the body where the export's walk met the limit (review s78 follow-up,
 * `tmp/s78/sharefix_max/probe_deep_car_get.ts`). A DAG exactly at the limit is still served whole.
 * So is a file deeper than `storage/unixfs.ts` `MAX_UNIXFS_DEPTH` within it, which no plain read
 * serves (stop 79). A too-deep branch behind more inner nodes than the check reads is still cut.
 */
import assert from "node:assert/strict";
import { DEPTH_CHECK_NODES } from "../../server/gateway_car.ts";
import { MAX_DAG_DEPTH } from "../../storage/dag_links.ts";
import { MAX_UNIXFS_DEPTH } from "../../storage/unixfs.ts";
import { type blockMaker, newGatewayStore, readCar, startGatewayNode } from "./_gateway_node.ts";

/** `nodes` one-link UnixFS file nodes over one 8-byte leaf, stored with `make`: the chain's root. */
async function chainOf(make: ReturnType<typeof blockMaker>, nodes: number): Promise<string> {
  let cid = await make.putRaw(new TextEncoder().encode("deepleaf"));
  for (let i = 0; i < nodes; i++) cid = await make.fileNode([{ cid, size: 8 }]);
  return cid;
}

/** A chain of `nodes` one-link UnixFS file nodes over one 8-byte leaf, in a served store. */
async function chainNode(nodes: number) {
  const { dir, make } = await newGatewayStore();
  const cid = await chainOf(make, nodes);
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

Deno.test("CAR GET of a DAG exactly MAX_DAG_DEPTH deep (directories over a file MAX_UNIXFS_DEPTH deep) is 200 with every block", async () => {
  const { dir, make } = await newGatewayStore();
  let cid = await chainOf(make, MAX_UNIXFS_DEPTH);
  for (let i = MAX_UNIXFS_DEPTH; i < MAX_DAG_DEPTH; i++) {
    cid = await make.directory([{ name: "d", cid }]);
  }
  const node = await startGatewayNode(dir);
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

Deno.test("CAR GET of a file one level deeper than MAX_UNIXFS_DEPTH, under a directory, is 422 dag_too_deep before the status, as its plain read is (it was a 200 with the whole CAR)", async () => {
  const { dir, make } = await newGatewayStore();
  const file = await chainOf(make, MAX_UNIXFS_DEPTH + 1);
  const root = await make.directory([{ name: "deep", cid: file }]);
  const node = await startGatewayNode(dir);
  try {
    for (const path of [`/ipfs/${root}?format=car`, `/ipfs/${file}?format=car`]) {
      const { response, body } = await node.get(path);
      assert.equal(response.status, 422, path);
      const error = JSON.parse(new TextDecoder().decode(body)).error;
      assert.equal(error.code, "dag_too_deep", path);
      assert.match(
        error.message,
        new RegExp(`^${file} links blocks more than ${MAX_UNIXFS_DEPTH}`),
      );
    }
    const plain = await node.get(`/ipfs/${root}/deep`);
    assert.equal(plain.response.status, 422);
  } finally {
    await node.close();
  }
});

/**
 * Why a too-deep branch behind more than `DEPTH_CHECK_NODES` inner nodes is still cut after the
 * `200`, and not refused before it: its depth is known only once every inner node before it in
 * the walk is read, so any bound on the check's reads leaves a DAG with its deep branch just past
 * it; walking every inner node before the status (as a `HEAD` does) makes the first byte of an
 * honest huge CAR wait for a whole second walk (and, for a DAG on the peers, a second fetch of each
 * node); refusing past the bound refuses honest DAGs of more than 1,024 inner nodes (a ~43 GiB
 * file, a directory of 1,024 files of more than one chunk). The cut is not silent: the chunked body
 * ends without its last chunk, so the client's read fails, as the spec allows for an error met
 * mid-stream; the `HEAD`, which walks the whole DAG, is the `422`; and since stop 79 no bounded walk
 * (import, a peer's pin) takes such a DAG into the store.
 */
Deno.test("CAR GET of a DAG whose too-deep file lies behind more than DEPTH_CHECK_NODES inner nodes is a 200 whose body is cut (the client's read fails), while its HEAD is 422", async () => {
  const { dir, make } = await newGatewayStore();
  const entries = [];
  for (let i = 0; i < DEPTH_CHECK_NODES; i++) {
    const leaf = await make.putRaw(new TextEncoder().encode(`leaf ${i}`));
    entries.push({ name: `f${i}`, cid: await make.fileNode([{ cid: leaf, size: 8 }]) });
  }
  // Last in the walk's order: after the check's reads are spent.
  entries.push({ name: "zz-deep", cid: await chainOf(make, MAX_UNIXFS_DEPTH + 1) });
  const root = await make.directory(entries);
  const node = await startGatewayNode(dir);
  try {
    const head = await fetch(`${node.url}/ipfs/${root}?format=car`, { method: "HEAD" });
    assert.equal(head.status, 422);
    const response = await fetch(`${node.url}/ipfs/${root}?format=car`);
    assert.equal(response.status, 200);
    await assert.rejects(response.arrayBuffer(), "the body is cut, not ended as a whole CAR");
  } finally {
    await node.close();
  }
});
