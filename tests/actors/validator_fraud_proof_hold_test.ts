/**
 * Receipts held out of the finalize tick while a peer's fraud proof about them waits or is checked:
 * held only for a proof that can still settle them (taken inside the window), settled with the time
 * the proof was taken (inference and training proofs, across a restart), paid once a hold lapses;
 * and what the holds cannot be made to crowd out. Each test asserts the balances, not only the
 * verdicts.
 *
 * @module
 */
import assert from "node:assert/strict";
import type {
  FraudProofHandled,
  ValidatorModelSource,
  ValidatorStats,
} from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { validateReceipt } from "../../proof/validation.ts";
import {
  announceAssigned,
  disguised,
  f,
  falseProof,
  HONEST_MODELS,
  ledgerReads,
  proveOn,
  spawnValidator,
  START,
  textJob,
} from "./_validator_fixture.ts";
import { STAKE, withHeldReceipt } from "./_held_receipt_fixture.ts";
import type { ReceiptRecord } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { type LedgerNode, onLedgerNode } from "../training/_gated_ledger_node.ts";
import { LAZY_TRAINER_STAKE, lossFraud } from "../training/_loss_fraud.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { receiptId } from "../../protocols/receipt.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";

// -------------------------------------------------------------------------------------------------
// How the ValidatorActor drives the ledger's money: each test asserts the balances the order of
// events leaves, not only what the calls return. The set-up (a validator whose checks can be held,
// a staked worker and accuser, one recorded receipt) is `_held_receipt_fixture.ts`.

Deno.test("a peer's fraud proof taken inside the window slashes the cheat even when its check ends after the window closed; the cheat is never paid meanwhile", () =>
  withHeldReceipt("checked-across-the-window", true, async (held) => {
    const { validator, ledger, clock, slow, worker, accuser, job, proved, id, rec } = held;
    const { fraudProof } = await validateReceipt(
      { job, receipt: proved.receipt, proof: proved.proof },
      f.honest,
      accuser,
      { now: () => START },
    );
    assert.ok(fraudProof, "the cheat is caught by the accuser");
    // The proof arrives a moment before the window closes, and is taken; its check is slow (a
    // queue of checks, a model to load).
    clock.t = rec.pendingUntil - 1;
    slow.hold();
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: fraudProof,
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true, "taken inside the window");
    // The window closes while it is being checked: the finalize tick comes.
    clock.t = rec.pendingUntil + 1;
    await validator.ask({ type: "finalize" });
    slow.release();
    await taken.result;
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs;
    await validator.ask({ type: "finalize" });
    const account = await ledger.account(worker.publicKey);
    assert.equal(account.balance, 0, "the caught cheat is not paid");
    assert.equal(account.stake, STAKE - rec.locked, "and loses its locked stake");
    assert.equal((await ledger.record(id))?.status, "fraud");
    assert.equal(
      (await ledger.account(accuser.publicKey)).balance,
      rec.locked * DEFAULT_ECONOMICS.validatorRewardShare,
      "its finder is rewarded as in every ledger that checked it sooner",
    );
  }));

Deno.test("an honest receipt held back while a false proof taken inside its window is checked is paid at the next tick, and the accuser pays", () =>
  withHeldReceipt("held-then-paid", false, async (held) => {
    const { validator, ledger, clock, slow, worker, accuser, proved, id, rec } = held;
    clock.t = rec.pendingUntil - 1;
    slow.hold();
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: falseProof(proved.receipt, accuser),
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true);
    clock.t = rec.pendingUntil + 1;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [], "not paid while checked");
    slow.release();
    await taken.result;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [id], "paid once refuted");
    assert.equal((await ledger.account(worker.publicKey)).balance, rec.credit);
    assert.equal(
      (await ledger.account(accuser.publicKey)).stake,
      STAKE - DEFAULT_ECONOMICS.falseAccusationPenalty,
    );
  }));

