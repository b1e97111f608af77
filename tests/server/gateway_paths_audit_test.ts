/**
 * The gateway's content paths and byte walks against hostile DAGs (on a real HTTP server on
 * 127.0.0.1, over hand-made DAGs where Veriflow's own writer would not make one): escaping paths,
 * DAGs that link one child many times per level or hold zero-byte subtrees, paths thousands of
 * names deep, UnixFS nodes that are not files, identity CIDs, and entry names that are not UTF-8.
 */
import assert from "node:assert/strict";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { encodeCbor } from "../../protocols/cbor.ts";
import {
  cidDigest,
  cidFromDigest,
  cidOf,
  DAG_CBOR_CODEC,
  DAG_PB_CODEC,
  RAW_CODEC,
  storageKey,
} from "../../protocols/cid.ts";
import { MAX_PATH_NAMES } from "../../server/gateway_paths.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { blockMaker, newGatewayStore, readCar, startGatewayNode } from "./_gateway_node.ts";
import { decodeUnixfs, filePieces } from "../../storage/unixfs.ts";

// The gateway's content paths against what an outside audit sent them (on a real HTTP server on
// 127.0.0.1, over hand-made DAGs where Veriflow's own writer would not make one): a raw path whose
// encoded `..` would leave its CID, a tiny DAG that links one child 174 times per level, a path
// thousands of names deep, a CAR's HEAD, another owner's private file, an encoded slash at the end
// of a directory's path, identity CIDs inside DAGs, UnixFS nodes that are not files (HAMT shards,
// symlinks) and dag-cbor data, `entity-bytes=0:*` of a directory, and entry names that are not
// UTF-8.

const text = (s: string) => new TextEncoder().encode(s);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/**
 * A file DAG of `levels` levels over one 1-byte leaf, each node linking the level below 174
 * times: a few kilobytes that claim 174^levels bytes.
 */
async function repeatedDag(make: ReturnType<typeof blockMaker>, levels: number) {
  const leaf = await make.putRaw(new Uint8Array([0x41]));
  const nodes = [leaf];
  let child = { cid: leaf, size: 1 };
  for (let level = 0; level < levels; level++) {
    child = { cid: await make.fileNode(Array(174).fill(child)), size: child.size * 174 };
    nodes.unshift(child.cid);
  }
  return { root: child.cid, size: child.size, nodes }; // nodes: root first, leaf last
}

Deno.test("the CID and the path come from the same raw path: an encoded `..` that would leave the CID is 400, never another root's file; one inside the path resolves there", async () => {
  const { dir, put, make } = await newGatewayStore();
  const a = await make.directory([{ name: "x.txt", cid: await put("content of A/x.txt") }]);
  const b = await make.directory([{ name: "x.txt", cid: await put("content of B/x.txt") }]);
  const node = await startGatewayNode(dir);
  try {
    for (
      const target of [
        `/ipfs/${a}/%2e%2e/${b}/x.txt`,
        `/ipfs/${a}/%2E%2E/${b}/x.txt`,
        `/ipfs/${a}/.%2e/${b}/x.txt`,
        `/ipfs/${a}/../${b}/x.txt`,
        `/ipfs/${a}/x.txt/%2e%2e/%2e%2e/${b}/x.txt`,
      ]
    ) {
      const answer = await node.raw(target);
      assert.equal(answer.status, 400, target);
      assert.ok(!answer.body.includes("content of"), `${target}: ${answer.body}`);
      assert.match(answer.body, /climbs above its root CID/);
    }
    const inside = await node.raw(`/ipfs/${a}/nope/%2e%2e/x.txt`);
    assert.equal(inside.status, 200);
    assert.ok(inside.body.includes("content of A/x.txt"));
    assert.equal(inside.headers.get("x-ipfs-path"), `/ipfs/${a}/nope/%2e%2e/x.txt`);
  } finally {
    await node.close();
  }
});

