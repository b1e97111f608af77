/**
 * A trainer's shard in its private storage tier (`training/private_shard.ts`): stored once,
 * encrypted (no plaintext in the store's files), kept off storage peers even when the node has
 * some (and a repair of every pin does not send it there), found again on the next start, and
 * stored anew when the node is dealt another shard; a trainer node does so on start.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import { type StorageMessage, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextShard } from "../../training/brown_corpus.ts";
import { keepShardPrivate } from "../../training/private_shard.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";
import { TEST_ARCH } from "./_fixtures.ts";

const encoder = new TextEncoder();
/** A phrase that must never appear in the store's files in the clear. */
const SECRET = "the jury praised the administration and operation of the Atlanta police";

function shard(tag: string): TextShard {
  return {
    documents: [
      { id: `${tag}01`, bytes: encoder.encode(`${SECRET} (${tag}) `.repeat(40)) },
      { id: `${tag}02`, bytes: encoder.encode(`second document of ${tag} `.repeat(30)) },
    ],
  };
}

/** Whether `needle` occurs in any file under `dir`. */
async function occursUnder(dir: string, needle: Uint8Array): Promise<boolean> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      if (await occursUnder(path, needle)) return true;
      continue;
    }
    const bytes = await Deno.readFile(path);
    outer: for (let i = 0; i + needle.length <= bytes.length; i++) {
      for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
      return true;
    }
  }
  return false;
}

Deno.test("a trainer's shard is stored once in the private tier, encrypted and on this node only, then found again; another deal stores another", async () => {
  const dataDir = await Deno.makeTempDir();
  const peerDirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  const system = new ActorSystem({ name: "shard-test" });
  try {
    const peers = await Promise.all(
      peerDirs.map(async (d) =>
        new LocalStoragePeer(
          await ChunkStore.open(d, { durable: false }),
          Identity.generate().publicKey,
        )
      ),
    );
    const ownerKey = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () =>
        new StorageActor({
          dir: join(dataDir, "store"),
          chunkSize: 1024,
          ownerKey,
          replication: { replicas: 2, writeQuorum: 2 },
        }),
    });
    // The node has storage peers: public files go to them, the shard must not.
    unwrapReply(await storage.ask({ type: "set_peers", peers }));
    const deal = { shard: 1, shards: 3, corpusDocs: 40 };
    const dealt = shard("ca");

    const first = await keepShardPrivate(storage, dataDir, { shard: dealt, deal });
    assert.equal(first.stored, true);
    assert.deepEqual(first.shard, dealt, "what trains is what was dealt, read back");
    const secret = encoder.encode(SECRET);
    assert.equal(await occursUnder(join(dataDir, "store"), secret), false, "encrypted at rest");
    for (const peer of peers) {
      assert.equal(await peer.hasChunk(first.cid), false, "its file never reaches a peer");
      assert.equal((await peer.store.stats()).objectCount, 0, "not one chunk of it");
    }
    // A repair of every pin does not send it out either.
    unwrapReply(await storage.ask({ type: "repair" }));
    for (const peer of peers) assert.equal((await peer.store.stats()).objectCount, 0);

    const again = await keepShardPrivate(storage, dataDir, { shard: shard("xx"), deal });
    assert.equal(again.stored, false, "found by its recorded CID, not stored again");
    assert.equal(again.cid, first.cid);
    assert.deepEqual(again.shard, dealt, "the stored shard, not the one offered now");

    const other = await keepShardPrivate(storage, dataDir, {
      shard: shard("cb"),
      deal: { ...deal, shard: 2 },
    });
    assert.equal(other.stored, true, "another deal is another shard");
    assert.notEqual(other.cid, first.cid);
    assert.deepEqual(other.shard, shard("cb"));
  } finally {
    await system.shutdown();
    for (const d of [dataDir, ...peerDirs]) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("without an owner key the shard cannot be kept private: the store says key_required", async () => {
  const dataDir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "shard-test-nokey" });
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: join(dataDir, "store") }),
    });
    await assert.rejects(
      keepShardPrivate(storage, dataDir, {
        shard: shard("ca"),
        deal: { shard: 0, shards: 1, corpusDocs: 40 },
      }),
      (e: { code?: string }) => e.code === "key_required",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a trainer node keeps its shard in its own private tier: one private file, recorded, found again after a restart", async () => {
  const dataDir = await Deno.makeTempDir();
  const config = parseNodeConfig({
    dataDir,
    http: { port: 0 },
    heartbeatMs: 0,
    model: { workers: 0 },
    roles: { inference: false, prover: false },
    training: {
      arch: TEST_ARCH,
      corpusDocs: 20,
      trainer: { enabled: true, shard: 0, shards: 2 },
    },
  });
  const lines: string[] = [];
  const privateFiles = async () => {
    const node = await startNode(config, { log: (line) => lines.push(line) });
    try {
      const storage = node.system.lookup<StorageMessage>("node/storage")!;
      const files = unwrapReply<{ cid: string; tier: string }[]>(
        await storage.ask({ type: "list" }),
      );
      return files.filter((f) => f.tier === "private").map((f) => f.cid);
    } finally {
      await node.shutdown();
    }
  };
  try {
    const first = await privateFiles();
    assert.equal(first.length, 1, "the shard, as one private file");
    assert.ok(lines.some((l) => l.includes(`shard stored in the private tier as ${first[0]}`)));
    const second = await privateFiles();
    assert.deepEqual(second, first, "the same file after a restart");
    assert.ok(lines.some((l) => l.includes(`shard found in the private tier as ${first[0]}`)));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