Deno.test("a receipt held for a peer's proof whose check never reports is paid once the hold lapses", () =>
  withHeldReceipt("held-never-checked", false, async (held) => {
    const { validator, ledger, clock, slow, worker, accuser, proved, id, rec } = held;
    clock.t = rec.pendingUntil - 1;
    slow.hold(); // and released only at the end: the check never reports meanwhile
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: falseProof(proved.receipt, accuser),
      origin: "ab".repeat(32),
    });
    assert.equal(taken.queued, true);
    clock.t = rec.pendingUntil + 1;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [], "held while checked");
    clock.t = rec.pendingUntil + 3 * DEFAULT_ECONOMICS.challengeWindowMs;
    assert.deepEqual(await validator.ask({ type: "finalize" }), [id], "paid once the hold lapsed");
    assert.equal((await ledger.account(worker.publicKey)).balance, rec.credit);
    slow.release();
    await taken.result?.catch(() => {});
  }));

// -------------------------------------------------------------------------------------------------
// The fraud-check hold: a receipt is held out of the finalize tick only for a peer's proof that can
// still settle it — one taken inside its window. A proof taken after the window is refused by every
// ledger whatever its check says (its accuser risks nothing), so holding the receipt for it only
// lets any staked key delay an honest worker's pay.

Deno.test("a peer's proof taken after the window closed does not hold an honest receipt out of the finalize tick", () =>
  withHeldReceipt("late-proof-holds-nothing", false, async (held) => {
    const { validator, ledger, clock, slow, worker, accuser, proved, id, rec } = held;
    // The window has closed; before the finalize tick, a false proof comes (a slow check).
    clock.t = rec.pendingUntil + 1;
    slow.hold();
    const taken = await validator.ask<FraudProofHandled>({
      type: "fraud_proof",
      proof: falseProof(proved.receipt, accuser),
      origin: "ab".repeat(32),
    });
    assert.deepEqual(
      await validator.ask({ type: "finalize" }),
      [id],
      "paid at the tick: a proof taken after the window cannot settle the receipt",
    );
    assert.equal((await ledger.account(worker.publicKey)).balance, rec.credit);
    slow.release();
    await taken.result?.catch(() => {});
  }));

Deno.test("a peer's training proof taken after the window closed does not hold an honest training receipt out of the finalize tick", () =>
  onLedgerNode("review-s44-diff-late-training-proof", async (node) => {
    const penalty = DEFAULT_ECONOMICS.falseAccusationPenalty;
    const lazy = lossFraud(node.model.cid, Identity.generate(), 8);
    const accuser = Identity.generate();
    await node.pledge(accuser, 10 * penalty);
    await node.recordLazy(lazy);
    const { receipt } = lazy;
    await node.training().ask({
      type: "credit",
      receipts: [receipt],
      terms: { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps },
    });
    const id = trainingReceiptId(receipt);
    const rec = (await node.ledger.ask<ReceiptRecord | undefined>({
      type: "receipt_status",
      receiptId: id,
    }))!;
    // The window has closed; before the finalize tick, a false proof comes (a slow re-run).
    node.advance(rec.pendingUntil + 1 - START);
    const { sig: _sig, validator: _validator, opening: _opening, ...unsigned } = lazy;
    const accusation = signTrainingFraudProof({
      ...unsigned,
      reason: "opening_missing",
      challenge: drawTrainingChallenge(receipt, accuser),
      issuedAt: START,
    }, accuser);
    const gate = node.models.gate();
    assert.deepEqual(await node.send(accusation), { queued: true });
    await gate.entered;
    assert.deepEqual(
      await node.ledger.ask({ type: "finalize" }),
      [id],
      "paid at the tick: a proof taken after the window cannot settle the receipt",
    );
    gate.open();
    await eventually(async () => (await node.checked()) === 1, "the check", { timeoutMs: 10_000 });
  }, START));

// -------------------------------------------------------------------------------------------------
// A peer's training fraud proof taken inside its receipt's window whose check (a re-run of training
// steps, slow) ends after the window closed: as for an inference proof
// (the first section of this file), the receipt is held out of the finalize tick while the proof is
// checked, and the proof settles with the time it was taken — also when the training validator
// restarts meanwhile. Each test asserts the balances, not only the verdicts.

