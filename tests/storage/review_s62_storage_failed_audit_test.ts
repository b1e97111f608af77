/**
 * Review s62: a failed audit cost the holder nothing. The verdict went to the auditor's ledger
 * only, and placement ranked by key alone, so a holder that kept nothing stayed a holder of every
 * chunk it failed: each round's repair sent it a fresh copy of them, paid by the auditor, and
 * every put went on giving it its share. Now the auditor's own verdict demotes it: ranked last
 * for each chunk it failed (repair places the chunk on the next peer, and it is sent no copy of
 * it again), and for every chunk of this node while it failed audits in several recent rounds.
 * One audit missed (the holder was unreachable) demotes it for the chunks asked, not for all.
 *
 * Fixed keys and fixed files: the placement is the same on every run. Which chunks a round asks is
 * drawn at random, so every assertion holds whatever the draw (a holder that keeps nothing fails
 * whichever it is asked).
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type AuditRoundHandle,
  type PutHandle,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import type { AuditRoundReport } from "../../storage/audit_round.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import { rankPeers } from "../../storage/rendezvous.ts";
import {
  DEMOTION_ROUNDS,
  ReplicatedStore,
  STRIKE_WINDOW_ROUNDS,
} from "../../storage/replicated_store.ts";
import {
  type PeerCallOptions,
  possessionProof,
  type StoragePeer,
} from "../../storage/storage_peer.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";

/** Identity `n` of the test, the same on every run. */
const fixedIdentity = (n: number) => Identity.fromSecretKey(new Uint8Array(32).fill(n));

/** Chunk size of the test files: small, so a file is many chunks. */
const CHUNK = 1024;

/** A holder in memory that counts the copies it is sent; it can drop all, or be unreachable. */
class CountingHolder implements StoragePeer {
  readonly id: string;
  readonly publicKey: Uint8Array;
  readonly chunks = new Map<string, Uint8Array>();
  /** Copies it was sent (writes and repairs), by storage key. */
  readonly sent: string[] = [];
  /** It keeps nothing it is sent (and has dropped what it had). */
  keepsNothing = false;
  /** Its connection is down: challenges fail (a peer unreachable). */
  unreachable = false;

  constructor(identity: Identity) {
    this.publicKey = identity.publicKey;
    this.id = toHex(identity.publicKey);
  }

  putChunk(cid: string, bytes: Uint8Array, _options?: PeerCallOptions): Promise<void> {
    this.sent.push(storageKey(cid));
    if (!this.keepsNothing) this.chunks.set(storageKey(cid), bytes);
    return Promise.resolve();
  }

  getChunk(cid: string): Promise<Uint8Array> {
    const bytes = this.chunks.get(storageKey(cid));
    return bytes ? Promise.resolve(bytes) : Promise.reject(new ChunkNotFoundError(cid));
  }

  hasChunk(cid: string): Promise<boolean> {
    return Promise.resolve(this.chunks.has(storageKey(cid)));
  }

  async proveChunks(nonce: Uint8Array, cids: readonly string[]): Promise<(Uint8Array | null)[]> {
    if (this.unreachable) throw new Error("connection closed");
    const out: (Uint8Array | null)[] = [];
    for (const cid of cids) {
      const bytes = this.chunks.get(storageKey(cid));
      out.push(bytes ? await possessionProof(nonce, this.publicKey, bytes) : null);
    }
    return out;
  }
}

/** An actor over four counting holders (r = 2, every copy written before a put is done). */
async function setUp() {
  const dir = await Deno.makeTempDir();
  const peers = [1, 2, 3, 4].map((n) => new CountingHolder(fixedIdentity(n)));
  const verdicts: Verdict[] = [];
  const actor = new StorageActor({
    dir,
    chunkSize: CHUNK,
    store: { durable: false },
    peers,
    replication: { replicas: 2, writeQuorum: 2 },
    identity: fixedIdentity(9),
    onVerdict: (v) => {
      verdicts.push(v);
    },
  });
  await actor.preStart();
  const put = async (size: number, seed: number) => {
    const handle = await actor.receive({
      type: "put",
      source: streamOf(pseudoRandomBytes(size, seed)),
    }) as PutHandle;
    return (await handle.done).cid;
  };
  /** A file's blocks (storage keys): its root and its chunks. */
  const blocks = async (cid: string) => {
    const { chunks } = unwrapReply<{ chunks: string[] }>(
      await actor.receive({ type: "stat", cid }),
    );
    return new Set([cid, ...chunks].map(storageKey));
  };
  const round = async (): Promise<AuditRoundReport> =>
    await unwrapReply<AuditRoundHandle>(await actor.receive({ type: "audit_round" })).done;
  const done = async () => {
    await actor.postStop();
    await Deno.remove(dir, { recursive: true });
  };
  return { actor, peers, verdicts, put, blocks, round, done };
}

/** The two peers the key ranking alone places `cid` on. */
const rankedHolders = (cid: string, peers: CountingHolder[]) => rankPeers(cid, peers).slice(0, 2);

