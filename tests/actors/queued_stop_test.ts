/**
 * A proof queued behind its accuser's accusation in flight is kept across a stop, after the proof
 * in flight (`actors/validator_actor.ts`'s held evidence, `actors/_held_evidence.ts`), and queues
 * behind it again at the start, as of when it came. Review s77 F5: the queue was memory only, so
 * a stop while the accuser's refuted proof was checked lost its confirmed one queued behind it;
 * after the restart the refuted one settled alone, and the cheat was paid here.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ValidatorStats } from "../../actors/validator_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  accuser,
  assertSlashedAndCharged,
  cheat,
  confirmed,
  ending,
  type QueueEnding,
  queueLedger,
  send,
  START,
} from "./_queued_accusation_fixture.ts";
import { falseProof } from "./_validator_fixture.ts";

const refuted = falseProof(cheat.receipt, accuser, 1);

/** The first proof is being checked (its model never loads) and the second queued; a stop. */
async function acrossAStop(proofs: typeof refuted[]): Promise<QueueEnding> {
  const root = await Deno.makeTempDir();
  const identity = Identity.generate();
  const clock = { t: START };
  const never = Promise.withResolvers<void>();
  // The stop gives up on the hung check at once: what it would keep was kept at the tick.
  const before = new ActorSystem({ name: "queued-stop-before", stopTimeoutMs: 0 });
  let after: ActorSystem | undefined;
  try {
    const v = await queueLedger(before, "v/validator", `${root}/v`, clock, never.promise, {
      identity,
    });
    const handled = await send(v, proofs);
    assert.equal(handled[0].queued, true, "the first is being checked");
    assert.equal(handled[1].awaitingAccusation, true, "the second waits behind it");
    // A finalize tick inside the window keeps what is held (as the tick does every interval):
    // the stop's own keep waits behind the first check on the work queue, which waits for a
    // model that never loads, and the stop gives up on it first.
    await v.ask({ type: "finalize" });
    await before.shutdown();
    after = new ActorSystem({ name: "queued-stop-after" });
    const w = await queueLedger(after, "v/validator", `${root}/v`, clock, Promise.resolve(), {
      identity,
      setup: "none",
    });
    // The first is checked again; one kept behind it is taken in the same step that settles it.
    await eventually(async () => {
      const stats = await w.ask<ValidatorStats>({ type: "stats" });
      return stats.fraudProofsChecking === 0 && stats.fraudProofsChecked >= 1;
    });
    return await ending(w, clock);
  } finally {
    await after?.shutdown();
    // The first ledger's check, stopped on the gate, ends only now: its files may still be going.
    never.resolve();
    await eventually(() => Deno.remove(root, { recursive: true }).then(() => true));
  }
}

Deno.test("a stop while an accuser's first proof is checked and its second queued: both kept and settled in order after the restart, the worker slashed and the accuser charged and rewarded alike in both orders", async () => {
  const refutedFirst = await acrossAStop([refuted, confirmed]);
  assertSlashedAndCharged(refutedFirst, "refuted first");
  const confirmedFirst = await acrossAStop([confirmed, refuted]);
  assertSlashedAndCharged(confirmedFirst, "confirmed first");
  assert.deepEqual(refutedFirst, confirmedFirst, "the same ledger in both orders");
});
