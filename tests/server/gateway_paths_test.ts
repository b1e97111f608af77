/**
 * Content paths on the gateway, `/ipfs/{cid}/{path}` (Path and Trustless Gateway specs), on a real
 * HTTP server on 127.0.0.1 over a published directory tree: a file's bytes and ranges by path, the
 * block a path names, a CAR that carries the path's directories before the named DAG (checked
 * link by link, block by block, with `@ipld/car` and `@ipld/dag-pb`), the errors that name the
 * missing segment, directories' trailing-slash redirects, `index.html` and generated indexes, and
 * `@helia/verified-fetch` walking the same path through the node.
 */
import assert from "node:assert/strict";
import * as dagPb from "@ipld/dag-pb";
import { createVerifiedFetchWithHelia } from "@helia/verified-fetch";
import { withHTTP } from "@helia/http";
import { createHeliaLight } from "helia";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { cidDigest, cidFromDigest, DAG_PB_CODEC } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import type { DirectoryEntry } from "../../storage/unixfs.ts";
import { digestOf, equalBytes } from "../../storage/_hash.ts";
import { pseudoRandomBytes } from "../storage/_helpers.ts";
import { readCar, startGatewayNode } from "./_gateway_node.ts";

const text = (s: string) => new TextEncoder().encode(s);
const BIG = pseudoRandomBytes(600_000, 51); // a dag-pb root over 3 raw leaves of 262,144 bytes
const ODD_NAME = 'a<b>&"c" ü.txt';

/**
 * A node on 127.0.0.1 holding, written to its store before it starts (as `cli.ts put DIR` does):
 *
 * ```
 * /hello.txt  /big.bin  /a<b>&"c" ü.txt
 * /sub/file.txt  /sub/deeper/leaf.txt
 * /site/index.html  /site/app.css
 * /shard/  (a HAMT-sharded directory node, made by hand: Veriflow writes none)
 * ```
 */
async function startNode() {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store);
  const cids: Record<string, string> = {};
  const file = async (name: string, bytes: Uint8Array): Promise<DirectoryEntry> => {
    const { cid, size, tsize } = await files.put(ReadableStream.from([bytes]));
    return { name, cid, fileSize: size, tsize };
  };
  const directory = async (name: string, entries: DirectoryEntry[]): Promise<DirectoryEntry> => {
    const { cid, tsize } = await files.putDirectory(
      entries.toSorted((a, b) => a.name < b.name ? -1 : 1),
    );
    return { name, cid, fileSize: 0, tsize };
  };
  const hello = await file("hello.txt", text("hello\n"));
  const shardBytes = dagPb.encode(dagPb.prepare({
    Data: new UnixFS({ type: "hamt-sharded-directory", fanout: 256n, hashType: 0x22n }).marshal(),
    Links: [{ Name: "0Ahello.txt", Hash: CID.parse(hello.cid), Tsize: hello.tsize }],
  }));
  const shard = cidFromDigest(cidDigest(await store.put(shardBytes)), DAG_PB_CODEC);
  const leaf = await file("leaf.txt", text("deep\n"));
  const deeper = await directory("deeper", [leaf]);
  const subFile = await file("file.txt", text("in sub\n"));
  const sub = await directory("sub", [subFile, deeper]);
  const site = await directory("site", [
    await file("index.html", text("<h1>site</h1>")),
    await file("app.css", text("h1 { color: red }")),
  ]);
  const big = await file("big.bin", BIG);
  const root = await directory("", [
    hello,
    big,
    await file(ODD_NAME, text("odd\n")),
    sub,
    site,
    { name: "shard", cid: shard, fileSize: 0, tsize: shardBytes.length },
  ]);
  Object.assign(cids, {
    root: root.cid,
    sub: sub.cid,
    deeper: deeper.cid,
    leaf: leaf.cid,
    subFile: subFile.cid,
    big: big.cid,
    site: site.cid,
  });

  return { ...await startGatewayNode(dir), cids };
}

