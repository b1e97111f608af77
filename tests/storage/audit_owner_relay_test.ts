/**
 * A holder that keeps nothing and relays through the owner under a second key (review s81 store,
 * F1): it acknowledged the owner's `put_chunk`, threw the bytes away, and answered each audit
 * challenge by fetching the chunk from the owner, its auditor, over a connection under a fresh key
 * (a key costs nothing). The owner refused `get_chunk` only to a key it gave the chunk to, so the
 * relay was served, every round passed, and the file's r copies were the owner's one. Now the
 * owner serves a chunk it is challenging a holder on to no key until the answer is in
 * (`actors/_challenged_chunks.ts`): the relaying holders fail, are judged, lose their copies to
 * honest peers, and the file outlives the owner's disk.
 *
 * @module
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import { unwrapReply } from "../../actors/storage_actor_messages.ts";
import { storageKey } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import type { AuditRoundReport } from "../../storage/audit_round.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { LocalStoragePeer, possessionProof, type StoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import {
  auditNodeOptions,
  auditRounds,
  CHUNK,
  identityOf,
  putFile,
  reach,
  TempDirs,
} from "./_audit_owner.ts";

const CHUNKS = 16;
const REPLICAS = 3;
const ROUNDS = 5;

/** Acknowledges every put, keeps nothing, answers reads and proofs by fetching from `source`. */
class RelayHolder implements StoragePeer {
  readonly id: string;
  readonly publicKey: Uint8Array;
  source?: StoragePeer;
  /** Fetches from `source` that it answered. */
  relayed = 0;
  constructor(key: Uint8Array) {
    this.publicKey = key;
    this.id = toHex(key);
  }
  putChunk(): Promise<void> {
    return Promise.resolve(); // "stored"
  }
  async getChunk(cid: string): Promise<Uint8Array> {
    if (this.source === undefined) throw new Error("relay gone");
    const bytes = await this.source.getChunk(cid);
    this.relayed++;
    return bytes;
  }
  hasChunk(): Promise<boolean> {
    return Promise.resolve(true);
  }
  async proveChunks(nonce: Uint8Array, cids: readonly string[]) {
    const out: (Uint8Array | null)[] = [];
    for (const cid of cids) {
      try {
        out.push(await possessionProof(nonce, this.publicKey, await this.getChunk(cid)));
      } catch {
        out.push(null);
      }
    }
    return out;
  }
}

interface Outcome {
  rounds: AuditRoundReport[];
  verdicts: Verdict[];
  cheaters: RelayHolder[];
  /** The file read back by a fresh owner (same key and peers, empty disk): bytes, or the error. */
  readBack: Uint8Array | string;
  original: Uint8Array;
  /** How many honest peers hold each block of the file, after the rounds. */
  honestCopies: number[];
  /** A third key's `get_chunk` of a block between rounds: served. */
  servedBetweenRounds: boolean;
}

/**
 * The owner (r = `replicas`, `holdHere`) with three holders that keep nothing and relay through
 * the owner under keys the owner never gave anything to, and honest holders with the keys
 * `honestKeys`; `ROUNDS` audit rounds, then the owner's disk dies.
 */
