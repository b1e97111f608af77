/**
 * Audits cut short by this node, not by the holder: the auditor's node stopping, its network
 * restarting, or a holder leaving the peer set while a round runs. Nobody is judged for what this
 * node did; a holder that fails by itself is still judged.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type AuditRoundHandle,
  type PutHandle,
  type StorageMessage,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { Connection } from "../../protocols/connection.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { ConnectionClosedError } from "../../protocols/protocol_errors.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import type { AuditRoundReport } from "../../storage/audit_round.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { ConnectionStoragePeer, serveStoragePeer } from "../../storage/connection_storage_peer.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import {
  type PeerCallOptions,
  possessionProof,
  type StoragePeer,
} from "../../storage/storage_peer.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { MemoryPeer } from "./_memory_peer.ts";

// ---- the auditor's `stopping` -------------------------------------------------------------------
//
// `StorageAuditor`'s `stopping`: a holder's answer that fails while the auditor's own node is
// stopping (its network closed the connection) judges no one; a wrong answer is still judged, and a
// failed one while the node runs is `no_response` as before.

/** A holder whose connection is closed: every challenge fails at once. */
class ClosedHolder extends MemoryPeer {
  override proveChunks(): Promise<(Uint8Array | null)[]> {
    return Promise.reject(new ConnectionClosedError("connection is closed"));
  }
}

/** A holder that answers every challenge with made-up proofs. */
class LyingHolder extends MemoryPeer {
  override proveChunks(_nonce: Uint8Array, cids: readonly string[]) {
    return Promise.resolve(cids.map(() => new Uint8Array(32)));
  }
}

