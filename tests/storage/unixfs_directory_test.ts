// Directory nodes: how much work decoding one and finding a name in it does (review s74, finding
// 1: a lookup in a 16,000-entry directory decoded and stringified every link, per request), the
// cache of decoded directories, and that the faster reader refuses what `@ipld/dag-pb` refuses.
// The work is counted (CIDs stringified, cache hits), never timed.
import assert from "node:assert/strict";
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import { identity } from "multiformats/hashes/identity";
import { cidOf, DAG_PB_CODEC, RAW_CODEC } from "../../protocols/cid.ts";
import { InvalidManifestError } from "../../storage/errors.ts";
import { decodeUnixfs, findLink, type UnixfsDecodeStats } from "../../storage/unixfs.ts";
import {
  DEFAULT_DIRECTORY_CACHE_BYTES,
  heldCost,
  UnixfsDirectoryCache,
} from "../../storage/unixfs_directory_cache.ts";
import { resolveUnixfsPath } from "../../storage/unixfs_path.ts";

const text = (s: string) => new TextEncoder().encode(s);
const LEAF = cidOf(text("leaf"), RAW_CODEC);

/** A directory node linking `count` entries named f000000…, each to a distinct raw leaf. */
function wideDirectory(count: number): { bytes: Uint8Array; cid: string; leaves: string[] } {
  const leaves = Array.from({ length: count }, (_, i) => cidOf(text(`leaf ${i}`), RAW_CODEC));
  const Links = leaves.map((leaf, i) => ({
    Name: `f${String(i).padStart(6, "0")}`,
    Hash: CID.parse(leaf),
    Tsize: 1,
  }));
  const bytes = dagPb.encode({ Data: new UnixFS({ type: "directory" }).marshal(), Links });
  return { bytes, cid: cidOf(bytes, DAG_PB_CODEC), leaves };
}

Deno.test("decoding a 16,000-entry directory stringifies no link CID; finding one name stringifies exactly that one", () => {
  const dir = wideDirectory(16_000);
  const stats: UnixfsDecodeStats = { cidsStringified: 0 };
  const node = decodeUnixfs(dir.cid, dir.bytes, { stats });
  assert.equal(node.links.length, 16_000);
  assert.equal(stats.cidsStringified, 0, "decoding alone makes no CID string");
  const link = findLink(node.links, "f015999");
  assert.equal(link?.cid, dir.leaves[15_999]);
  assert.equal(link?.cid, dir.leaves[15_999], "read twice, made once");
  assert.equal(stats.cidsStringified, 1, "only the matching link's CID was stringified");
  assert.equal(findLink(node.links, "f016000"), undefined);
  assert.equal(stats.cidsStringified, 1, "a miss stringifies nothing");
});

Deno.test("a path through a big directory asked three times decodes it once: the cache answers the rest, and every block is still read", async () => {
  const dir = wideDirectory(2_000);
  let reads = 0;
  const get = (cid: string) => {
    assert.equal(cid, dir.cid);
    reads++;
    return Promise.resolve(dir.bytes);
  };
  const stats: UnixfsDecodeStats = { cidsStringified: 0 };
  const cache = new UnixfsDirectoryCache({ stats });
  for (let i = 0; i < 3; i++) {
    const resolved = await resolveUnixfsPath(dir.cid, ["f001999"], get, { cache });
    assert.equal(resolved.cid, dir.leaves[1_999]);
  }
  assert.deepEqual(cache.counts, { hits: 2, misses: 1 });
  assert.equal(reads, 3, "each request still reads (and so verifies) the block");
  assert.equal(stats.cidsStringified, 1, "the one link followed, stringified once");
  assert.equal(cache.bytes, heldCost(dir.bytes.length, 2_000));
});

Deno.test("the directory cache counts what a held node costs, not its block: a directory whose links cost more than the bound is not kept", () => {
  // Review s74 verify2: bounded by block bytes, the cache held 8-22x its bound in heap.
  const dir = wideDirectory(1_000);
  const cache = new UnixfsDirectoryCache({ maxBytes: dir.bytes.length * 2 });
  assert.ok(heldCost(dir.bytes.length, 1_000) >= dir.bytes.length + 1_000 * 400);
  cache.decode(dir.cid, dir.bytes);
  cache.decode(dir.cid, dir.bytes);
  assert.deepEqual(cache.counts, { hits: 0, misses: 2 }, "kept though it costs past the bound");
  assert.equal(cache.bytes, 0);
});

