/**
 * Review s64: the training receipts the TrainingValidator holds for their trainer's stake
 * (`training/_stake_held_training_receipts.ts`, stop 63) are held for the challenge window the
 * node's ledger runs with (it was the default economics' whatever the ledger's), across a restart
 * of the validator (they were memory only: a receipt that came before its trainer's pledge and a
 * restart was never recorded here), and a credit (an audited round's, or this node's coordinator's)
 * refused before its trainer's pledge is held as well (it was final: the honest trainer every
 * ledger that had its pledge first paid went unpaid here). Each checks the ledger outcome.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { STAKE_HELD_TRAINING_RECEIPTS_FILE } from "../../training/_kept_stake_held_training_receipts.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "./_loss_fraud.ts";
import { placeholderReceipt } from "./_placeholder_receipt.ts";
import { START, trainingReceipt } from "../proof/_training_receipt.ts";
import {
  MAX_STAKE_HELD_CREDITS,
  MAX_STAKE_HELD_TRAINING_RECEIPTS,
  StakeHeldTrainingReceipts,
} from "../../training/_stake_held_training_receipts.ts";
import { inStakeHoldLedger, type StakeHoldWorld } from "./_stake_hold_ledger.ts";

/** The accuser's pledge: well above the false-accusation penalty. */
const ACCUSER_PLEDGE = 10_000;
/** Where the gossip comes from. */
const PEER = "ee".repeat(32);
/** The default challenge window, ms. */
const DEFAULT_WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;

/** Where `receipt` stands in `world`'s ledger (undefined: not recorded). */
async function statusOf(
  world: StakeHoldWorld,
  receipt: TrainingReceipt,
): Promise<string | undefined> {
  const receiptId = trainingReceiptId(receipt);
  return (await world.ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId }))
    ?.status;
}

/**
 * In a world whose ledger runs a challenge window of `window` ms: a peer's receipt before its
 * trainer's stake, the clock moved on by `after` ms, then the trainer's stake and a recheck.
 * @returns Where the receipt stands then.
 */
async function heldFor(window: number, after: number): Promise<string | undefined> {
  let status: string | undefined;
  await inStakeHoldLedger(`window-${window}-${after}`, async (world) => {
    const trainer = Identity.generate();
    const receipt = placeholderReceipt(0, world.model, trainer);
    const terms = { round: 0, startModel: world.model, steps: 1 };
    const answer = await world.training.ask<{ refusal?: string }>({
      type: "receipt",
      body: { receipt, terms },
      origin: PEER,
    });
    assert.equal(answer.refusal, "insufficient_stake");
    world.tick(after);
    await world.ledger.ask({ type: "deposit", key: trainer.publicKey, amount: LAZY_TRAINER_STAKE });
    await world.training.ask({ type: "stakes_again" });
    status = await statusOf(world, receipt);
  }, { economics: { challengeWindowMs: window } });
  return status;
}

Deno.test("review s64: a receipt held for its trainer's stake is held for the challenge window the ledger runs with, no longer", async () => {
  for (const window of [DEFAULT_WINDOW / 10, DEFAULT_WINDOW * 2]) {
    // Before: held for the default window whatever the ledger's (pending at 61 s of a 60 s
    // window; forgotten at 20 min of a 20 min one).
    assert.equal(await heldFor(window, window), "pending", `held until ${window} ms`);
    assert.equal(await heldFor(window, window + 1), undefined, `forgotten after ${window} ms`);
  }
});

Deno.test("review s64: a lazy receipt held for its trainer's stake survives a restart of the validator: recorded once the trainer stakes, the later proof slashes it, its accuser paid", async () => {
  await inStakeHoldLedger("restart", async (world) => {
    const { ledger, model } = world;
    const trainer = Identity.generate();
    const accuser = Identity.generate();
    const proof = lossFraud(model, accuser, 8, trainer);
    const pledge = signStakePledge(accuser, ACCUSER_PLEDGE, 1);
    assert.equal(await ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    const terms = { round: 0, startModel: model, steps: proof.receipt.steps };
    const answer = await world.training.ask<{ refusal?: string }>({
      type: "receipt",
      body: { receipt: proof.receipt, terms },
      origin: PEER,
    });
    assert.equal(answer.refusal, "insufficient_stake", "held for its trainer's stake");
    const training = await world.restart();
    await ledger.ask({ type: "deposit", key: trainer.publicKey, amount: LAZY_TRAINER_STAKE });
    await training.ask({ type: "stakes_again" });
    // Before: undefined (the hold was memory only).
    assert.equal(await statusOf(world, proof.receipt), "pending", "recorded after the restart");
    await training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: PEER });
    await eventually(async () => (await statusOf(world, proof.receipt)) === "fraud", "the proof")
      .catch(() => undefined);
    world.tick(DEFAULT_WINDOW + 1);
    await ledger.ask({ type: "finalize" });
    const trainerEnd = await ledger.ask<Account>({ type: "account", key: trainer.publicKey });
    const accuserEnd = await ledger.ask<Account>({ type: "account", key: accuser.publicKey });
    assert.equal(await statusOf(world, proof.receipt), "fraud", "the lazy receipt convicted");
    assert.ok(trainerEnd.stake < LAZY_TRAINER_STAKE, `its stake cut: ${trainerEnd.stake}`);
    assert.equal(trainerEnd.balance, 0, "and it is not paid");
    assert.ok(accuserEnd.balance > 0, `its accuser rewarded: ${accuserEnd.balance}`);
  }, { kept: true });
});