Deno.test("a file is read by its path through nested directories: bytes, Range, HEAD, its type from its name, and the path's roots", async () => {
  const node = await startNode();
  const { root, sub, deeper, leaf, big } = node.cids;
  try {
    const deep = await node.get(`/ipfs/${root}/sub/deeper/leaf.txt`);
    assert.equal(deep.response.status, 200);
    assert.equal(new TextDecoder().decode(deep.body), "deep\n");
    assert.equal(deep.response.headers.get("content-type"), "text/plain; charset=utf-8");
    assert.equal(deep.response.headers.get("etag"), `"${leaf}"`);
    assert.equal(deep.response.headers.get("x-ipfs-path"), `/ipfs/${root}/sub/deeper/leaf.txt`);
    assert.equal(deep.response.headers.get("x-ipfs-roots"), [root, sub, deeper, leaf].join(","));
    assert.equal(
      deep.response.headers.get("cache-control"),
      "public, max-age=29030400, immutable",
    );
    assert.match(deep.response.headers.get("content-security-policy")!, /sandbox/);

    const part = await node.get(`/ipfs/${root}/big.bin`, {
      headers: { range: "bytes=262000-262299" },
    });
    assert.equal(part.response.status, 206);
    assert.equal(part.response.headers.get("content-range"), `bytes 262000-262299/${BIG.length}`);
    assert.deepEqual(part.body, BIG.subarray(262000, 262300));
    assert.equal(part.response.headers.get("etag"), `"${big}"`);
    const head = await node.get(`/ipfs/${root}/big.bin`, { method: "HEAD" });
    assert.equal(head.response.status, 200);
    assert.equal(head.response.headers.get("content-length"), String(BIG.length));
    assert.equal(head.body.length, 0);

    // Percent-encoded names are decoded once; an encoded slash separates names like a plain one;
    // `.`, `..` (encoded, as a browser would otherwise remove them) and empty names are resolved
    // before any lookup, so `nope` is never looked up.
    const odd = await node.get(`/ipfs/${root}/${encodeURIComponent(ODD_NAME)}`);
    assert.equal(odd.response.status, 200);
    assert.equal(new TextDecoder().decode(odd.body), "odd\n");
    for (
      const path of [
        "sub%2Fdeeper%2Fleaf.txt",
        "sub/nope%2F..%2Fdeeper//leaf.txt",
        "sub/deeper/%2E%2Fleaf.txt",
      ]
    ) {
      const { response, body } = await node.get(`/ipfs/${root}/${path}`);
      assert.equal(response.status, 200, path);
      assert.equal(new TextDecoder().decode(body), "deep\n", path);
    }
    const above = await node.get(`/ipfs/${root}/sub%2F..%2F..%2Fhello.txt`);
    assert.equal(above.response.status, 400, "a path never climbs above its root CID");
    const malformed = await node.get(`/ipfs/${root}/%E0%A4%A`);
    assert.equal(malformed.response.status, 400);
  } finally {
    await node.close();
  }
});

Deno.test("a missing name is 404 path_not_found naming it (plain, raw and CAR alike); a name asked of a file is 404; a HAMT-sharded directory on the path is 501", async () => {
  const node = await startNode();
  const { root } = node.cids;
  try {
    for (const query of ["", "?format=raw", "?format=car"]) {
      const { response, body } = await node.get(`/ipfs/${root}/sub/missing.txt${query}`);
      assert.equal(response.status, 404, query);
      const { error } = JSON.parse(new TextDecoder().decode(body));
      assert.equal(error.code, "path_not_found", query);
      assert.match(error.message, /"missing\.txt"/, query);
      assert.ok(error.message.includes(`/ipfs/${root}/sub`), error.message);
      assert.ok((response.headers.get("vary") ?? "").toLowerCase().includes("accept"));
    }
    const through = await node.get(`/ipfs/${root}/hello.txt/more`);
    assert.equal(through.response.status, 404);
    const { error } = JSON.parse(new TextDecoder().decode(through.body));
    assert.equal(error.code, "path_not_found");
    assert.match(error.message, /hello\.txt is a file: it has no entry "more"/);

    const sharded = await node.get(`/ipfs/${root}/shard/hello.txt`);
    assert.equal(sharded.response.status, 501);
    assert.match(new TextDecoder().decode(sharded.body), /HAMT-sharded directory/);
  } finally {
    await node.close();
  }
});

