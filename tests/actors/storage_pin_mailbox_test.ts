/**
 * A `pin` of a file whose blocks are on the storage peers fetches them outside the StorageActor's
 * mailbox and commits by a message back (`actors/_storage_pin.ts`), so the node keeps answering
 * its peers while the fetch runs. Before, the pin awaited every peer read inside `receive`: a
 * peer's `has_chunk` waited 4.4 s behind a pin of 31 nodes, and with the auditor's real 30 s
 * timeout an honest node pinning a file of 300 inner nodes was signed `invalid` (`no_response`) by
 * a writer that audited it meanwhile (review s76 vstore F2). The same held for `gc`, which fetches
 * the pinned roots' missing nodes before it collects. The peers here hold every read at a gate the
 * test opens, so "while the pin runs" is a state, not a timing.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import {
  type StorageMessage,
  type StorageReply,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { cidOf, storageKey } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { type AuditResult, StorageAuditor } from "../../storage/audit.ts";
import { ChunkStore, type GcResult } from "../../storage/chunk_store.ts";
import { isDagNode } from "../../storage/dag_links.ts";
import { FileStore } from "../../storage/file_store.ts";
import { ReplicatedStore } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { eventually } from "../_helpers/wait.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { MemoryPeer } from "../storage/_memory_peer.ts";

/** Small chunks: a file of {@link CHUNKS} of them has a root over inner nodes (174 links each). */
const CHUNK = 1024;
const CHUNKS = 174 * 4;

/**
 * Longer than any wait here can be on a working actor: on one whose mailbox a pin holds, the
 * audit would end as `no_response` (and a peer read held at the gate would be given up) only after
 * `eventually` gave up looking.
 */
const AUDIT_TIMEOUT_MS = 120_000;

/** Peer reads of blocks past the first {@link Gate.open}s distinct ones wait until it opens. */
class Gate {
  #open: () => void = () => {};
  readonly #opened: Promise<void>;
  /** Distinct blocks read so far, in order. */
  readonly read: string[] = [];
  /** Reads waiting at the gate. */
  waiting = 0;
  /** Blocks read before the gate holds reads back; `Infinity`: none held. */
  free = Infinity;

  constructor() {
    this.#opened = new Promise((resolve) => this.#open = resolve);
  }

  async pass(cid: string): Promise<void> {
    if (!this.read.includes(cid)) this.read.push(cid);
    if (this.read.indexOf(cid) < this.free) return;
    this.waiting++;
    await this.#opened;
  }

  open(): void {
    this.free = Infinity;
    this.#open();
  }
}

/** A holder whose reads pass the gate; it counts how often each block was asked of it. */
class GatedPeer extends MemoryPeer {
  readonly asked = new Map<string, number>();
  constructor(readonly gate: Gate) {
    super();
  }

  override async getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    this.asked.set(cid, (this.asked.get(cid) ?? 0) + 1);
    await this.gate.pass(cid);
    return await super.getChunk(cid, options);
  }
}

interface Setup {
  dir: string;
  system: ActorSystem;
  ref: ActorRef<StorageMessage>;
  identity: Identity;
  gate: Gate;
  peers: GatedPeer[];
  /** The pinned file's root and inner nodes (storage keys). */
  nodes: string[];
  cid: string;
  data: Uint8Array;
}

/** A node's StorageActor, under a real actor system, over two holders of a file another put. */
async function setUp(): Promise<Setup> {
  const dir = await Deno.makeTempDir();
  const gate = new Gate();
  const peers = [new GatedPeer(gate), new GatedPeer(gate)];
  // A read held at the gate is not given up on: the pin waits for the test to open it.
  const replication = { replicas: 2, writeQuorum: 2, peerTimeoutMs: AUDIT_TIMEOUT_MS };
  const elsewhere = new ReplicatedStore(peers, replication);
  const data = pseudoRandomBytes(CHUNKS * CHUNK, 11);
  const { cid } = await new FileStore(elsewhere, { chunkSize: CHUNK }).put(streamOf(data));
  await elsewhere.flush();
  const nodes = (await new FileStore(elsewhere).blocks(cid)).filter(isDagNode).map(storageKey);
  assert.ok(nodes.length >= 5, "a root over inner nodes");
  for (const peer of peers) peer.asked.clear();
  gate.read.length = 0;
  const identity = Identity.generate();
  const system = new ActorSystem({ name: "pin-mailbox" });
  const ref = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () =>
      new StorageActor({
        dir,
        chunkSize: CHUNK,
        store: { durable: false },
        peers,
        replication,
        identity,
      }),
  });
  return { dir, system, ref, identity, gate, peers, nodes, cid, data };
}

async function tearDown(s: Setup): Promise<void> {
  s.gate.open();
  await s.system.shutdown();
  await Deno.remove(s.dir, { recursive: true });
}

