/**
 * Training receipts in the ledger: every branch of their settlement, asserted on the balances it
 * leaves, and after reopening from disk; and a trainer's equivocation that later proofs still
 * reward.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Identity } from "../../protocols/identity.ts";
import { type Account, Ledger, type TrainingRoundTerms } from "../../proof/ledger.ts";
import { verifyLedger } from "../../proof/ledger_verify.ts";
import { type TrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import { assigned, copyDir, receipt, withLedgerDir } from "./_ledger_fixtures.ts";
import { receiptId } from "../../protocols/receipt.ts";
import { START, trainingReceipt } from "./_training_receipt.ts";
import { join } from "node:path";
import { INDEX_FILE } from "../../proof/ledger_index.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seeded, WINDOW as WORLD_WINDOW } from "./_convergence_world.ts";
import {
  PER_STEP as WORLD_PER_STEP,
  proofHash,
  roundTerms,
  trainingParties,
} from "./_training_convergence_world.ts";

const { t1, v1 } = trainingParties;

// Training receipts in the ledger: every branch of their settlement, asserted on the balances it
// leaves (the ledger outcome), not only on what the call returns; and the same balances after
// reopening from disk, whichever derived file is lost.

const owner = Identity.generate();
const trainer = Identity.generate();
const other = Identity.generate();
const validator = Identity.generate();
const validator2 = Identity.generate();
const WINDOW = 100;
const PER_STEP = 10;
const MULTIPLIER = 20;
const REWARD_SHARE = 0.5;
const PENALTY = 100;
const TRAINER_STAKE = 10_000;
const VALIDATOR_STAKE = 1_000;

/** Round `n`'s terms: H = 4 local steps from {@link START}. */
const terms = (round: number, steps = 4): TrainingRoundTerms => ({
  round,
  startModel: START,
  steps,
});

/** Credit of a receipt of `steps` steps, and the stake it locks. */
const credit = (steps: number) => steps * PER_STEP;
const locked = (steps: number) => credit(steps) * MULTIPLIER;

/** Balances as a plain triple, for one assertion per key. */
const acct = (balance: number, stake: number, lockedStake: number): Account => ({
  balance,
  stake,
  locked: lockedStake,
});

/** Open a ledger with the test's economics and clock; trainer and validators staked. */
async function openLedger(
  dir: string,
  clock: { t: number },
  checkpointEvery?: number,
): Promise<Ledger> {
  return await Ledger.open(dir, owner, {
    now: () => clock.t,
    economics: {
      challengeWindowMs: WINDOW,
      trainingCreditPerStep: PER_STEP,
      slashMultiplier: MULTIPLIER,
      validatorRewardShare: REWARD_SHARE,
      falseAccusationPenalty: PENALTY,
    },
    checkpointEvery,
  });
}

async function staked(dir: string, clock: { t: number }): Promise<Ledger> {
  const ledger = await openLedger(dir, clock);
  await ledger.deposit(trainer.publicKey, TRAINER_STAKE);
  await ledger.deposit(validator.publicKey, VALIDATOR_STAKE);
  await ledger.deposit(validator2.publicKey, VALIDATOR_STAKE);
  return ledger;
}

function settlement(r: TrainingReceipt, hash: string, by: Identity, confirmed: boolean) {
  return {
    receiptId: trainingReceiptId(r),
    fraudProofHash: hash,
    validator: by.publicKey,
    confirmed,
    reason: confirmed ? "step_mismatch" : "step_reproduced",
  };
}

Deno.test("ledger training: a receipt is pending with the trainer's stake locked, and paid steps × price after its window", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const r = trainingReceipt(trainer, 1, 3);
    const rec = await ledger.recordTrainingReceipt(r, terms(1));
    assert.equal(rec.kind, "training");
    assert.equal(rec.status, "pending");
    assert.equal(rec.receiptId, trainingReceiptId(r));
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE, locked(3)));
    clock.t += WINDOW - 1;
    assert.deepEqual(await ledger.finalizeDue(), []);
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE, locked(3)));
    clock.t += 1;
    assert.deepEqual(await ledger.finalizeDue(), [trainingReceiptId(r)]);
    assert.deepEqual(ledger.account(trainer.publicKey), acct(credit(3), TRAINER_STAKE, 0));
    assert.equal(ledger.receipt(trainingReceiptId(r))?.status, "final");
    assert.deepEqual(await ledger.finalizeDue(), []); // paid once
    assert.deepEqual(ledger.account(trainer.publicKey), acct(credit(3), TRAINER_STAKE, 0));
    await ledger.close();
  }));

