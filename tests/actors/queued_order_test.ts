/**
 * An accuser's refuted and confirmed proofs of one receipt settle the same in either order where
 * the second waits behind the first (`actors/_queued_accusations.ts`, `actors/_fraud_proofs.ts`):
 * also when the first's check ends past the receipt's window (review s77 F4: the queued proof was
 * taken as of its retake and refused `challenge_window_closed`), and when the first is held for
 * the accuser's pledge (review s77 F3: the second was refused `repeated_accusation`). In each,
 * where the refuted proof came first the cheat was paid and the accuser charged; in the other
 * order the worker was slashed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import {
  accuser,
  ACCUSER_STAKE,
  assertSlashedAndCharged,
  cheat,
  confirmed,
  ending,
  id,
  outcomes,
  pledge,
  type QueueEnding,
  queueLedger,
  send,
  START,
} from "./_queued_accusation_fixture.ts";
import { falseProof } from "./_validator_fixture.ts";

const refuted = falseProof(cheat.receipt, accuser, 1);
const ORDERS = ["refuted first", "confirmed first"] as const;
type Order = typeof ORDERS[number];

/** The two proofs in `order`. */
function inOrder(order: Order) {
  return order === "refuted first" ? [refuted, confirmed] : [confirmed, refuted];
}

/** Both proofs sent a millisecond before the window closes; the first's check ends past it. */
async function acrossTheWindow(order: Order): Promise<QueueEnding & { answers: string[] }> {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: `queued-window-${order}` });
  const clock = { t: START };
  const gate = Promise.withResolvers<void>();
  try {
    const v = await queueLedger(system, "v/validator", `${root}/v`, clock, gate.promise);
    const record = await v.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id });
    clock.t = record.pendingUntil - 1;
    const handled = await send(v, inOrder(order));
    assert.equal(handled[0].queued, true, "the first is being checked");
    assert.equal(handled[1].awaitingAccusation, true, "the second waits behind it");
    clock.t = record.pendingUntil + 1;
    gate.resolve();
    const answers = await outcomes(v, handled);
    return { answers, ...(await ending(v, clock)) };
  } finally {
    gate.resolve();
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

/** Both proofs sent before the accuser's pledge reached the ledger, then the pledge. */
async function beforeThePledge(order: Order): Promise<QueueEnding & { answers: string[] }> {
  const root = await Deno.makeTempDir();
  const system = new ActorSystem({ name: `queued-pledge-${order}` });
  const clock = { t: START };
  try {
    const v = await queueLedger(system, "v/validator", `${root}/v`, clock, Promise.resolve(), {
      setup: "worker",
    });
    const handled = await send(v, inOrder(order));
    assert.equal(handled[0].awaitingPledge, true, "the first is held for the pledge");
    assert.equal(handled[1].awaitingAccusation, true, "the second waits behind it");
    await pledge(v, accuser, ACCUSER_STAKE);
    // The first was held (its waiter told so); the second settles with its own check.
    const answers = await outcomes(v, handled.slice(1));
    return { answers, ...(await ending(v, clock)) };
  } finally {
    await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("an accuser's refuted and confirmed proofs, both sent inside the window, the first checked past it: the worker slashed and the accuser charged and rewarded alike in both orders", async () => {
  const ends = [];
  for (const order of ORDERS) {
    const { answers, ...end } = await acrossTheWindow(order);
    assert.deepEqual(
      answers,
      order === "refuted first"
        ? ["checked:false", "checked:true"]
        : ["checked:true", "checked:false"],
    );
    assertSlashedAndCharged(end, order);
    ends.push(end);
  }
  assert.deepEqual(ends[0], ends[1], "the same ledger in both orders");
});

Deno.test("an accuser's refuted and confirmed proofs sent before its pledge reached the ledger: both held, then settled in order once it came: the worker slashed and the accuser charged and rewarded alike in both orders", async () => {
  const ends = [];
  for (const order of ORDERS) {
    const { answers, ...end } = await beforeThePledge(order);
    assert.deepEqual(answers, [`checked:${order === "refuted first"}`], "the second checked");
    assertSlashedAndCharged(end, order);
    ends.push(end);
  }
  assert.deepEqual(ends[0], ends[1], "the same ledger in both orders");
});