Deno.test("the default directory cache keeps three of the largest directories a node accepts", () => {
  const dir = wideDirectory(16_000);
  const cache = new UnixfsDirectoryCache();
  cache.decode(dir.cid, dir.bytes);
  cache.decode(dir.cid, dir.bytes);
  assert.deepEqual(cache.counts, { hits: 1, misses: 1 });
  assert.ok(3 * cache.bytes <= DEFAULT_DIRECTORY_CACHE_BYTES, `${cache.bytes}`);
});

Deno.test("the directory cache keeps at most its byte bound, dropping the least recently used; files are never kept", () => {
  const a = wideDirectory(10);
  const b = wideDirectory(11);
  const c = wideDirectory(9); // smaller than b: dropping b alone makes room
  const bound = heldCost(a.bytes.length, 10) + heldCost(b.bytes.length, 11);
  const cache = new UnixfsDirectoryCache({ maxBytes: bound });
  cache.decode(a.cid, a.bytes);
  cache.decode(b.cid, b.bytes);
  cache.decode(a.cid, a.bytes); // a is now the most recently used
  cache.decode(c.cid, c.bytes); // over the bound: b goes, not a
  assert.ok(cache.bytes <= bound);
  assert.deepEqual(cache.counts, { hits: 1, misses: 3 });
  cache.decode(a.cid, a.bytes);
  assert.deepEqual(cache.counts, { hits: 2, misses: 3 }, "a stayed");
  cache.decode(b.cid, b.bytes);
  assert.deepEqual(cache.counts, { hits: 2, misses: 4 }, "b was dropped");
  const file = dagPb.encode({
    Data: new UnixFS({ type: "file", blockSizes: [4n] }).marshal(),
    Links: [{ Hash: CID.parse(LEAF), Tsize: 4 }],
  });
  const fileCid = cidOf(file, DAG_PB_CODEC);
  cache.decode(fileCid, file);
  cache.decode(fileCid, file);
  assert.deepEqual(cache.counts, { hits: 2, misses: 6 }, "a file node is decoded each time");
});

Deno.test("link CIDs and names read by the walk are @ipld/dag-pb's: CIDv0, CIDv1, identity links, no name, empty and non-ASCII names", () => {
  const v0 = CID.parse(cidOf(text("node"), DAG_PB_CODEC)).toV0();
  const inline = CID.createV1(RAW_CODEC, identity.digest(text("a")));
  const Links = [ // in dag-pb's order: by name bytes, no name as ""
    { Hash: CID.parse(LEAF) },
    { Name: "", Hash: CID.parse(LEAF), Tsize: 4 },
    { Name: "v0", Hash: v0, Tsize: 7 },
    { Name: "\u00e9t\u00e9", Hash: inline },
  ];
  const bytes = dagPb.encode({ Data: new UnixFS({ type: "directory" }).marshal(), Links });
  const node = decodeUnixfs(cidOf(bytes, DAG_PB_CODEC), bytes);
  const reference = dagPb.decode(bytes).Links;
  assert.deepEqual(
    node.links.map((l) => [l.name, l.cid, l.tsize]),
    reference.map((l) => [l.Name ?? "", l.Hash.toV1().toString(), l.Tsize ?? 0]),
  );
  assert.equal(node.links[2].cid.startsWith("bafybei"), true, "a CIDv0 link reads as CIDv1");
});

Deno.test("the walk refuses what @ipld/dag-pb refuses: links on both sides of Data, a link without a well-formed CID, a truncated field; Data before the links still reads", () => {
  const data = new UnixFS({ type: "directory" }).marshal();
  const good = dagPb.encode({ Data: data, Links: [{ Name: "a", Hash: CID.parse(LEAF) }] });
  const dataField = [0x0a, data.length, ...data];
  const linkBody = good.subarray(0, good.length - dataField.length);
  const cases: [string, Uint8Array][] = [
    ["links on both sides of Data", new Uint8Array([...linkBody, ...dataField, ...linkBody])],
    ["a CID cut short", new Uint8Array([0x12, 0x05, 0x0a, 0x03, 0x01, 0x55, 0x12, ...dataField])],
    ["a field running past the end", good.subarray(0, good.length - 1)],
  ];
  for (const [label, bytes] of cases) {
    assert.throws(() => dagPb.decode(bytes), Error, `${label}: @ipld/dag-pb refuses it`);
    assert.throws(
      () => decodeUnixfs(cidOf(bytes, DAG_PB_CODEC), bytes),
      InvalidManifestError,
      label,
    );
  }
  const dataFirst = new Uint8Array([...dataField, ...linkBody]);
  const node = decodeUnixfs(cidOf(dataFirst, DAG_PB_CODEC), dataFirst);
  assert.deepEqual(node.links.map((l) => [l.name, l.cid]), [["a", LEAF]]);
});