Deno.test("ledger training: a receipt on gossiped terms alone locks the slash but earns nothing, until an audited outcome credits it; reopening keeps both", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const [gossiped, named] = [trainingReceipt(trainer, 1, 3), trainingReceipt(trainer, 2, 4)];
    await ledger.recordTrainingReceipt(gossiped, terms(1), { credited: false });
    await ledger.recordTrainingReceipt(named, terms(2), { credited: false });
    // The slash stands either way: a fraud proof can still take it.
    assert.deepEqual(
      ledger.account(trainer.publicKey),
      acct(0, TRAINER_STAKE, locked(3) + locked(4)),
    );
    assert.equal(await ledger.creditTrainingReceipt(trainingReceiptId(named)), true);
    assert.equal(await ledger.creditTrainingReceipt(trainingReceiptId(named)), false, "once");
    await ledger.close();
    const reopened = await openLedger(dir, clock);
    clock.t += WINDOW;
    await reopened.finalizeDue();
    assert.deepEqual(reopened.account(trainer.publicKey), acct(credit(4), TRAINER_STAKE, 0));
    await reopened.close();
  }));

Deno.test("ledger training: a challenged receipt is not paid past its window until cleared, then paid", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const r = trainingReceipt(trainer, 1, 4);
    const id = trainingReceiptId(r);
    await ledger.recordTrainingReceipt(r, terms(1));
    await ledger.openChallenge(id);
    assert.deepEqual(ledger.challenged(), [id]);
    clock.t += WINDOW * 3;
    assert.deepEqual(await ledger.finalizeDue(), []);
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE, locked(4)));
    await ledger.clearChallenge(id);
    assert.deepEqual(await ledger.finalizeDue(), [id]);
    assert.deepEqual(ledger.account(trainer.publicKey), acct(credit(4), TRAINER_STAKE, 0));
    await ledger.close();
  }));

Deno.test("ledger training: a confirmed fraud proof slashes the locked stake, rewards the validator its share, and pays no credit", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const r = trainingReceipt(trainer, 1, 4);
    await ledger.recordTrainingReceipt(r, terms(1));
    await ledger.settleTrainingFraud(settlement(r, "f1".repeat(32), validator, true));
    const slash = locked(4);
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE - slash, 0));
    assert.deepEqual(
      ledger.account(validator.publicKey),
      acct(slash * REWARD_SHARE, VALIDATOR_STAKE, 0),
    );
    assert.equal(ledger.receipt(trainingReceiptId(r))?.status, "fraud");
    assert.ok(ledger.convicted(trainer.publicKey));
    clock.t += WINDOW;
    assert.deepEqual(await ledger.finalizeDue(), []);
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE - slash, 0));
    await ledger.close();
  }));

Deno.test("ledger training: a confirmed word-only proof (no answer by the deadline) slashes the trainer and burns it all: nobody gains by claiming it", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const r = trainingReceipt(trainer, 1, 4);
    await ledger.recordTrainingReceipt(r, terms(1));
    await ledger.settleTrainingFraud({
      ...settlement(r, "f3".repeat(32), validator, true),
      reason: "opening_missing",
      wordOnly: true,
    });
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE - locked(4), 0));
    assert.deepEqual(ledger.account(validator.publicKey), acct(0, VALIDATOR_STAKE, 0));
    assert.equal(ledger.receipt(trainingReceiptId(r))?.status, "fraud");
    await ledger.close();
  }));

