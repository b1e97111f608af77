/**
 * Share links of private files stored as manifest trees (`server/gateway_share_blocks.ts`, `GET
 * /share/{id}/{cid}`): `ShareBlockIndex` finds every block of the shared file and no other file's,
 * bounds its cache and the reads one request may cost, walks on past a node its store lost, and a
 * client on 127.0.0.1 reads a shared tree whole and by range.
 */
import assert from "node:assert/strict";
import { cidCodec, cidOf, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { FileCipher, OwnerKey } from "../../storage/private_tier.ts";
import { MAX_SHARE_SEARCH_READS, ShareBlockIndex } from "../../server/gateway_share_blocks.ts";
import { collect, pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import {
  decodeManifest,
  decodeManifestNode,
  type PrivateManifest,
} from "../../protocols/manifest.ts";
import { encodeCanonical } from "../../protocols/cbor.ts";
import { manifestChunks } from "../../storage/manifest_tree.ts";
import {
  createShareLink,
  openShareLink,
  parseShareLink,
  ShareStore,
} from "../../storage/share_links.ts";
import { startGatewayNode } from "./_gateway_node.ts";
import type { BlockStore } from "../../storage/block_store.ts";
import { verifyCid } from "../../storage/_hash.ts";

// `ShareBlockIndex` (`server/gateway_share_blocks.ts`), which tells a share route which blocks
// belong to the shared file: every block of a manifest tree is found, no other file's, requests
// that miss together read a node once, and the cache never holds more links than its bound (past
// it, blocks are read again and answers stay right).

const CHUNK = 64;
const LIMIT = 1024;
const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(4));

/** Two private tree files in a fresh store, and a reader that counts reads by storage key. */
async function withTwoTrees(
  run: (files: {
    mine: { cid: string; blocks: string[] };
    theirs: { cid: string; blocks: string[] };
    read: (cid: string) => Promise<Uint8Array>;
    reads: string[];
  }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir);
    const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
    const put = async (seed: number) => {
      const { cid } = await files.put(streamOf(pseudoRandomBytes(CHUNK * 300, seed)), {
        key: OWNER,
      });
      return { cid, blocks: await files.blocks(cid) };
    };
    const reads: string[] = [];
    const read = (cid: string) => {
      reads.push(storageKey(cid));
      return store.get(storageKey(cid));
    };
    await run({ mine: await put(1), theirs: await put(2), read, reads });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("every block of a tree file is reached from its root, none of another file's, whatever the cache's bound", async () => {
  await withTwoTrees(async ({ mine, theirs, read }) => {
    assert.ok(mine.blocks.filter((c) => cidCodec(c) === DAG_CBOR_CODEC).length > 3);
    // Past the bound every answer walks the tree again: a sample of each file's blocks there.
    const sample = (blocks: string[]) => [0, 1, 2, blocks.length - 2, blocks.length - 1];
    for (const bound of [undefined, 100, 1]) {
      const index = new ShareBlockIndex(bound);
      const some = (blocks: string[]) =>
        bound === undefined ? blocks : sample(blocks).map((i) => blocks[i]);
      for (const cid of some(mine.blocks)) {
        assert.ok(await index.reaches(mine.cid, cid, read), cid);
      }
      for (const cid of some(theirs.blocks)) {
        assert.equal(await index.reaches(mine.cid, cid, read), false, cid);
      }
      if (bound !== undefined) assert.ok(index.heldLinks <= bound, `${index.heldLinks}`);
    }
  });
});

Deno.test("a share index reads each manifest block once while it fits, once for requests that miss together, and again only past its bound", async () => {
  await withTwoTrees(async ({ mine, read, reads }) => {
    const nodes = mine.blocks.filter((c) => cidCodec(c) === DAG_CBOR_CODEC).map(storageKey);
    const chunks = mine.blocks.filter((c) => cidCodec(c) !== DAG_CBOR_CODEC);
    const index = new ShareBlockIndex();
    // Sixteen requests at once, as an opener's prefetch makes them.
    const found = await Promise.all(
      chunks.slice(-16).map((cid) => index.reaches(mine.cid, cid, read)),
    );
    assert.deepEqual(found, Array(16).fill(true));
    for (const cid of chunks) assert.ok(await index.reaches(mine.cid, cid, read));
    for (const key of nodes) {
      assert.equal(reads.filter((r) => r === key).length, 1, `${key} read once`);
    }
    // A bound under one node's links: nothing is kept, every answer still right.
    const tiny = new ShareBlockIndex(1);
    reads.length = 0;
    for (const cid of chunks.slice(0, 3)) assert.ok(await tiny.reaches(mine.cid, cid, read));
    assert.equal(tiny.heldLinks, 0);
    assert.ok(reads.length >= 3, "read again per request, not held");
  });
});

// `ShareBlockIndex` walks every node of a level to find the one that links a block. A node of the
// shared file that its store lost must not hide the blocks under its siblings: the walk goes on
// past it, and the block asked for is served when another path reaches it (the lost node's own
// blocks still fail, as a reader of that range fails).

const LOST_NODE_OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(6));

Deno.test("a shared tree file's lost inner node does not hide the chunks under its siblings; its own chunks stay refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir);
    const files = new FileStore(store, { chunkSize: 64, maxManifestBytes: 1024 });
    const { cid } = await files.put(streamOf(pseudoRandomBytes(64 * 300, 9)), {
      key: LOST_NODE_OWNER,
    });
    const root = decodeManifest(await store.get(cid));
    assert.ok(root.tier === "private" && root.branches !== undefined && root.branches.length > 1);
    const lost = root.branches[0].cid;
    const read = (block: string) =>
      storageKey(block) === storageKey(lost)
        ? Promise.reject(new ChunkNotFoundError(block, "the test's store"))
        : store.get(storageKey(block));
    // A chunk under the last branch, found through the nodes below it.
    let node = decodeManifestNode(await store.get(root.branches.at(-1)!.cid));
    while (node.branches) node = decodeManifestNode(await store.get(node.branches.at(-1)!.cid));
    const chunk = node.chunks!.at(-1)!;
    const index = new ShareBlockIndex();
    assert.equal(await index.reaches(cid, chunk, read), true);
    // Under the lost node: not known to be part of the file, so the lost node's error.
    let first = decodeManifestNode(await store.get(lost));
    while (first.branches) first = decodeManifestNode(await store.get(first.branches[0].cid));
    await assert.rejects(index.reaches(cid, first.chunks![0], read), ChunkNotFoundError);
    // Another file's block is still refused, not an error.
    const other = await files.put(streamOf(pseudoRandomBytes(64, 10)), { key: LOST_NODE_OWNER });
    const otherRoot = decodeManifest(await store.get(other.cid));
    await assert.rejects(index.reaches(cid, otherRoot.chunks[0], read), ChunkNotFoundError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a shared tree file larger than the share index's bound is served in file order without a walk of the whole tree per chunk", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir);
    const files = new FileStore(store, { chunkSize: 64, maxManifestBytes: 1024 });
    const { cid } = await files.put(streamOf(pseudoRandomBytes(64 * 1500, 11)), {
      key: LOST_NODE_OWNER,
    });
    const blocks = await files.blocks(cid);
    const nodes = blocks.filter((c) => cidCodec(c) === DAG_CBOR_CODEC && c !== cid);
    const chunks = blocks.filter((c) => cidCodec(c) !== DAG_CBOR_CODEC);
    let reads = 0;
    const read = (block: string) => {
      reads++;
      return store.get(storageKey(block));
    };
    // Room for a few nodes' links, far from the whole tree's.
    const index = new ShareBlockIndex(100);
    for (const chunk of chunks) assert.ok(await index.reaches(cid, chunk, read), chunk);
    // A walk of the tree per chunk read every node for each: here, a few reads per chunk at most.
    assert.ok(nodes.length > 50, `${nodes.length} nodes`);
    assert.ok(reads <= 4 * chunks.length, `${reads} reads for ${chunks.length} chunks`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// `ShareBlockIndex` (`server/gateway_share_blocks.ts`) past its cache's bound: the work of one
// request is bounded. A probe for a block that is not the shared file's (a hostile client's, over
// and over) reads at most {@link MAX_SHARE_SEARCH_READS} manifest blocks and is refused
// `chunk_not_found`, never a walk of the whole tree; a reader that descends the tree (a node
// before the blocks it links, as a share link's opener does) is served in a few reads per
// block at most, most within none, several readers at once at different offsets.

const BOUND_OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(12));
/** Room for a few nodes' links, far from the whole tree's. */
const BOUND = 100;
const CHUNKS = 1500;

/** A store with a shared tree file of 1,500 chunks (over 100 nodes) and another file. */
async function withBigTree(
  run: (t: { store: ChunkStore; cid: string; root: PrivateManifest; other: string[] }) => Promise<
    void
  >,
) {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const files = new FileStore(store, { chunkSize: 64, maxManifestBytes: 1024 });
    const { cid } = await files.put(streamOf(pseudoRandomBytes(64 * CHUNKS, 31)), {
      key: BOUND_OWNER,
    });
    const nodes = (await files.blocks(cid)).filter((c) => cidCodec(c) === DAG_CBOR_CODEC);
    assert.ok(nodes.length > 3 * MAX_SHARE_SEARCH_READS, `${nodes.length} nodes`);
    const other = await files.put(streamOf(pseudoRandomBytes(64 * 40, 32)), { key: BOUND_OWNER });
    const root = decodeManifest(await store.get(cid)) as PrivateManifest;
    await run({ store, cid, root, other: await files.blocks(other.cid) });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a probe for a block outside a shared tree past the index's bound reads a bounded number of manifest blocks and is refused chunk_not_found", async () => {
  await withBigTree(async ({ store, cid, other }) => {
    const index = new ShareBlockIndex(BOUND);
    const probes = [
      ...other.slice(0, 3),
      cidOf(encodeCanonical({ made: "up" }), DAG_CBOR_CODEC),
      cidOf(new Uint8Array([1, 2, 3])),
    ];
    for (let round = 0; round < 2; round++) {
      for (const probe of probes) {
        let reads = 0;
        const read = (block: string) => {
          reads++;
          return store.get(storageKey(block));
        };
        const answer = await index.reaches(cid, probe, read).catch((error) => error);
        assert.ok(
          answer === false || answer?.code === "chunk_not_found",
          `${probe}: ${answer?.message ?? answer}`,
        );
        assert.ok(reads <= MAX_SHARE_SEARCH_READS, `${reads} reads for one probe`);
      }
    }
    assert.ok(index.heldLinks <= BOUND);
  });
});

Deno.test("readers descending a shared tree past the index's bound, four at once at different offsets, are each served within a few reads, most blocks within none", async () => {
  await withBigTree(async ({ store, cid, root }) => {
    const index = new ShareBlockIndex(BOUND);
    const most: number[] = [];
    /** Asks the index for `block` as the share route does, counting its reads. */
    const ask = async (block: string) => {
      let reads = 0;
      const read = (c: string) => {
        reads++;
        return store.get(storageKey(c));
      };
      assert.equal(await index.reaches(cid, block, read), true, block);
      most.push(reads);
    };
    /**
     * What a reader of chunks `first` to `last` asks for, in order: the root, each node on the
     * way (by its storage key, a raw CID, as a share link's opener, a FileStore, asks), then the
     * chunks below it.
     */
    const asks = async (first: number, last: number) => {
      const out = [cid];
      const get = (node: string) => {
        out.push(storageKey(node));
        return store.get(storageKey(node));
      };
      let chunks = 0;
      for await (const chunk of manifestChunks(root, first, last, get)) {
        out.push(chunk.cid);
        chunks++;
      }
      assert.equal(chunks, last - first + 1);
      return out;
    };
    const readers = await Promise.all(
      [[0, 399], [1100, 1499], [700, 1000], [350, 800]].map(([a, b]) => asks(a, b)),
    );
    // Four readers at once, each asking for its next block in turn.
    for (let step = 0; readers.some((r) => step < r.length); step++) {
      for (const reader of readers) if (step < reader.length) await ask(reader[step]);
    }
    // A block's parent is on one of the file's recent paths, far fewer than 32 here: a read per
    // node on them at most, and most blocks none (their parent is cached), never a walk of the
    // tree (before: up to 102 reads for one block).
    const total = most.reduce((a, b) => a + b, 0);
    assert.ok(Math.max(...most) <= 16, `at most ${Math.max(...most)} reads for one block`);
    assert.ok(total <= most.length / 2, `${total} reads for ${most.length} blocks`);
  });
});

Deno.test("over HTTP, a share link's opener reads a tree file past the index's bound whole, and a probe past the reads is a 404 chunk_not_found that says why", async () => {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: 64, maxManifestBytes: 1024 });
  const data = pseudoRandomBytes(64 * CHUNKS, 33);
  const shared = await files.put(streamOf(data, 4096), { key: BOUND_OWNER });
  const other = await files.put(streamOf(pseudoRandomBytes(64 * 40, 34)), { key: BOUND_OWNER });
  const node = await startGatewayNode(dir, {
    ownerKey: BOUND_OWNER,
    routes: { shareIndexLinks: BOUND },
  });
  try {
    const { link, record } = await createShareLink({
      cid: shared.cid,
      owner: BOUND_OWNER,
      files,
      shares: new ShareStore(dir),
      baseUrl: node.url,
      expiresAt: null,
      now: 0,
    });
    const opened = await openShareLink(link);
    assert.deepEqual(await collect(opened.stream), data);
    // A block of no file, then another file's: each costs the node its bounded search only.
    const made = cidOf(encodeCanonical({ made: "up" }), DAG_CBOR_CODEC);
    const theirs = (await files.blocks(other.cid)).at(-1)!;
    for (const probe of [made, theirs]) {
      const { response, body } = await node.get(`/share/${record.id}/${probe}`);
      assert.equal(response.status, 404, probe);
      const error = JSON.parse(new TextDecoder().decode(body)).error;
      assert.equal(error.code, "chunk_not_found");
      assert.match(error.message, /within 32 manifest reads|is not part of share/);
    }
  } finally {
    await node.close();
  }
});

