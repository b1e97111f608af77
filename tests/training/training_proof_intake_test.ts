/**
 * The intake of a peer's training fraud proof (`training/_training_proof_intake.ts`): re-run only
 * for an open receipt and an accuser with stake here (free stake), unbacked proofs within a bounded
 * budget, and what it holds outliving a stop and start of the training validator.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { TrainingFraudProofMessage } from "../../protocols/training_messages.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { TEST_ARCH, testModelCredit } from "./_fixtures.ts";
import { roundCredits } from "../../proof/ledger_state.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";
import { signTrainingReceipt, trainingReceiptId } from "../../training/training_receipt.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { type Account, Ledger, type ReceiptRecord } from "../../proof/ledger.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { MAX_UNBACKED_CHECKS_PER_RECEIPT } from "../../actors/_unbacked_checks.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { type LedgerNode, onLedgerNode, PEER } from "./_gated_ledger_node.ts";
import { join } from "node:path";
import { decodeCbor, encodeCanonical } from "../../protocols/cbor.ts";

// ------------------------------------------------------------------------------------------------
// A peer's training fraud proof is re-run (a training step, seconds at a large batch) only when its
// receipt is recorded and open in this ledger and its accuser has stake here to lose, as the
// inference intake does. Any two fresh keys used to make every validator re-run, and pass on, a
// "confirmed" proof against a made-up receipt of their own with a batch 64× the round's, with
// nothing at stake (found by a review).
// ------------------------------------------------------------------------------------------------

/** What each test runs on: a ledger and a training validator over a published start model. */
interface Intake {
  model: { cid: string };
  ledger: Awaited<ReturnType<typeof spawnTrainingLedger>>["ledger"];
  training: Awaited<ReturnType<typeof spawnTrainingLedger>>["training"];
  /** What the training validator told the network (gossip it passed on). */
  told: NetworkMessage[];
}