const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;
/** The ledger clock's start (ms): a fixed clock, never the wall's. */
const TRAINING_START = 1_000_000;

/**
 * `proof`'s receipt recorded and credited (its delta went into a round's model: paid when final)
 * in `node`, its accuser pledged; the clock a moment before the window closes. Returns the record.
 */
async function creditedReceipt(node: LedgerNode, proof: TrainingFraudProof, accuser: Identity) {
  await node.pledge(accuser, 10 * PENALTY);
  await node.recordLazy(proof);
  const { receipt } = proof;
  await node.training().ask({
    type: "credit",
    receipts: [receipt],
    terms: { round: receipt.round, startModel: receipt.startModel, steps: receipt.steps },
  });
  const id = trainingReceiptId(receipt);
  const rec = (await node.ledger.ask<ReceiptRecord | undefined>({
    type: "receipt_status",
    receiptId: id,
  }))!;
  assert.ok(rec.credit > 0, "credited: paid when final");
  node.advance(rec.pendingUntil - 1 - TRAINING_START);
  return rec;
}

/** A false accusation of `lazy`'s receipt by `accuser` (refuted by its check). */
function falseTrainingProof(lazy: TrainingFraudProof, accuser: Identity): TrainingFraudProof {
  const { sig: _sig, validator: _validator, opening: _opening, ...unsigned } = lazy;
  return signTrainingFraudProof({
    ...unsigned,
    reason: "opening_missing",
    challenge: drawTrainingChallenge(lazy.receipt, accuser),
    issuedAt: TRAINING_START,
  }, accuser);
}

Deno.test("a peer's training fraud proof taken inside the window slashes the lazy trainer even when its re-run ends after the window closed; the trainer is never paid meanwhile", () =>
  onLedgerNode("review-s44-training-hold", async (node) => {
    const accuser = Identity.generate();
    const proof = lossFraud(node.model.cid, accuser, 8);
    const rec = await creditedReceipt(node, proof, accuser);
    // The re-run is slow (a queue of checks, a model to load): held until opened.
    const gate = node.models.gate();
    assert.deepEqual(await node.send(proof), { queued: true }, "taken inside the window");
    await gate.entered;
    // The window closes while it is being checked: the finalize tick comes.
    node.advance(2);
    await node.ledger.ask({ type: "finalize" });
    gate.open();
    await eventually(async () => (await node.checked()) === 1, "the re-run", {
      timeoutMs: 10_000,
    });
    await node.closeWindow();
    const trainer = await node.account(proof.receipt.trainer);
    assert.equal(trainer.balance, 0, "the lazy trainer is not paid");
    assert.equal(trainer.stake, LAZY_TRAINER_STAKE - rec.locked, "and loses its locked stake");
    assert.equal(await node.status(rec.receiptId), "fraud", "convicted here too");
    assert.equal(
      (await node.account(accuser.publicKey)).balance,
      rec.locked * DEFAULT_ECONOMICS.validatorRewardShare,
      "its finder is rewarded as in every ledger that checked it sooner",
    );
  }, TRAINING_START));

Deno.test("a training receipt held back while a false proof taken inside its window is checked is paid at the next tick, and the accuser pays", () =>
  onLedgerNode("review-s44-training-held-paid", async (node) => {
    const lazy = lossFraud(node.model.cid, Identity.generate(), 8);
    const accuser = Identity.generate();
    const rec = await creditedReceipt(node, lazy, accuser);
    const gate = node.models.gate();
    assert.deepEqual(await node.send(falseTrainingProof(lazy, accuser)), { queued: true });
    await gate.entered;
    node.advance(2);
    assert.deepEqual(await node.ledger.ask({ type: "finalize" }), [], "not paid while checked");
    gate.open();
    await eventually(async () => (await node.checked()) === 1, "the check", { timeoutMs: 10_000 });
    await eventually(
      async () => (await node.account(accuser.publicKey)).stake < 10 * PENALTY,
      "the refuted proof to settle",
    );
    assert.deepEqual(
      await node.ledger.ask({ type: "finalize" }),
      [rec.receiptId],
      "paid once refuted",
    );
    assert.equal((await node.account(lazy.receipt.trainer)).balance, rec.credit);
    assert.equal((await node.account(accuser.publicKey)).stake, 10 * PENALTY - PENALTY);
  }, TRAINING_START));