// A share link of a private file stored as a manifest tree (`storage/manifest_tree.ts`) opens over
// HTTP. The node's `GET /share/<id>/<cid>` serves every block of the shared file (its root, its
// inner nodes, its chunks), none of another file's, and reads the tree's nodes once per node, not
// once per request: a client on 127.0.0.1 reads the whole file and a byte range back.

/** Small enough that 300 chunks of 64 bytes need a tree two levels deep. */
const TREE_LIMIT = 1024;
const TREE_OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(9));

/**
 * A node over a store holding two private tree files (`shared`, `other`), and a link to `shared`.
 */
async function treeShareNode() {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: TREE_LIMIT });
  const data = pseudoRandomBytes(CHUNK * 300 + 17, 65);
  const shared = await files.put(streamOf(data, 1000), { key: TREE_OWNER });
  const other = await files.put(streamOf(pseudoRandomBytes(CHUNK * 200, 66), 1000), {
    key: TREE_OWNER,
  });
  const node = await startGatewayNode(dir, { ownerKey: TREE_OWNER });
  const { link, record } = await createShareLink({
    cid: shared.cid,
    owner: TREE_OWNER,
    files,
    shares: new ShareStore(dir),
    baseUrl: node.url,
    expiresAt: null,
    now: 0,
  });
  const blocksOf = async (cid: string) => {
    const all = await files.blocks(cid);
    return {
      nodes: all.filter((c) => c !== cid && cidCodec(c) === DAG_CBOR_CODEC).map(storageKey),
      chunks: all.filter((c) => cidCodec(c) !== DAG_CBOR_CODEC).map(storageKey),
    };
  };
  return { node, data, shared, other, link, record, blocksOf };
}