Deno.test("entity-bytes walks a node its parent links 174 times once, not 174 times: a 6-level DAG of 7 blocks claiming 27.7 TB answers 1:* and 0:999999 with those 7 blocks", async () => {
  const { dir, make } = await newGatewayStore();
  const small = await repeatedDag(make, 2);
  const big = await repeatedDag(make, 6);
  assert.equal(big.size, 174 ** 6);
  const node = await startGatewayNode(dir);
  try {
    const ranged = await node.get(`/ipfs/${small.root}?format=car&entity-bytes=1:*`);
    assert.equal(ranged.response.status, 200);
    assert.deepEqual((await readCar(ranged.body)).blocks.map((b) => b.cid), small.nodes);
    // The walk made before the answer and the one that writes it each read the middle node at
    // most twice (once cut by the range's start, once whole); before, once per link to it.
    const middle = node.reads.blocks.filter((cid) => storageKey(cid) === storageKey(small.nodes[1]))
      .length;
    assert.ok(middle > 0 && middle <= 4, `the middle node was read ${middle} times`);

    for (const range of ["1:*", "0:999999", "-5:*"]) {
      node.reads.blocks.length = 0;
      const { response, body } = await node.get(
        `/ipfs/${big.root}?format=car&entity-bytes=${range}`,
      );
      assert.equal(response.status, 200, range);
      assert.deepEqual((await readCar(body)).blocks.map((b) => b.cid), big.nodes, range);
      assert.ok(node.reads.blocks.length <= 4 * big.nodes.length, `${node.reads.blocks.length}`);
    }
  } finally {
    await node.close();
  }
});

Deno.test("a byte range whose walk would take more steps than the limit is 400 naming entity-bytes, before any CAR is sent (GET and HEAD alike); a smaller one is answered", async () => {
  const { dir, make } = await newGatewayStore();
  const dag = await repeatedDag(make, 2); // the root links one node 174 times, over 174 leaves
  const node = await startGatewayNode(dir, { routes: { maxRangeSteps: 100 } });
  try {
    for (const range of ["1:*", "0:99"]) {
      for (const method of ["GET", "HEAD"]) {
        const { response, body } = await node.get(
          `/ipfs/${dag.root}?format=car&entity-bytes=${range}`,
          { method },
        );
        assert.equal(response.status, 400, `${method} ${range}`);
        if (method === "GET") {
          const { error } = JSON.parse(decode(body));
          assert.equal(error.param, "entity-bytes");
          assert.match(error.message, /more than 100 blocks walked/);
        }
      }
    }
    const fits = await node.get(`/ipfs/${dag.root}?format=car&entity-bytes=0:50`);
    assert.equal(fits.response.status, 200);
    assert.deepEqual((await readCar(fits.body)).blocks.map((b) => b.cid), dag.nodes);
  } finally {
    await node.close();
  }
});

