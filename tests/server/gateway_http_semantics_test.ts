/**
 * The HTTP semantics of `/ipfs/{cid}` a cache or a trustless client relies on, on a real HTTP
 * server on 127.0.0.1: `Vary: Accept`, attachments for blocks and CARs, ranges and `If-Range`, CAR
 * scopes and byte ranges in the ETag, conditional requests, content negotiation, the CID forms a
// gateway must take (inlined identity nodes included), and what a `HEAD` claims and reads.
 */
import assert from "node:assert/strict";
import { CarBlockIterator } from "@ipld/car";
import { base36 } from "multiformats/bases/base36";
import { base58btc } from "multiformats/bases/base58";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { PutHandle, StorageMessage } from "../../actors/storage_actor_messages.ts";
import { storageGateway } from "../../actors/storage_actor_peer.ts";
import type { InferencePort } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { fileRoutes } from "../../server/file_routes.ts";
import { gatewayRoutes } from "../../server/gateway_routes.ts";
import { parseRange } from "../../server/http_range.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { storageKey } from "../../protocols/cid.ts";
import type { GatewayStorage } from "../../storage/gateway_port.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { ShareStore } from "../../storage/share_links.ts";
import { newGatewayStore, readCar, startGatewayNode } from "./_gateway_node.ts";

// The HTTP semantics of `/ipfs/{cid}` a cache or a trustless client relies on, on a real HTTP
// server on 127.0.0.1: `Vary: Accept` on every answer (one URL is a file, a block or a CAR by
// `Accept`), attachments for blocks and CARs, unsatisfiable ranges of an empty file, CAR scopes
// and byte ranges in the ETag, conditional requests, content negotiation, and the CID forms a
// gateway must take (CIDv0, base36, upper case, identity).

const RAW = "application/vnd.ipld.raw";
const CAR = "application/vnd.ipld.car";

/**
 * A node's storage and HTTP edge on 127.0.0.1, holding a directory `{a.txt, b.txt}` (written to
 * the store before the node starts, as `cli.ts put DIR` does) and whatever `put` adds.
 */
