/**
 * Stop 63: a node stopping blamed its storage holders. The actor system stops the NetworkActor
 * before the StorageActor (the network first, so it can say goodbye), and the network's stop
 * closes every peer connection. An audit under way then saw its challenge fail on the connection
 * this node's own stop had closed, and signed `no_response` against the holder (its verdict to the
 * ledger, the holder ranked last); a repair under way counted each holder's closed connection as
 * that holder's failure. Now a peer call that fails once the node is stopping is this node's stop:
 * the audits under way are called off without a verdict, and nothing is counted against anyone.
 *
 * Here the node is an actor system with the StorageActor started first and a stand-in network
 * second (the node's order, so the network stops first); the stand-in's stop closes its holders'
 * connections, and, as the real one's goodbyes do, takes a while after that: until the work under
 * way has ended. No clock is involved: the holders answer nothing until the network closes them.
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type AuditRoundHandle,
  type PutHandle,
  type StorageMessage,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { ConnectionClosedError } from "../../protocols/protocol_errors.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import type { ReplicaFailure } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "../storage/_memory_peer.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";

/** Holders in the test: with this node, five, and every chunk on all of them (`replicas: 5`). */
const HOLDERS = 4;

/**
 * A holder reached over this node's network: it keeps what it is given, but a challenge waits
 * until the network closes its connection, and from then on every call fails as on a closed one.
 */
class HolderBehindNetwork extends MemoryPeer {
  #closed = false;
  readonly #close = Promise.withResolvers<never>();
  readonly #challenged = Promise.withResolvers<void>();
  /** Resolves at its first challenge (an audit's, or a repair's check). */
  readonly challenged = this.#challenged.promise;

  constructor() {
    super();
    this.#close.promise.catch(() => {});
  }

  /** The network closed its connection (its stop): what waits on it fails, as on any close. */
  close(): void {
    this.#closed = true;
    this.#close.reject(new ConnectionClosedError("connection is closed"));
  }

  #gone(): Promise<never> {
    return Promise.reject(new ConnectionClosedError("connection is closed"));
  }

  override putChunk(cid: string, bytes: Uint8Array, options?: PeerCallOptions): Promise<void> {
    return this.#closed ? this.#gone() : super.putChunk(cid, bytes, options);
  }

  override getChunk(cid: string, options?: PeerCallOptions): Promise<Uint8Array> {
    return this.#closed ? this.#gone() : super.getChunk(cid, options);
  }

  override hasChunk(cid: string): Promise<boolean> {
    return this.#closed ? this.#gone() : super.hasChunk(cid);
  }

  override proveChunks(
    _nonce: Uint8Array,
    _cids: readonly string[],
    _options?: PeerCallOptions,
  ): Promise<(Uint8Array | null)[]> {
    this.#challenged.resolve();
    return this.#close.promise;
  }
}

/** What a node's storage did about its holders. */
interface Judged {
  /** Verdicts handed to the ledger's sink. */
  verdicts: Verdict[];
  /** Holders' failures the actor counted (told after counting them). */
  failures: ReplicaFailure[];
  /** The actor's log. */
  log: string[];
}

/** A node's storage, its holders, and what it judged of them; `stop` stops the node. */
interface NodeStorage {
  storage: ActorRef<StorageMessage>;
  holders: HolderBehindNetwork[];
  judged: Judged;
  /** Stop the node; the network's stop waits for `underWay` once it has closed its holders. */
  stop(underWay?: Promise<unknown>): Promise<void>;
}

/**
 * Run `body` on a node's storage with {@link HOLDERS} holders behind a stand-in network, a file
 * spread over them and this node, and clean up after it.
 */
async function withNodeStorage(body: (node: NodeStorage) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const holders = Array.from({ length: HOLDERS }, () => new HolderBehindNetwork());
  const judged: Judged = { verdicts: [], failures: [], log: [] };
  let underWay: Promise<unknown> = Promise.resolve();
  const system = new ActorSystem({ name: "node" });
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () =>
        new StorageActor({
          dir,
          chunkSize: 1024,
          store: { durable: false },
          peers: holders,
          replication: {
            replicas: HOLDERS + 1,
            writeQuorum: HOLDERS + 1,
            onReplicaFailure: (event) => void judged.failures.push(event),
          },
          identity: Identity.generate(),
          holdHere: true, // this node holds every chunk: a reference copy is always at hand
          onVerdict: (verdict) => void judged.verdicts.push(verdict),
          log: (line) => void judged.log.push(line),
        }),
    });
    await system.spawn({
      name: "node/network",
      factory: () => ({
        receive: () => undefined,
        postStop: async () => {
          for (const holder of holders) holder.close();
          await underWay.catch(() => {}); // its goodbyes: the work under way ends meanwhile
        },
      }),
    });
    const handle = await storage.ask<PutHandle>({
      type: "put",
      source: streamOf(pseudoRandomBytes(6 * 1024, 63)),
    });
    await handle.done;
    await body({
      storage,
      holders,
      judged,
      stop: async (work = Promise.resolve()) => {
        underWay = work;
        await system.shutdown();
      },
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("an audit round under way when the node stops judges no holder: no verdict, no failure counted", async () => {
  await withNodeStorage(async ({ storage, holders, judged, stop }) => {
    const { done } = unwrapReply<AuditRoundHandle>(await storage.ask({ type: "audit_round" }));
    await Promise.race(holders.map((h) => h.challenged));
    await stop(done);
    assert.deepEqual(
      judged.verdicts.map((v) => `${v.outcome} ${v.reason}`),
      [],
      "no verdict for the ledger about answers this node's own stop cut off",
    );
    assert.deepEqual(judged.failures.map((f) => `${f.op} ${f.reason}`), []);
    const report = await done;
    assert.equal(report.failedHolders, 0, "no holder failed: none is ranked last for it");
    assert.deepEqual(report.failedChunks, [], "and nothing was repaired away from it");
    assert.deepEqual(judged.log.filter((line) => /[1-9]\d* failed/.test(line)), []);
  });
});

Deno.test("a repair under way when the node stops counts no holder's failure", async () => {
  await withNodeStorage(async ({ storage, holders, judged, stop }) => {
    const repaired = storage.ask({ type: "repair" });
    await Promise.race(holders.map((h) => h.challenged));
    await stop(repaired);
    await repaired.catch(() => {});
    assert.deepEqual(
      judged.failures.map((f) => `${f.op} ${f.reason}`),
      [],
      "a holder's connection closed by this node's stop is not its failure",
    );
    assert.deepEqual(judged.log.filter((line) => line.includes("storage: peer ")), []);
    assert.deepEqual(judged.verdicts, []);
  });
});

Deno.test("a holder whose connection closes while the node runs is still judged and counted", async () => {
  await withNodeStorage(async ({ storage, holders, judged }) => {
    for (const holder of holders) holder.close(); // gone, with the node running
    const { done } = unwrapReply<AuditRoundHandle>(await storage.ask({ type: "audit_round" }));
    const report = await done;
    assert.equal(report.failedHolders, HOLDERS, "every holder failed to answer");
    assert.deepEqual(
      new Set(judged.verdicts.map((v) => `${v.outcome} ${v.reason}`)),
      new Set(["invalid no_response"]),
    );
    assert.equal(judged.verdicts.length, HOLDERS, "one verdict each, for the ledger");
    assert.ok(judged.failures.length > 0, "the repair after counts the copies they refused");
  });
});