Deno.test("a holder that failed an audit is not sent the chunks it failed again: the repair places them on the next peer", async () => {
  const { actor, peers, verdicts, put, blocks, round, done } = await setUp();
  try {
    // Three chunks and a root: no holder has more than the four a round asks of it, so the one
    // that keeps nothing is asked, and fails, on every block it was given.
    const file = await put(3 * CHUNK, 62);
    const chunks = await blocks(file);
    const counts = peers.map((p) => [...chunks].filter((c) => p.chunks.has(c)).length);
    const cheat = peers[counts.indexOf(Math.max(...counts))];
    const failed = [...chunks].filter((c) => cheat.chunks.has(c));
    cheat.keepsNothing = true;
    cheat.chunks.clear();
    const sentBefore = cheat.sent.length;

    const report = await round();
    assert.equal(report.failedHolders, 1);
    assert.deepEqual(new Set(report.failedChunks), new Set(failed));
    assert.equal(verdicts.length, 1);
    assert.equal(toHex(verdicts[0].target), cheat.id);

    // Each failed chunk is on two other peers now; the failing holder got no copy of any.
    for (const cid of failed) {
      const others = peers.filter((p) => p !== cheat && p.chunks.has(cid));
      assert.equal(others.length, 2, `chunk ${cid} has its two copies on other peers`);
    }
    assert.deepEqual(cheat.sent.slice(sentBefore), [], "the round's repair sent it nothing");

    // A repair of every pin asks the chunk's holders again: still nothing for it.
    unwrapReply(await actor.receive({ type: "repair" }));
    assert.deepEqual(cheat.sent.slice(sentBefore), [], "a later repair sends it nothing");
    // The file reads back whole.
    const bytes = unwrapReply<Uint8Array>(await actor.receive({ type: "get_bytes", cid: file }));
    assert.deepEqual(bytes, pseudoRandomBytes(3 * CHUNK, 62));
  } finally {
    await done();
  }
});

Deno.test("a holder that failed audits in three rounds is given none of a new file; one that missed one audit while unreachable keeps its rank", async () => {
  const { peers, verdicts, put, round, done, blocks } = await setUp();
  try {
    // Enough chunks that every holder is asked (four chunks) in each of three rounds.
    const file = await put(48 * CHUNK, 7);
    const chunks = await blocks(file);
    const [honest, cheat] = [peers[0], peers[1]];
    assert.ok([...chunks].filter((c) => cheat.chunks.has(c)).length >= 12);
    cheat.keepsNothing = true;
    cheat.chunks.clear();

    honest.unreachable = true;
    await round();
    honest.unreachable = false;
    await round();
    await round();
    const blamed = new Set(verdicts.map((v) => toHex(v.target)));
    assert.deepEqual(blamed, new Set([honest.id, cheat.id]));
    assert.equal(verdicts.filter((v) => toHex(v.target) === honest.id).length, 1);
    assert.equal(verdicts.filter((v) => toHex(v.target) === cheat.id).length, 3, "one a round");

    const sentBefore = cheat.sent.length;
    const next = await put(24 * CHUNK, 8);
    const nextChunks = [...await blocks(next)];
    assert.deepEqual(cheat.sent.slice(sentBefore), [], "the demoted holder is given nothing new");
    // The honest holder is given its share by rank, as before it missed that audit.
    const expected = nextChunks.filter((c) => rankedHolders(c, peers).includes(honest));
    assert.ok(expected.length > 0);
    for (const cid of expected) assert.ok(honest.chunks.has(cid), `honest holder got ${cid}`);
  } finally {
    await done();
  }
});

Deno.test("a demotion for every chunk needs three failed rounds among the last eight, and ends after its rounds", () => {
  const peers = [1, 2, 3, 4].map((n) => new CountingHolder(fixedIdentity(n)));
  const store = new ReplicatedStore(peers, { replicas: 2 });
  const [peer] = peers;
  const cid = storageKey("bafkreigfnxsvb24exfvrxqqir7j2cgwghuu7onnl7kphrfafygcwgggnvy");
  const endRounds = (n: number) => {
    for (let i = 0; i < n; i++) store.auditRoundEnded();
  };
  // Two strikes in one round are one; strikes further apart than the window never add up.
  store.failedAudit(peer.id, [cid]);
  store.failedAudit(peer.id, [cid]);
  endRounds(STRIKE_WINDOW_ROUNDS);
  store.failedAudit(peer.id, [cid]);
  endRounds(STRIKE_WINDOW_ROUNDS);
  store.failedAudit(peer.id, [cid]);
  assert.equal(store.demoted(peer.id), false);
  // The failed chunk itself: placed last for it.
  assert.equal(store.placement(cid).at(-1), peer);

  endRounds(1);
  store.failedAudit(peer.id, [cid]);
  endRounds(1);
  store.failedAudit(peer.id, [cid]);
  assert.equal(store.demoted(peer.id), true);
  const other = storageKey("bafkreierbigx4b5tdnttlv5x5nj57e3lwj2m4divjzzlst5d5pksyk66gq");
  assert.equal(store.placement(other).at(-1), peer, "placed last for a chunk it never failed");

  endRounds(DEMOTION_ROUNDS);
  assert.equal(store.demoted(peer.id), true, "its last strike's rounds are not over");
  endRounds(1);
  assert.equal(store.demoted(peer.id), false);
  assert.deepEqual(store.placement(other), rankPeers(other, peers));

  // A peer that leaves is forgotten.
  store.failedAudit(peer.id, [cid]);
  store.setPeers(peers.slice(1));
  store.setPeers(peers);
  assert.deepEqual(store.placement(cid), rankPeers(cid, peers));
});