Deno.test("ledger training: a refuted accusation costs the validator the penalty; the receipt stays open and is paid", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const r = trainingReceipt(trainer, 1, 4);
    await ledger.recordTrainingReceipt(r, terms(1));
    await ledger.settleTrainingFraud(settlement(r, "f2".repeat(32), validator, false));
    assert.deepEqual(ledger.account(validator.publicKey), acct(0, VALIDATOR_STAKE - PENALTY, 0));
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE, locked(4)));
    assert.equal(ledger.receipt(trainingReceiptId(r))?.status, "pending");
    assert.ok(!ledger.convicted(trainer.publicKey));
    clock.t += WINDOW;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(trainer.publicKey), acct(credit(4), TRAINER_STAKE, 0));
    await ledger.close();
  }));

Deno.test("ledger training: an opening not served by the deadline burns the locked stake, rewarding no one", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const r = trainingReceipt(trainer, 1, 2);
    const id = trainingReceiptId(r);
    await ledger.recordTrainingReceipt(r, terms(1));
    await ledger.openChallenge(id);
    await ledger.settleFault(id, owner.publicKey, "opening_unavailable");
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE - locked(2), 0));
    assert.deepEqual(ledger.account(owner.publicKey), acct(0, 0, 0)); // burned, not paid
    assert.deepEqual(ledger.account(validator.publicKey), acct(0, VALIDATOR_STAKE, 0));
    assert.equal(ledger.receipt(id)?.status, "fraud");
    clock.t += WINDOW;
    assert.deepEqual(await ledger.finalizeDue(), []);
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE - locked(2), 0));
    // A fault only ends a challenge: an unchallenged receipt cannot be faulted.
    const r2 = trainingReceipt(trainer, 2, 2);
    await ledger.recordTrainingReceipt(r2, terms(2));
    await assert.rejects(() => ledger.settleFault(trainingReceiptId(r2), owner.publicKey, "x"), {
      code: "wrong_status",
    });
    await ledger.close();
  }));

Deno.test("ledger training: an undecidable challenge releases the stake and pays nothing", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const r = trainingReceipt(trainer, 1, 4);
    const id = trainingReceiptId(r);
    await ledger.recordTrainingReceipt(r, terms(1));
    await ledger.openChallenge(id);
    await ledger.leaveUnresolved(id, "checkpoint_unavailable");
    // Kept until the window ends: a peer's proof can still convict it (review s79, F1).
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE, locked(4)));
    assert.equal(ledger.receipt(id)?.status, "unpaid");
    assert.ok(!ledger.convicted(trainer.publicKey));
    clock.t += WINDOW;
    assert.deepEqual(await ledger.finalizeDue(), []);
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE, 0));
    await ledger.close();
  }));

Deno.test("ledger training: a fraud proof settled once is refused again, for any receipt and any validator", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    await ledger.deposit(other.publicKey, TRAINER_STAKE);
    const a = trainingReceipt(trainer, 1, 4);
    const b = trainingReceipt(other, 1, 4);
    await ledger.recordTrainingReceipt(a, terms(1));
    await ledger.recordTrainingReceipt(b, terms(1));
    const confirmed = "f3".repeat(32);
    await ledger.settleTrainingFraud(settlement(a, confirmed, validator, true));
    const after = {
      trainer: ledger.account(trainer.publicKey),
      other: ledger.account(other.publicKey),
      validator: ledger.account(validator.publicKey),
      validator2: ledger.account(validator2.publicKey),
    };
    await assert.rejects(
      () => ledger.settleTrainingFraud(settlement(b, confirmed, validator2, true)),
      { code: "already_settled" },
    );
    await assert.rejects(
      () => ledger.settleTrainingFraud(settlement(a, confirmed, validator2, true)),
      { code: "not_pending" },
    );
    // A refuted proof is settled too: replaying it cannot charge a validator twice.
    const refuted = "f4".repeat(32);
    await ledger.settleTrainingFraud(settlement(b, refuted, validator2, false));
    await assert.rejects(
      () => ledger.settleTrainingFraud(settlement(b, refuted, validator, false)),
      { code: "already_settled" },
    );
    assert.deepEqual(ledger.account(trainer.publicKey), after.trainer);
    assert.deepEqual(ledger.account(other.publicKey), acct(0, TRAINER_STAKE, locked(4)));
    assert.deepEqual(ledger.account(validator.publicKey), after.validator);
    assert.deepEqual(
      ledger.account(validator2.publicKey),
      acct(0, VALIDATOR_STAKE - PENALTY, 0), // the one refuted settlement, once
    );
    await ledger.close();
  }));

