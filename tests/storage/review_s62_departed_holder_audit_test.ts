/**
 * Review s62: a holder that leaves the peer set while an audit round runs, before its turn. The
 * round planned its holders when it started and asked each in turn, so a holder that had left
 * (an orderly restart; its connection closed, the network told the StorageActor) was challenged
 * on the connection it had left behind, failed at once, and got a signed `no_response` verdict —
 * an honest departure judged as a failed audit, which holder repair already handles (its chunks
 * are copied to the holders left). Now each holder is asked as the peer set has it at its turn: one
 * that left is not reached (tried at a later round if it comes back, its record of what it was
 * given kept), and one that came back on a new connection is asked on that one.
 *
 * Fixed keys and a fixed file: the placement, and so the round's order of holders, is the same on
 * every run.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type AuditRoundHandle,
  type PutHandle,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";
import {
  type PeerCallOptions,
  possessionProof,
  type StoragePeer,
} from "../../storage/storage_peer.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";

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