Deno.test("a peer's training fraud proof taken inside the window and kept across a restart of the training validator after the window closed still slashes the lazy trainer, which is not paid meanwhile", () =>
  onLedgerNode("review-s44-training-restart", async (node) => {
    const accuser = Identity.generate();
    const proof = lossFraud(node.model.cid, accuser, 8);
    const rec = await creditedReceipt(node, proof, accuser);
    const gate = node.models.gate();
    assert.deepEqual(await node.send(proof), { queued: true });
    await gate.entered;
    // Restarted while checking (the check's answer is lost with it) after the window closed: the
    // proof, kept on disk as taken and not settled, is taken again and checked; the finalize
    // tick comes meanwhile.
    node.advance(2);
    await node.restartTraining();
    await node.ledger.ask({ type: "finalize" });
    gate.open();
    await eventually(async () => (await node.checked()) === 1, "the re-run after the restart", {
      timeoutMs: 10_000,
    });
    await node.closeWindow();
    const trainer = await node.account(proof.receipt.trainer);
    assert.equal(trainer.balance, 0, "the lazy trainer is not paid");
    assert.equal(trainer.stake, LAZY_TRAINER_STAKE - rec.locked, "and loses its locked stake");
    assert.equal(await node.status(rec.receiptId), "fraud", "convicted here too");
    assert.equal(
      (await node.account(accuser.publicKey)).balance,
      rec.locked * DEFAULT_ECONOMICS.validatorRewardShare,
    );
  }, TRAINING_START));

// -------------------------------------------------------------------------------------------------
// Holds on receipts while peers' fraud proofs wait or are checked. Each test asserts the ledger
// after the window (status, stakes, balances); the ledger's clock is the test's, and no real-time
// sleep races a deadline (the tests poll only for work in flight to end).
//
// - Four staked colluders' false proofs about a receipt not recorded here yet, sent before an
//   honest finder's true one, used to fill the 4 slots held per receipt: the finder's was refused
//   (`too_many_held`), never taken again, and the cheat was paid here; the colluders' four
//   penalties (400) were less than what the cheat kept (its pay and its locked slash, 21 × its
//   reward: more than 400 from a 20-token receipt on).
// - A peer's proof whose check threw (its model failing to load) was dropped: not settled, not
//   passed on, and a re-send of it refused as a duplicate: the cheat was paid here.
// - An accuser's stake backed its accusations, and paid their penalties, even where its own
//   receipts locked all of it as a worker: a cheat about to be slashed accused for free, out of
//   the slash it was about to lose, and its finder's reward shrank (30 in place of 80).

const WORKER_STAKE = 100_000;
const ACCUSER_STAKE = 1_000;
const SHARE = DEFAULT_ECONOMICS.validatorRewardShare;

/** A worker's proved job. */
type Proved = Awaited<ReturnType<typeof proveOn>> & { job: TextJob; id: string };