Deno.test("a storage peer's has_chunk and an audit of this node are answered while its pin of a file waits on the peers, and the pin reads each block from the peers once", async () => {
  const s = await setUp();
  try {
    // A writer gives this node a chunk, as its replicated store does (put_chunk over the wire).
    const h = new StorageActorPeer(s.ref, s.identity.publicKey);
    const bytes = pseudoRandomBytes(4096, 77);
    const chunk = cidOf(bytes);
    await h.putChunk(chunk, bytes);
    const verdicts: Verdict[] = [];
    const auditor = new StorageAuditor({
      identity: Identity.generate(),
      reference: () => Promise.resolve(bytes),
      timeoutMs: AUDIT_TIMEOUT_MS,
      onVerdict: (v) => {
        verdicts.push(v);
      },
    });

    s.gate.free = 0; // every peer read waits
    let pinned: StorageReply<boolean> | undefined;
    const pin = s.ref.ask<StorageReply<boolean>>({ type: "pin", cid: s.cid }, {
      timeoutMs: Infinity,
    }).then((reply) => pinned = reply);
    pin.catch(() => {}); // a failed test stops the actor under it: this one's failure is told
    await eventually(() => s.gate.waiting > 0, "the pin reading from the peers");

    let has: StorageReply<boolean> | undefined;
    s.ref.ask<StorageReply<boolean>>({ type: "has_chunk", cid: chunk }, { timeoutMs: Infinity })
      .then((reply) => has = reply, () => {});
    let audit: AuditResult | undefined;
    auditor.audit(h, [chunk]).then((result) => audit = result, () => {});
    await eventually(() => has !== undefined, "the peer's has_chunk answered during the pin");
    await eventually(() => audit !== undefined, "the audit answered during the pin");
    assert.equal(unwrapReply(has), true);
    assert.equal(audit!.passed, true, JSON.stringify(audit!.failures));
    assert.deepEqual(verdicts.filter((v) => (v as { outcome?: string }).outcome !== "valid"), []);
    assert.equal(pinned, undefined, "the pin was still waiting on the peers");

    s.gate.open();
    await pin;
    assert.equal(unwrapReply(pinned), true);
    // Each of the root and inner nodes was asked of each holder at most once (the walk's read is
    // the one stored): before, every inner node was fetched twice.
    for (const peer of s.peers) {
      const twice = [...peer.asked].filter(([, n]) => n > 1);
      assert.deepEqual(twice, [], "a block read from one holder twice");
    }
    assert.deepEqual([...s.gate.read].sort(), [...s.nodes].sort(), "only the root and inner nodes");
    const reader = await ChunkStore.open(s.dir, { durable: false });
    for (const node of s.nodes) assert.ok(await reader.has(node), `${node} not held`);
    assert.deepEqual(await reader.pins(), [s.cid]);
  } finally {
    await tearDown(s);
  }
});

Deno.test("the node's own gc while its pin of a file waits on the peers is answered, takes none of the blocks the pin fetched, and the pin succeeds", async () => {
  const s = await setUp();
  try {
    s.gate.free = 2; // the root and the first inner node are fetched, then reads wait
    let pinned: StorageReply<boolean> | undefined;
    const pin = s.ref.ask<StorageReply<boolean>>({ type: "pin", cid: s.cid }, {
      timeoutMs: Infinity,
    }).then((reply) => pinned = reply);
    pin.catch(() => {}); // a failed test stops the actor under it: this one's failure is told
    await eventually(() => s.gate.waiting > 0, "the pin waiting on the peers");
    const fetched = s.gate.read.slice(0, 2);

    let collected: StorageReply<GcResult> | undefined;
    s.ref.ask<StorageReply<GcResult>>({ type: "gc", graceMs: 0 }, { timeoutMs: Infinity })
      .then((reply) => collected = reply, () => {});
    await eventually(() => collected !== undefined, "the gc answered during the pin");
    unwrapReply(collected);
    assert.equal(pinned, undefined, "the pin was still waiting on the peers");
    const reader = await ChunkStore.open(s.dir, { durable: false });
    for (const node of fetched) assert.ok(await reader.has(node), `gc took ${node}`);

    s.gate.open();
    await pin;
    assert.equal(unwrapReply(pinned), true);
    const after = unwrapReply<GcResult>(await s.ref.ask({ type: "gc", graceMs: 0 }));
    assert.deepEqual(after.unreadableRoots, [], "a pin over a hole");
    const again = await ChunkStore.open(s.dir, { durable: false });
    for (const node of s.nodes) assert.ok(await again.has(node), `${node} was taken`);
    assert.deepEqual(await again.pins(), [s.cid]);
    assert.deepEqual(
      unwrapReply<Uint8Array>(await s.ref.ask({ type: "get_bytes", cid: s.cid })),
      s.data,
    );
  } finally {
    await tearDown(s);
  }
});