/** Run `test` on a fresh {@link Intake} (challenging nothing itself), removed after. */
async function withIntake(name: string, test: (intake: Intake) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-${name}-` });
  const system = new ActorSystem({ name });
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const told: NetworkMessage[] = [];
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork(told),
    });
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: Date.now,
      models,
      challenge: { challengeProbability: 0, network: "node/network" },
    });
    await test({ model, ledger, training, told });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a peer's training fraud proof about a receipt this ledger never recorded, or from an accuser with no stake here, is not re-run", () =>
  withIntake("proof-intake", async ({ model, ledger, training, told }) => {
    const proof = lossFraud(model.cid, Identity.generate(), 8);
    const body = { proof, arch: TEST_ARCH };
    assert.ok(TrainingFraudProofMessage.schema.safeParse(body).success, "valid on the wire");
    // Its receipt was never recorded here, and its accuser never pledged here: held (memory
    // only) for the pledge, `training_proof_pledge_test.ts`.
    assert.deepEqual(
      await training.ask({ type: "fraud_proof", body, origin: "stranger" }),
      { queued: false, skipped: "receipt_unknown", awaitingPledge: true },
    );
    // Recorded now (its trainer staked), but the accuser has no stake here (this copy is held).
    await recordLazyReceipt(ledger, training, proof, model.cid);
    assert.deepEqual(
      await training.ask({ type: "fraud_proof", body, origin: "stranger" }),
      { queued: false, skipped: "unstaked_accuser" },
    );
    const stats = await training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 0, "nothing re-run");
    const passedOn = told.map((m) => (m as { gossip?: { kind: string } }).gossip?.kind);
    assert.deepEqual(passedOn, ["receipt"], "the receipt passed on, not the proof");
  }));

Deno.test("a peer's training fraud proof about a receipt whose challenge here ended undecided is re-run and settled inside the window: the lazy trainer is slashed here too", () =>
  withIntake("proof-unresolved", async ({ model, ledger, training }) => {
    const accuser = Identity.generate();
    const proof = lossFraud(model.cid, accuser, 8);
    await ledger.ask({ type: "deposit", key: accuser.publicKey, amount: 10_000 });
    await recordLazyReceipt(ledger, training, proof, model.cid);
    const id = trainingReceiptId(proof.receipt);
    // This node's own challenge of it ended undecided: unpaid here, its lock released.
    for (const step of ["open", "undecided"] as const) {
      assert.equal(await ledger.ask({ type: "training_challenge", receiptId: id, step }), true);
    }
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    assert.equal(await status(), "unpaid");

    const handled = await training.ask<{ queued: boolean; skipped?: string }>({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: "stranger",
    });
    assert.deepEqual(handled, { queued: true }, "re-run, not skipped as not_pending");
    await eventually(async () => (await status()) === "fraud", "the proof to settle");
    const trainer = await ledger.ask<Account>({ type: "account", key: proof.receipt.trainer });
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "the lazy trainer's stake is cut");
  }));

Deno.test("an accuser's training fraud proof re-signed after it settled is not re-run or passed on again: one accusation per accuser and receipt, as the ledger settles", () =>
  withIntake("proof-resigned", async ({ model, ledger, training, told }) => {
    const accuser = Identity.generate();
    const proof = lossFraud(model.cid, accuser, 8);
    await recordLazyReceipt(ledger, training, proof, model.cid);
    await ledger.ask({ type: "deposit", key: accuser.publicKey, amount: 10_000 });
    const id = trainingReceiptId(proof.receipt);
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    const send = (p: typeof proof) =>
      training.ask<{ queued: boolean; skipped?: string }>({
        type: "fraud_proof",
        body: { proof: p, arch: TEST_ARCH },
        origin: "stranger",
      });
    assert.deepEqual(await send(proof), { queued: true });
    await eventually(async () => (await status()) === "fraud", "the proof to settle");

    // The same claim, signed again a moment later: another proof hash, the same accusation.
    const { sig: _sig, validator: _validator, ...unsigned } = proof;
    const again = signTrainingFraudProof({ ...unsigned, issuedAt: proof.issuedAt + 1 }, accuser);
    assert.deepEqual(await send(again), { queued: false, skipped: "repeated_accusation" });
    const stats = await training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 1, "re-run once");
    const proofsPassedOn = told.filter((m) =>
      (m as { gossip?: { kind: string } }).gossip?.kind === "fraud_proof"
    );
    assert.equal(proofsPassedOn.length, 1, "passed on once");
  }));

// ------------------------------------------------------------------------------------------------
// A training fraud proof from a key that pledged here but whose stake is spent (or short of the
// false-accusation penalty) is still checked — "unbacked" — while its receipt is open, within a
// budget no number of keys enlarges (`actors/_unbacked_checks.ts`: 3 per receipt, 16 in flight), as
// the inference side does. Before, such a proof was skipped for good (`unstaked_accuser`), so
// whether a lazy trainer was slashed here hung on its accuser's stake at that moment: a valid proof
// from an accuser an earlier false one had spent left the cheat paid here and slashed where the
// proofs came in the other order.
// ------------------------------------------------------------------------------------------------

/** Where the gossip comes from. */
const PEER_UNBACKED = "ee".repeat(32);
const PENALTY = DEFAULT_ECONOMICS.falseAccusationPenalty;

/** A ledger and training validator on a test clock, with the lazy receipt of `proof` recorded. */
async function ledgerNode(dir: string, name: string) {
  const system = new ActorSystem({ name });
  let clock = Date.now();
  const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new RecordingNetwork([]),
  });
  const { ledger, training } = await spawnTrainingLedger(system, {
    identity: Identity.generate(),
    dir,
    now: () => clock,
    models,
    challenge: { challengeProbability: 0, network: "node/network" },
  });
  const status = async (id: string) =>
    (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
      ?.status;
  const account = (key: Identity) => ledger.ask<Account>({ type: "account", key: key.publicKey });
  const pledge = async (key: Identity, amount: number) =>
    assert.equal(
      await ledger.ask({
        type: "pledge",
        pledge: signStakePledge(key, amount, 1),
        origin: PEER_UNBACKED,
      }),
      true,
    );
  const send = (proof: TrainingFraudProof) =>
    training.ask<Record<string, unknown>>({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: PEER_UNBACKED,
    });
  const checked = async () =>
    (await training.ask<TrainingValidatorStats>({ type: "stats" })).checked;
  const closeWindow = async () => {
    clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
  };
  return { system, ledger, training, model, status, account, pledge, send, checked, closeWindow };
}

/**
 * A false accusation of `lazy`'s receipt by `accuser`: "no answer" claimed before the challenge's
 * deadline, refuted by every checker (`before_deadline`) without a re-run.
 */
function falseProof(lazy: TrainingFraudProof, accuser: Identity): TrainingFraudProof {
  const { sig: _sig, validator: _validator, opening: _opening, ...unsigned } = lazy;
  return signTrainingFraudProof({
    ...unsigned,
    reason: "opening_missing",
    challenge: drawTrainingChallenge(lazy.receipt, accuser),
    issuedAt: Date.now(),
  }, accuser);
}

Deno.test("a valid training fraud proof from an accuser whose stake a false one spent still slashes the lazy trainer; the accuser is rewarded, its spent stake stays spent", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-unbacked-" });
  const node = await ledgerNode(dir, "unbacked");
  try {
    const accuser = Identity.generate();
    // Its stake: one penalty, spent by a false accusation of another lazy receipt.
    await node.pledge(accuser, PENALTY);
    const other = lossFraud(node.model.cid, accuser, 8);
    await recordLazyReceipt(node.ledger, node.training, other, node.model.cid);
    assert.deepEqual(await node.send(falseProof(other, accuser)), { queued: true });
    await eventually(async () => (await node.account(accuser)).stake === 0, "the false proof");

    const proof = lossFraud(node.model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    await recordLazyReceipt(node.ledger, node.training, proof, node.model.cid);
    const intake = await node.send(proof);
    await eventually(async () => (await node.status(id)) === "fraud", "the proof to settle", {
      timeoutMs: 5_000,
    }).catch(() => undefined);
    await node.closeWindow();

    assert.equal(await node.status(id), "fraud", "the lazy trainer convicted");
    const trainer = await node.ledger.ask<Account>({
      type: "account",
      key: proof.receipt.trainer,
    });
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "its stake slashed");
    assert.equal(trainer.balance, 0, "and it is not paid");
    const paid = await node.account(accuser);
    assert.ok(paid.balance > 0, "its accuser rewarded, as any accuser of a cheat is");
    assert.equal(paid.stake, 0, "its spent stake not refilled");
    assert.deepEqual(intake, { queued: true }, "checked although unbacked");
  } finally {
    await node.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unbacked training proof checks are bounded per receipt: three false ones are checked and cost their accusers what stake they had, a fourth is skipped; a backed proof still convicts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-unbacked-bound-" });
  const node = await ledgerNode(dir, "unbacked-bound");
  try {
    const lazy = lossFraud(node.model.cid, Identity.generate(), 8);
    const id = trainingReceiptId(lazy.receipt);
    await recordLazyReceipt(node.ledger, node.training, lazy, node.model.cid);
    // Pledged, each short of the penalty.
    const short = Array.from({ length: MAX_UNBACKED_CHECKS_PER_RECEIPT + 1 }, Identity.generate);
    for (const key of short) await node.pledge(key, PENALTY / 2);
    const intakes = [];
    for (const key of short) intakes.push(await node.send(falseProof(lazy, key)));
    await eventually(
      async () => (await node.checked()) === MAX_UNBACKED_CHECKS_PER_RECEIPT,
      "the unbacked checks",
    );
    assert.deepEqual(intakes.at(-1), { queued: false, skipped: "unstaked_accuser" });
    for (const key of short.slice(0, -1)) {
      assert.deepEqual(await node.account(key), { balance: 0, stake: 0, locked: 0 });
    }
    assert.equal((await node.account(short.at(-1)!)).stake, PENALTY / 2, "the fourth unchecked");
    assert.equal(await node.status(id), "pending", "false proofs convict nobody");

    const backed = Identity.generate();
    await node.pledge(backed, 10 * PENALTY);
    const { sig: _sig, validator: _validator, ...unsigned } = lazy;
    const valid = signTrainingFraudProof(
      { ...unsigned, challenge: drawTrainingChallenge(lazy.receipt, backed) },
      backed,
    );
    assert.deepEqual(await node.send(valid), { queued: true });
    await eventually(async () => (await node.status(id)) === "fraud", "the backed proof");
    assert.ok((await node.account(backed)).balance > 0, "its accuser rewarded");
  } finally {
    await node.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a valid training fraud proof from a pledged accuser short of stake, sent before its receipt, is held for the receipt and slashes the lazy trainer once the receipt is recorded", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-unbacked-early-" });
  const node = await ledgerNode(dir, "unbacked-early");
  try {
    const accuser = Identity.generate();
    await node.pledge(accuser, PENALTY / 2);
    const proof = lossFraud(node.model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    const intake = await node.send(proof);
    await recordLazyReceipt(node.ledger, node.training, proof, node.model.cid);
    await eventually(async () => (await node.status(id)) === "fraud", "the proof to settle", {
      timeoutMs: 5_000,
    }).catch(() => undefined);
    await node.closeWindow();

    assert.equal(await node.status(id), "fraud", "the lazy trainer convicted");
    const trainer = await node.ledger.ask<Account>({
      type: "account",
      key: proof.receipt.trainer,
    });
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "its stake slashed");
    assert.equal(trainer.balance, 0, "and it is not paid");
    const paid = await node.account(accuser);
    assert.ok(paid.balance > 0, "its accuser rewarded");
    assert.equal(paid.stake, PENALTY / 2, "and charged nothing");
    assert.deepEqual(intake, { queued: false, skipped: "receipt_unknown", held: true });
  } finally {
    await node.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// Training side of free stake. A false accusation's penalty comes out of the accuser's free stake
// only (`freeStake` in `proof/ledger.ts`: its stake less what its own pending receipts lock), and
// the inference intake counts an accuser as backed only by free stake. The training intake still
// counted the whole stake: a key whose stake its own training receipt locked entirely was taken as
// backed, so its false training proofs skipped the unbacked budget (`actors/_unbacked_checks.ts`: 3
// per receipt, 16 in flight) while each refuted one cost it nothing — free, unbounded re-runs.
// Backed by free stake, such a key's proofs are unbacked: bounded per receipt, and still costing it
// nothing out of its locks.
// ------------------------------------------------------------------------------------------------

/** What a one-step training receipt of the test model locks of its trainer's stake (its slash). */
const LOCK = roundCredits(testModelCredit(1) * DEFAULT_ECONOMICS.slashMultiplier);

/**
 * `key` deposits exactly {@link LOCK} and its own one-step training receipt is recorded in
 * `node`'s ledger: all its stake is locked as a trainer. @returns the receipt's id.
 */
async function lockAllStake(node: LedgerNode, key: Identity): Promise<string> {
  const { sig: _sig, trainer: _trainer, ...unsigned } = lossFraud(node.model.cid).receipt;
  const receipt = signTrainingReceipt(unsigned, key);
  await node.ledger.ask({ type: "deposit", key: key.publicKey, amount: LOCK });
  const recorded = await node.training().ask<{ recorded: boolean }>({
    type: "receipt",
    body: { receipt, terms: { round: 0, startModel: node.model.cid, steps: receipt.steps } },
    origin: "stranger",
  });
  assert.equal(recorded.recorded, true, "its own receipt recorded");
  return trainingReceiptId(receipt);
}

Deno.test("s45 free stake: training proofs from keys whose stake their own receipts lock are unbacked: three false ones about a receipt are checked, a fourth skipped, and their locks stay whole", () =>
  onLedgerNode("s45-free-stake", async (node) => {
    const lazy = lossFraud(node.model.cid);
    const id = trainingReceiptId(lazy.receipt);
    await node.recordLazy(lazy);
    // Each accuser's stake would back a penalty were it free; its own receipt locks all of it.
    assert.ok(LOCK >= PENALTY);
    const accusers = Array.from({ length: MAX_UNBACKED_CHECKS_PER_RECEIPT + 1 }, Identity.generate);
    const own: string[] = [];
    for (const key of accusers) {
      own.push(await lockAllStake(node, key));
      assert.deepEqual(await node.account(key.publicKey), {
        balance: 0,
        stake: LOCK,
        locked: LOCK,
      });
    }

    const intakes = [];
    for (const key of accusers) intakes.push(await node.send(falseProof(lazy, key)));
    await eventually(
      async () => (await node.checked()) >= MAX_UNBACKED_CHECKS_PER_RECEIPT,
      "the unbacked checks",
    );
    // The false proofs settled (a false accusation is recorded for each one checked).
    await eventually(async () => {
      for (const key of accusers.slice(0, -1)) {
        const accused = await node.ledger.ask<boolean>({
          type: "has_accused",
          validator: key.publicKey,
          receiptId: id,
        });
        if (!accused) return false;
      }
      return true;
    }, "the checked proofs to settle");

    assert.equal(
      await node.checked(),
      MAX_UNBACKED_CHECKS_PER_RECEIPT,
      "no more proofs checked than the receipt's unbacked budget",
    );
    assert.deepEqual(intakes.slice(0, -1), accusers.slice(0, -1).map(() => ({ queued: true })));
    assert.deepEqual(
      intakes.at(-1),
      { queued: false, skipped: "unstaked_accuser" },
      "locked stake backs no check: the fourth is past the budget",
    );
    assert.equal(
      await node.ledger.ask<boolean>({
        type: "has_accused",
        validator: accusers.at(-1)!.publicKey,
        receiptId: id,
      }),
      false,
      "the fourth unchecked",
    );
    for (const key of accusers) {
      assert.deepEqual(
        await node.account(key.publicKey),
        { balance: 0, stake: LOCK, locked: LOCK },
        "no penalty out of what its own receipt locks",
      );
    }
    assert.equal(await node.status(id), "pending", "false proofs convict nobody");
    for (const receipt of own) assert.equal(await node.status(receipt), "pending");
  }));

// ------------------------------------------------------------------------------------------------
// What the training validator holds of peers' fraud proofs outlives a stop and start of it, and its
// intake runs on the validator's clock, not the wall's:
//
// - the unbacked checks a receipt has spent (`actors/_unbacked_checks.ts`, 3 per receipt) were
//   memory only: each start granted every receipt 3 more, so a 4th false proof after a restart was
//   re-run here and cost its accuser its stake;
// - a proof held for a receipt not recorded yet was memory only: a restart between the proof and
//   the receipt lost it, and this ledger paid the lazy trainer every other ledger slashed;
// - the intake compared the receipt's `pendingUntil` (ledger clock) with `Date.now()`: on a clock
//   behind the wall's, an unbacked proof about an open receipt was refused as past its window;
// - a proof taken up from either hold (its receipt recorded, its accuser's pledge come) and being
//   checked, or waiting in the mailbox, at a stop was in neither hold nor on disk: lost, and this
//   ledger paid the lazy trainer (now kept in `taken-training-proofs/` until it settles);
// - a peer's proof whose settlement the ledger did not answer (its write failed, the ValidatorActor
//   crashed and was restarted) was dropped: nobody settled it here;
// - a copy of a proof under a wrong architecture, its check under way, made the genuine copy that
//   came meanwhile be dropped as a duplicate: the bad copy then failed, and nobody settled.
// ------------------------------------------------------------------------------------------------

const WINDOW = DEFAULT_ECONOMICS.challengeWindowMs;

/** A fresh accuser, pledged `stake` at `node` if given, and its valid proof of a lazy receipt. */
async function accusation(node: LedgerNode, stake?: number) {
  const accuser = Identity.generate();
  if (stake !== undefined) await node.pledge(accuser, stake);
  return { accuser, proof: lossFraud(node.model.cid, accuser, 8) };
}

/** `proof` sent to `node` before its receipt: held for it. */
async function assertHeldForReceipt(node: LedgerNode, proof: TrainingFraudProof): Promise<void> {
  assert.deepEqual(await node.send(proof), {
    queued: false,
    skipped: "receipt_unknown",
    held: true,
  });
}

/** The lazy trainer of `proof` slashed and unpaid in `node`'s ledger, its window closed. */
async function assertSlashed(
  node: LedgerNode,
  proof: TrainingFraudProof,
): Promise<void> {
  const id = trainingReceiptId(proof.receipt);
  await eventually(async () => (await node.status(id)) === "fraud", "the proof to settle", {
    timeoutMs: 5_000,
  }).catch(() => undefined);
  await node.closeWindow();
  assert.equal(await node.status(id), "fraud", "the lazy trainer convicted here too");
  const trainer = await node.account(proof.receipt.trainer);
  assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "its stake slashed");
  assert.equal(trainer.balance, 0, "and it is not paid");
  assert.ok((await node.account(proof.validator)).balance > 0, "its accuser rewarded");
}

Deno.test("a receipt's unbacked training proof checks stay spent across a restart of the training validator: a 4th false proof after it is skipped and its accuser keeps its stake", () =>
  onLedgerNode("unbacked-restart", async (node) => {
    const lazy = lossFraud(node.model.cid, Identity.generate(), 8);
    const id = trainingReceiptId(lazy.receipt);
    await node.recordLazy(lazy);
    const short = Array.from({ length: MAX_UNBACKED_CHECKS_PER_RECEIPT + 1 }, Identity.generate);
    for (const key of short) await node.pledge(key, PENALTY / 2);
    for (const key of short.slice(0, -1)) {
      assert.deepEqual(await node.send(falseProof(lazy, key)), { queued: true });
    }
    await eventually(
      async () => (await node.checked()) === MAX_UNBACKED_CHECKS_PER_RECEIPT,
      "the unbacked checks",
    );

    await node.restartTraining();
    const last = short.at(-1)!;
    const intake = await node.send(falseProof(lazy, last));
    // Let a wrongly queued check settle before looking at the stake.
    await eventually(
      async () => (await node.checked()) > 0 || (await node.account(last.publicKey)).stake === 0,
      "a wrongly queued check",
      { timeoutMs: 1_000 },
    ).catch(() => undefined);

    assert.equal((await node.account(last.publicKey)).stake, PENALTY / 2, "its stake untouched");
    assert.equal(await node.checked(), 0, "nothing re-run after the restart");
    assert.deepEqual(intake, { queued: false, skipped: "unstaked_accuser" });
    assert.equal(await node.status(id), "pending", "false proofs convict nobody");
  }));

Deno.test("a training fraud proof held for a receipt not recorded yet survives a restart of the training validator: the receipt after it is still slashed and the accuser paid", () =>
  onLedgerNode("receipt-held-restart", async (node) => {
    const { accuser, proof } = await accusation(node, 10 * PENALTY);
    await assertHeldForReceipt(node, proof);
    await node.restartTraining();
    await node.recordLazy(proof);
    await assertSlashed(node, proof);
    assert.equal((await node.account(accuser.publicKey)).stake, 10 * PENALTY, "charged nothing");
    assert.equal(await node.checked(), 1, "re-run once, after the receipt");
  }));

Deno.test("a training fraud proof held for its receipt is kept on disk before any stop, and one read back is re-verified: a forged copy is dropped", () =>
  onLedgerNode("receipt-held-kept", async (node, dir) => {
    const { proof } = await accusation(node, 10 * PENALTY);
    const forged = { ...proof, issuedAt: proof.issuedAt + 1 };
    await assertHeldForReceipt(node, proof);
    const kept = join(dir, "ledger", "receipt-held-training-proofs");
    // Written files only: a write in progress is a `.tmp` beside them (`writeFileDurably`).
    const names = () =>
      Array.fromAsync(Deno.readDir(kept)).then(
        (es) => es.map((e) => e.name).filter((n) => n.endsWith(".cbor")),
        () => [],
      );
    await eventually(async () => (await names()).length === 1, "the held proof kept", {
      timeoutMs: 5_000,
    });
    // A forged copy beside it on disk: not trusted, dropped at the start.
    const [name] = await names();
    const bytes = await Deno.readFile(join(kept, name));
    const entry = decodeCbor(bytes) as { body: { proof: TrainingFraudProof } };
    entry.body.proof = forged;
    await Deno.writeFile(join(kept, `${"ab".repeat(32)}.cbor`), encodeCanonical(entry));

    await node.restartTraining();
    await eventually(async () => (await names()).length === 1, "the forged copy dropped", {
      timeoutMs: 5_000,
    });
    await node.recordLazy(proof);
    await assertSlashed(node, proof);
    assert.equal(await node.checked(), 1, "only the genuine proof re-run");
    await eventually(async () => (await names()).length === 0, "taken up: no longer kept", {
      timeoutMs: 5_000,
    });
  }));

Deno.test("the training intake judges a receipt's window on the validator's clock, not the wall's: on a clock behind it, an unbacked valid proof of an open receipt still slashes the lazy trainer", () =>
  // The node's clock two windows behind the wall's: every receipt's window ends before Date.now().
  onLedgerNode("intake-clock", async (node) => {
    const { proof } = await accusation(node, PENALTY / 2);
    await node.recordLazy(proof);
    assert.deepEqual(await node.send(proof), { queued: true }, "checked unbacked");
    await assertSlashed(node, proof);
  }, Date.now() - 2 * WINDOW));

Deno.test("a training fraud proof taken up from its receipt hold and being checked when the training validator stops is kept and settled after the restart: the lazy trainer slashed", () =>
  onLedgerNode("taken-receipt-restart", async (node) => {
    const { accuser, proof } = await accusation(node, 10 * PENALTY);
    await assertHeldForReceipt(node, proof);
    const check = node.models.gate();
    await node.recordLazy(proof);
    await check.entered; // taken up from the hold, its check under way
    await node.restartTraining();
    check.open();
    await assertSlashed(node, proof);
    assert.equal((await node.account(accuser.publicKey)).stake, 10 * PENALTY, "charged nothing");
  }));

Deno.test("a training fraud proof taken up from its pledge hold and being checked when the training validator stops is kept and settled after the restart: the lazy trainer slashed", () =>
  onLedgerNode("taken-pledge-restart", async (node) => {
    const { accuser, proof } = await accusation(node);
    await node.recordLazy(proof);
    assert.deepEqual(await node.send(proof), {
      queued: false,
      skipped: "unstaked_accuser",
      awaitingPledge: true,
    });
    const check = node.models.gate();
    await node.pledge(accuser, 10 * PENALTY);
    await check.entered; // taken up at the recheck after the pledge, its check under way
    await node.restartTraining();
    check.open();
    await assertSlashed(node, proof);
  }));

Deno.test("a copy of a training fraud proof under a wrong architecture, its check under way, does not shut out the genuine copy that comes meanwhile: the lazy trainer slashed", () =>
  onLedgerNode("bad-arch-copy", async (node) => {
    const { proof } = await accusation(node, 10 * PENALTY);
    await node.recordLazy(proof);
    const check = node.models.gate();
    // A relay's copy: the same signed proof, the unsigned architecture beside it changed.
    const bad = await node.training().ask<Record<string, unknown>>({
      type: "fraud_proof",
      body: { proof, arch: { ...TEST_ARCH, numHeads: 4 } },
      origin: "dd".repeat(32),
    });
    assert.deepEqual(bad, { queued: true });
    await check.entered;
    await node.send(proof); // the genuine copy, while the bad one's check is under way
    check.open();
    await assertSlashed(node, proof);
    assert.equal(await node.checked(), 1, "the genuine copy re-run once");
  }));

Deno.test("a peer's training fraud proof whose settlement crashed the ledger (a failed write) is settled again once the ledger is back: the lazy trainer slashed", () =>
  onLedgerNode("taken-settle-fails", async (node) => {
    const settle = Ledger.prototype.settleTrainingFraud;
    try {
      const { proof } = await accusation(node, 10 * PENALTY);
      await node.recordLazy(proof);
      let failures = 0;
      // The first settlement's write fails as a disk does: the ValidatorActor crashes, restarts.
      Ledger.prototype.settleTrainingFraud = function () {
        Ledger.prototype.settleTrainingFraud = settle;
        failures++;
        return Promise.reject(Object.assign(new Error("Input/output error (simulated)"), {
          code: "EIO",
        }));
      };
      assert.deepEqual(await node.send(proof), { queued: true });
      await assertSlashed(node, proof);
      assert.equal(failures, 1, "the first settlement failed");
    } finally {
      Ledger.prototype.settleTrainingFraud = settle;
    }
  }));

// ------------------------------------------------------------------------------------------------
// The training validator split into parts (`training/training_validator.ts` and its `_*.ts`
// helpers), with peers' proofs taken and not settled kept on disk:
//
// - a check's failure used to change the state of the incarnation that ran it (a closure over it);
//   it is now an `unchecked` message to `ctx.self`, which is the actor cell's ref and outlives a
//   crash: the failure of a check the crashed incarnation ran lands in the restarted one and
//   forgets the copy that one took again from `taken-training-proofs/` and is checking; the next
//   stop writes the folder without it, and the lazy trainer is paid here;
// - a proof released from its pledge hold and held again for its receipt is held from the time it
//   is held again (its first `since` is not told with it): harmless.
// ------------------------------------------------------------------------------------------------

Deno.test("a check the crashed training validator ran, failing after its restart, does not make the restarted one forget the copy it took again from disk: a stop after it keeps the proof, and the lazy trainer is slashed", () =>
  onLedgerNode("s42-stale-unchecked", async (node) => {
    const accuser = Identity.generate();
    await node.pledge(accuser, 10 * PENALTY);
    const proof = lossFraud(node.model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    await node.recordLazy(proof);
    const first = node.models.gate();
    const second = node.models.gate();
    assert.deepEqual(await node.send(proof), { queued: true });
    await first.entered; // the first incarnation's check under way
    await eventually(async () => (await node.kept("taken-training-proofs")).length === 1, "kept");

    // A message it cannot take crashes the training validator; its supervisor restarts it in
    // the same cell, which takes the kept proof again and checks it.
    await node.training().tell({ type: "fraud_proof", body: undefined!, origin: PEER });
    await second.entered; // the restarted incarnation's check of the copy read back
    // The crashed incarnation's check fails now (its start model out of reach): nothing settled.
    first.fail(new Error("start model out of reach (simulated)"));
    // Told (after the microtasks of the failure) to the cell's mailbox, ahead of this ask.
    await delay(0);
    await node.training().ask({ type: "stats" });

    // The restarted incarnation's check is still under way when the node stops it (its stop
    // keeps what it has taken), and the next start takes up what was kept.
    await node.restartTraining();
    // The stopped incarnation's check ends unsettled too (two re-runs at once share tfjs's engine).
    second.fail(new Error("stopped (simulated)"));
    // Waited for as long as any effect (EVENTUALLY_GIVE_UP_MS), not 5 s: the re-run takes over a
    // second here, several on a loaded machine, and a window closed while it ran paid the trainer.
    await eventually(async () => (await node.status(id)) === "fraud", "the proof to settle")
      .catch(() => undefined);
    await node.closeWindow();
    assert.equal(await node.status(id), "fraud", "the lazy trainer convicted here");
    const trainer = await node.account(proof.receipt.trainer);
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "its stake slashed");
    assert.equal(trainer.balance, 0, "and it is not paid");
  }));

Deno.test("candidate: a training fraud proof released from its pledge hold and held again for its receipt is held from the time it is held again (as before today), and no hold's time bound is extended by it", () =>
  onLedgerNode("s42-since", async (node, dir) => {
    const accuser = Identity.generate();
    const proof = lossFraud(node.model.cid, accuser, 8);
    const heldAt = node.advance(0);
    // Neither its receipt nor its accuser's pledge here: held for the pledge.
    assert.deepEqual(await node.send(proof), {
      queued: false,
      skipped: "receipt_unknown",
      awaitingPledge: true,
    });
    const later = node.advance(60_000);
    await node.pledge(accuser, 10 * PENALTY);
    // Released at the recheck after the pledge, its receipt still unknown: held for it now.
    await eventually(
      async () => (await node.kept("receipt-held-training-proofs")).length === 1,
      "held again for the receipt",
    );
    await eventually(
      async () => (await node.kept("pledge-held-training-proofs")).length === 0,
      "out of the pledge hold",
    );
    const [name] = await node.kept("receipt-held-training-proofs");
    const kept = join(dir, "ledger", "receipt-held-training-proofs", name);
    const { since } = decodeCbor(await Deno.readFile(kept)) as { since: number };
    assert.notEqual(since, heldAt, "its hold time restarted when held again");
    assert.equal(since, later);
    // The receipt hold has no time bound: the proof still settles when its receipt comes.
    await node.recordLazy(proof);
    const id = trainingReceiptId(proof.receipt);
    await eventually(async () => (await node.status(id)) === "fraud", "the proof to settle");
  }));