Deno.test("a CAR's HEAD writes no CAR and reads no leaf, and its Content-Length is its GET's where it reads every block, none where the CAR holds a leaf", async () => {
  const { dir, store, put, make } = await newGatewayStore();
  const big = await put(pseudoRandomBytes(600_000, 61)); // a root over 3 leaves
  const leaves = dagPb.decode(await store.get(storageKey(big))).Links
    .map((link) => link.Hash.toString());
  assert.equal(leaves.length, 3);
  const inline = CID.createV1(0x55, identity.digest(text("inline"))).toString();
  // Each link's Tsize as a writer records it (a raw leaf's is its length); a HEAD counts none.
  const sub = await make.directory([{ name: "a.txt", cid: await put("a\n"), tsize: 2 }]);
  const root = await make.directory([
    { name: "big.bin", cid: big },
    { name: "id.txt", cid: inline },
    { name: "sub", cid: sub },
  ]);
  const node = await startGatewayNode(dir);
  try {
    // A CAR that holds a leaf has no length (only its bytes tell it, and a HEAD reads none; a
    // link's Tsize is not checked: gateway_car_length_test.ts); one of the blocks a HEAD reads has
    // the GET's.
    for (
      const [path, sized] of [
        [`/ipfs/${big}?format=car`, false],
        [`/ipfs/${big}?format=car&dag-scope=entity`, false],
        [`/ipfs/${big}?format=car&entity-bytes=262000:262300`, false],
        [`/ipfs/${root}?format=car`, false],
        [`/ipfs/${root}?format=car&dag-scope=entity`, true],
        [`/ipfs/${root}/sub?format=car`, false],
        [`/ipfs/${root}/big.bin?format=car&dag-scope=block`, true],
        [`/ipfs/${root}/big.bin?format=car&entity-bytes=-10:*`, false],
        [`/ipfs/${root}/id.txt?format=car`, true],
        [`/ipfs/${inline}?format=car`, true],
      ] as const
    ) {
      node.reads.blocks.length = 0;
      node.reads.cars.length = 0;
      const head = await node.get(path, { method: "HEAD" });
      assert.equal(head.response.status, 200, path);
      assert.deepEqual(node.reads.cars, [], `${path}: HEAD asked for no CAR`);
      const read = node.reads.blocks.filter((cid) => leaves.includes(storageKey(cid)));
      assert.deepEqual(read, [], `${path}: HEAD read no leaf`);
      const get = await node.get(path);
      assert.equal(get.response.status, 200, path);
      await readCar(get.body);
      // This node's plain `Deno.serve` writes `0` for a HEAD that names no length (`serve.ts`
      // drops it); no CAR is 0 bytes long.
      const length = head.response.headers.get("content-length") ?? "0";
      assert.equal(length, sized ? `${get.body.length}` : "0", path);
      assert.equal(head.response.headers.get("etag"), get.response.headers.get("etag"), path);
    }
  } finally {
    await node.close();
  }
});

Deno.test(`a path of more than ${MAX_PATH_NAMES} names is 400, so X-Ipfs-Roots (a CID per name) stays a few KB; ${MAX_PATH_NAMES} are followed`, async () => {
  const { dir, put, make } = await newGatewayStore();
  let cid = await put("bottom");
  let name = "f.txt";
  const names: string[] = [];
  for (let i = 0; i < MAX_PATH_NAMES + 1; i++) {
    names.unshift(name);
    cid = await make.directory([{ name, cid }]);
    name = "a";
  }
  const node = await startGatewayNode(dir);
  try {
    const deepest = await node.get(`/ipfs/${cid}/${names.join("/")}`);
    assert.equal(deepest.response.status, 400);
    assert.equal(deepest.response.headers.get("x-ipfs-roots"), null);
    assert.equal(JSON.parse(decode(deepest.body)).error.param, "path");
    // Dot segments are resolved first: it is the names followed that count.
    const folded = await node.raw(`/ipfs/${cid}/${names.join("/")}/%2e%2e/%2e%2e`);
    assert.equal(folded.status, 301);

    const allowed = names.slice(0, MAX_PATH_NAMES);
    const deep = await node.get(`/ipfs/${cid}/${allowed.join("/")}/`);
    assert.equal(deep.response.status, 200);
    const roots = deep.response.headers.get("x-ipfs-roots")!;
    assert.equal(roots.split(",").length, MAX_PATH_NAMES + 1);
    assert.ok(roots.length < 4_096, `${roots.length} bytes`);
  } finally {
    await node.close();
  }
});

