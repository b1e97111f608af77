/**
 * Review s78 F1, F2: the gateway over hostile UnixFS files, made small here: a chain one level
 * deeper than `MAX_UNIXFS_DEPTH` (the review's was 50,000 deep) and a DAG bomb of 1-byte leaves
 * (174^3 declared). A plain read, and its `HEAD`, are `422` with the walk's code before any status;
 * a CAR walk stops at `MAX_DAG_DEPTH`; and every read the plain route makes carries the client's
 * signal, so a client that leaves stops the walk.
 */
import assert from "node:assert/strict";
import { createApp } from "../../server/app.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { MAX_DAG_DEPTH } from "../../storage/dag_links.ts";
import { MAX_CHILDREN_PER_NODE, MAX_UNIXFS_DEPTH } from "../../storage/unixfs.ts";
import {
  type blockMaker,
  countedStorage,
  newGatewayStore,
  startGatewayNode,
} from "./_gateway_node.ts";

type Maker = ReturnType<typeof blockMaker>;

/** `nodes` one-link file nodes over an 8-byte leaf, stored: the leaf is `nodes` links deep. */
async function chain(make: Maker, nodes: number): Promise<string> {
  let cid = await make.putRaw(new TextEncoder().encode("deepleaf"));
  for (let i = 0; i < nodes; i++) cid = await make.fileNode([{ cid, size: 8 }]);
  return cid;
}

/** `levels` nodes each linking the one below 174 times, over a 1-byte leaf, stored. */
async function bomb(make: Maker, levels: number): Promise<string> {
  let below = { cid: await make.putRaw(new Uint8Array([42])), size: 1 };
  for (let i = 0; i < levels; i++) {
    const cid = await make.fileNode(Array(MAX_CHILDREN_PER_NODE).fill(below));
    below = { cid, size: below.size * MAX_CHILDREN_PER_NODE };
  }
  return below.cid;
}

/** The error code of a 422 answer; any other status's body is cancelled (a bomb's never ends). */
async function errorCode(response: Response): Promise<string | undefined> {
  if (response.status !== 422) {
    await response.body?.cancel();
    return `status ${response.status}`;
  }
  const text = await response.text();
  try {
    return JSON.parse(text).error?.code;
  } catch {
    return undefined;
  }
}

Deno.test("s78 F1: a plain GET and HEAD of a file one level deeper than MAX_UNIXFS_DEPTH are 422 dag_too_deep; one at the limit is served", async () => {
  const { dir, make } = await newGatewayStore();
  const fits = await chain(make, MAX_UNIXFS_DEPTH);
  const deep = await chain(make, MAX_UNIXFS_DEPTH + 1);
  const node = await startGatewayNode(dir);
  try {
    const ok = await node.get(`/ipfs/${fits}`);
    assert.equal(ok.response.status, 200);
    assert.equal(new TextDecoder().decode(ok.body), "deepleaf");
    for (const init of [{}, { headers: { range: "bytes=2-3" } }]) {
      const response = await fetch(`${node.url}/ipfs/${deep}`, init);
      assert.equal(await errorCode(response), "dag_too_deep");
    }
    const head = await fetch(`${node.url}/ipfs/${deep}`, { method: "HEAD" });
    assert.equal(head.status, 422);
  } finally {
    await node.close();
  }
});

Deno.test("s78 F1: a CAR HEAD of a DAG deeper than MAX_DAG_DEPTH is 422 dag_too_deep; one at the limit is counted", async () => {
  const { dir, make } = await newGatewayStore();
  // Directories over a file at MAX_UNIXFS_DEPTH (a deeper file is refused on its own).
  let fits = await chain(make, MAX_UNIXFS_DEPTH);
  for (let i = MAX_UNIXFS_DEPTH; i < MAX_DAG_DEPTH; i++) {
    fits = await make.directory([{ name: "d", cid: fits }]);
  }
  const deep = await chain(make, MAX_DAG_DEPTH + 1);
  const node = await startGatewayNode(dir);
  try {
    const ok = await fetch(`${node.url}/ipfs/${fits}?format=car`, { method: "HEAD" });
    assert.equal(ok.status, 200);
    const head = await fetch(`${node.url}/ipfs/${deep}?format=car`, { method: "HEAD" });
    assert.equal(head.status, 422);
    const entity = await fetch(`${node.url}/ipfs/${deep}?format=car&entity-bytes=2:3`);
    await entity.body?.cancel();
    assert.equal(entity.status, 422);
  } finally {
    await node.close();
  }
});

Deno.test("s78 F2: a plain GET and HEAD of a DAG bomb of 1-byte leaves are 422 read_too_costly; a small range of it and its CAR are served", async () => {
  const { dir, make } = await newGatewayStore();
  const root = await bomb(make, 3);
  const node = await startGatewayNode(dir);
  try {
    const response = await fetch(`${node.url}/ipfs/${root}`);
    assert.equal(await errorCode(response), "read_too_costly");
    const head = await fetch(`${node.url}/ipfs/${root}`, { method: "HEAD" });
    assert.equal(head.status, 422);
    const range = await node.get(`/ipfs/${root}`, { headers: { range: "bytes=1000-1009" } });
    assert.equal(range.response.status, 206);
    assert.deepEqual([...range.body], Array(10).fill(42));
    const car = await node.get(`/ipfs/${root}?format=car`);
    assert.equal(car.response.status, 200);
  } finally {
    await node.close();
  }
});

Deno.test("s78 F1: every file read a plain GET makes through the port carries the client's signal (the type sniff's did not)", async () => {
  const { dir, put } = await newGatewayStore({ chunkSize: 1024 });
  // No name, no type recorded: the route reads the first bytes to type it.
  const cid = await put(new Uint8Array(5000).fill(7));
  const { system, gateway } = await countedStorage(dir, "gateway-read-signals");
  const signals: (AbortSignal | undefined)[] = [];
  const port = (): GatewayStorage => {
    const inner = gateway();
    return {
      ...inner,
      read: (c, range, options) => {
        signals.push(range.signal);
        return inner.read(c, range, options);
      },
    };
  };
  const app = createApp({ inference: {} as InferencePort });
  app.route("/", gatewayRoutes(port));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  try {
    const response = await fetch(`http://127.0.0.1:${server.addr.port}/ipfs/${cid}`);
    assert.equal(response.status, 200);
    assert.equal((await response.arrayBuffer()).byteLength, 5000);
    assert.ok(signals.length >= 2, `the sniff and the body: ${signals.length} reads`);
    assert.ok(signals.every((s) => s instanceof AbortSignal), "each read has a signal");
  } finally {
    await server.shutdown();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
