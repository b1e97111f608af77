/**
 * A StorageActor's stop: a node stopping does not blame its storage holders for the connections its
 * own stop closed, and the stop waits out the calls still running on its own copy (`SelfPeer`).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type AuditRoundHandle,
  type PutHandle,
  type StorageMessage,
  type StorageReply,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import { ConnectionClosedError } from "../../protocols/protocol_errors.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import type { ReplicaFailure } from "../../storage/replicated_store.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "../storage/_memory_peer.ts";
import { pseudoRandomBytes, streamOf } from "../storage/_helpers.ts";
import { storageKey } from "../../protocols/cid.ts";
import { delay } from "../_helpers/wait.ts";
import { removePeers, trackedPeer } from "../storage/_tracked_peer.ts";

// -------------------------------------------------------------------------------------------------
// A node stopping blamed its storage holders. The actor system stops the NetworkActor before the
// StorageActor (the network first, so it can say goodbye), and the network's stop closes every peer
// connection. An audit under way then saw its challenge fail on the connection this node's own stop
// had closed, and signed `no_response` against the holder (its verdict to the ledger, the holder
// ranked last); a repair under way counted each holder's closed connection as that holder's
// failure. Now a peer call that fails once the node is stopping is this node's stop: the audits
// under way are called off without a verdict, and nothing is counted against anyone.
//
// Here the node is an actor system with the StorageActor started first and a stand-in network
// second (the node's order, so the network stops first); the stand-in's stop closes its holders'
// connections, and, as the real one's goodbyes do, takes a while after that: until the work under
// way has ended. No clock is involved: the holders answer nothing until the network closes them.

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

// -------------------------------------------------------------------------------------------------
// A StorageActor's stop waits out the calls still running on its own copy.
//
// With `holdHere` the node is one of its own holders (`SelfPeer`, `_storage_self_peer.ts`). A read
// asks two holders at once. `ReplicatedStore` races each holder's call against the caller's signal
// and the peer timeout, so once the caller's signal aborts, the raced call settles while the read
// of this node's own store goes on (a chunk store read checks its signal only as it starts):
// `ReplicatedStore.flush` waits for the raced call, not for that read, and `postStop` returned
// while it still read the store's directory (and may make `quarantine/` there again). A restart
// opening the same directory, or an operator moving it once the node stopped, met a store still in
// use; stop 57's CI failure ("Directory not empty") was this shape with a plain peer. The caller's
// signal aborts in two common ways: a gateway request's once its response is sent (the remote
// replica answered first), and a client that went away mid-read.

/**
 * How long the held read stays held after the stop began, unless the stop ends first. It only
 * gives a stop that does not wait for the read the time to end (a few file operations); a stop
 * that waits ends after the read whatever this is, so a loaded machine cannot fail the test.
 */
const HOLD_AFTER_STOP_MS = 500;

/**
 * A node holding here and on one remote replica reads a one-chunk file with a signal, while the
 * read of its own copy is held (a slow disk); the remote answers once it is held. `end` aborts the
 * signal: after the read returned (a response sent), or before the remote answered (the client
 * went away). Then the node stops. Answers whether the held read still ran when `postStop`
 * resolved, and the read's reply.
 */
async function stopWithSelfReadHeld(
  end: "after the answer" | "mid-read",
): Promise<{ stoppedWhileRunning: boolean; reply: StorageReply<Uint8Array>; data: Uint8Array }> {
  const dir = await Deno.makeTempDir({ prefix: "self-peer-stop-" });
  const remote = await trackedPeer();
  let armed = false;
  let held = false;
  let running = false;
  /** Resolved once the read of this node's copy is held. */
  const holding = Promise.withResolvers<void>();
  const caller = new AbortController();
  const getChunk = remote.getChunk.bind(remote);
  remote.getChunk = async (cid, options) => {
    if (!armed) return await getChunk(cid, options);
    await holding.promise;
    if (end === "mid-read") caller.abort(new DOMException("client gone", "AbortError"));
    return await getChunk(cid, options);
  };
  let stopped: Promise<void> | null = null;
  const actor = new StorageActor({
    dir,
    chunkSize: 1024,
    identity: Identity.generate(),
    holdHere: true,
    peers: [remote],
    replication: { replicas: 2, writeQuorum: 2 },
    store: {
      durable: false,
      faults: {
        // The first read of this node's store once armed is held, and let go once the stop
        // has had its chance to end.
        async afterRead() {
          if (!armed || held) return;
          held = running = true;
          holding.resolve();
          try {
            while (stopped === null) await delay(0); // the test's own steps until the stop
            await Promise.race([stopped, delay(HOLD_AFTER_STOP_MS)]);
          } finally {
            running = false;
          }
        },
      },
    },
  });
  let stoppedWhileRunning: boolean | undefined;
  try {
    await actor.preStart();
    const data = pseudoRandomBytes(1000, 59); // one chunk: its CID is the file's
    const handle = await actor.receive({ type: "put", source: ReadableStream.from([data]) });
    const { cid } = await (handle as PutHandle).done;
    assert.equal(await remote.hasChunk(cid), true, "the remote replica holds the chunk");
    armed = true;
    const reply = await actor.receive({
      type: "get_block",
      cid: storageKey(cid),
      signal: caller.signal,
    }) as StorageReply<Uint8Array>;
    if (end === "after the answer") caller.abort(); // the response is sent
    assert.ok(held && running, "the read of this node's copy is still running");
    stopped = actor.postStop().then(() => {
      stoppedWhileRunning = running;
    });
    await stopped;
    return { stoppedWhileRunning: stoppedWhileRunning!, reply, data };
  } finally {
    await removePeers([remote]);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a StorageActor's postStop waits out a read of its own copy still running when a remote replica answered and the request ended", async () => {
  const { stoppedWhileRunning, reply, data } = await stopWithSelfReadHeld("after the answer");
  assert.ok(reply.ok, "the remote replica answered");
  assert.deepEqual(reply.value, data);
  assert.equal(stoppedWhileRunning, false, "postStop resolved only after the read of its copy");
});

Deno.test("a StorageActor's postStop waits out a read of its own copy whose caller went away", async () => {
  const { stoppedWhileRunning, reply } = await stopWithSelfReadHeld("mid-read");
  assert.equal(reply.ok ? "ok" : reply.error.code, "read_aborted");
  assert.equal(stoppedWhileRunning, false, "postStop resolved only after the read of its copy");
});