/**
 * A trainer's receipt before its stake, the validator restarted when `restart`, the stake and a
 * recheck, then the trainer's contradicting receipt for the same round.
 * @returns The trainer's account once the window closed.
 */
async function contradictedAfter(restart: boolean): Promise<Account> {
  let account: Account | undefined;
  await inStakeHoldLedger(`contradicted-${restart}`, async (world) => {
    const trainer = Identity.generate();
    const first = placeholderReceipt(0, world.model, trainer);
    const second = lossFraud(world.model, Identity.generate(), 8, trainer).receipt;
    const terms = { round: 0, startModel: world.model, steps: 1 };
    await world.training.ask({ type: "receipt", body: { receipt: first, terms }, origin: PEER });
    const training = restart ? await world.restart() : world.training;
    await world.ledger.ask({ type: "deposit", key: trainer.publicKey, amount: LAZY_TRAINER_STAKE });
    await training.ask({ type: "stakes_again" });
    const answer = await training.ask<{ refusal?: string }>({
      type: "receipt",
      body: { receipt: second, terms },
      origin: PEER,
    });
    assert.equal(answer.refusal, "equivocation", "its second receipt for the round convicts it");
    world.tick(DEFAULT_WINDOW + 1);
    await world.ledger.ask({ type: "finalize" });
    account = await world.ledger.ask<Account>({ type: "account", key: trainer.publicKey });
  }, { kept: restart });
  return account!;
}

Deno.test("review s64: a trainer's receipt held for its stake across a restart convicts its contradicting receipt for the round, as without the restart", async () => {
  const unbroken = await contradictedAfter(false);
  assert.ok(unbroken.stake < LAZY_TRAINER_STAKE, `slashed: ${unbroken.stake}`);
  // Before: the first receipt forgotten at the restart, the second recorded (no equivocation).
  assert.deepEqual(await contradictedAfter(true), unbroken);
});

Deno.test("review s64: a receipt held for its trainer's stake, read back after its window, is forgotten at the start", async () => {
  await inStakeHoldLedger("restart-expired", async (world) => {
    const trainer = Identity.generate();
    const receipt = placeholderReceipt(0, world.model, trainer);
    const terms = { round: 0, startModel: world.model, steps: 1 };
    await world.training.ask({ type: "receipt", body: { receipt, terms }, origin: PEER });
    const file = join(world.ledgerDir, STAKE_HELD_TRAINING_RECEIPTS_FILE);
    // Kept on disk at the stop; the window passes while the validator is stopped.
    const training = await world.restart(() => {
      assert.ok(Deno.statSync(file).isFile, "kept at the stop");
      world.tick(DEFAULT_WINDOW + 1);
    });
    assert.throws(() => Deno.statSync(file), Deno.errors.NotFound, "forgotten at the start");
    await world.ledger.ask({ type: "deposit", key: trainer.publicKey, amount: LAZY_TRAINER_STAKE });
    await training.ask({ type: "stakes_again" });
    assert.equal(await statusOf(world, receipt), undefined, "not recorded a window later");
  }, { kept: true });
});

/** One piece of evidence about an honest trainer's receipt reaching a node. */
type CreditArrival = "credit" | "receipt" | "trainer stake";

/** What a ledger made of an honest receipt's credit, once its window closed. */
interface CreditOutcome {
  status: string | undefined;
  trainer: Account;
}

/**
 * A fresh ledger and training validator take an honest trainer's credit (an audited round's),
 * maybe its receipt from gossip, and its stake, in `order`; a recheck; then the window closes.
 * The validator restarts after the first arrival when `restart`.
 */