Deno.test("another owner's private file is 403 key_required as any private file is (not 500), its CAR is served, and a listing whose index.html is one falls back to the generated index", async () => {
  const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(1));
  const other = await OwnerKey.fromSecret(new Uint8Array(32).fill(2));
  const { dir, files, make } = await newGatewayStore();
  const secret = await files.put(ReadableStream.from([text("TOP SECRET")]), {
    key: owner,
    name: "s.txt",
    mime: "text/html",
  });
  const root = await make.directory([
    { name: "index.html", cid: secret.cid },
    { name: "s.txt", cid: secret.cid },
  ]);
  const node = await startGatewayNode(dir, { ownerKey: other });
  try {
    for (const path of [`/ipfs/${secret.cid}`, `/ipfs/${root}/s.txt`]) {
      const { response, body } = await node.get(path);
      assert.equal(response.status, 403, path);
      assert.equal(JSON.parse(decode(body)).error.code, "key_required", path);
    }
    const listing = await node.get(`/ipfs/${root}/`);
    assert.equal(listing.response.status, 200);
    assert.match(decode(listing.body), /Index of/);
    assert.ok(!decode(listing.body).includes("TOP SECRET"));
    for (
      const path of [
        `/ipfs/${secret.cid}?format=car&dag-scope=entity`,
        `/ipfs/${root}/s.txt?format=car&entity-bytes=0:3`,
      ]
    ) {
      const { response, body } = await node.get(path);
      assert.equal(response.status, 200, path);
      const blocks = (await readCar(body)).blocks.map((b) => b.cid);
      assert.ok(blocks.includes(secret.cid), path);
      assert.ok(!decode(body).includes("TOP SECRET"), "ciphertext only");
    }
  } finally {
    await node.close();
  }
});

Deno.test("only a literal / at the end of the raw path is a directory's form: site%2F is redirected to site/ like site, so its page's relative links resolve inside it", async () => {
  const { dir, put, make } = await newGatewayStore();
  const site = await make.directory([
    { name: "app.css", cid: await put("/* the site's */") },
    { name: "index.html", cid: await put('<link rel=stylesheet href="app.css">') },
  ]);
  const root = await make.directory([
    { name: "app.css", cid: await put("/* the root's */") },
    { name: "site", cid: site },
  ]);
  const node = await startGatewayNode(dir);
  try {
    for (const path of ["site", "site%2F", "site%2f", "x%2F..%2Fsite", "site/.", "site/%2e"]) {
      const { status, headers } = await node.raw(`/ipfs/${root}/${path}?q=1`);
      assert.equal(status, 301, path);
      assert.equal(headers.get("location"), `/ipfs/${root}/site/?q=1`, path);
    }
    const page = await node.get(`/ipfs/${root}/site/`);
    assert.equal(decode(page.body), '<link rel=stylesheet href="app.css">');
    const css = new URL("app.css", `${node.url}/ipfs/${root}/site/`).pathname;
    assert.equal(decode((await node.get(css)).body), "/* the site's */");
  } finally {
    await node.close();
  }
});

Deno.test("identity CIDs inside a DAG are read from the CID: a directory linking one, a path to one, and a byte range of one are complete CARs, none carrying an identity block (s78 F4: the spec's MUST NOT)", async () => {
  const { dir, put, make } = await newGatewayStore();
  const inline = CID.createV1(0x55, identity.digest(text("hello identity"))).toString();
  const file = await put("stored\n");
  const root = await make.directory([{ name: "a.txt", cid: file }, {
    name: "id.txt",
    cid: inline,
  }]);
  const node = await startGatewayNode(dir);
  try {
    const cases: [string, string[], string[]][] = [
      [`/ipfs/${root}?format=car`, [root], [root, file]],
      [`/ipfs/${root}/id.txt?format=car`, [root], [root]],
      [`/ipfs/${root}/id.txt?format=car&entity-bytes=0:3`, [root], [root]],
      [`/ipfs/${inline}?format=car&entity-bytes=0:3`, [inline], []],
      [`/ipfs/${inline}?format=car&dag-scope=all`, [inline], []],
    ];
    for (const [path, roots, blocks] of cases) {
      const { response, body } = await node.get(path);
      assert.equal(response.status, 200, path);
      const car = await readCar(body);
      assert.deepEqual(car.roots, roots, path);
      assert.deepEqual(car.blocks.map((b) => b.cid), blocks, path);
    }
    const plain = await node.get(`/ipfs/${root}/id.txt`);
    assert.equal(decode(plain.body), "hello identity");
  } finally {
    await node.close();
  }
});