Deno.test("format=raw (or Accept) with a path is the one block the path names", async () => {
  const node = await startNode();
  const { root, deeper, big } = node.cids;
  try {
    for (const [path, cid] of [["sub/deeper", deeper], ["big.bin", big]]) {
      const { response, body } = await node.get(`/ipfs/${root}/${path}?format=raw`);
      assert.equal(response.status, 200, path);
      assert.equal(response.headers.get("content-type"), "application/vnd.ipld.raw");
      assert.ok(equalBytes(cidDigest(cid), await digestOf(body)), `${path}: the block of ${cid}`);
      assert.equal(response.headers.get("etag"), `"${cid}.raw"`);
      assert.equal(
        response.headers.get("content-disposition"),
        `attachment; filename="${cid}.bin"`,
      );
    }
    const accepted = await node.get(`/ipfs/${root}/sub/deeper`, {
      headers: { accept: "application/vnd.ipld.raw" },
    });
    assert.ok(equalBytes(cidDigest(deeper), await digestOf(accepted.body)));
  } finally {
    await node.close();
  }
});

Deno.test("a CAR by path is rooted at the requested CID and carries the path's directories, in order, each linking the next by name, then the named DAG per dag-scope and entity-bytes", async () => {
  const node = await startNode();
  const { root, sub, deeper, leaf, subFile, big } = node.cids;
  try {
    const { response, body } = await node.get(`/ipfs/${root}/sub/deeper/leaf.txt?format=car`);
    assert.equal(response.status, 200);
    assert.equal(
      response.headers.get("content-type"),
      "application/vnd.ipld.car; version=1; order=dfs; dups=n",
    );
    assert.equal(response.headers.get("content-disposition"), `attachment; filename="${root}.car"`);
    const car = await readCar(body);
    assert.deepEqual(car.roots, [root]);
    assert.deepEqual(car.blocks.map((b) => b.cid), [root, sub, deeper, leaf]);
    // What a trustless reader checks: each directory links the next block by the path's name.
    const names = ["sub", "deeper", "leaf.txt"];
    for (const [i, name] of names.entries()) {
      const links = dagPb.decode(car.blocks[i].bytes).Links;
      const link = links.find((l) => l.Name === name);
      assert.equal(link?.Hash.toV1().toString(), car.blocks[i + 1].cid, name);
    }

    const blocksOf = async (path: string) => {
      const answer = await node.get(`/ipfs/${root}/${path}`);
      assert.equal(answer.response.status, 200, path);
      return { etag: answer.response.headers.get("etag"), ...await readCar(answer.body) };
    };
    const whole = await blocksOf("big.bin?format=car");
    assert.equal(whole.blocks.length, 5);
    assert.deepEqual(whole.blocks.slice(0, 2).map((b) => b.cid), [root, big]);
    const leaves = whole.blocks.slice(2).map((b) => b.cid);
    const blockOnly = await blocksOf("big.bin?format=car&dag-scope=block");
    assert.deepEqual(blockOnly.blocks.map((b) => b.cid), [root, big]);
    // A directory's entity is its own node; `all` is everything under it, depth first.
    const entity = await blocksOf("sub?format=car&dag-scope=entity");
    assert.deepEqual(entity.blocks.map((b) => b.cid), [root, sub]);
    const all = await blocksOf("sub?format=car");
    assert.deepEqual(all.blocks.map((b) => b.cid), [root, sub, deeper, leaf, subFile]);
    // Only the blocks of the bytes asked for, after the path's.
    const tail = await blocksOf("big.bin?format=car&entity-bytes=-100:*");
    assert.deepEqual(tail.blocks.map((b) => b.cid), [root, big, leaves[2]]);
    const etags = [whole, blockOnly, entity, all, tail].map((answer) => answer.etag);
    assert.equal(new Set(etags).size, etags.length, `each answer its own ETag: ${etags}`);
    const direct = await node.get(`/ipfs/${big}?format=car`);
    assert.notEqual(direct.response.headers.get("etag"), whole.etag);

    // A CAR of the blocks a HEAD reads (the path's, the file's root) has the GET's length; one
    // that holds leaves has none (a link's Tsize is not checked: gateway_car_length_test.ts).
    // This node's plain `Deno.serve` writes `0` for a HEAD that names none (`serve.ts` drops it).
    const head = await node.get(`/ipfs/${root}/big.bin?format=car&dag-scope=block`, {
      method: "HEAD",
    });
    const get = await node.get(`/ipfs/${root}/big.bin?format=car&dag-scope=block`);
    assert.equal(head.response.headers.get("content-length"), String(get.body.length));
    const leafy = await node.get(`/ipfs/${root}/big.bin?format=car`, { method: "HEAD" });
    assert.equal(leafy.response.headers.get("content-length") ?? "0", "0");
    const cached = await node.get(`/ipfs/${root}/big.bin?format=car`, {
      headers: { "if-none-match": whole.etag! },
    });
    assert.equal(cached.response.status, 304);
  } finally {
    await node.close();
  }
});

