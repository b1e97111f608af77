/**
 * A holder that stalls its answer to a challenge holds the owner's copy of the chunks asked away
 * from readers for `AUDIT_ANSWER_TIMEOUT_MS` at most, not the old 30 s (review s81 vaudit, F3): at
 * that deadline its answer counts as `no_response`, the hold ends, and a reader node whose only
 * other copy is the staller's reads the owner's file again. The audit's clock is injected.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import { type AuditRoundHandle, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { toHex } from "../../protocols/hash.ts";
import type { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { AUDIT_ANSWER_TIMEOUT_MS } from "../../storage/audit.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { LocalStoragePeer, type StoragePeer } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes } from "./_helpers.ts";
import { auditNodeOptions, CHUNK, identityOf, putFile, reach, TempDirs } from "./_audit_owner.ts";

/** Deadlines on a clock the test moves. */
class ManualDeadlines {
  #now = 0;
  readonly asked: number[] = [];
  readonly #open: { at: number; controller: AbortController }[] = [];
  deadline = (ms: number): AbortSignal => {
    this.asked.push(ms);
    const controller = new AbortController();
    this.#open.push({ at: this.#now + ms, controller });
    return controller.signal;
  };
  advance(ms: number): void {
    this.#now += ms;
    for (const { at, controller } of this.#open) {
      if (at <= this.#now) controller.abort(new DOMException("deadline", "TimeoutError"));
    }
  }
}

/** An honest store that sits on its first challenge, serving no reads meanwhile (hostile). */
class StallingHolder implements StoragePeer {
  readonly id: string;
  readonly inner: LocalStoragePeer;
  readonly #gate = Promise.withResolvers<void>();
  readonly challenged = Promise.withResolvers<void>();
  asked: readonly string[] = [];
  #stalled = false;
  stalling = false;
  constructor(store: ChunkStore, readonly publicKey: Uint8Array) {
    this.id = toHex(publicKey);
    this.inner = new LocalStoragePeer(store, publicKey);
  }
  release(): void {
    this.#gate.resolve();
  }
  putChunk(cid: string, bytes: Uint8Array) {
    return this.inner.putChunk(cid, bytes);
  }
  getChunk(cid: string) {
    if (this.stalling) return Promise.reject(new Error("busy"));
    return this.inner.getChunk(cid);
  }
  hasChunk(cid: string) {
    return this.inner.hasChunk(cid);
  }
  async proveChunks(nonce: Uint8Array, cids: readonly string[]) {
    if (!this.#stalled) {
      this.#stalled = this.stalling = true;
      this.asked = cids;
      this.challenged.resolve();
      await this.#gate.promise;
      this.stalling = false;
    }
    return await this.inner.proveChunks(nonce, cids);
  }
}

Deno.test("a holder stalling its answer holds the owner's copy from readers only until the answer deadline, and is judged no_response", async () => {
  assert.ok(AUDIT_ANSWER_TIMEOUT_MS <= 10_000, "a reader waits seconds, not the old 30 s");
  const dirs = new TempDirs("audit_hold_bound_");
  const clock = new ManualDeadlines();
  const verdicts: Verdict[] = [];
  const ownerId = identityOf(1);
  const staller = new StallingHolder(
    await ChunkStore.open(await dirs.make(), { durable: false }),
    identityOf(2).publicKey,
  );
  const base = (dir: string, identity: Identity) => auditNodeOptions(dir, identity, 2);
  const owner = new StorageActor({
    ...base(await dirs.make(), ownerId),
    auditDeadline: clock.deadline,
    onVerdict: (v) => void verdicts.push(v),
  });
  await owner.preStart();
  const readerId = identityOf(9);
  const reader = new StorageActor(base(await dirs.make(), readerId));
  await reader.preStart();
  const link = await reach(owner, ownerId, readerId);
  const read = async (cid: string) => {
    try {
      return `ok ${
        unwrapReply<Uint8Array>(await reader.receive({ type: "get_bytes", cid })).length
      }`;
    } catch (e) {
      return `error ${(e as { code?: string }).code ?? String(e)}`;
    }
  };
  let during = "";
  let after = "";
  try {
    unwrapReply(await owner.receive({ type: "set_peers", peers: [staller] }));
    const file = await putFile(owner, pseudoRandomBytes(16 * CHUNK, 3));
    unwrapReply(await reader.receive({ type: "set_peers", peers: [link.peer, staller] }));
    const round = unwrapReply<AuditRoundHandle>(await owner.receive({ type: "audit_round" }));
    await staller.challenged.promise;
    during = await read(file); // the challenge is open: the owner holds the chunks asked
    clock.advance(AUDIT_ANSWER_TIMEOUT_MS);
    const report = await round.done;
    assert.equal(report.failedHolders, 1);
    assert.ok(staller.stalling, "the holder still sits on its answer");
    after = await read(file);
  } finally {
    staller.release();
    await link.close();
    await owner.repairIdle();
    await reader.repairIdle();
    await owner.postStop();
    await reader.postStop();
    await dirs.removeAll();
  }
  assert.equal(clock.asked[0], AUDIT_ANSWER_TIMEOUT_MS, "the answer's deadline");
  assert.equal(during, "error replication_failed", "held while the challenge is open");
  assert.equal(after, `ok ${16 * CHUNK}`, "served again past the answer deadline");
  // The staller is judged for its late answer: a signed `no_response` against it.
  const against = verdicts.filter((v) => toHex(v.target) === staller.id);
  assert.ok(against.length > 0 && against.every((v) => v.outcome === "invalid"));
  assert.equal(against[0].reason, "no_response");
});