Deno.test("a node is served by its decoded UnixFS type: a HAMT or symlink index.html gives the generated index, a symlink's bytes are 501, its entity (with or without entity-bytes) is its one block, dag-cbor data's entity is its block, a HAMT's entity 501", async () => {
  const { dir, store, put, make } = await newGatewayStore();
  const hamt = await make.unixfsNode("hamt-sharded-directory");
  const symlink = await make.unixfsNode("symlink", text("/etc/passwd"));
  const cbor = cidFromDigest(
    cidDigest(await store.put(encodeCbor({ hello: "world" }))),
    DAG_CBOR_CODEC,
  );
  const root = await make.directory([
    { name: "c", cid: cbor },
    { name: "h", cid: await make.directory([{ name: "index.html", cid: hamt }]) },
    { name: "l", cid: await make.directory([{ name: "index.html", cid: symlink }]) },
    { name: "sym", cid: symlink },
    { name: "x.txt", cid: await put("x\n") },
  ]);
  const node = await startGatewayNode(dir);
  try {
    for (const path of ["h/", "l/"]) {
      const { response, body } = await node.get(`/ipfs/${root}/${path}`);
      assert.equal(response.status, 200, path);
      assert.match(decode(body), /Index of/, path);
      assert.equal(response.headers.get("content-length"), `${body.length}`, path);
    }
    const bytes = await node.get(`/ipfs/${root}/sym`);
    assert.equal(bytes.response.status, 501);
    assert.match(decode(bytes.body), /UnixFS symlink/);
    for (
      const [path, blocks] of [
        ["sym?format=car&dag-scope=entity", [root, symlink]],
        ["sym?format=car&entity-bytes=0:3", [root, symlink]],
        ["c?format=car&dag-scope=entity", [root, cbor]],
      ] as const
    ) {
      const { response, body } = await node.get(`/ipfs/${root}/${path}`);
      assert.equal(response.status, 200, path);
      assert.deepEqual((await readCar(body)).blocks.map((b) => b.cid), blocks, path);
    }
    const direct = await node.get(`/ipfs/${cbor}?format=car&dag-scope=entity`);
    assert.deepEqual((await readCar(direct.body)).blocks.map((b) => b.cid), [cbor]);
    const shards = await node.get(`/ipfs/${hamt}?format=car&dag-scope=entity`);
    assert.equal(shards.response.status, 501);
  } finally {
    await node.close();
  }
});

Deno.test("entity-bytes=0:* implies dag-scope=entity as any entity-bytes does: a directory's CAR is its own node, under the entity ETag", async () => {
  const { dir, put, make } = await newGatewayStore();
  const sub = await make.directory([{ name: "b.txt", cid: await put("bbbb") }]);
  const root = await make.directory([{ name: "a.txt", cid: await put("aaaa") }, {
    name: "sub",
    cid: sub,
  }]);
  const node = await startGatewayNode(dir);
  try {
    for (
      const [path, blocks] of [
        [`/ipfs/${root}?format=car&entity-bytes=0:*`, [root]],
        [`/ipfs/${root}?format=car&entity-bytes=0:*&dag-scope=all`, [root]],
        [`/ipfs/${root}/sub?format=car&entity-bytes=0:*`, [root, sub]],
      ] as const
    ) {
      const { response, body } = await node.get(path);
      assert.equal(response.status, 200, path);
      assert.deepEqual((await readCar(body)).blocks.map((b) => b.cid), blocks, path);
      const entity = await node.get(
        path.replace(/entity-bytes=0:\*(&dag-scope=all)?/, "dag-scope=entity"),
      );
      assert.equal(response.headers.get("etag"), entity.response.headers.get("etag"), path);
    }
  } finally {
    await node.close();
  }
});