Deno.test("a directory's plain read redirects to its trailing-slash form, then serves its index.html or a generated, escaped index", async () => {
  const node = await startNode();
  const { root, sub } = node.cids;
  try {
    for (const path of [`/ipfs/${root}/site`, `/ipfs/${root}`, `/ipfs/${root}/sub?x=1`]) {
      const { response } = await node.get(path);
      assert.equal(response.status, 301, path);
      const [pathname, query] = path.split("?");
      assert.equal(response.headers.get("location"), `${pathname}/${query ? `?${query}` : ""}`);
    }
    const site = await node.get(`/ipfs/${root}/site/`);
    assert.equal(site.response.status, 200);
    assert.equal(new TextDecoder().decode(site.body), "<h1>site</h1>");
    assert.equal(site.response.headers.get("content-type"), "text/html; charset=utf-8");
    assert.match(site.response.headers.get("content-security-policy")!, /sandbox/);
    const css = await node.get(`/ipfs/${root}/site/app.css`);
    assert.equal(css.response.headers.get("content-type"), "text/css; charset=utf-8");

    const listing = await node.get(`/ipfs/${root}/sub/`);
    assert.equal(listing.response.status, 200);
    assert.equal(listing.response.headers.get("content-type"), "text/html; charset=utf-8");
    assert.equal(listing.response.headers.get("etag"), `"DirIndex-2_CID-${sub}"`);
    const html = new TextDecoder().decode(listing.body);
    assert.match(html, /href="\.\/file\.txt"/);
    assert.match(html, /href="\.\/deeper"/);
    const top = new TextDecoder().decode((await node.get(`/ipfs/${root}/`)).body);
    assert.ok(top.includes("a&lt;b&gt;&amp;&quot;c&quot; ü.txt"), "the name is escaped as text");
    assert.ok(!top.includes("<b>"), "no markup from a name");
    assert.ok(top.includes(`href="./${encodeURIComponent(ODD_NAME)}"`), "and encoded as a link");
  } finally {
    await node.close();
  }
});

Deno.test({
  name:
    "@helia/verified-fetch reads ipfs://{dir}/sub/file.txt through the node: the bytes the node serves at that path, over the blocks its X-Ipfs-Roots name",
  // Helia keeps timers of its own (session and routing housekeeping) past stop().
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const node = await startNode();
    const { root, sub, subFile } = node.cids;
    try {
      const served = await node.get(`/ipfs/${root}/sub/file.txt`);
      assert.equal(served.response.status, 200);
      const roots = served.response.headers.get("x-ipfs-roots")!.split(",");
      assert.deepEqual(roots, [root, sub, subFile]);

      const helia = createHeliaLight();
      // With no router besides the fallback gateway, helia's provider search never ends: a
      // router that finds nothing lets it fall back to the gateway (helia 7.1).
      helia.addRouter({ name: "none", async *findProviders() {} } as never);
      await withHTTP(helia, {
        delegatedRouters: [],
        recursiveGateways: [node.url],
        allowInsecure: true,
        allowLocal: true,
      }).start();
      const verifiedFetch = await createVerifiedFetchWithHelia(helia);
      try {
        const response = await verifiedFetch(`ipfs://${root}/sub/file.txt`);
        assert.equal(response.status, 200);
        const bytes = new Uint8Array(await response.arrayBuffer());
        assert.equal(new TextDecoder().decode(bytes), "in sub\n");
        assert.deepEqual(bytes, served.body);
      } finally {
        await verifiedFetch.stop();
        await helia.stop();
      }
      const fetched = node.requests.filter((r) => r.includes("format=raw"));
      for (const cid of roots) {
        assert.ok(fetched.some((r) => r.includes(cid)), `verified-fetch read ${cid}: ${fetched}`);
      }
    } finally {
      await node.close();
    }
  },
});
