/**
 * Review s54 of the gateway as a demanding HTTP client and a trustless reader use it: `If-Range`
 * on a ranged read, inlined (identity-hash) dag-pb nodes, and what a CAR's `HEAD` claims and
 * reads. Each test here failed on the code before its fix.
 */
import assert from "node:assert/strict";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { storageKey } from "../../protocols/cid.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { ShareStore } from "../../storage/share_links.ts";
import { blockMaker, readCar, startGatewayNode } from "./_gateway_node.ts";

const text = (s: string) => new TextEncoder().encode(s);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** An empty store in a new directory, and ways to fill it. */
async function newStore() {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 1024 });
  const put = async (content: string | Uint8Array) =>
    (await files.put(
      ReadableStream.from([typeof content === "string" ? text(content) : content]),
    )).cid;
  return { dir, store, files, put, make: blockMaker(store) };
}

Deno.test("a Range under an If-Range that is not the file's strong ETag is answered with the whole file (200), not a piece of another version; a matching one is 206", async () => {
  const { dir, put } = await newStore();
  const cid = await put("0123456789");
  const node = await startGatewayNode(dir);
  try {
    for (
      const ifRange of [
        '"some-other-version"',
        `W/"${cid}"`, // weak: RFC 9110 §13.1.5 compares If-Range strongly
        "Fri, 04 Dec 2026 10:00:00 GMT", // a date: the gateway sends no Last-Modified
      ]
    ) {
      for (const method of ["GET", "HEAD"]) {
        const { response, body } = await node.get(`/ipfs/${cid}`, {
          method,
          headers: { range: "bytes=2-4", "if-range": ifRange },
        });
        assert.equal(response.status, 200, `${method} If-Range: ${ifRange}`);
        assert.equal(response.headers.get("content-range"), null, ifRange);
        assert.equal(response.headers.get("content-length"), "10", ifRange);
        if (method === "GET") assert.equal(decode(body), "0123456789", ifRange);
      }
    }
    const same = await node.get(`/ipfs/${cid}`, {
      headers: { range: "bytes=2-4", "if-range": `"${cid}"` },
    });
    assert.equal(same.response.status, 206);
    assert.equal(decode(same.body), "234");
    // An If-Range without a Range is ignored; so is one on a 416's range? No: a Range it does
    // not match is ignored whole, so an unsatisfiable one is the whole file too.
    const outside = await node.get(`/ipfs/${cid}`, {
      headers: { range: "bytes=50-60", "if-range": '"other"' },
    });
    assert.equal(outside.response.status, 200);
    assert.equal(decode(outside.body), "0123456789");
  } finally {
    await node.close();
  }
});

/** An identity CID (`ipfs add --inline`) of a UnixFS directory over `links`. */
function inlineDirectory(links: { name: string; cid: string; tsize: number }[]): string {
  const bytes = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "directory" }).marshal(),
    Links: links.map((l) => ({ Name: l.name, Hash: CID.parse(l.cid), Tsize: l.tsize })),
  }));
  return CID.createV1(0x70, identity.digest(bytes)).toString();
}

/** An identity CID of the dag-pb node `node`. */
function inlinePb(node: dagPb.PBNode): string {
  return CID.createV1(0x70, identity.digest(dagPb.encode(dagPb.prepare(node)))).toString();
}

