/**
 * Review s62: an honest holder busy in its StorageActor failed audits. The actor took one message
 * at a time and ran `put_bytes` (and `get_bytes`, `repair`, `audit`) to its end inside it, so a
 * storage peer's `prove` waited behind a trainer's `put_bytes` of a round model, past the auditor's
 * deadline, and the holder was signed off `no_response`. Now those asks are answered later
 * (`LaterReply`): their work runs outside the mailbox, and a `prove` is answered at once.
 *
 * No race with a clock: the put waits on a gate this test opens only after the audit is over, so
 * before the fix the audit could only end at its deadline, whatever the machine's speed.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import {
  type StorageMessage,
  type StorageReply,
  unwrapReply,
} from "../../actors/storage_actor_messages.ts";
import { StorageActorPeer } from "../../actors/storage_actor_peer.ts";
import { Identity } from "../../protocols/identity.ts";
import type { Verdict } from "../../protocols/verdict.ts";
import { StorageAuditor } from "../../storage/audit.ts";
import type { PutFileResult } from "../../storage/file_store.ts";
import { cidOfAsync } from "../../storage/_hash.ts";
import type { PeerCallOptions } from "../../storage/storage_peer.ts";
import { MemoryPeer } from "../storage/_memory_peer.ts";

/** The auditor's deadline in the reviewer's probe: the holder has this long to answer. */
const AUDIT_DEADLINE_MS = 2_000;

/** A storage peer whose writes wait for `gate` (a slow link), telling `writing` of the first. */
class GatedPeer extends MemoryPeer {
  constructor(readonly gate: Promise<void>, readonly writing: () => void) {
    super();
  }

  override async putChunk(cid: string, bytes: Uint8Array, options?: PeerCallOptions) {
    this.writing();
    await this.gate;
    return await super.putChunk(cid, bytes, options);
  }
}

Deno.test("a holder in the middle of a slow put_bytes answers a prove within the audit's deadline and gets no verdict", async () => {
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "storage-busy-test" });
  const gate = Promise.withResolvers<void>();
  const writing = Promise.withResolvers<void>();
  try {
    const identity = Identity.generate(); // the holder's: its proofs are bound to it
    const ref = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () =>
        new StorageActor({
          dir,
          identity,
          store: { durable: false },
          peers: [new GatedPeer(gate.promise, () => writing.resolve())],
          replication: { replicas: 1, writeQuorum: 1, peerTimeoutMs: 60_000 },
        }),
    });
    // A chunk a peer gave this node to hold, as a storage peer does.
    const holder = new StorageActorPeer(ref, identity.publicKey);
    const chunk = new TextEncoder().encode("a chunk held for the network");
    const cid = await cidOfAsync(chunk);
    await holder.putChunk(cid, chunk);

    // A trainer stores a round model; its copies wait on the slow peer.
    const model = new Uint8Array(64 * 1024).fill(7);
    const putting = ref.ask<StorageReply<PutFileResult>>(
      { type: "put_bytes", bytes: model, name: "model.onnx" },
      { timeoutMs: 60_000 },
    );
    await writing.promise;

    const verdicts: Verdict[] = [];
    const auditor = new StorageAuditor({
      identity: Identity.generate(),
      reference: () => Promise.resolve(chunk),
      timeoutMs: AUDIT_DEADLINE_MS,
      onVerdict: (v) => {
        verdicts.push(v);
      },
    });
    const result = await auditor.audit(holder, [cid]);
    assert.deepEqual(result.failures, [], "the busy holder proved the chunk");
    assert.equal(result.passed, true);
    assert.deepEqual(verdicts, [], "no verdict against an honest, busy holder");

    gate.resolve();
    const put = unwrapReply<PutFileResult>(await putting);
    assert.equal(put.size, model.length, "the put it was busy with is done too");
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