Deno.test("directory names that are not UTF-8 stay apart: 0xFE and 0xFF list as two links keeping their bytes, and each percent-encoded byte finds its own entry", async () => {
  const { dir, store, put } = await newGatewayStore();
  const first = await put("first");
  const second = await put("second");
  const bytes = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "directory" }).marshal(),
    Links: [
      { Name: "Q", Hash: CID.parse(first), Tsize: 5 },
      { Name: "R", Hash: CID.parse(second), Tsize: 6 },
    ],
  }));
  // The one-byte names `Q` and `R` (field 2, length 1) become 0xFE and 0xFF: no encoder writes
  // them, but a directory made elsewhere may hold any bytes.
  for (let i = 0; i + 2 < bytes.length; i++) {
    if (
      bytes[i] === 0x12 && bytes[i + 1] === 1 && (bytes[i + 2] === 0x51 || bytes[i + 2] === 0x52)
    ) {
      bytes[i + 2] = bytes[i + 2] === 0x51 ? 0xfe : 0xff;
    }
  }
  const root = cidFromDigest(cidDigest(await store.put(bytes)), DAG_PB_CODEC);
  const node = await startGatewayNode(dir);
  try {
    const listing = decode((await node.get(`/ipfs/${root}/`)).body);
    assert.ok(listing.includes('href="./%FE"'), listing);
    assert.ok(listing.includes('href="./%FF"'), listing);
    for (const [path, content] of [["%FE", "first"], ["%fe", "first"], ["%FF", "second"]]) {
      const { response, body } = await node.get(`/ipfs/${root}/${path}`);
      assert.equal(response.status, 200, path);
      assert.equal(decode(body), content, path);
    }
    const replaced = await node.get(`/ipfs/${root}/%EF%BF%BD`);
    assert.equal(replaced.response.status, 404, "U+FFFD names neither");
    const tags = await Promise.all(["%FE", "%FF"].map(async (name) => {
      const { response } = await node.get(`/ipfs/${root}/${name}?format=car`);
      return response.headers.get("etag");
    }));
    assert.notEqual(tags[0], tags[1], "each path its own CAR ETag");
  } finally {
    await node.close();
  }
});

Deno.test("plain reads, ranges and CARs leave no Deno request.signal warning in the operator's log", async () => {
  const { dir, put, make } = await newGatewayStore();
  const file = await put("content of the file");
  const root = await make.directory([{ name: "f.txt", cid: file }]);
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...a: unknown[]) => void warnings.push(a.join(" "));
  const node = await startGatewayNode(dir);
  try {
    for (
      const [path, init] of [
        [`/ipfs/${file}`, undefined],
        [`/ipfs/${root}/f.txt`, { headers: { range: "bytes=2-5" } }],
        [`/ipfs/${root}?format=car`, undefined],
        [`/ipfs/${root}/f.txt?format=car&entity-bytes=0:3`, undefined],
      ] as const
    ) {
      const { response } = await node.get(path, init);
      assert.ok(response.ok, `${path}: ${response.status}`);
    }
  } finally {
    await node.close();
    console.warn = warn;
  }
  assert.deepEqual(warnings.filter((w) => /request\.signal|legacy/.test(w)), []);
});

// A file's byte walk over hostile or unusual UnixFS DAGs: zero-byte subtrees, and a file node
// holding both data and links.

/** Blocks in memory by CID, every read counted; a read past `limit` throws (a walk that runs away). */
function blocks(limit = 1_000) {
  const map = new Map<string, Uint8Array>();
  let reads = 0;
  return {
    put: (bytes: Uint8Array, codec: number) => {
      const cid = cidOf(bytes, codec as never);
      map.set(cid, bytes);
      return cid;
    },
    get: (cid: string) => {
      if (++reads > limit) return Promise.reject(new Error(`more than ${limit} block reads`));
      const bytes = map.get(cid);
      return bytes ? Promise.resolve(bytes) : Promise.reject(new Error(`no block ${cid}`));
    },
    get reads() {
      return reads;
    },
  };
}

/** A UnixFS file node over `children` (`size` file bytes each; repeats allowed). */
function fileNode(children: { cid: string; size: number }[]): Uint8Array {
  const unixfs = new UnixFS({ type: "file" });
  for (const child of children) unixfs.addBlockSize(BigInt(child.size));
  return dagPb.encode(dagPb.prepare({
    Data: unixfs.marshal(),
    Links: children.map((c) => ({ Hash: CID.parse(c.cid), Tsize: c.size })),
  }));
}

