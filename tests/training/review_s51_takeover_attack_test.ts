/**
 * Stop 51 review: attacks on the takeover of a peer's `opening_missing` claim
 * (`training/_claim_takeovers.ts`, `TrainingChallengeRun.takeover`). Each test drives a ledger and
 * a training validator on one test clock (as `review_s51_claim_takeover_test.ts`, whose node
 * stand-in is copied here) and asserts who ends up paid or slashed.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Connection } from "../../protocols/connection.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { ChallengeMismatchError, openChallengedSteps } from "../../training/step_opening.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { randomDeltaTrainer } from "./_pot_lazy_trainers.ts";
import {
  claim,
  claimNode,
  H,
  split,
  STAKE,
  start,
  trainedEngine,
  TRAINER_STAKE,
  trainerLink,
} from "./_claim_node.ts";

/**
 * A lazy trainer: it signs a receipt over states it never trained (a random delta, states
 * interpolated to it: `randomDeltaTrainer`), keeps those states, and answers every challenge
 * consistently with what it committed — its openings are signed, openable and open the receipt's
 * commitments; only a re-run of a step shows they are not training.
 */
function lazyTrainer(startModel: string) {
  const identity = Identity.generate();
  const { report, trace } = randomDeltaTrainer({
    arch: TEST_ARCH,
    startModel,
    start,
    shard: split.shards[0],
    steps: H,
    dataSeed: 11,
    hyper: TEST_HYPER,
    identity,
  });
  const { connection, challenges } = trainerLink(
    identity,
    (challenge) => openChallengedSteps(trace, challenge),
  );
  return { identity, receipt: report.receipt, connection, challenges };
}

/**
 * An honest trainer that trained one receipt and, as `trainer_service.ts` does, answers one
 * challenge per validator and receipt and refuses a second.
 */
async function honestTrainer(startModel: string) {
  const { identity, engine, receipts: [{ receipt, delta }] } = await trainedEngine(startModel, 1);
  const answered = new Set<string>();
  const { connection, challenges } = trainerLink(identity, (challenge) => {
    const key = `${toHex(challenge.validator)}/${challenge.receiptId}`;
    if (answered.has(key)) {
      throw new ChallengeMismatchError("this validator has challenged this receipt already");
    }
    answered.add(key);
    return engine.open(challenge);
  });
  return { identity, receipt, delta, connection, challenges };
}

/** A trainer with `rounds` receipts (one per round) that refuses every challenge: it withholds. */
async function withholdingTrainer(startModel: string, rounds: number) {
  const { identity, receipts } = await trainedEngine(startModel, rounds, { steps: 1 });
  const { connection, challenges } = trainerLink(identity, () => {
    throw new ChallengeMismatchError("withheld");
  });
  return { identity, receipts: receipts.map((r) => r.receipt), connection, challenges };
}

Deno.test("review s51 attack: a lazy trainer that withheld from its challenger cannot serve a takeover openings that only open its commitments — the takeover re-runs them, and the trainer is slashed here instead of paid", async () => {
  let link: Connection | undefined;
  const n = await claimNode("lazy", () => link);
  try {
    const t = lazyTrainer(n.model.cid);
    link = t.connection;
    // The honest claimant: the lazy trainer refused its challenge (a re-run would have convicted
    // it everywhere; a refusal, since stop 51, slashes it in that claimant's ledger only).
    const claimant = Identity.generate();
    await n.pledge(claimant);
    await n.credit(t.receipt);
    const record = await n.record(trainingReceiptId(t.receipt));
    assert.ok(record.credit > 0 && record.locked > 0, "credited and locked: paid when final");
    assert.deepEqual(await n.claim(claim(t.receipt, claimant)), { queued: true });
    // The takeover ends: the trainer served this ledger openings that open its commitments.
    await eventually(async () => {
      const s = await n.stats();
      return s.falseClaims + s.frauds > 0;
    }, "the takeover to end");
    assert.equal(t.challenges.length, 1, "this validator asked the trainer once");
    await eventually(
      async () =>
        (await n.stats()).falseClaims > 0 ||
        (await n.record(record.receiptId)).status === "fraud",
      "the takeover's verdict to settle",
    );
    await n.closeWindow();
    assert.equal(
      (await n.record(record.receiptId)).status,
      "fraud",
      "the trainer's fake steps convict it here",
    );
    const stats = await n.stats();
    assert.equal(stats.falseClaims, 0, "the honest claimant's claim is not held against it");
    const trainer = await n.account(t.identity.publicKey);
    assert.equal(trainer.balance, 0, "not paid for steps it never trained");
    assert.ok(trainer.stake < TRAINER_STAKE, "slashed");
    assert.deepEqual(await n.account(claimant.publicKey), { balance: 0, stake: STAKE, locked: 0 });
  } finally {
    await n.close();
  }
});

