/**
 * Storage nodes in one process for the storage-across-peers tests: a StorageActor and a
 * NetworkActor each, in their own actor system, joined over in-memory pairs.
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { StorageActor, type StorageActorOptions } from "../../actors/storage_actor.ts";
import { type StorageMessage, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import type { FileInfo } from "../../storage/file_store.ts";
import { eventually } from "../_helpers/wait.ts";

/** One node of the mesh. */
export interface TestNode {
  id: string;
  system: ActorSystem;
  storage: ActorRef<StorageMessage>;
  network: ActorRef<NetworkMessage>;
  actor: StorageActor;
  dir: string;
}

/** How a node's StorageActor is made (a test may make one that misbehaves). */
export type StorageActorMaker = (options: StorageActorOptions) => StorageActor;

/** Start node `name` under `root`; its StorageActor logs to `lines`. */
export async function startNode(
  root: string,
  name: string,
  lines: string[],
  make: StorageActorMaker = (options) => new StorageActor(options),
  identity: Identity = Identity.generate(),
): Promise<TestNode> {
  const dir = `${root}/${name}`;
  const system = new ActorSystem({ name });
  let actor!: StorageActor;
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => {
      actor = make({
        dir,
        identity,
        holdHere: true,
        network: "node/network",
        replication: { replicas: 3, writeQuorum: 2, peerTimeoutMs: 2_000 },
        log: (line) => lines.push(`${name}: ${line}`),
      });
      return actor as never;
    },
  });
  const network = await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new NetworkActor({ identity, services: { storage: "node/storage" } }),
  });
  return { id: toHex(identity.publicKey), system, storage, network, actor, dir };
}

/** Join `a` and `b` over an in-memory pair. */
export async function connect(a: TestNode, b: TestNode): Promise<void> {
  const [da, db] = memoryDuplexPair({ highWaterMarkBytes: 1 << 20 });
  await Promise.all([
    a.network.ask({
      type: "attach",
      duplex: da,
      address: `mem:${b.id.slice(0, 8)}`,
      outbound: true,
    }),
    b.network.ask({
      type: "attach",
      duplex: db,
      address: `mem:${a.id.slice(0, 8)}`,
      outbound: false,
    }),
  ]);
}

/** Join every pair of `nodes`, and wait until each sees all the others. */
export async function fullMesh(nodes: TestNode[]): Promise<void> {
  for (let i = 0; i < nodes.length; i++) {
    for (let j = i + 1; j < nodes.length; j++) await connect(nodes[i], nodes[j]);
  }
  for (const node of nodes) {
    await eventually(async () => {
      const peers = await node.network.ask<PeerInfo[]>({ type: "peers" });
      return peers.length === nodes.length - 1 ? true : undefined;
    }, "a full mesh");
  }
}

/** The chunks (and the manifest) of `cid`, as stored. */
export async function blocksOf(node: TestNode, cid: string): Promise<string[]> {
  const info = unwrapReply<FileInfo>(await node.storage.ask({ type: "stat", cid }));
  return [cid, ...info.chunks];
}

/** Whether `node` holds block `cid`. */
export async function holds(node: TestNode, cid: string): Promise<boolean> {
  return unwrapReply<boolean>(await node.storage.ask({ type: "has_chunk", cid }));
}