/** A validator that never challenges on its own coin, a worker and a finder staked. */
async function setup(models: ValidatorModelSource = HONEST_MODELS) {
  const [me, worker, finder, requester] = Array.from({ length: 4 }, Identity.generate);
  const clock = { t: START };
  const dir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "review-s45-holds" });
  const published: FraudProof[] = [];
  await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => ({
      receive(message: NetworkMessage) {
        if (message.type === "publish_fraud_proof") published.push(message.proof);
        return undefined;
      },
    }),
  });
  const validator = await spawnValidator(system, {
    identity: me,
    ledgerDir: `${dir}/ledger`,
    clock,
    challengeProbability: 0,
    models,
    network: "node/network",
  });
  const deposit = (key: Identity, amount: number) =>
    validator.ask({ type: "deposit", key: key.publicKey, amount });
  await deposit(worker, WORKER_STAKE);
  await deposit(finder, ACCUSER_STAKE);
  const reads = ledgerReads(() => validator, clock);
  return {
    validator,
    worker,
    finder,
    published,
    deposit,
    ...reads,
    /** The worker's receipt for a fresh job: honest, or run on another model (`cheat`). */
    async prove(cheat: boolean): Promise<Proved> {
      const job = textJob(requester, crypto.randomUUID());
      const proved = await proveOn(job, worker, cheat ? f.otherSeed : f.honest);
      return { job, ...proved, id: receiptId(proved.receipt) };
    },
    /** `by`'s true fraud proof about a cheat receipt (its own validation of it). */
    async trueProof(p: Proved, by: Identity) {
      const { fraudProof } = await validateReceipt(
        { job: p.job, receipt: p.receipt, proof: p.proof },
        f.honest,
        by,
        { now: () => START },
      );
      assert.ok(fraudProof, "the cheat is caught by its finder");
      return fraudProof;
    },
    accuse: (proof: FraudProof) =>
      validator.ask<FraudProofHandled>({ type: "fraud_proof", proof, origin: "cd".repeat(32) }),
    announce: (p: Proved) =>
      announceAssigned(validator, p.receipt, p.job, requester, { issuedAt: START }),
    checking: async () =>
      (await validator.ask<ValidatorStats>({ type: "stats" })).fraudProofsChecking,
    finalize: () => validator.ask({ type: "finalize" }),
    async close() {
      await system.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("s45 holds: four staked colluders' false proofs held for a cheat receipt not recorded yet do not shut out a finder's true one: the cheat is slashed, the finder rewarded, each colluder charged", async () => {
  const t = await setup();
  try {
    const cheat = await t.prove(true);
    const colluders = Array.from({ length: 4 }, Identity.generate);
    for (const colluder of colluders) {
      await t.deposit(colluder, ACCUSER_STAKE);
      const held = await t.accuse(falseProof(cheat.receipt, colluder));
      assert.equal(held.awaitingReceipt, true);
      held.result?.catch(() => {});
    }
    const finder = await t.accuse(await t.trueProof(cheat, t.finder));
    assert.equal(finder.awaitingReceipt, true, `the finder's proof was ${finder.skipped}`);
    assert.equal((await t.announce(cheat)).recorded, true);
    assert.equal((await finder.result!).confirmed, true);
    await eventually(async () => (await t.checking()) === 0, "the held proofs to be settled");
    await t.closeWindow();
    const slash = cheat.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal((await t.record(cheat.id))?.status, "fraud");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - slash,
      locked: 0,
    });
    assert.equal((await t.account(t.finder.publicKey)).balance, slash * SHARE);
    for (const colluder of colluders) {
      assert.equal((await t.account(colluder.publicKey)).stake, ACCUSER_STAKE - PENALTY);
    }
  } finally {
    await t.close();
  }
});

/** The honest model, whose first `failures` loads throw (a model that fails to load). */
function failingModels(failures: number): ValidatorModelSource & { loads: () => number } {
  let loads = 0;
  return {
    has: (cid) => cid === f.honest.info.cid,
    get: (cid) => {
      if (loads++ < failures) return Promise.reject(new Error("model failed to load (test)"));
      return HONEST_MODELS.get(cid);
    },
    loads: () => loads,
  };
}

Deno.test("s45 holds: a peer's true proof whose check threw (the model failed to load once) is checked again at the next tick: the cheat is slashed here, the finder rewarded", async () => {
  const models = failingModels(1);
  const t = await setup(models);
  try {
    const cheat = await t.prove(true);
    assert.equal((await t.announce(cheat)).recorded, true);
    const taken = await t.accuse(await t.trueProof(cheat, t.finder));
    assert.equal(taken.queued, true);
    taken.result?.catch(() => {});
    await eventually(() => models.loads() >= 1, "the first check to run");
    // Finalize ticks inside the window (the ledger clock does not move): what failed is retried.
    await eventually(async () => {
      await t.finalize();
      return (await t.record(cheat.id))?.status === "fraud";
    }, "the proof to be checked again and settled");
    await t.closeWindow();
    const slash = cheat.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: 0,
      stake: WORKER_STAKE - slash,
      locked: 0,
    });
    assert.deepEqual(await t.account(t.finder.publicKey), {
      balance: slash * SHARE,
      stake: ACCUSER_STAKE,
      locked: 0,
    });
  } finally {
    await t.close();
  }
});