async function startNode() {
  const dir = await Deno.makeTempDir();
  const files = new FileStore(await ChunkStore.open(dir));
  const entry = async (name: string, text: string) => {
    const { cid, size, tsize } = await files.put(
      ReadableStream.from([new TextEncoder().encode(text)]),
    );
    return { name, cid, fileSize: size, tsize };
  };
  const tree = await files.putDirectory([
    await entry("a.txt", "hello\n"),
    await entry("b.txt", "world\n"),
  ]);
  const system = new ActorSystem({ name: "gateway-semantics-test" });
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir }) as never,
  });
  const app = createApp({
    inference: {} as InferencePort,
    edge: { allowedOrigins: ["https://app.example"] },
  });
  const port = () => storageGateway(storage);
  app.route("/v1", fileRoutes(port));
  app.route("/", gatewayRoutes(port));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  const url = `http://127.0.0.1:${server.addr.port}`;
  return {
    directory: tree.cid,
    /** Store a public file; its CID. */
    put: async (bytes: Uint8Array) =>
      (await (await storage.ask<PutHandle>({ type: "put", source: ReadableStream.from([bytes]) }))
        .done).cid,
    /** Fetch `path`; the response and its whole body. */
    get: async (path: string, init?: RequestInit) => {
      const response = await fetch(`${url}${path}`, init);
      return { response, body: new Uint8Array(await response.arrayBuffer()) };
    },
    close: async () => {
      await server.shutdown();
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("every /ipfs answer varies on Accept, and blocks and CARs are attachments named after the CID", async () => {
  const node = await startNode();
  try {
    const cid = await node.put(pseudoRandomBytes(600_000, 41));
    const answers = {
      plain: await node.get(`/ipfs/${cid}`),
      "Accept raw": await node.get(`/ipfs/${cid}`, { headers: { accept: RAW } }),
      "Accept car": await node.get(`/ipfs/${cid}`, { headers: { accept: CAR } }),
      "format=raw": await node.get(`/ipfs/${cid}?format=raw`),
      "format=car": await node.get(`/ipfs/${cid}?format=car`),
      range: await node.get(`/ipfs/${cid}`, { headers: { range: "bytes=0-9" } }),
      "not modified": await node.get(`/ipfs/${cid}`, { headers: { "if-none-match": `"${cid}"` } }),
      "bad format": await node.get(`/ipfs/${cid}?format=dag-json`),
      directory: await node.get(`/ipfs/${node.directory}`),
      // A browser's cross-origin read: CORS adds `Origin` to `Vary`, and keeps `Accept`.
      "cross-origin car": await node.get(`/ipfs/${cid}`, {
        headers: { accept: CAR, origin: "https://app.example" },
      }),
    };
    for (const [label, { response }] of Object.entries(answers)) {
      const vary = (response.headers.get("vary") ?? "").toLowerCase().split(/\s*,\s*/);
      assert.ok(vary.includes("accept"), `${label} (${response.status}) varies on Accept: ${vary}`);
    }
    for (const label of ["Accept raw", "format=raw"] as const) {
      assert.equal(
        answers[label].response.headers.get("content-disposition"),
        `attachment; filename="${cid}.bin"`,
        label,
      );
    }
    for (const label of ["Accept car", "format=car"] as const) {
      assert.equal(
        answers[label].response.headers.get("content-disposition"),
        `attachment; filename="${cid}.car"`,
        label,
      );
    }
    assert.equal(answers.plain.response.headers.get("content-disposition"), null);
    const crossVary = answers["cross-origin car"].response.headers.get("vary")!.toLowerCase();
    assert.ok(crossVary.includes("origin"), crossVary);
  } finally {
    await node.close();
  }
});

Deno.test("the last bytes of an empty file are its whole (empty) body, 200, never a 'bytes 0--1/0' range", async () => {
  assert.equal(parseRange("bytes=-5", 0), undefined);
  assert.equal(parseRange("bytes=0-", 0), "unsatisfiable");
  assert.deepEqual(parseRange("bytes=-5", 3), { start: 0, end: 3 });
  const node = await startNode();
  try {
    const cid = await node.put(new Uint8Array(0));
    for (const path of [`/ipfs/${cid}`, `/v1/files/${cid}`]) {
      const { response, body } = await node.get(path, { headers: { range: "bytes=-5" } });
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get("content-range"), null, path);
      assert.equal(response.headers.get("content-length"), "0", path);
      assert.equal(body.length, 0, path);
      const past = await node.get(path, { headers: { range: "bytes=0-" } });
      assert.equal(past.response.status, 416, path);
      assert.equal(past.response.headers.get("content-range"), "bytes */0", path);
    }
  } finally {
    await node.close();
  }
});

/** The CIDs of a CAR's blocks, in order. */
async function carBlocks(body: Uint8Array): Promise<string[]> {
  const car = await CarBlockIterator.fromIterable(ReadableStream.from([body]));
  const cids: string[] = [];
  for await (const block of car) cids.push(block.cid.toString());
  return cids;
}

Deno.test("a CAR's dag-scope and entity-bytes are honoured or refused, never ignored: a byte range is the blocks of those bytes, and each scope and range has its own ETag", async () => {
  const node = await startNode();
  try {
    const cid = await node.put(pseudoRandomBytes(600_000, 42)); // a dag-pb root over 3 leaves
    const all = await node.get(`/ipfs/${cid}?format=car`);
    assert.equal(all.response.status, 200);
    assert.equal(all.response.headers.get("etag"), `"${cid}.car.all"`);
    assert.equal((await carBlocks(all.body)).length, 4);

    // A file's entity is the whole file, under a tag of its own.
    const entity = await node.get(`/ipfs/${cid}?format=car&dag-scope=entity`);
    assert.equal(entity.response.status, 200);
    assert.equal(entity.response.headers.get("etag"), `"${cid}.car.entity"`);
    assert.deepEqual(await carBlocks(entity.body), await carBlocks(all.body));

    // A directory's entity is its own node, not the files under it.
    const tree = await node.get(`/ipfs/${node.directory}?format=car&dag-scope=entity`);
    assert.equal(tree.response.status, 200);
    assert.equal(tree.response.headers.get("etag"), `"${node.directory}.car.entity"`);
    assert.deepEqual(await carBlocks(tree.body), [node.directory]);
    const whole = await node.get(`/ipfs/${node.directory}?format=car`);
    assert.equal((await carBlocks(whole.body)).length, 3);

    // The whole entity spelled out is `dag-scope=entity` (of a file, its whole DAG).
    const spelled = await node.get(`/ipfs/${cid}?format=car&entity-bytes=0:*`);
    assert.equal(spelled.response.status, 200);
    assert.equal(spelled.response.headers.get("etag"), `"${cid}.car.entity"`);
    assert.deepEqual(await carBlocks(spelled.body), await carBlocks(all.body));

    // A byte range of a file is the root and the leaves holding those bytes, under a tag of its
    // own (leaves of 262,144 bytes: [0, 262144), [262144, 524288), [524288, 600000)).
    const [root, ...leaves] = await carBlocks(all.body);
    const cases: [string, string[]][] = [
      ["0:10", [root, leaves[0]]],
      ["-100:*", [root, leaves[2]]],
      ["262140:262150", [root, leaves[0], leaves[1]]],
      ["524288:-1", [root, leaves[2]]],
      ["0:99999999", [root, ...leaves]],
      ["10:-599995", [root]], // no bytes in it: the root block alone, as the spec says
    ];
    for (const [range, blocks] of cases) {
      const ranged = await node.get(`/ipfs/${cid}?format=car&entity-bytes=${range}`);
      assert.equal(ranged.response.status, 200, range);
      assert.deepEqual(await carBlocks(ranged.body), blocks, range);
      assert.equal(ranged.response.headers.get("etag"), `"${cid}.car.entity.bytes-${range}"`);
    }
    const past = await node.get(`/ipfs/${cid}?format=car&entity-bytes=600000:*`);
    assert.equal(past.response.status, 400, "a range past the end is refused up front");
    // A directory has no bytes: entity-bytes is ignored, the answer is its entity (its node).
    const ignored = await node.get(`/ipfs/${node.directory}?format=car&entity-bytes=0:10`);
    assert.deepEqual(await carBlocks(ignored.body), [node.directory]);
    for (const bad of ["zzz", "0-10", "10:5", "1.5:*", ":", "0:", "*:0"]) {
      const refused = await node.get(`/ipfs/${cid}?format=car&entity-bytes=${bad}`);
      assert.equal(refused.response.status, 400, bad);
    }
    const scope = await node.get(`/ipfs/${cid}?format=car&dag-scope=files`);
    assert.equal(scope.response.status, 400);
  } finally {
    await node.close();
  }
});

Deno.test("If-None-Match is read as RFC 9110 reads it (weak tags, lists, *) against each format's own ETag", async () => {
  const node = await startNode();
  try {
    const cid = await node.put(pseudoRandomBytes(600_000, 43));
    const cases: [string, string, string][] = [
      [`/ipfs/${cid}`, "", `"${cid}"`],
      [`/ipfs/${cid}`, "", `W/"${cid}"`],
      [`/ipfs/${cid}`, "", `"x", "${cid}"`],
      [`/ipfs/${cid}`, "", `*`],
      [`/ipfs/${cid}?format=raw`, "", `"${cid}.raw"`],
      [`/ipfs/${cid}`, RAW, `W/"other", W/"${cid}.raw"`],
      [`/ipfs/${cid}?format=car`, "", `"${cid}.car.all"`],
      [`/ipfs/${cid}?format=car&dag-scope=block`, "", `"${cid}.car.block"`],
      [`/ipfs/${cid}`, CAR, `*`],
    ];
    for (const [path, accept, tags] of cases) {
      const headers: Record<string, string> = { "if-none-match": tags };
      if (accept) headers.accept = accept;
      const { response, body } = await node.get(path, { headers });
      assert.equal(response.status, 304, `${path} ${accept} If-None-Match: ${tags}`);
      assert.equal(body.length, 0);
      assert.ok(response.headers.get("etag"), "a 304 names the tag it confirms");
    }
    // Another format's or scope's tag is another representation: the full answer.
    for (
      const [path, tags] of [
        [`/ipfs/${cid}`, `"${cid}.raw"`],
        [`/ipfs/${cid}?format=raw`, `"${cid}"`],
        [`/ipfs/${cid}?format=car&dag-scope=block`, `"${cid}.car.all"`],
        [`/ipfs/${cid}`, `"${cid}x"`],
      ]
    ) {
      const { response } = await node.get(path, { headers: { "if-none-match": tags } });
      assert.equal(response.status, 200, `${path} If-None-Match: ${tags}`);
    }
  } finally {
    await node.close();
  }
});

Deno.test("Accept is negotiated with its weights and CAR version, a CAR's HEAD has its GET's length or none, and bytes no codec can read are 422", async () => {
  const node = await startNode();
  try {
    const cid = await node.put(pseudoRandomBytes(600_000, 44));
    const type = async (accept: string) => {
      const { response } = await node.get(`/ipfs/${cid}`, { headers: { accept } });
      return [response.status, response.headers.get("content-type")?.split(";")[0]];
    };
    assert.deepEqual(await type(`${RAW};q=0, ${CAR}`), [200, CAR]);
    assert.deepEqual(await type(`${RAW};q=0.5, ${CAR};q=0.9`), [200, CAR]);
    assert.deepEqual(await type(`${CAR};q=0.2, ${RAW}`), [200, RAW]);
    assert.deepEqual(await type(`${CAR}; version=1; order=dfs`), [200, CAR]);
    assert.deepEqual(await type(`${CAR}; version=2, ${RAW}`), [200, RAW]);
    assert.equal((await type(`${CAR}; version=2`))[0], 406);
    assert.equal((await type(`${RAW};q=0`))[0], 406);
    assert.deepEqual(await type("*/*"), [200, "application/octet-stream"]);

    const get = await node.get(`/ipfs/${cid}?format=car`);
    const head = await node.get(`/ipfs/${cid}?format=car`, { method: "HEAD" });
    assert.equal(head.response.status, 200);
    assert.ok(get.body.length > 600_000);
    // The CAR holds leaves, whose length only their bytes tell (a link's Tsize is not checked):
    // no length, which this node's plain `Deno.serve` writes as `0` (`serve.ts` drops it).
    assert.equal(head.response.headers.get("content-length") ?? "0", "0");
    assert.equal(head.body.length, 0);
    assert.equal(head.response.headers.get("etag"), get.response.headers.get("etag"));
    // The root block alone is read by the HEAD: its length is the GET's.
    const block = `/ipfs/${cid}?format=car&dag-scope=block`;
    const blockHead = await node.get(block, { method: "HEAD" });
    const blockGet = await node.get(block);
    assert.equal(blockHead.response.headers.get("content-length"), String(blockGet.body.length));

    // A raw chunk's digest under the dag-pb and dag-cbor codecs: its bytes are neither.
    const chunk = CID.parse(await node.put(new TextEncoder().encode("0123456789")));
    for (const codec of [0x70, 0x71]) {
      const named = CID.createV1(codec, chunk.multihash).toString();
      const { response, body } = await node.get(`/ipfs/${named}`);
      assert.equal(response.status, 422, new TextDecoder().decode(body));
      assert.equal(JSON.parse(new TextDecoder().decode(body)).error.code, "invalid_manifest");
    }
  } finally {
    await node.close();
  }
});

Deno.test("a CID in any form IPFS tools print (CIDv0, base36, base58btc, upper case) names the same file, and an identity CID is answered from its own bytes", async () => {
  const node = await startNode();
  try {
    const bytes = pseudoRandomBytes(600_000, 45);
    const cid = await node.put(bytes); // dag-pb: it has a CIDv0
    const leaf = await node.put(new TextEncoder().encode("0123456789")); // raw
    const forms = [
      CID.parse(cid).toV0().toString(),
      CID.parse(cid).toString(base36),
      CID.parse(cid).toString(base58btc),
      cid.toUpperCase(),
    ];
    assert.match(forms[0], /^Qm/);
    for (const form of forms) {
      const { response, body } = await node.get(`/ipfs/${form}`);
      assert.equal(response.status, 200, form);
      assert.equal(response.headers.get("etag"), `"${cid}"`, form);
      assert.deepEqual(body, bytes, form);
      const file = await node.get(`/v1/files/${form}`);
      assert.equal(file.response.status, 200, form);
      assert.deepEqual(file.body, bytes, form);
    }
    const upper = await node.get(`/ipfs/${leaf.toUpperCase()}?format=raw`);
    assert.equal(upper.response.status, 200);
    assert.equal(new TextDecoder().decode(upper.body), "0123456789");

    const hello = new TextEncoder().encode("hello\n");
    const inline = CID.createV1(0x55, identity.digest(hello)).toString();
    assert.equal(inline, "bafkqabtimvwgy3yk");
    for (const path of [`/ipfs/${inline}`, `/ipfs/${inline}?format=raw`]) {
      const { response, body } = await node.get(path);
      assert.equal(response.status, 200, path);
      assert.deepEqual(body, hello, path);
    }
    const part = await node.get(`/ipfs/${inline}`, { headers: { range: "bytes=1-2" } });
    assert.equal(part.response.status, 206);
    assert.equal(new TextDecoder().decode(part.body), "el");
    // Its CAR names it and carries no block: the spec's MUST NOT for identity blocks (s78 F4).
    for (const cid of [inline, "bafkqaaa"]) {
      const car = await node.get(`/ipfs/${cid}?format=car`);
      assert.equal(car.response.status, 200, cid);
      const blocks = await CarBlockIterator.fromIterable(ReadableStream.from([car.body]));
      assert.deepEqual((await blocks.getRoots()).map(String), [cid]);
      const inCar = [];
      for await (const block of blocks) inCar.push([block.cid.toString(), block.bytes]);
      assert.deepEqual(inCar, [], cid);
      const head = await node.get(`/ipfs/${cid}?format=car`, { method: "HEAD" });
      assert.equal(head.response.headers.get("content-length"), `${car.body.length}`, cid);
    }
    const empty = await node.get(`/ipfs/bafkqaaa`);
    assert.equal(empty.response.status, 200);
    assert.equal(empty.body.length, 0);

    // An inline dag-pb node (here the empty UnixFS directory) is read by its UnixFS type, as a
    // stored one is: a directory is redirected to its directory form and listed there.
    const node_ = CID.createV1(0x70, identity.digest(new Uint8Array([0x0a, 0x02, 0x08, 0x01])));
    const plain = await node.get(`/ipfs/${node_}`, { redirect: "manual" });
    assert.equal(plain.response.status, 301);
    const listing = await node.get(`/ipfs/${node_}/`);
    assert.equal(listing.response.status, 200);
    assert.match(new TextDecoder().decode(listing.body), /Index of/);
    assert.equal((await node.get(`/ipfs/${node_}?format=raw`)).response.status, 200);

    for (
      const bad of ["notacid", "baguqeeraxfzkmuqkd5twrbfkcqshpvqxpwkmymw5sugzhnhb3ukyyvv5fahq"]
    ) {
      assert.equal((await node.get(`/ipfs/${bad}`)).response.status, 400, bad);
    }
    assert.equal((await node.get(`/v1/files/${inline}`)).response.status, 400);
  } finally {
    await node.close();
  }
});

Deno.test("a stored HTML file is served sandboxed on both routes: it never runs as a page of the node's origin (the dashboard's)", async () => {
  const node = await startNode();
  try {
    const html = '<script>window.__pwned = sessionStorage.getItem("token")</script>';
    const put = await node.get("/v1/files?name=x.html&mime=text/html", {
      method: "POST",
      body: html,
    });
    assert.equal(put.response.status, 201, new TextDecoder().decode(put.body));
    const { cid } = JSON.parse(new TextDecoder().decode(put.body));
    for (const path of [`/ipfs/${cid}`, `/v1/files/${cid}`]) {
      const { response, body } = await node.get(path);
      assert.equal(response.status, 200, path);
      assert.equal(new TextDecoder().decode(body), html, `${path}: the bytes, as stored`);
      const csp = response.headers.get("content-security-policy") ?? "";
      assert.match(csp, /(^|;\s*)sandbox(\s*;|$)/, `${path}: ${csp}`);
      assert.match(csp, /default-src 'none'/, path);
      assert.equal(response.headers.get("x-content-type-options"), "nosniff", path);
    }
  } finally {
    await node.close();
  }
});

// The gateway as a demanding HTTP client and a trustless reader use it: `If-Range` on a ranged
// read, inlined (identity-hash) dag-pb nodes, and what a CAR's `HEAD` claims and reads.

const text = (s: string) => new TextEncoder().encode(s);
const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

/** An empty store in a new directory, and ways to fill it: files cut into 1 KiB chunks. */
const newStore = () => newGatewayStore({ chunkSize: 1024 });

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
    // Blocks are served as before; a CAR names the node and carries no identity block (s78 F4).
    for (const cid of [dataNode, linkedNode]) {
      const raw = await node.get(`/ipfs/${cid}?format=raw`);
      assert.equal(raw.response.status, 200);
      assert.deepEqual(raw.body, CID.parse(cid).multihash.digest);
      const car = await node.get(`/ipfs/${cid}?format=car&dag-scope=block`);
      assert.equal(car.response.status, 200);
      assert.deepEqual(await readCar(car.body), { roots: [cid], blocks: [] });
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