Deno.test("ledger training: a validator accuses a receipt once — a second proof of its own is refused and moves nothing", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const r = trainingReceipt(trainer, 1, 4);
    await ledger.recordTrainingReceipt(r, terms(1));
    await ledger.settleTrainingFraud(settlement(r, "f5".repeat(32), validator, false));
    assert.ok(ledger.hasAccused(validator.publicKey, trainingReceiptId(r)));
    await assert.rejects(
      () => ledger.settleTrainingFraud(settlement(r, "f6".repeat(32), validator, true)),
      { code: "repeated_accusation" },
    );
    assert.deepEqual(ledger.account(validator.publicKey), acct(0, VALIDATOR_STAKE - PENALTY, 0));
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE, locked(4)));
    // Another validator's confirmed proof still settles it.
    await ledger.settleTrainingFraud(settlement(r, "f7".repeat(32), validator2, true));
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE - locked(4), 0));
    assert.deepEqual(
      ledger.account(validator2.publicKey),
      acct(locked(4) * REWARD_SHARE, VALIDATOR_STAKE, 0),
    );
    await ledger.close();
  }));

Deno.test("ledger training: two different receipts of one trainer for one round slash it once, open or already paid; other rounds are not equivocation", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    // Open first receipt: slashed, unpaid, the second never recorded.
    const first = trainingReceipt(trainer, 1, 4, "d1");
    const second = trainingReceipt(trainer, 1, 4, "d2");
    await ledger.recordTrainingReceipt(first, terms(1));
    await assert.rejects(() => ledger.recordTrainingReceipt(second, terms(1)), {
      code: "equivocation",
    });
    let stake = TRAINER_STAKE - locked(4);
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, stake, 0));
    assert.equal(ledger.receipt(trainingReceiptId(first))?.status, "fraud");
    assert.equal(ledger.receipt(trainingReceiptId(second)), undefined);
    assert.ok(ledger.convicted(trainer.publicKey));
    // A third claim for the round is refused, not slashed again.
    await assert.rejects(
      () => ledger.recordTrainingReceipt(trainingReceipt(trainer, 1, 3, "d3"), terms(1)),
      { code: "round_already_recorded" },
    );
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, stake, 0));
    // The same receipt again is a duplicate, not equivocation.
    const paid = trainingReceipt(trainer, 2, 2, "d1");
    await ledger.recordTrainingReceipt(paid, terms(2));
    await assert.rejects(() => ledger.recordTrainingReceipt(paid, terms(2)), {
      code: "duplicate_receipt",
    });
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, stake, locked(2)));
    clock.t += WINDOW;
    assert.deepEqual(await ledger.finalizeDue(), [trainingReceiptId(paid)]);
    assert.deepEqual(ledger.account(trainer.publicKey), acct(credit(2), stake, 0));
    // Equivocation on a receipt already paid: the stake is cut as much, and its pay taken back
    // (review s79 vlate F2: as where the second receipt came inside the window).
    await assert.rejects(
      () => ledger.recordTrainingReceipt(trainingReceipt(trainer, 2, 2, "d4"), terms(2)),
      { code: "equivocation" },
    );
    stake -= locked(2);
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, stake, 0));
    await ledger.close();
  }));