/** Audit `holder` on two chunks this auditor holds, with its node `stopping` or not. */
async function auditWith(holder: MemoryPeer, stopping: boolean) {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const chunks = [
      await store.put(pseudoRandomBytes(512, 1)),
      await store.put(pseudoRandomBytes(512, 2)),
    ];
    const verdicts: Verdict[] = [];
    const auditor = new StorageAuditor({
      identity: Identity.generate(),
      reference: (cid) => store.get(cid),
      sampleSize: chunks.length,
      stopping: () => stopping,
      onVerdict: (verdict) => void verdicts.push(verdict),
    });
    const result = await auditor.audit(holder, chunks).catch((error: Error) => error);
    return { result, verdicts };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("an auditor whose node is stopping judges no holder whose answer failed: the audit is called off", async () => {
  const { result, verdicts } = await auditWith(new ClosedHolder(), true);
  assert.ok(result instanceof DOMException && result.name === "AbortError", String(result));
  assert.deepEqual(verdicts, []);
});

Deno.test("a failed answer while the node runs is no_response, and a wrong one is judged even while it stops", async () => {
  const running = await auditWith(new ClosedHolder(), false);
  assert.deepEqual(running.verdicts.map((v) => v.reason), ["no_response"]);
  const lying = await auditWith(new LyingHolder(), true);
  assert.deepEqual(lying.verdicts.map((v) => v.reason), ["wrong_proof"]);
});

// ---- a round in flight when the StorageActor stops ----------------------------------------------
//
// An audit round in flight when the StorageActor stops. The round ended "after the holder being
// audited", but that audit was not told: it waited out its timeout (30 s, and as long again for the
// reference copies) — far past the actor system's stop bound (5 s), so a restart opened the store
// while the old round still ran on it — and then signed a `no_response` verdict against the holder
// whose answer the node's own stop had cut off. Now the stop aborts the audit running: nobody is
// judged on it, and the stop does not wait it out.

/** A holder that keeps its chunks but answers a challenge only when the challenger gives up. */
class SilentProver extends MemoryPeer {
  /** The signals of the challenges it was sent. */
  readonly challenges: AbortSignal[] = [];
  readonly #asked = Promise.withResolvers<void>();
  /** Resolves at its first challenge. */
  readonly asked = this.#asked.promise;

  override proveChunks(
    _nonce: Uint8Array,
    _cids: readonly string[],
    options?: PeerCallOptions,
  ): Promise<(Uint8Array | null)[]> {
    const signal = options?.signal;
    if (signal === undefined) return Promise.reject(new Error("challenge without a signal"));
    this.challenges.push(signal);
    this.#asked.resolve();
    return new Promise((_, reject) => {
      if (signal.aborted) return reject(signal.reason);
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }
}

Deno.test("a StorageActor's stop ends the audit in flight at once: the holder it was asking is judged on nothing", async () => {
  const dir = await Deno.makeTempDir();
  const peers = Array.from({ length: 4 }, () => new SilentProver());
  const verdicts: Verdict[] = [];
  const actor = new StorageActor({
    dir,
    chunkSize: 1024,
    store: { durable: false },
    peers,
    replication: { replicas: 3, writeQuorum: 3 },
    identity: Identity.generate(),
    holdHere: true,
    onVerdict: (v) => {
      verdicts.push(v);
    },
  });
  await actor.preStart();
  try {
    const handle = await actor.receive({
      type: "put",
      source: streamOf(pseudoRandomBytes(8192, 62)),
    }) as PutHandle;
    await handle.done;
    // Every block has three holders, two at least among the peers, each given its copy (a quorum
    // of three): whatever the keys, some peer is audited, and the round waits on its answer.
    const { done } = unwrapReply<AuditRoundHandle>(await actor.receive({ type: "audit_round" }));
    await Promise.race(peers.map((p) => p.asked));
    await actor.postStop();
    const asked = peers.flatMap((p) => p.challenges);
    assert.equal(asked.length, 1, "one holder was being asked when the node stopped");
    assert.equal(asked[0].aborted, true, "its challenge is called off by the stop");
    assert.deepEqual(verdicts, [], "no verdict about an answer the node's own stop cut off");
    const report = await done;
    assert.equal(report.failedHolders, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- a holder that leaves the peer set before its turn ------------------------------------------
//
// A holder that leaves the peer set while an audit round runs, before its turn. The round planned
// its holders when it started and asked each in turn, so a holder that had left (an orderly
// restart; its connection closed, the network told the StorageActor) was challenged on the
// connection it had left behind, failed at once, and got a signed `no_response` verdict — an honest
// departure judged as a failed audit, which holder repair already handles (its chunks are copied to
// the holders left). Now each holder is asked as the peer set has it at its turn: one that left is
// not reached (tried at a later round if it comes back, its record of what it was given kept), and
// one that came back on a new connection is asked on that one.
//
// Fixed keys and a fixed file: the placement, and so the round's order of holders, is the same on
// every run.

/** Identity `n` of the test, the same on every run. */
const fixedIdentity = (n: number) => Identity.fromSecretKey(new Uint8Array(32).fill(n));

/** An honest holder in memory whose challenges wait for `gate`; once `gone`, every call fails. */
class GatedHolder implements StoragePeer {
  readonly id: string;
  readonly publicKey: Uint8Array;
  readonly chunks = new Map<string, Uint8Array>();
  /** Its connection closed (it left): every call fails, as one on a closed connection does. */
  gone = false;
  /** Challenges it was sent after it left. */
  challengedWhileGone = 0;
  readonly #gate: Promise<void>;
  readonly #asked: () => void;

  constructor(identity: Identity, gate: Promise<void>, asked: (peer: GatedHolder) => void) {
    this.publicKey = identity.publicKey;
    this.id = toHex(identity.publicKey);
    this.#gate = gate;
    this.#asked = () => asked(this);
  }

  #closed(): Promise<never> {
    return Promise.reject(new Error("connection closed"));
  }

  putChunk(cid: string, bytes: Uint8Array): Promise<void> {
    if (this.gone) return this.#closed();
    this.chunks.set(cid, bytes);
    return Promise.resolve();
  }

  getChunk(cid: string, _options?: PeerCallOptions): Promise<Uint8Array> {
    if (this.gone) return this.#closed();
    const bytes = this.chunks.get(cid);
    return bytes ? Promise.resolve(bytes) : Promise.reject(new ChunkNotFoundError(cid));
  }

  hasChunk(cid: string): Promise<boolean> {
    if (this.gone) return this.#closed();
    return Promise.resolve(this.chunks.has(cid));
  }

  async proveChunks(nonce: Uint8Array, cids: readonly string[]): Promise<(Uint8Array | null)[]> {
    if (this.gone) {
      this.challengedWhileGone++;
      return await this.#closed();
    }
    this.#asked();
    await this.#gate;
    const out: (Uint8Array | null)[] = [];
    for (const cid of cids) {
      const bytes = this.chunks.get(cid);
      out.push(bytes ? await possessionProof(nonce, this.publicKey, bytes) : null);
    }
    return out;
  }
}

Deno.test("a holder that left the peer set while an audit round ran is not challenged at its turn, nor judged: not reached", async () => {
  const dir = await Deno.makeTempDir();
  const gate = Promise.withResolvers<void>();
  const firstAsked = Promise.withResolvers<GatedHolder>();
  const peers = [1, 2, 3, 4].map((n) =>
    new GatedHolder(fixedIdentity(n), gate.promise, (p) => firstAsked.resolve(p))
  );
  const verdicts: Verdict[] = [];
  const actor = new StorageActor({
    dir,
    chunkSize: 1024,
    store: { durable: false },
    peers,
    // A quorum of three: every holder has its copy (and is recorded as given it) once the put is.
    replication: { replicas: 3, writeQuorum: 3 },
    identity: fixedIdentity(9),
    holdHere: true,
    onVerdict: (v) => {
      verdicts.push(v);
    },
  });
  await actor.preStart();
  try {
    const handle = await actor.receive({
      type: "put",
      source: streamOf(pseudoRandomBytes(16_384, 62)),
    }) as PutHandle;
    await handle.done;
    const { done } = unwrapReply<AuditRoundHandle>(await actor.receive({ type: "audit_round" }));
    // The round is on its first holder: every other peer leaves (its connection closes, and the
    // network tells the actor), then the first one answers.
    const first = await firstAsked.promise;
    for (const peer of peers) if (peer !== first) peer.gone = true;
    unwrapReply(await actor.receive({ type: "set_peers", peers: [first] }));
    gate.resolve();
    const report = await done;
    await actor.repairIdle();

    assert.deepEqual(
      peers.map((p) => p.challengedWhileGone),
      [0, 0, 0, 0],
      "no holder is challenged after it left",
    );
    assert.deepEqual(verdicts, [], "an honest departure is no failed audit");
    assert.equal(report.failedHolders, 0);
    assert.equal(report.holders, 1, "the holder still there was audited");
    assert.ok(report.errors >= 1, "the holders planned that had left count as not reached");
  } finally {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- the auditor's own network restarts mid-round -----------------------------------------------
//
// A restart of the auditor's own NetworkActor blamed the holders it was auditing. The network's
// stop closes every connection it made, so a challenge under way failed on a connection this node
// closed, and a holder reached after it on the connection the old network had left behind failed at
// once: each signed `no_response` and was placed last for what it was asked, though it did nothing.
// Now the StorageActor hears its network go down (the actor system's events) and a holder's answer
// lost across that is "not reached": no verdict, no demotion, audited again next round. A holder
// that hangs up by itself, with the network running, is still `no_response` (else one lacking a
// chunk would hang up on every challenge it would fail).
//
// The node is an actor system with the StorageActor first and a stand-in network second (the node's
// order); the stand-in connects to each holder over an in-memory `Connection` when it starts (a
// restart connects anew), tells the StorageActor its holders (`set_peers`), and closes every
// connection it made when it stops, as the NetworkActor does. No clock is involved: a challenged
// holder answers nothing until its connection closes.

/** Holders in the test: with this node, five, and every chunk on all of them. */
const HOLDERS = 4;
/** The stand-in network's registry name, given to the StorageActor as its `network`. */
const NETWORK = "node/network";

/** A holder node: it keeps what it is given; while `stalls`, a challenge waits for its close. */
class HolderNode extends MemoryPeer {
  /** Challenges wait, unanswered, until the connection they came on closes. */
  stalls = false;
  #challenged = Promise.withResolvers<void>();

  /** Resolves at its next challenge that stalls. */
  get challenged(): Promise<void> {
    return this.#challenged.promise;
  }

  override async proveChunks(
    nonce: Uint8Array,
    cids: readonly string[],
    options?: PeerCallOptions,
  ): Promise<(Uint8Array | null)[]> {
    if (!this.stalls) return await super.proveChunks(nonce, cids);
    this.#challenged.resolve();
    this.#challenged = Promise.withResolvers<void>();
    const signal = options!.signal!; // the served connection's: aborted when it closes
    return await new Promise((_resolve, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }
}

/** One connection to a holder: this node's side (its storage peer) and the holder's side. */
interface HolderLink {
  holder: HolderNode;
  /** This node's side. */
  mine: Connection;
  /** The holder's side: closing it is the holder hanging up. */
  theirs: Connection;
  /** The holder as this node's storage reaches it, over this connection. */
  peer: ConnectionStoragePeer;
}

function connect(holder: HolderNode): HolderLink {
  const [a, b] = memoryDuplexPair();
  const theirs = serveStoragePeer(new Connection(b), holder);
  const mine = new Connection(a);
  return { holder, mine, theirs, peer: new ConnectionStoragePeer(mine, holder.publicKey) };
}

/** What the stand-in network is told. */
type StandInMessage =
  /** The current holders (the StorageActor's restart asks it). */
  | { type: "storage_peers" }
  /** Crash. With `fresh`, connect to every holder anew and tell the storage first. */
  | { type: "crash"; fresh?: boolean };

/** The test's node: its storage, its stand-in network, its holders and what it judged. */
interface World {
  holders: HolderNode[];
  /** The connections the current network incarnation made, one per holder. */
  links(): HolderLink[];
  /** Verdicts handed to the ledger's sink. */
  verdicts: Verdict[];
  /** The StorageActor's log. */
  log: string[];
  /**
   * Crash the network and wait for its next incarnation to have started (connected to the holders
   * and told the storage). With `fresh`, the crashing incarnation first connects anew and tells
   * the storage those holders (a `set_peers` still in the storage's mailbox when it goes down).
   */
  crashNetwork(options?: { fresh?: boolean }): Promise<void>;
  /** Hold the next network start's connections back until `connect()` (a slow reconnect). */
  holdConnects(): { connect(): void };
  /** Run an audit round, to its end. */
  round(): Promise<AuditRoundReport>;
}

/**
 * Run `body` on a node whose storage holds a file on {@link HOLDERS} holders and itself (every
 * chunk on each), its network connected to them; clean up after it.
 */
async function withWorld(body: (world: World) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  const holders = Array.from({ length: HOLDERS }, () => new HolderNode());
  const verdicts: Verdict[] = [];
  const log: string[] = [];
  const all: HolderLink[] = [];
  let current: HolderLink[] = [];
  let gate: Promise<void> = Promise.resolve();
  let release = () => {};
  const system = new ActorSystem({ name: "node" });
  const connectAll = () => {
    const links = holders.map(connect);
    all.push(...links);
    return links;
  };
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () =>
        new StorageActor({
          dir,
          chunkSize: 1024,
          store: { durable: false },
          replication: { replicas: HOLDERS + 1, writeQuorum: HOLDERS + 1 },
          identity: Identity.generate(),
          holdHere: true, // this node holds every chunk: a reference copy is always at hand
          network: NETWORK,
          onVerdict: (verdict) => void verdicts.push(verdict),
          log: (line) => void log.push(line),
        }),
    });
    const network = await system.spawn<StandInMessage>({
      name: NETWORK,
      factory: () => {
        const made: HolderLink[] = [];
        const tellPeers = (links: HolderLink[]) =>
          storage.tell({ type: "set_peers", peers: links.map((l) => l.peer) });
        return {
          preStart: async () => {
            await gate;
            current = connectAll();
            made.push(...current);
            await tellPeers(current);
          },
          receive: (message: StandInMessage) => {
            if (message.type === "storage_peers") return current.map((l) => l.peer);
            if (message.fresh) {
              current = connectAll();
              made.push(...current);
              void tellPeers(current);
            }
            throw new Error("the network crashed");
          },
          // As the NetworkActor's: every connection it made is closed.
          postStop: async () => void await Promise.all(made.map((l) => l.mine.close())),
        };
      },
    });
    const handle = await storage.ask<PutHandle>({
      type: "put",
      source: streamOf(pseudoRandomBytes(6 * 1024, 64)),
    });
    await handle.done;
    await body({
      holders,
      links: () => current,
      verdicts,
      log,
      async crashNetwork(options) {
        const restarted = Promise.withResolvers<void>();
        const unsubscribe = system.events.subscribe((event) => {
          if (event.name === NETWORK && event.type === "restarted") restarted.resolve();
        });
        await network.tell({ type: "crash", fresh: options?.fresh });
        await restarted.promise;
        unsubscribe();
      },
      holdConnects() {
        const held = Promise.withResolvers<void>();
        gate = held.promise;
        release = () => held.resolve();
        return { connect: release };
      },
      async round() {
        return await unwrapReply<AuditRoundHandle>(await storage.ask({ type: "audit_round" }))
          .done;
      },
    });
  } finally {
    release(); // a start held back by a test that failed
    await system.shutdown();
    await Promise.all(all.flatMap((l) => [l.mine.close(), l.theirs.close()]));
    await Deno.remove(dir, { recursive: true });
  }
}

const outcomes = (verdicts: Verdict[]) => verdicts.map((v) => `${v.outcome} ${v.reason}`);

Deno.test("a restart of the auditor's network during an audit round blames no holder: not reached, audited again next round", async () => {
  await withWorld(async ({ holders, verdicts, log, crashNetwork, round }) => {
    for (const holder of holders) holder.stalls = true;
    const running = round();
    await Promise.race(holders.map((h) => h.challenged));
    for (const holder of holders) holder.stalls = false; // the new connections are answered
    await crashNetwork();
    const report = await running;
    assert.deepEqual(outcomes(verdicts), [], "no verdict for the ledger: the holder did nothing");
    assert.equal(report.failedHolders, 0, "no holder failed: none is placed last for it");
    assert.deepEqual(report.failedChunks, [], "and nothing was repaired away from it");
    assert.ok(report.errors >= 1, "the holder cut off is not reached (next round)");
    assert.equal(report.holders + report.errors, HOLDERS, "each holder audited or not reached");
    assert.ok(log.some((line) => / not reached \(next round\)/.test(line)), log.join("\n"));

    const next = await round();
    assert.equal(next.holders, HOLDERS, "every holder is audited again, on its new connection");
    assert.equal(next.errors, 0);
    assert.equal(next.failedHolders, 0);
    assert.deepEqual(outcomes(verdicts), []);
  });
});

/**
 * Crash the network with its next start held back, audit a round while it is down, then let it
 * connect and audit the next round; `fresh` as in {@link World.crashNetwork}.
 */
async function roundsAcrossADownNetwork(fresh: boolean): Promise<void> {
  await withWorld(async ({ links, verdicts, crashNetwork, holdConnects, round }) => {
    const connects = holdConnects();
    const crashed = crashNetwork({ fresh });
    await Promise.all(links().map((l) => l.mine.closed)); // the old network closed them
    // The network is down and not back: the storage has only holders on connections it closed.
    const report = await round();
    assert.deepEqual(outcomes(verdicts), [], "no verdict for the ledger");
    assert.equal(report.errors, HOLDERS, "none reached (next round)");
    assert.equal(report.failedHolders, 0, "none placed last");
    connects.connect();
    await crashed;
    const next = await round();
    assert.equal(next.holders, HOLDERS, "each is audited on the new network's connection");
    assert.equal(next.failedHolders, 0);
    assert.deepEqual(outcomes(verdicts), []);
  });
}

Deno.test("holders left on the connections of a network that went down are not reached until it is back, and not blamed", async () => {
  await roundsAcrossADownNetwork(false);
});

Deno.test("holders the network told the storage of just before it went down are not blamed for its close", async () => {
  // The crashing network connects anew and tells the storage those holders as it goes down: its
  // `set_peers` is still in the storage's mailbox when the crash is heard.
  await roundsAcrossADownNetwork(true);
});

Deno.test("a holder that hangs up by itself mid-answer, with the network running, is still no_response (after a restart of it too)", async () => {
  await withWorld(async ({ holders, links, verdicts, crashNetwork, round }) => {
    const hangUp = async (quitter: HolderNode) => {
      quitter.stalls = true;
      const running = round();
      await quitter.challenged;
      await links().find((l) => l.holder === quitter)!.theirs.close(); // its own side: it hung up
      quitter.stalls = false;
      return await running;
    };
    const first = await hangUp(holders[1]);
    assert.deepEqual(outcomes(verdicts), ["invalid no_response"], "signed for the ledger");
    assert.equal(toHex(verdicts[0].target), holders[1].id, "against the holder that hung up");
    assert.equal(first.failedHolders, 1, "placed last for what it was asked");
    assert.ok(first.failedChunks.length > 0);
    assert.equal(first.holders, HOLDERS, "the others answered");
    // The network restarted since: a holder on the new one's connection is judged as before.
    await crashNetwork();
    const second = await hangUp(holders[2]);
    assert.deepEqual(outcomes(verdicts), ["invalid no_response", "invalid no_response"]);
    assert.equal(toHex(verdicts[1].target), holders[2].id);
    assert.equal(second.failedHolders, 1);
    assert.equal(second.holders, HOLDERS);
  });
});

Deno.test("StorageAuditor: a failed answer its own side closed is not reached (no verdict); any other is no_response", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = await ChunkStore.open(dir, { durable: false });
    const chunks = [
      await store.put(pseudoRandomBytes(512, 1)),
      await store.put(pseudoRandomBytes(512, 2)),
    ];
    const closedHolder = new HolderNode();
    closedHolder.proveChunks = () => Promise.reject(new Error("connection is closed"));
    const audit = async (closedHere: boolean) => {
      const verdicts: Verdict[] = [];
      const auditor = new StorageAuditor({
        identity: Identity.generate(),
        reference: (cid) => store.get(cid),
        sampleSize: chunks.length,
        closedHere: () => closedHere,
        onVerdict: (verdict) => void verdicts.push(verdict),
      });
      const result = await auditor.audit(closedHolder, chunks).catch((error: Error) => error);
      return { result, verdicts };
    };
    const here = await audit(true);
    assert.equal(
      (here.result as { code?: string }).code,
      "holder_not_reached",
      String(here.result),
    );
    assert.deepEqual(here.verdicts, []);
    const there = await audit(false);
    assert.deepEqual(outcomes(there.verdicts), ["invalid no_response"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