/**
 * A file of `aa` whose two leaves sandwich a zero-byte subtree `depth` levels deep, each level
 * linking the next 174 times: a few hundred bytes of DAG that hold no byte of the file.
 */
function emptyTower(
  put: (bytes: Uint8Array, codec: number) => string,
  depth: number,
): { root: string; leaf: string } {
  let empty = put(fileNode([]), DAG_PB_CODEC);
  for (let level = 0; level < depth; level++) {
    empty = put(
      fileNode(Array.from({ length: 174 }, () => ({ cid: empty, size: 0 }))),
      DAG_PB_CODEC,
    );
  }
  const leaf = put(new TextEncoder().encode("a"), RAW_CODEC);
  const root = put(
    fileNode([{ cid: leaf, size: 1 }, { cid: empty, size: 0 }, { cid: leaf, size: 1 }]),
    DAG_PB_CODEC,
  );
  return { root, leaf };
}

Deno.test("a file's byte walk does not descend into zero-byte subtrees: a tiny hostile DAG cannot make a read walk 174^depth nodes", async () => {
  const store = blocks();
  const { root, leaf } = emptyTower(store.put, 5); // 174^5 ≈ 1.6e11 nodes, none holding a byte
  const node = { ...decodeUnixfs(root, await store.get(root)), cid: root };
  const pieces = [];
  for await (const piece of filePieces(node, 0, 2, store.get)) pieces.push(piece);
  assert.deepEqual(pieces.map((p) => [p.cid, p.from, p.to]), [[leaf, 0, 1], [leaf, 0, 1]]);
  assert.ok(store.reads <= 2, `${store.reads} reads`);
});

Deno.test("a UnixFS file node holding data and links is read as its data, then its children's bytes, never a 200 whose body is cut", async () => {
  const dir = await Deno.makeTempDir();
  const make = blockMaker(await ChunkStore.open(dir));
  const text = new TextEncoder();
  const leaf = await make.putRaw(text.encode("yy"));
  // The UnixFS spec's file: `Data` holds the first bytes, the links the rest (kubo reads them so).
  const withData = (data: string, children: { cid: string; size: number }[]) => {
    const unixfs = new UnixFS({ type: "file", data: text.encode(data) });
    for (const child of children) unixfs.addBlockSize(BigInt(child.size));
    return make.putPb({
      Data: unixfs.marshal(),
      Links: children.map((c) => ({ Name: "", Hash: CID.parse(c.cid), Tsize: c.size })),
    });
  };
  const inner = await withData("x", [{ cid: leaf, size: 2 }]); // "xyy"
  const file = await withData("ab", [{ cid: inner, size: 3 }, { cid: leaf, size: 2 }]); // "abxyyyy"
  const site = await make.directory([{ name: "f.txt", cid: file }, { name: "f", cid: file }]);
  const node = await startGatewayNode(dir);
  try {
    for (const name of ["f.txt", "f"]) {
      const whole = await node.get(`/ipfs/${site}/${name}`);
      assert.equal(whole.response.status, 200, name);
      assert.equal(new TextDecoder().decode(whole.body), "abxyyyy", name);
    }
    for (const [range, bytes] of [["1-3", "bxy"], ["2-2", "x"], ["-3", "yyy"]]) {
      const part = await node.get(`/ipfs/${site}/f.txt`, { headers: { range: `bytes=${range}` } });
      assert.equal(part.response.status, 206, range);
      assert.equal(new TextDecoder().decode(part.body), bytes, range);
    }
    // A verified CAR of a byte range carries the nodes whose data holds it.
    const car = await node.get(`/ipfs/${file}?format=car&entity-bytes=2:2`);
    assert.equal(car.response.status, 200);
    const { blocks: got } = await readCar(car.body);
    assert.deepEqual(got.map((b) => b.cid), [file, inner]);
  } finally {
    await node.close();
  }
});