Deno.test("ledger training: two different receipts of one trainer for one round arriving together are equivocation, slashed", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const first = trainingReceipt(trainer, 1, 4, "d1");
    const second = trainingReceipt(trainer, 1, 4, "d2");
    const results = await Promise.allSettled([
      ledger.recordTrainingReceipt(first, terms(1)),
      ledger.recordTrainingReceipt(second, terms(1)),
    ]);
    assert.deepEqual(
      results.map((r) => r.status === "fulfilled" ? "ok" : (r.reason as { code: string }).code),
      ["ok", "equivocation"],
    );
    assert.ok(ledger.convicted(trainer.publicKey));
    assert.equal(ledger.receipt(trainingReceiptId(first))?.status, "fraud");
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE - locked(4), 0));
    await ledger.close();
  }));

Deno.test("ledger training: a receipt claiming more steps than the round's H, or another round's terms, is refused and locks nothing", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const length = ledger.length;
    await assert.rejects(
      () => ledger.recordTrainingReceipt(trainingReceipt(trainer, 1, 5), terms(1, 4)),
      { code: "too_many_steps" },
    );
    await assert.rejects(
      () => ledger.recordTrainingReceipt(trainingReceipt(trainer, 2, 4), terms(1, 4)),
      { code: "round_mismatch" },
    );
    await assert.rejects(
      () =>
        ledger.recordTrainingReceipt(trainingReceipt(trainer, 1, 4), {
          ...terms(1),
          startModel: "bafkreianothermodel",
        }),
      { code: "round_mismatch" },
    );
    const forged = { ...trainingReceipt(trainer, 1, 4), steps: 2 }; // signature no longer holds
    await assert.rejects(() => ledger.recordTrainingReceipt(forged, terms(1)), {
      code: "receipt_rejected",
    });
    assert.equal(ledger.length, length); // nothing written
    assert.deepEqual(ledger.account(trainer.publicKey), acct(0, TRAINER_STAKE, 0));
    // Fewer steps than H is allowed, and paid for the steps done.
    await ledger.recordTrainingReceipt(trainingReceipt(trainer, 1, 3), terms(1, 4));
    clock.t += WINDOW;
    await ledger.finalizeDue();
    assert.deepEqual(ledger.account(trainer.publicKey), acct(credit(3), TRAINER_STAKE, 0));
    await ledger.close();
  }));

Deno.test("ledger training: a trainer without free stake to back the slash is refused, as a worker is", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    await assert.rejects(
      () => ledger.recordTrainingReceipt(trainingReceipt(other, 1, 1), terms(1)),
      { code: "insufficient_stake" },
    );
    assert.deepEqual(ledger.account(other.publicKey), acct(0, 0, 0));
    // Stake for one receipt, not two at once.
    await ledger.deposit(other.publicKey, locked(4) + locked(4) / 2);
    await ledger.recordTrainingReceipt(trainingReceipt(other, 1, 4), terms(1));
    await assert.rejects(
      () => ledger.recordTrainingReceipt(trainingReceipt(other, 2, 4), terms(2)),
      { code: "insufficient_stake" },
    );
    assert.deepEqual(ledger.account(other.publicKey), acct(0, locked(4) * 1.5, locked(4)));
    clock.t += WINDOW; // the first is paid, its lock released: the second fits now
    await ledger.finalizeDue();
    await ledger.recordTrainingReceipt(trainingReceipt(other, 2, 4), terms(2));
    assert.deepEqual(ledger.account(other.publicKey), acct(credit(4), locked(4) * 1.5, locked(4)));
    await ledger.close();
  }));

Deno.test("ledger training: inference fraud proofs do not settle training receipts, nor the reverse", () =>
  withLedgerDir(async (dir, clock) => {
    const ledger = await staked(dir, clock);
    const t = trainingReceipt(trainer, 1, 4);
    const inf = receipt(1, 5, trainer);
    await ledger.recordTrainingReceipt(t, terms(1));
    await ledger.recordReceipt(inf, assigned(inf));
    const before = ledger.account(trainer.publicKey);
    await assert.rejects(
      () => ledger.settleFraud(settlement(t, "f8".repeat(32), validator, true)),
      { code: "wrong_kind" },
    );
    await assert.rejects(
      () =>
        ledger.settleTrainingFraud({
          ...settlement(t, "f9".repeat(32), validator, true),
          receiptId: receiptId(inf),
        }),
      { code: "wrong_kind" },
    );
    assert.deepEqual(ledger.account(trainer.publicKey), before);
    assert.deepEqual(ledger.account(validator.publicKey), acct(0, VALIDATOR_STAKE, 0));
    assert.equal(ledger.receipt(receiptId(inf))?.kind, "inference");
    await ledger.close();
  }));