async function scenario(honestKeys: number[], replicas = REPLICAS): Promise<Outcome> {
  const owner = identityOf(1);
  const cheaters = [2, 3, 4].map((n) => new RelayHolder(identityOf(n).publicKey));
  const dirs = new TempDirs();
  const honestStores: ChunkStore[] = [];
  const honest: StoragePeer[] = [];
  for (const n of honestKeys) {
    const store = await ChunkStore.open(await dirs.make(), { durable: false });
    honestStores.push(store);
    honest.push(new LocalStoragePeer(store, identityOf(n).publicKey));
  }
  const peers = [...cheaters, ...honest];
  const verdicts: Verdict[] = [];
  const options = (dir: string) => auditNodeOptions(dir, owner, replicas);
  const actor = new StorageActor({
    ...options(await dirs.make()),
    onVerdict: (v) => void verdicts.push(v),
  });
  await actor.preStart();
  const original = pseudoRandomBytes(CHUNKS * CHUNK, 7);
  const links: { close(): Promise<void> }[] = [];
  let rounds: AuditRoundReport[] = [];
  let fileCid = "";
  let servedBetweenRounds = false;
  let blocks: string[] = [];
  try {
    // Each cheater reaches the owner under a key of its own that the owner gave nothing to.
    for (const [i, c] of cheaters.entries()) {
      const link = await reach(actor, owner, identityOf(50 + i));
      links.push(link);
      c.source = link.peer;
    }
    const reader = await reach(actor, owner, identityOf(60));
    links.push(reader);
    unwrapReply(await actor.receive({ type: "set_peers", peers }));
    fileCid = await putFile(actor, original);
    rounds = await auditRounds(actor, ROUNDS);
    // Outside a challenge, any key is served as before (a reader on another node).
    servedBetweenRounds = (await reader.peer.getChunk(storageKey(fileCid))).length > 0;
    blocks = unwrapReply<{ chunks: string[] }>(
      await actor.receive({ type: "stat", cid: fileCid }),
    ).chunks.map(storageKey);
  } finally {
    for (const l of links) await l.close();
    for (const c of cheaters) c.source = undefined; // the owner is gone: nothing to relay from
    await actor.repairIdle();
    await actor.postStop();
  }
  const honestCopies: number[] = [];
  for (const key of [storageKey(fileCid), ...blocks]) {
    let n = 0;
    for (const store of honestStores) if (await store.has(key)) n++;
    honestCopies.push(n);
  }
  // The owner's disk dies: a fresh owner (same key, same peers, empty disk) reads the file back.
  const fresh = new StorageActor(options(await dirs.make()));
  await fresh.preStart();
  let readBack: Uint8Array | string;
  try {
    unwrapReply(await fresh.receive({ type: "set_peers", peers }));
    try {
      readBack = unwrapReply<Uint8Array>(await fresh.receive({ type: "get_bytes", cid: fileCid }));
    } catch (e) {
      readBack = `error ${(e as { code?: string }).code ?? String(e)}`;
    }
  } finally {
    await fresh.repairIdle();
    await fresh.postStop();
    await dirs.removeAll();
  }
  return {
    rounds,
    verdicts,
    cheaters,
    readBack,
    original,
    honestCopies,
    servedBetweenRounds,
  };
}

Deno.test("holders that keep nothing and relay each challenge through the owner under a second key fail the audit, are judged, and the file outlives the owner's disk", async () => {
  const out = await scenario([5, 6, 7]);
  const rounds = out.rounds.map((r) => ({
    holders: r.holders,
    chunks: r.chunks,
    failed: r.failedHolders,
    repaired: r.repaired,
  }));
  // The first round audits every holder (each was given some of the 16 chunks) and each cheater
  // fails it: every chunk it is asked is refused to every key while it is asked.
  assert.ok(out.rounds[0].failedHolders >= 3, `first round: ${JSON.stringify(rounds)}`);
  for (const c of out.cheaters) {
    const against = out.verdicts.filter((v) => toHex(v.target) === c.id);
    assert.ok(against.length > 0, `a verdict against cheater ${c.id.slice(0, 8)}`);
    for (const v of against) assert.notEqual(v.reason, "valid");
  }
  assert.ok(
    out.verdicts.every((v) => out.cheaters.some((c) => c.id === toHex(v.target))),
    "no honest holder is judged",
  );
  // The copies the cheaters were counted for went to honest peers: every block is on at least
  // two of them (the cheaters, placed last, hold none in truth).
  assert.ok(
    out.honestCopies.every((n) => n >= 2),
    `honest copies per block: ${out.honestCopies.join(",")}; rounds ${JSON.stringify(rounds)}`,
  );
  assert.ok(out.servedBetweenRounds, "a block no audit is asking about is served to any key");
  assert.ok(out.readBack instanceof Uint8Array, `the file read back: ${out.readBack}`);
  assert.deepEqual(out.readBack, out.original);
});

Deno.test("with only relaying holders (each a holder of every chunk, the owner holding every chunk), each fails the first round it is audited in and every round after", async () => {
  // Four copies over the four nodes: the owner holds every chunk, the reference each answer is
  // judged against. With three, a chunk placed on the three cheaters alone had no reference (they
  // relay from the owner, which has none), was left unjudged (`no_reference`), and a holder whose
  // draw fell on those only passed its round (2 runs in 8 here).
  const out = await scenario([], 4);
  const failed = out.rounds.map((r) => r.failedHolders);
  // Before: 5 rounds of { holders: 3, failed: 0 }, no verdict, 60+ chunks relayed (review s81).
  assert.deepEqual(failed, out.rounds.map(() => 3), `failed holders per round: ${failed}`);
  const unjudged = out.rounds.map((r) => r.unjudged);
  assert.deepEqual(unjudged, out.rounds.map(() => 0), `every chunk asked is judged: ${unjudged}`);
  for (const c of out.cheaters) {
    const against = out.verdicts.filter((v) => toHex(v.target) === c.id);
    assert.ok(against.length >= ROUNDS, `verdicts against cheater ${c.id.slice(0, 8)}`);
  }
  // Nobody holds a copy but the owner: with its disk, the file is gone (no honest peer here).
  assert.equal(out.readBack instanceof Uint8Array, false);
});