Deno.test("review s51 attack: a receipt this validator challenged before it was recorded here is remembered for its whole window here: a claim near that window's end opens no second challenge, and the honest trainer is paid", async () => {
  let link: Connection | undefined;
  const n = await claimNode("late-record", () => link);
  try {
    const t = await honestTrainer(n.model.cid);
    link = t.connection;
    // This node's coin challenges the receipt (an audited outcome's `afterRound`) before the
    // receipt is recorded in its ledger (its gossip is late, or its stake came after): passed.
    const { result } = await n.training().ask<{ result: Promise<{ ok?: boolean }> }>({
      type: "challenge",
      report: { receipt: t.receipt, delta: t.delta },
      connection: t.connection,
      terms: { round: t.receipt.round, startModel: t.receipt.startModel, steps: t.receipt.steps },
      arch: TEST_ARCH,
      shardSize: t.receipt.shardSize,
      shardRoot: t.receipt.shardRoot,
    });
    assert.equal((await result).ok, true);
    // Recorded and credited here two minutes later: its window here runs two minutes longer
    // than a window from the challenge.
    n.advance(2 * 60_000);
    const claimant = Identity.generate();
    await n.pledge(claimant);
    await n.credit(t.receipt);
    const record = await n.record(trainingReceiptId(t.receipt));
    assert.ok(record.credit > 0 && record.locked > 0);
    // A minute before the window closes here, a staked key claims the trainer withheld.
    n.advance(DEFAULT_ECONOMICS.challengeWindowMs - 60_000);
    assert.deepEqual(await n.claim(claim(t.receipt, claimant)), { queued: true });
    await eventually(async () => (await n.stats()).confirmed >= 1, "the claim's check");
    // The claim was considered in the validator's mailbox before `confirmed` counted it; a
    // takeover would have asked the ledger to hold the receipt before that (asks are posted at
    // once), so the ledger shows it `challenged` until the takeover ends.
    await eventually(
      async () => (await n.record(record.receiptId)).status !== "challenged",
      "a takeover, if one opened, to end",
    );
    await n.closeWindow();
    assert.equal((await n.record(record.receiptId)).status, "final");
    assert.deepEqual(await n.account(t.identity.publicKey), {
      balance: record.credit,
      stake: TRAINER_STAKE,
      locked: 0,
    });
    assert.equal(t.challenges.length, 1, "the trainer is challenged once by this validator");
  } finally {
    await n.close();
  }
});

Deno.test("review s51 attack: claims about receipts whose window closed here (not finalized yet) cost the ledger no takeover budget, so a true claim after them is still taken over and the withholding trainer slashed", async () => {
  let link: Connection | undefined;
  const n = await claimNode("drain", () => link);
  try {
    const t = await withholdingTrainer(n.model.cid, 9);
    link = t.connection;
    const drainers = [Identity.generate(), Identity.generate()];
    const honest = Identity.generate();
    for (const key of [...drainers, honest]) await n.pledge(key);
    // Eight receipts whose window here has closed, the ledger not finalized yet (its tick is
    // every 10 s in a node: a receipt stays `pending` that long past its window).
    const stale = t.receipts.slice(0, 8);
    for (const receipt of stale) await n.credit(receipt);
    n.advance(DEFAULT_ECONOMICS.challengeWindowMs + 1);
    // The ninth, fresh: the trainer withheld its openings from the honest claimant.
    const withheld = t.receipts[8];
    await n.credit(withheld);
    const record = await n.record(trainingReceiptId(withheld));
    assert.ok(record.credit > 0 && record.locked > 0);
    // Two keys (four open takeovers each) claim the stale receipts: a takeover of one cannot
    // hold it (its window closed) and is cleared without asking the trainer, and is nobody's
    // false claim.
    for (const [i, receipt] of stale.entries()) {
      assert.deepEqual(await n.claim(claim(receipt, drainers[i % 2])), { queued: true });
    }
    await eventually(async () => (await n.stats()).confirmed === 8, "the stale claims' checks");
    assert.equal(t.challenges.length, 0, "no stale receipt's trainer was asked");
    // The honest claim about the withheld receipt.
    await n.claim(claim(withheld, honest));
    await eventually(async () => (await n.stats()).confirmed === 9, "the true claim's check");
    await eventually(
      async () => (await n.record(record.receiptId)).status !== "challenged",
      "a takeover, if one opened, to end",
    );
    await n.closeWindow();
    assert.equal(
      (await n.record(record.receiptId)).status,
      "fraud",
      "the withholding trainer convicted here on this ledger's own takeover",
    );
    let staleCredit = 0;
    for (const receipt of stale) {
      const r = await n.record(trainingReceiptId(receipt));
      assert.equal(r.status, "final");
      staleCredit += r.credit;
    }
    assert.deepEqual(await n.account(t.identity.publicKey), {
      balance: staleCredit, // the stale receipts only: not paid for the one it withheld
      stake: t.receipts.length * TRAINER_STAKE - record.locked, // deposited with each; slashed
      locked: 0,
    });
    assert.equal(t.challenges.length, 1, "this ledger asked the trainer itself");
  } finally {
    await n.close();
  }
});