Deno.test("an inlined (identity CID) UnixFS directory is listed and redirected like a stored one, as its paths are followed, and an inlined file node of data read; one it cannot read as a file is 501, not a 400 blaming the request", async () => {
  const { dir, put, make } = await newStore();
  const file = await put("inside\n");
  const inline = inlineDirectory([{ name: "a.txt", cid: file, tsize: 7 }]);
  // `ipfs add --inline` without raw leaves: a file node that holds its bytes.
  const dataNode = inlinePb({
    Data: new UnixFS({ type: "file", data: text("hi") }).marshal(),
    Links: [],
  });
  // A file node inlined although it links its bytes: not read through an inline root.
  const leaf = await make.putRaw(text("linked"));
  const linking = new UnixFS({ type: "file" });
  linking.addBlockSize(6n);
  const linkedNode = inlinePb({
    Data: linking.marshal(),
    Links: [{ Name: "", Hash: CID.parse(leaf), Tsize: 6 }],
  });
  const node = await startGatewayNode(dir);
  try {
    // Its paths were followed already.
    const through = await node.get(`/ipfs/${inline}/a.txt`);
    assert.equal(through.response.status, 200);
    assert.equal(decode(through.body), "inside\n");
    // Its listing, under the directory form; a redirect to that form without it.
    const listing = await node.get(`/ipfs/${inline}/`);
    assert.equal(listing.response.status, 200, decode(listing.body));
    assert.match(decode(listing.body), /Index of/);
    assert.match(decode(listing.body), /a\.txt/);
    const bare = await node.get(`/ipfs/${inline}`);
    assert.equal(bare.response.status, 301);
    assert.equal(bare.response.headers.get("location"), `/ipfs/${inline}/`);
    // A file node of data: its data, ranges and all.
    const data = await node.get(`/ipfs/${dataNode}`);
    assert.equal(data.response.status, 200, decode(data.body));
    assert.equal(decode(data.body), "hi");
    assert.equal(data.response.headers.get("content-length"), "2");
    const part = await node.get(`/ipfs/${dataNode}`, { headers: { range: "bytes=1-" } });
    assert.equal(part.response.status, 206);
    assert.equal(decode(part.body), "i");
    // A node it does not read as a file: the request is well formed, the gateway does not do it.
    const unread = await node.get(`/ipfs/${linkedNode}`);
    assert.equal(unread.response.status, 501, decode(unread.body));
    assert.match(decode(unread.body), /format=raw/);
    // Blocks and CARs are served as before.
    for (const cid of [dataNode, linkedNode]) {
      const raw = await node.get(`/ipfs/${cid}?format=raw`);
      assert.equal(raw.response.status, 200);
      assert.deepEqual(raw.body, CID.parse(cid).multihash.digest);
      const car = await node.get(`/ipfs/${cid}?format=car&dag-scope=block`);
      assert.equal(car.response.status, 200);
      assert.deepEqual((await readCar(car.body)).blocks.map((b) => b.cid), [cid]);
    }
  } finally {
    await node.close();
  }
});

Deno.test("a CAR's HEAD, and a byte range's walk before its GET, read their blocks with the client's signal: a client that goes away stops them", async () => {
  const { dir, files, store, put, make } = await newStore();
  const key = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
  const secret = await files.put(ReadableStream.from([new Uint8Array(5000).fill(1)]), { key });
  const big = await put(new Uint8Array(5000).fill(2)); // a root over 5 leaves of 1 KiB
  const root = await make.directory([{ name: "big.bin", cid: big }]);
  /** Block reads made without a signal: nothing could stop them. */
  const unsignalled: string[] = [];
  const port: GatewayStorage = {
    put: () => Promise.reject(new Error("not in this test")),
    block: (cid, signal) => {
      if (signal === undefined) unsignalled.push(cid);
      return store.get(storageKey(cid));
    },
    stat: (cid) => files.stat(cid, { key }),
    read: (cid, range) => Promise.resolve(files.get(cid, { ...range, key })),
    car: () => Promise.reject(new Error("not in this test")),
    share: () => Promise.resolve(undefined),
  };
  const app = gatewayRoutes(() => port);
  try {
    for (
      const [method, path] of [
        ["HEAD", `/ipfs/${secret.cid}?format=car`],
        ["HEAD", `/ipfs/${root}/big.bin?format=car`],
        ["HEAD", `/ipfs/${big}?format=car&entity-bytes=1000:3000`],
        ["GET", `/ipfs/${big}?format=car&entity-bytes=1000:3000`],
      ]
    ) {
      unsignalled.length = 0;
      const response = await app.request(path, { method });
      assert.equal(response.status, 200, `${method} ${path}`);
      await response.body?.cancel();
      assert.deepEqual(unsignalled, [], `${method} ${path}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a HEAD of a share link's manifest or chunk says the length its GET sends, never Content-Length: 0", async () => {
  const { dir, files } = await newStore();
  const key = await OwnerKey.fromSecret(new Uint8Array(32).fill(9));
  const secret = await files.put(ReadableStream.from([new Uint8Array(3000).fill(3)]), { key });
  const chunk = (await files.stat(secret.cid, { key })).chunks[0];
  const record = await new ShareStore(dir).create(secret.cid, { expiresAt: null, now: 0 });
  const node = await startGatewayNode(dir, { ownerKey: key });
  try {
    for (const cid of [secret.cid, chunk]) {
      const path = `/share/${record.id}/${cid}`;
      const get = await node.get(path);
      assert.equal(get.response.status, 200, path);
      assert.ok(get.body.length > 0);
      const head = await node.get(path, { method: "HEAD" });
      assert.equal(head.response.status, 200, path);
      assert.equal(head.response.headers.get("content-length"), `${get.body.length}`, path);
    }
  } finally {
    await node.close();
  }
});
