/**
 * Stop 65: a share link of a private file stored as a manifest tree (`storage/manifest_tree.ts`)
 * opens over HTTP. The node's `GET /share/<id>/<cid>` serves every block of the shared file (its
 * root, its inner nodes, its chunks), none of another file's, and reads the tree's nodes once per
 * node, not once per request: a client on 127.0.0.1 reads the whole file and a byte range back.
 */
import assert from "node:assert/strict";
import { cidCodec, DAG_CBOR_CODEC, storageKey } from "../../protocols/cid.ts";
import { decodeManifest } from "../../protocols/manifest.ts";
import type { BlockStore } from "../../storage/block_store.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { FileStore } from "../../storage/file_store.ts";
import { FileCipher, OwnerKey } from "../../storage/private_tier.ts";
import {
  createShareLink,
  openShareLink,
  parseShareLink,
  ShareStore,
} from "../../storage/share_links.ts";
import { verifyCid } from "../../storage/_hash.ts";
import { collect, pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { startGatewayNode } from "./_gateway_node.ts";

const CHUNK = 64;
/** Small enough that 300 chunks of 64 bytes need a tree two levels deep. */
const LIMIT = 1024;
const OWNER = await OwnerKey.fromSecret(new Uint8Array(32).fill(9));

/**
 * A node over a store holding two private tree files (`shared`, `other`), and a link to `shared`.
 */
async function treeShareNode() {
  const dir = await Deno.makeTempDir();
  const store = await ChunkStore.open(dir);
  const files = new FileStore(store, { chunkSize: CHUNK, maxManifestBytes: LIMIT });
  const data = pseudoRandomBytes(CHUNK * 300 + 17, 65);
  const shared = await files.put(streamOf(data, 1000), { key: OWNER });
  const other = await files.put(streamOf(pseudoRandomBytes(CHUNK * 200, 66), 1000), {
    key: OWNER,
  });
  const node = await startGatewayNode(dir, { ownerKey: OWNER });
  const { link, record } = await createShareLink({
    cid: shared.cid,
    owner: OWNER,
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
