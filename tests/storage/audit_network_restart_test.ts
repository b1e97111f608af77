/**
 * Stop 64 (the "known limit" of review s62): a restart of the auditor's own NetworkActor blamed the
 * holders it was auditing. The network's stop closes every connection it made, so a challenge under
 * way failed on a connection this node closed, and a holder reached after it on the connection the
 * old network had left behind failed at once: each signed `no_response` and was placed last for
 * what it was asked, though it did nothing. Now the StorageActor hears its network go down (the
 * actor system's events) and a holder's answer lost across that is "not reached": no verdict, no
 * demotion, audited again next round. A holder that hangs up by itself, with the network running,
 * is still `no_response` (else one lacking a chunk would hang up on every challenge it would fail).
 *
 * The node is an actor system with the StorageActor first and a stand-in network second (the node's
 * order); the stand-in connects to each holder over an in-memory `Connection` when it starts (a
 * restart connects anew), tells the StorageActor its holders (`set_peers`), and closes every
 * connection it made when it stops, as the NetworkActor does. No clock is involved: a challenged
 * holder answers nothing until its connection closes.
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
import type { Verdict } from "../../protocols/verdict.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import type { AuditRoundReport } from "../../storage/audit_round.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { ConnectionStoragePeer, serveStoragePeer } from "../../storage/connection_storage_peer.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "./_memory_peer.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";

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
