/**
 * Review s62: an audit round in flight when the StorageActor stops. The round ended "after the
 * holder being audited", but that audit was not told: it waited out its timeout (30 s, and as
 * long again for the reference copies) — far past the actor system's stop bound (5 s), so a
 * restart opened the store while the old round still ran on it — and then signed a
 * `no_response` verdict against the holder whose answer the node's own stop had cut off. Now the
 * stop aborts the audit running: nobody is judged on it, and the stop does not wait it out.
 */
import assert from "node:assert/strict";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type AuditRoundHandle,
  type PutHandle,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { pseudoRandomBytes, streamOf } from "./_helpers.ts";
import { MemoryPeer } from "./_memory_peer.ts";

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