/** Every branch, with receipts opened before a checkpoint and settled after it. */
async function scenario(ledger: Ledger, clock: { t: number }): Promise<TrainingReceipt[]> {
  await ledger.deposit(trainer.publicKey, TRAINER_STAKE * 10);
  await ledger.deposit(validator.publicKey, VALIDATOR_STAKE);
  await ledger.deposit(validator2.publicKey, VALIDATOR_STAKE);
  const rs = Array.from({ length: 8 }, (_, i) => trainingReceipt(trainer, 10 + i, 1 + (i % 4)));
  for (const [i, r] of rs.entries()) await ledger.recordTrainingReceipt(r, terms(10 + i));
  const id = (i: number) => trainingReceiptId(rs[i]);
  await ledger.openChallenge(id(0));
  await ledger.openChallenge(id(1));
  await ledger.openChallenge(id(2));
  await ledger.openChallenge(id(7)); // left open across the restart
  await ledger.settleFault(id(1), owner.publicKey, "opening_unavailable");
  await ledger.leaveUnresolved(id(2), "checkpoint_unavailable");
  await ledger.settleTrainingFraud(settlement(rs[3], "e1".repeat(32), validator, true));
  await ledger.settleTrainingFraud(settlement(rs[4], "e2".repeat(32), validator2, false));
  await assert.rejects(
    () => ledger.recordTrainingReceipt(trainingReceipt(trainer, 15, 2, "d9"), terms(15)),
    { code: "equivocation" },
  );
  clock.t += WINDOW;
  await ledger.finalizeDue(); // rs[4] and rs[6] paid; rs[0] and rs[7] held by challenges
  await ledger.clearChallenge(id(0));
  clock.t += 1;
  return rs;
}

/** Everything the ledger answers about the keys and receipts of the scenario. */
function describe(ledger: Ledger, rs: TrainingReceipt[]): unknown {
  const keys = [owner, trainer, validator, validator2].map((i) => i.publicKey);
  return {
    head: ledger.head,
    length: ledger.length,
    accounts: keys.map((k) => ledger.account(k)),
    receipts: rs.map((r) => ledger.receipt(trainingReceiptId(r)) ?? null),
    convicted: ledger.convicted(trainer.publicKey),
    accused: rs.map((r) => ledger.hasAccused(validator2.publicKey, trainingReceiptId(r))),
    challenged: ledger.challenged(),
    workingSet: ledger.workingSet(),
  };
}