async function creditIn(order: readonly CreditArrival[], restart = false): Promise<CreditOutcome> {
  const trainer = Identity.generate();
  let outcome: CreditOutcome | undefined;
  const name = `credit-${order.join("-").replaceAll(" ", "_")}-${restart}`;
  await inStakeHoldLedger(name, async (world) => {
    const receipt = placeholderReceipt(0, world.model, trainer);
    const terms = { round: 0, startModel: world.model, steps: 1 };
    let training = world.training;
    for (const [i, arrival] of order.entries()) {
      if (arrival === "credit") {
        await training.ask({ type: "credit", receipts: [receipt], terms });
      } else if (arrival === "receipt") {
        await training.ask({ type: "receipt", body: { receipt, terms }, origin: PEER });
      } else {
        await world.ledger.ask({ type: "deposit", key: trainer.publicKey, amount: 1_000_000 });
      }
      if (restart && i === 0) training = await world.restart();
    }
    await training.ask({ type: "stakes_again" });
    world.tick(DEFAULT_WINDOW + 1);
    await world.ledger.ask({ type: "finalize" });
    outcome = {
      status: await statusOf(world, receipt),
      trainer: await world.ledger.ask<Account>({ type: "account", key: trainer.publicKey }),
    };
  }, { kept: restart });
  return outcome!;
}

Deno.test("review s64: an honest trainer's credit that came before its stake is paid once the stake comes, as where the stake came first, in every order and across a restart", async () => {
  const stakeFirst = await creditIn(["trainer stake", "credit"]);
  assert.ok(stakeFirst.trainer.balance > 0, `the stake first: paid ${stakeFirst.trainer.balance}`);
  for (
    const order of [
      ["credit", "trainer stake"],
      ["receipt", "credit", "trainer stake"],
      ["credit", "receipt", "trainer stake"],
    ] as const
  ) {
    // Before: the credit refused for good: status undefined, or pending uncredited (balance 0).
    assert.deepEqual(await creditIn(order), stakeFirst, order.join(" → "));
  }
  assert.deepEqual(await creditIn(["credit", "trainer stake"], true), stakeFirst, "restarted");
});

Deno.test("review s64: credits held for their trainer's stake have places of their own: a full hold of peers' receipts does not shut them out, a peer's receipt credited moves there since it was first held, past their bound the oldest credit goes", () => {
  const body = (trainer: Identity) => ({
    receipt: trainingReceipt(trainer, 0, 2),
    terms: { round: 0, startModel: START, steps: 2 },
  });
  const held = new StakeHeldTrainingReceipts();
  let origin = 0;
  while (held.hold({ body: body(Identity.generate()), origin: `p${origin++ % 8}`, since: 1 })) {
    assert.ok(held.size <= MAX_STAKE_HELD_TRAINING_RECEIPTS);
  }
  const [peer] = held.all();
  // Before: a credit was a peer's receipt to the hold (`local` its relaying peer), shut out.
  assert.ok(held.hold({ body: peer.body, origin: "local", since: 5, credited: true }));
  const moved = held.all().find((h) => h.body === peer.body);
  assert.deepEqual(moved, { body: peer.body, origin: "local", since: 1, credited: true });
  assert.equal(held.size, MAX_STAKE_HELD_TRAINING_RECEIPTS, "it left the peers' places");
  for (let i = 0; i < MAX_STAKE_HELD_CREDITS; i++) {
    const credit = { body: body(Identity.generate()), origin: "local", since: 10 + i };
    assert.ok(held.hold({ ...credit, credited: true }), "a credit is held");
  }
  const credits = held.all().filter((h) => h.credited);
  assert.equal(credits.length, MAX_STAKE_HELD_CREDITS, "at most MAX_STAKE_HELD_CREDITS");
  assert.ok(!credits.some((h) => h.body === peer.body), "the oldest credit went");
  assert.equal(held.size, MAX_STAKE_HELD_TRAINING_RECEIPTS - 1 + MAX_STAKE_HELD_CREDITS);
  // A peer's copy of a credited receipt, or one a proof carried, leaves it credited.
  const [credit] = credits;
  assert.ok(held.hold({ body: credit.body, origin: "p0", since: 99 }));
  assert.ok(held.hold({ body: credit.body, origin: "p0", since: 99, accuser: "aa" }));
  assert.deepEqual(held.all().filter((h) => h.body === credit.body), [credit]);
});