Deno.test("s45 holds: a peer's proof whose check always throws is undecided after its tries: passed on, its hold released, the honest work paid, nobody charged", async () => {
  const models = failingModels(Infinity);
  const t = await setup(models);
  try {
    const honest = await t.prove(false);
    assert.equal((await t.announce(honest)).recorded, true);
    const accuser = Identity.generate();
    await t.deposit(accuser, ACCUSER_STAKE);
    // A false claim whose check needs the model (a citation, found on other weights under the
    // receipt's model name): a `receipt` proof is decided without a model, so a model that fails
    // to load no longer makes its check throw (review s50).
    const { fraudProof } = await validateReceipt(
      { job: honest.job, receipt: honest.receipt, proof: honest.proof },
      disguised(f.otherSeed, f.honest),
      accuser,
      { now: () => START },
    );
    assert.ok(fraudProof);
    const taken = await t.accuse(fraudProof);
    assert.equal(taken.queued, true);
    taken.result?.catch(() => {});
    await eventually(async () => {
      await t.finalize();
      return (await t.checking()) === 0;
    }, "the proof's tries to end");
    assert.equal(t.published.length, 1, "the undecided proof is passed on");
    await t.closeWindow();
    assert.equal((await t.record(honest.id))?.status, "final");
    assert.deepEqual(await t.account(t.worker.publicKey), {
      balance: honest.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice,
      stake: WORKER_STAKE,
      locked: 0,
    });
    assert.equal((await t.account(accuser.publicKey)).stake, ACCUSER_STAKE);
  } finally {
    await t.close();
  }
});

Deno.test("s45 holds: a worker whose stake is all locked by its own cheat receipt accuses an honest receipt falsely: the accusation is not paid out of its locked slash, so the cheat's finder is rewarded its whole share", async () => {
  const t = await setup();
  try {
    const honest = await t.prove(false);
    assert.equal((await t.announce(honest)).recorded, true);
    // A second worker key: stake exactly the slash its cheat receipt locks.
    const cheater = Identity.generate();
    const requester = Identity.generate();
    const job = textJob(requester, crypto.randomUUID());
    const proved = await proveOn(job, cheater, f.otherSeed);
    const slash = proved.receipt.tokenCount * DEFAULT_ECONOMICS.defaultTokenPrice *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.ok(slash >= PENALTY, "its stake would back a penalty were it free");
    await t.deposit(cheater, slash);
    const cheat: Proved = { job, ...proved, id: receiptId(proved.receipt) };
    const recorded = await announceAssigned(
      t.validator,
      cheat.receipt,
      cheat.job,
      requester,
      { issuedAt: START },
    );
    assert.equal(recorded.recorded, true);
    assert.deepEqual(await t.account(cheater.publicKey), {
      balance: 0,
      stake: slash,
      locked: slash,
    });
    // Its stake is all locked: its false accusation must not spend what its slash is owed.
    const accusation = await t.accuse(falseProof(honest.receipt, cheater));
    await accusation.result?.catch(() => {});
    await eventually(async () => (await t.checking()) === 0, "the accusation to be settled");
    const caught = await t.accuse(await t.trueProof(cheat, t.finder));
    assert.equal((await caught.result!).confirmed, true);
    await t.closeWindow();
    assert.equal((await t.record(cheat.id))?.status, "fraud");
    assert.equal((await t.record(honest.id))?.status, "final", "the honest work is paid");
    assert.deepEqual(await t.account(cheater.publicKey), { balance: 0, stake: 0, locked: 0 });
    assert.equal(
      (await t.account(t.finder.publicKey)).balance,
      slash * SHARE,
      "the finder's reward is its share of the whole locked slash",
    );
  } finally {
    await t.close();
  }
});