Deno.test("ledger training: reopening from disk reproduces every balance and receipt, from a checkpoint or from genesis, and the chain verifies", () =>
  withLedgerDir(async (dir, clock) => {
    const live = await openLedger(dir, clock, 5); // checkpoints cut through every transition
    const rs = await scenario(live, clock);
    // The outcome itself, key by key: the reopened ledgers must reproduce this.
    const steps = rs.map((r) => r.steps);
    const slashed = locked(steps[1]) + locked(steps[3]) + locked(steps[5]);
    const paid = credit(steps[4]) + credit(steps[6]);
    const stillLocked = locked(steps[0]) + locked(steps[7]);
    assert.deepEqual(
      live.account(trainer.publicKey),
      acct(paid, TRAINER_STAKE * 10 - slashed, stillLocked),
    );
    assert.deepEqual(
      live.account(validator.publicKey),
      acct(locked(steps[3]) * REWARD_SHARE, VALIDATOR_STAKE, 0),
    );
    assert.deepEqual(live.account(validator2.publicKey), acct(0, VALIDATOR_STAKE - PENALTY, 0));
    assert.deepEqual(
      rs.map((r) => live.receipt(trainingReceiptId(r))?.status),
      ["pending", "fraud", "unpaid", "fraud", "final", "fraud", "final", "challenged"],
    );
    const images = {
      asIs: await copyDir(dir),
      noCheckpoint: await copyDir(dir),
      noIndex: await copyDir(dir),
      neither: await copyDir(dir),
    };
    const drop = async (at: string, files: string[]) => {
      for (const f of files) await Deno.remove(`${at}/${f}`).catch(() => {});
    };
    const index = ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"];
    await drop(images.noCheckpoint, ["checkpoint.cbor"]);
    await drop(images.noIndex, index);
    await drop(images.neither, ["checkpoint.cbor", ...index]);
    try {
      const expected = describe(live, rs);
      const reopened: Ledger[] = [];
      for (const at of Object.values(images)) reopened.push(await openLedger(at, clock, 5));
      for (const ledger of reopened) assert.deepEqual(describe(ledger, rs), expected);
      // They go on alike: the cleared receipt comes due, the held one settles the same way.
      clock.t += WINDOW;
      for (const ledger of [live, ...reopened]) {
        assert.deepEqual(await ledger.finalizeDue(), [trainingReceiptId(rs[0])]);
        await ledger.settleFault(trainingReceiptId(rs[7]), owner.publicKey, "opening_unavailable");
      }
      const after = describe(live, rs);
      for (const ledger of reopened) assert.deepEqual(describe(ledger, rs), after);
      assert.deepEqual(
        live.account(trainer.publicKey),
        acct(paid + credit(steps[0]), TRAINER_STAKE * 10 - slashed - locked(steps[7]), 0),
      );
      for (const ledger of reopened) await ledger.close();
      await live.close();
      const report = await verifyLedger(dir, { owner: owner.publicKey });
      assert.ok(report.ok, JSON.stringify(report));
    } finally {
      for (const at of Object.values(images)) await Deno.remove(at, { recursive: true });
    }
  }));

Deno.test("ledger training: an index written before receipts had a kind is migrated, its receipts read as inference", () =>
  withLedgerDir(async (dir, clock) => {
    let ledger = await staked(dir, clock);
    const inf = receipt(2, 5, trainer);
    await ledger.recordReceipt(inf, assigned(inf));
    clock.t += WINDOW;
    await ledger.finalizeDue(); // closed: answered from the index from now on
    await ledger.close();
    const db = new DatabaseSync(`${dir}/index.sqlite`);
    db.exec("ALTER TABLE receipts DROP COLUMN kind"); // the schema before training receipts
    db.close();
    ledger = await openLedger(dir, clock);
    assert.equal(ledger.receipt(receiptId(inf))?.kind, "inference");
    const t = trainingReceipt(trainer, 1, 4);
    await ledger.recordTrainingReceipt(t, terms(1));
    assert.equal(ledger.receipt(trainingReceiptId(t))?.kind, "training");
    await ledger.close();
  }));

// A trainer's receipt slashed for equivocation while it still took fraud proofs keeps what was
// slashed for a confirmed proof coming later, as an inference receipt does
// (`LedgerIndex.unrewardedSlash`): the accuser earns its share whether the contradicting receipt
// came before the proof or after. An index built before (format 5) kept nothing for a training
// equivocation: it is rebuilt from the log once (format 6), and a log written before replays to the
// same balances.

/** t1's two contradicting receipts for round 9: 4 steps (lock 80) and 7 steps (lock 140). */
const small = trainingReceipt(t1, 9, 4, "d1");
const big = trainingReceipt(t1, 9, 7, "d2");
const options = (clock: { t: number }) => ({
  now: () => clock.t,
  economics: { challengeWindowMs: WORLD_WINDOW, trainingCreditPerStep: WORLD_PER_STEP },
});

/** t1 and v1 pledged; t1's smaller receipt recorded, then its larger answered `equivocation`. */
async function equivocated(ledger: Ledger): Promise<void> {
  await ledger.recordPledge(signStakePledge(t1, 10_000, 0));
  await ledger.recordPledge(signStakePledge(v1, 1_000, 0));
  await ledger.recordTrainingReceipt(small, roundTerms(9));
  await assert.rejects(
    () => ledger.recordTrainingReceipt(big, roundTerms(9)),
    (e: Error & { code?: string }) => e.code === "equivocation",
  );
}

