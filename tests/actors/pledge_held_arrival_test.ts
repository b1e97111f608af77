/**
 * A fraud proof held for its accuser's pledge (`actors/_pledge_held_proofs.ts`) is timed from its
 * own arrival, not the pledge's, when the pledge comes within `MAX_PLEDGE_WAIT_MS` of it, and its
 * receipt is not paid meanwhile. Review s78: taken as of the pledge, a confirmed proof that came
 * inside its receipt's window and whose pledge came after the window was refused as late (the
 * finalize tick paid the receipt, or the ledger refused the settlement `challenge_window_closed`)
 * and the cheat was paid here, slashed in every ledger that had the pledge first.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage, ValidatorStats } from "../../actors/validator_actor.ts";
import { MAX_PLEDGE_WAIT_MS } from "../../actors/_pledge_held_proofs.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  accuser,
  ACCUSER_STAKE,
  confirmed,
  ending,
  id,
  pledge,
  type QueueEnding,
  queueLedger,
  send,
  START,
  WORKER_STAKE,
} from "./_queued_accusation_fixture.ts";

/** When the proof comes and when its accuser's pledge does, relative to the window's end. */
interface Timing {
  /** The proof, ms after the receipt's `pendingUntil` (negative: inside the window). */
  proofAt: number;
  /** The pledge, ms after the receipt's `pendingUntil`. */
  pledgeAt: number;
  /** Stop and restart the validator on its ledger between the proof and the pledge. */
  restart?: boolean;
}

/**
 * The accuser has no pledge here: its confirmed proof comes and is held for it; the clock moves
 * to the pledge's time and a finalize tick runs (as the timer would); then the pledge comes.
 */
async function pledgeLate(timing: Timing): Promise<QueueEnding> {
  const root = await Deno.makeTempDir();
  const identity = Identity.generate();
  const clock = { t: START };
  const systems = [new ActorSystem({ name: "pledge-held-arrival" })];
  try {
    let v = await queueLedger(systems[0], "v/validator", `${root}/v`, clock, Promise.resolve(), {
      identity,
      setup: "worker",
    });
    const { pendingUntil } = await v.ask<ReceiptRecord>({ type: "receipt_status", receiptId: id });
    clock.t = pendingUntil + timing.proofAt;
    const [held] = await send(v, [confirmed]);
    assert.equal(held.awaitingPledge, true, "held for the accuser's pledge");
    if (timing.restart) {
      await v.ask({ type: "finalize" });
      await systems[0].shutdown();
      systems.push(new ActorSystem({ name: "pledge-held-arrival-after" }));
      v = await queueLedger(systems[1], "v/validator", `${root}/v`, clock, Promise.resolve(), {
        identity,
        setup: "none",
      });
    }
    clock.t = pendingUntil + timing.pledgeAt;
    await v.ask({ type: "finalize" });
    await pledge(v, accuser, ACCUSER_STAKE);
    await settled(v);
    return await ending(v, clock);
  } finally {
    for (const system of systems) await system.shutdown();
    await Deno.remove(root, { recursive: true });
  }
}

/** Every check taken has reported. */
async function settled(v: ActorRef<ValidatorMessage>): Promise<void> {
  await eventually(async () =>
    (await v.ask<ValidatorStats>({ type: "stats" })).fraudProofsChecking === 0
  );
}

/** The worker slashed and unpaid, the accuser rewarded and charged nothing. */
function assertConvicted(end: QueueEnding, label: string): void {
  assert.equal(end.status, "fraud", `${label}: the worker convicted`);
  assert.equal(end.worker.balance, 0, `${label}: the worker unpaid`);
  assert.ok(end.worker.stake < WORKER_STAKE, `${label}: the worker slashed`);
  assert.ok(end.accuser.balance > 0, `${label}: the accuser rewarded`);
  assert.equal(end.accuser.stake, ACCUSER_STAKE, `${label}: the accuser charged nothing`);
}

/** The proof refused as late: the worker paid, its stake whole, the accuser untouched. */
function assertPaid(end: QueueEnding, label: string): void {
  assert.equal(end.status, "final", `${label}: the receipt final`);
  assert.ok(end.worker.balance > 0, `${label}: the worker paid`);
  assert.equal(end.worker.stake, WORKER_STAKE, `${label}: the worker not slashed`);
  assert.deepEqual(end.accuser, { balance: 0, stake: ACCUSER_STAKE }, `${label}: accuser`);
}

Deno.test("a confirmed proof that came inside its receipt's window, its accuser's pledge after the window and a finalize tick between: the receipt not paid meanwhile, the worker slashed and the accuser rewarded", async () => {
  assertConvicted(await pledgeLate({ proofAt: -1_000, pledgeAt: 5_000 }), "pledge 5 s late");
  // The longest wait still timed from the proof: the pledge exactly MAX_PLEDGE_WAIT_MS after it.
  const longest = await pledgeLate({ proofAt: -1_000, pledgeAt: MAX_PLEDGE_WAIT_MS - 1_000 });
  assertConvicted(longest, "pledge at the bound");
});

Deno.test("a proof kept across a stop while it waits for its pledge is still timed from its arrival: the pledge after the window convicts the worker", async () => {
  const end = await pledgeLate({ proofAt: -1_000, pledgeAt: 5_000, restart: true });
  assertConvicted(end, "across a stop");
});

Deno.test("a pledge more than MAX_PLEDGE_WAIT_MS after the proof times it from the pledge, and a proof that came after the window is refused whatever its pledge: the worker paid in both", async () => {
  const bound = await pledgeLate({ proofAt: -1_000, pledgeAt: MAX_PLEDGE_WAIT_MS });
  assertPaid(bound, "pledge past the bound");
  assertPaid(await pledgeLate({ proofAt: 1, pledgeAt: 2 }), "proof after the window");
});