/** The blocks of share `link`, fetched over HTTP and verified against their CIDs. */
function shareBlocks(link: string): BlockStore & { asked: string[] } {
  const { url } = parseShareLink(link);
  const asked: string[] = [];
  return {
    asked,
    put: () => Promise.reject(new Error("read only")),
    has: () => Promise.resolve(true),
    async get(cid: string) {
      asked.push(storageKey(cid));
      const response = await fetch(`${url}/${cid}`);
      const bytes = new Uint8Array(await response.arrayBuffer());
      assert.equal(response.status, 200, `${cid}: ${new TextDecoder().decode(bytes)}`);
      assert.ok(await verifyCid(cid, bytes), `${cid} verifies`);
      return bytes;
    },
  };
}

Deno.test("a share link of a private manifest-tree file opens over HTTP: the whole file and a byte range read back from 127.0.0.1", async () => {
  const { node, data, shared, link, blocksOf } = await treeShareNode();
  try {
    const tree = await blocksOf(shared.cid);
    assert.ok(tree.nodes.length >= 3, `a tree with inner nodes: ${tree.nodes.length}`);
    const opened = await openShareLink(link);
    assert.equal(opened.info.size, data.length);
    assert.deepEqual(await collect(opened.stream), data);

    // A byte range, as a client reads one: the root, the nodes on its path, its chunks.
    const parsed = parseShareLink(link);
    const blocks = shareBlocks(link);
    const root = decodeManifest(await blocks.get(shared.cid));
    assert.ok(root.tier === "private" && root.branches !== undefined, "the root is a tree");
    const cipher = await FileCipher.fromFileKeys(root.salt, parsed.keys!);
    const [start, end] = [CHUNK * 250 + 5, CHUNK * 253 + 40];
    const range = await new FileStore(blocks).getWithCipher(shared.cid, cipher, { start, end });
    assert.deepEqual(await collect(range.stream), data.subarray(start, end));
    const nodesAsked = blocks.asked.filter((key) => tree.nodes.includes(key));
    assert.ok(nodesAsked.length > 0, "the range went through the tree's inner nodes");
    assert.ok(
      nodesAsked.length < tree.nodes.length,
      `one path of nodes, not the tree: ${nodesAsked.length} of ${tree.nodes.length}`,
    );
  } finally {
    await node.close();
  }
});