/** v1's confirmed proof about t1's smaller (recorded) receipt. */
const proof = {
  receiptId: trainingReceiptId(small),
  fraudProofHash: proofHash(63),
  validator: v1.publicKey,
  confirmed: true,
  reason: "opening_mismatch",
};

/** The accounts of t1 and v1. */
const accounts = (ledger: Ledger) => ({
  t1: ledger.account(t1.publicKey),
  v1: ledger.account(v1.publicKey),
});

/** Slashed the larger lock once; half the proved (smaller) claim's lock to the accuser. */
const settled = {
  t1: { balance: 0, stake: 10_000 - 140, locked: 0 },
  v1: { balance: 40, stake: 1_000, locked: 0 },
};

Deno.test("a confirmed proof about a trainer's receipt slashed for equivocation before it pays its accuser its share, once", async () => {
  await withLedgerDir(async (dir, clock) => {
    const ledger = await Ledger.open(dir, seeded(630), options(clock));
    await equivocated(ledger);
    assert.deepEqual(accounts(ledger), {
      t1: { balance: 0, stake: 10_000 - 140, locked: 0 },
      v1: { balance: 0, stake: 1_000, locked: 0 },
    });
    const entry = await ledger.settleTrainingFraud(proof);
    assert.equal(entry.kind, "fraud");
    assert.equal(ledger.receipt(trainingReceiptId(small))?.status, "fraud");
    assert.deepEqual(accounts(ledger), settled);
    // A second accuser's proof finds the slash rewarded already: nothing more to earn.
    await assert.rejects(
      () =>
        ledger.settleTrainingFraud({
          ...proof,
          fraudProofHash: proofHash(64),
          validator: trainingParties.v2.publicKey,
        }),
      (e: Error & { code?: string }) => e.code === "not_pending",
    );
    assert.deepEqual(accounts(ledger), settled);
    await ledger.close();
  });
});

Deno.test("an index of format 5 (no unrewarded slash for a training equivocation) is rebuilt from the log", async () => {
  await withLedgerDir(async (dir, clock) => {
    let ledger = await Ledger.open(dir, seeded(631), options(clock));
    await equivocated(ledger);
    await ledger.close();
    // As an index of format 5 would have it: no unrewarded slash for the training equivocation.
    const db = new DatabaseSync(join(dir, INDEX_FILE));
    db.exec("DELETE FROM unrewarded; UPDATE meta SET v = 5 WHERE k = 'format';");
    db.close();
    ledger = await Ledger.open(dir, seeded(631), options(clock));
    await ledger.settleTrainingFraud(proof);
    assert.deepEqual(accounts(ledger), settled);
    await ledger.close();
  });
});

Deno.test("a log written before (the proof settled first) replays to the same balances under format 6", async () => {
  await withLedgerDir(async (dir, clock) => {
    // The proof first, then the contradicting receipt: the order format 5 settled too.
    let ledger = await Ledger.open(dir, seeded(632), options(clock));
    await ledger.recordPledge(signStakePledge(t1, 10_000, 0));
    await ledger.recordPledge(signStakePledge(v1, 1_000, 0));
    await ledger.recordTrainingReceipt(small, roundTerms(9));
    await ledger.settleTrainingFraud(proof);
    await assert.rejects(
      () => ledger.recordTrainingReceipt(big, roundTerms(9)),
      (e: Error & { code?: string }) => e.code === "equivocation",
    );
    const live = accounts(ledger);
    assert.deepEqual(live, settled);
    await ledger.close();
    const db = new DatabaseSync(join(dir, INDEX_FILE));
    db.exec("UPDATE meta SET v = 5 WHERE k = 'format';");
    db.close();
    ledger = await Ledger.open(dir, seeded(632), options(clock));
    assert.deepEqual(accounts(ledger), live);
    assert.equal(ledger.receipt(trainingReceiptId(small))?.status, "fraud");
    await ledger.close();
  });
});