Deno.test("a tree file's share serves none of another file's blocks: its chunks, its inner nodes and its root are chunk_not_found", async () => {
  const { node, shared, other, record, blocksOf } = await treeShareNode();
  try {
    const mine = await blocksOf(shared.cid);
    const theirs = await blocksOf(other.cid);
    const ask = (cid: string) => node.get(`/share/${record.id}/${cid}`);
    // The shared file's own blocks, at every level, are served.
    for (const cid of [shared.cid, mine.nodes[0], mine.nodes.at(-1)!, mine.chunks.at(-1)!]) {
      assert.equal((await ask(cid)).response.status, 200, cid);
    }
    for (const cid of [other.cid, theirs.nodes[0], theirs.nodes.at(-1)!, theirs.chunks[0]]) {
      const { response, body } = await ask(cid);
      assert.equal(response.status, 404, cid);
      const error = JSON.parse(new TextDecoder().decode(body)).error;
      assert.equal(error.code, "chunk_not_found", cid);
      assert.match(error.message, /is not part of share/);
    }
  } finally {
    await node.close();
  }
});

Deno.test("opening a tree file's share reads each manifest block a bounded number of times, not once per chunk asked for", async () => {
  const { node, data, shared, link, blocksOf } = await treeShareNode();
  try {
    const tree = await blocksOf(shared.cid);
    node.reads.blocks.length = 0;
    const opened = await openShareLink(link);
    assert.deepEqual(await collect(opened.stream), data);
    const chunkRequests = node.requests.filter((r) => r.startsWith("GET /share/")).length;
    assert.ok(chunkRequests > 300, `every chunk asked for: ${chunkRequests}`);
    const reads = node.reads.blocks.map(storageKey);
    const count = (key: string) => reads.filter((r) => r === key).length;
    // Each read at most twice: once to learn what it links, once when the opener asks for it.
    for (const key of [storageKey(shared.cid), ...tree.nodes]) {
      assert.ok(count(key) <= 2, `${key} read ${count(key)} times`);
    }
  } finally {
    await node.close();
  }
});
