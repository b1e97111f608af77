/**
 * A peer's training fraud proof that comes before its accuser's stake pledge is held and settled as
 * where the pledge came first (`training/_pledge_held_training_proofs.ts`), across a restart of the
 * training validator, with its rechecks on the validator's timers.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
  trainingFraudProofHash,
} from "../../training/training_fraud_proof.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { MAX_PLEDGE_HELD_PER_RECEIPT } from "../../training/_pledge_held_training_proofs.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type {
  TrainingValidatorMessage,
  TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";
import { ledgerDownSwitch, spawnTrainingLedger } from "./_training_ledger.ts";
import { join } from "node:path";
import { encodeCanonical } from "../../protocols/cbor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { roundCredits } from "../../proof/ledger_state.ts";
import { retryWait } from "../../training/_ledger_retries.ts";
import { FakeTimers } from "../_helpers/fake_timers.ts";

// ------------------------------------------------------------------------------------------------
// A training ledger settles a peer's fraud proof the same way whether its accuser's stake pledge
// reached it before the proof or after.
//
// A peer's training fraud proof is re-run only on the word of an accuser with stake here
// (`unstaked_accuser`). Before, a proof that came before its accuser's pledge was skipped for good:
// the ledger that saw that order left the lazy trainer's receipt pending and paid it at the
// window's end, while every ledger that saw the pledge first slashed it and rewarded the accuser.
// Now a never-pledged accuser's proof is held (bounded, memory only: nothing is re-run for a key
// with nothing at stake) and taken again once its pledge is recorded
// (`training/_pledge_held_training_proofs.ts`).
// ------------------------------------------------------------------------------------------------

/** The accuser's pledge: well above the false-accusation penalty. */
const ACCUSER_PLEDGE = 10_000;
/** Where the gossip comes from. */
const PEER = "ee".repeat(32);

/** One step of evidence reaching a ledger. */
type Arrival = "receipt" | "pledge" | "proof";

/** What a ledger made of the evidence, once its receipt's window closed. */
interface Outcome {
  status: string | undefined;
  trainer: Account;
  accuser: Account;
  checked: number;
}

/**
 * A fresh ledger and training validator take the lazy receipt, `accuser`'s pledge and its proof
 * in `order`, then the receipt's window closes (the ledger's clock moved past it, `finalize`).
 */
async function settleIn(
  order: readonly Arrival[],
  proof: TrainingFraudProof,
  accuser: Identity,
): Promise<Outcome> {
  const name = `pledge-order-${order.join("-")}`;
  const dir = await Deno.makeTempDir({ prefix: `veriflow-${name}-` });
  const system = new ActorSystem({ name });
  let clock = Date.now();
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    assert.equal(model.cid, proof.receipt.startModel);
    const told: NetworkMessage[] = [];
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork(told),
    });
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: () => clock,
      models,
      challenge: { challengeProbability: 0, network: "node/network" },
    });
    const id = trainingReceiptId(proof.receipt);
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    await ledger.ask({ type: "deposit", key: proof.receipt.trainer, amount: LAZY_TRAINER_STAKE });
    for (const arrival of order) {
      if (arrival === "receipt") {
        const terms = { round: 0, startModel: model.cid, steps: proof.receipt.steps };
        const answer = await training.ask<{ recorded: boolean }>({
          type: "receipt",
          body: { receipt: proof.receipt, terms },
          origin: PEER,
        });
        assert.ok(answer.recorded, "the lazy receipt is recorded");
      } else if (arrival === "pledge") {
        const pledge = signStakePledge(accuser, ACCUSER_PLEDGE, 1);
        assert.equal(await ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
      } else {
        await training.ask({
          type: "fraud_proof",
          body: { proof, arch: TEST_ARCH },
          origin: PEER,
        });
      }
    }
    // The proof is re-run and settled outside the mailbox. Before stop 40 it never was when it
    // came before the pledge: the outcome below then shows what this ledger did instead. Waited
    // for as long as any effect (EVENTUALLY_GIVE_UP_MS): the re-run took 1 s here and over 3 s on
    // a loaded machine, and a window closed while it ran paid the lazy trainer.
    await eventually(async () => (await status()) !== "pending", "the proof to settle")
      .catch(() => undefined);
    // The receipt's window closes on the ledger's clock: a receipt still pending is paid.
    clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
    const stats = await training.ask<TrainingValidatorStats>({ type: "stats" });
    return {
      status: await status(),
      trainer: await ledger.ask<Account>({ type: "account", key: proof.receipt.trainer }),
      accuser: await ledger.ask<Account>({ type: "account", key: accuser.publicKey }),
      checked: stats.checked,
    };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a lazy trainer's training fraud proof settles alike whether its accuser's pledge came before or after it: slashed in both ledgers, the accuser rewarded in both", async () => {
  const accuser = Identity.generate();
  // Every ledger below publishes the same seeded start model: its CID is the receipt's.
  const modelsDir = await Deno.makeTempDir({ prefix: "veriflow-pledge-order-cid-" });
  const startModel = await new RoundModels({ modelsDir, storage: () => undefined })
    .publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0))
    .finally(() => Deno.remove(modelsDir, { recursive: true }));
  const proof = lossFraud(startModel.cid, accuser, 8);

  const pledgeFirst = await settleIn(["receipt", "pledge", "proof"], proof, accuser);
  assert.equal(pledgeFirst.status, "fraud", "the pledge first: the cheat is slashed");
  assert.ok(pledgeFirst.trainer.stake < LAZY_TRAINER_STAKE, "its stake cut");
  assert.equal(pledgeFirst.trainer.balance, 0, "and it is not paid");
  assert.ok(pledgeFirst.accuser.balance > 0, "its accuser rewarded");
  assert.equal(pledgeFirst.accuser.stake, ACCUSER_PLEDGE, "and charged nothing");

  const proofFirst = await settleIn(["receipt", "proof", "pledge"], proof, accuser);
  assert.deepEqual(proofFirst, pledgeFirst, "the proof before the pledge: the same settlement");

  // The proof before its receipt and its pledge both: held for the pledge, then for the receipt.
  const proofBeforeAll = await settleIn(["proof", "receipt", "pledge"], proof, accuser);
  assert.deepEqual(proofBeforeAll, pledgeFirst, "the proof before both: the same settlement");
});

Deno.test("proofs from keys with no pledge cost no re-run and are held within bounds: one pushed out is skipped when its pledge comes, one still held settles", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-pledge-hold-bounds-" });
  const system = new ActorSystem({ name: "pledge-hold-bounds" });
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork([]),
    });
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: Date.now,
      models,
      challenge: { challengeProbability: 0, network: "node/network", pledgeRecheckMs: 5 },
    });
    const first = lossFraud(model.cid, Identity.generate(), 8);
    await recordLazyReceipt(ledger, training, first, model.cid);
    // One more accuser of the receipt than are held per receipt, none pledged here.
    const accusers = Array.from({ length: MAX_PLEDGE_HELD_PER_RECEIPT + 1 }, Identity.generate);
    for (const accuser of accusers) {
      const { sig: _sig, validator: _validator, ...unsigned } = first;
      const proof = signTrainingFraudProof(
        { ...unsigned, challenge: drawTrainingChallenge(first.receipt, accuser) },
        accuser,
      );
      assert.deepEqual(
        await training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: PEER }),
        { queued: false, skipped: "unstaked_accuser", awaitingPledge: true },
      );
    }
    await delay(50); // rechecks run meanwhile: nobody staked, nothing taken
    const stats = () => training.ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal((await stats()).checked, 0, "nothing re-run for keys with nothing at stake");

    // The first (pushed out by the fifth) and the last pledge now.
    const [pushedOut, last] = [accusers[0], accusers.at(-1)!];
    for (const key of [pushedOut, last]) {
      const pledge = signStakePledge(key, ACCUSER_PLEDGE, 1);
      assert.equal(await ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    }
    const id = trainingReceiptId(first.receipt);
    await eventually(
      async () =>
        (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
          ?.status === "fraud",
      "the held proof to settle",
    );
    await delay(50); // a proof taken again would be re-run by now
    assert.equal((await stats()).checked, 1, "only the held proof re-run");
    const account = (key: Identity) => ledger.ask<Account>({ type: "account", key: key.publicKey });
    assert.ok((await account(last)).balance > 0, "the held proof's accuser rewarded");
    assert.deepEqual(
      await account(pushedOut),
      { balance: 0, stake: ACCUSER_PLEDGE, locked: 0 },
      "the pushed-out proof's accuser neither rewarded nor charged",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// A peer's training fraud proof held for its accuser's pledge survives a stop and start of the
// training validator: the lazy trainer is slashed and its accuser paid when the pledge comes after
// the restart, as it is without one.
//
// The hold (`training/_pledge_held_training_proofs.ts`) was memory only: a restart between the
// proof and the pledge forgot the proof, and this ledger paid, at its window's end, the lazy
// trainer every other ledger slashed. The held proofs are now kept beside the ledger
// (`<ledger>/pledge-held-training-proofs/`, `training/_kept_held_training_proofs.ts`) and go
// through the intake again at the start, re-verified, never trusted from the disk.
// ------------------------------------------------------------------------------------------------

/** The training validator's registry name (`_training_ledger.ts`). */
const TRAINING = "node/training-validator";
/** Where the held proofs are kept, under the ledger's directory. */
const KEPT_DIR = "pledge-held-training-proofs";

/**
 * A ledger and training validator on `dir` (the node's layout: own proofs and held proofs beside
 * the ledger), a fast pledge recheck, and a way to stop and start the training validator alone.
 */
async function ledgerNode(dir: string, name: string) {
  const system = new ActorSystem({ name });
  let clock = Date.now();
  const me = Identity.generate();
  const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new RecordingNetwork([]),
  });
  const challenge = { challengeProbability: 0, network: "node/network", pledgeRecheckMs: 5 };
  const { ledger, restartTraining } = await spawnTrainingLedger(system, {
    identity: me,
    dir,
    now: () => clock,
    models,
    challenge,
    resumeOwnProofs: true,
  });
  const training = () => system.lookup<TrainingValidatorMessage>(TRAINING)!;
  const status = async (id: string) =>
    (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
      ?.status;
  const account = (key: Uint8Array) => ledger.ask<Account>({ type: "account", key });
  const closeWindow = async () => {
    clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
  };
  return { system, ledger, training, restartTraining, status, account, closeWindow, model };
}

Deno.test("a training fraud proof held for its accuser's pledge survives a restart of the training validator: the pledge after it still slashes the lazy trainer and pays its accuser", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-pledge-restart-" });
  const node = await ledgerNode(dir, "pledge-restart");
  try {
    const accuser = Identity.generate();
    const proof = lossFraud(node.model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    await recordLazyReceipt(node.ledger, node.training(), proof, node.model.cid);
    assert.deepEqual(
      await node.training().ask({
        type: "fraud_proof",
        body: { proof, arch: TEST_ARCH },
        origin: PEER,
      }),
      { queued: false, skipped: "unstaked_accuser", awaitingPledge: true },
    );

    // Kept at the recheck, not only at the stop: a process killed outright keeps it too.
    const kept = join(dir, "ledger", KEPT_DIR);
    const keptBeforeStop = await eventually(
      async () =>
        (await Array.fromAsync(Deno.readDir(kept)).catch(() => [])).map((e) => e.name)
          .join() === `${trainingFraudProofHash(proof)}.cbor`,
      "the held proof to be kept on disk",
      { timeoutMs: 5_000 },
    ).then(() => true, () => false);

    await node.restartTraining();
    const pledge = signStakePledge(accuser, ACCUSER_PLEDGE, 1);
    assert.equal(await node.ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    // The proof is re-run and settled outside the mailbox; before the fix it never was here.
    await eventually(async () => (await node.status(id)) === "fraud", "the held proof to settle", {
      timeoutMs: 5_000,
    }).catch(() => undefined);
    await node.closeWindow();

    assert.equal(await node.status(id), "fraud", "the lazy trainer convicted here too");
    const trainer = await node.account(proof.receipt.trainer);
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "its stake slashed");
    assert.equal(trainer.balance, 0, "and it is not paid");
    const paid = await node.account(accuser.publicKey);
    assert.ok(paid.balance > 0, "its accuser rewarded");
    assert.equal(paid.stake, ACCUSER_PLEDGE, "and charged nothing");
    const stats = await node.training().ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 1, "re-run once, after the pledge");
    assert.ok(keptBeforeStop, "kept at a recheck, before any stop");
    // Removed at the recheck after it was taken up (5 ms here), not at once.
    await eventually(
      async () => (await Array.fromAsync(Deno.readDir(kept))).length === 0,
      "taken up: no longer kept",
      { timeoutMs: 5_000 },
    );
  } finally {
    await node.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("held training proofs read back at a start are not trusted from the disk: a forged, a garbled and a 'local' entry are dropped, nothing re-run, and the folder is cleaned", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-pledge-restart-kept-" });
  const node = await ledgerNode(dir, "pledge-restart-kept");
  try {
    const accuser = Identity.generate();
    const proof = lossFraud(node.model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    await recordLazyReceipt(node.ledger, node.training(), proof, node.model.cid);
    const kept = join(dir, "ledger", KEPT_DIR);
    await Deno.mkdir(kept, { recursive: true });
    // Its signature broken: re-verified, it is held for nothing.
    const forged = { ...proof, issuedAt: proof.issuedAt + 1 };
    const write = (name: string, bytes: Uint8Array) => Deno.writeFile(join(kept, name), bytes);
    await write(
      `${trainingFraudProofHash(forged)}.cbor`,
      encodeCanonical({
        body: { proof: forged, arch: TEST_ARCH },
        origin: PEER,
        since: Date.now(),
      }),
    );
    await write(`${"ab".repeat(32)}.cbor`, new Uint8Array([0xff, 0x00, 0x13]));
    // Written as this validator's own: its stake would not be asked for. Never from the disk.
    await write(
      `${trainingFraudProofHash(proof)}.cbor`,
      encodeCanonical({
        body: { proof, arch: TEST_ARCH },
        origin: "local",
        since: Date.now(),
      }),
    );

    await node.restartTraining();
    // The start's intake and its first recheck have run once the folder is cleaned.
    await eventually(
      async () => (await Array.fromAsync(Deno.readDir(kept))).length === 0,
      "the kept folder to be cleaned",
      { timeoutMs: 5_000 },
    );
    const stats = await node.training().ask<TrainingValidatorStats>({ type: "stats" });
    assert.equal(stats.checked, 0, "nothing re-run for an unstaked key's proof read from disk");
    assert.equal(await node.status(id), "pending", "the receipt untouched");
    await node.closeWindow();
    assert.deepEqual(await node.account(accuser.publicKey), { balance: 0, stake: 0, locked: 0 });
  } finally {
    await node.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// The training validator's intake waits on the validator's `timers`, as every other wait before a
// try again does: its rechecks of the proofs held for their accuser's pledge (`pledges_again`) and
// the waits of the peers' proofs kept because the ledger did not answer their intake
// (`unanswered_again`, `training/_unanswered_training_proofs.ts`).
//
// Before, both ran on real time whatever `timers` said: a test that passed fake timers could not
// fire them, and had to sleep past them on the wall clock. Here the recheck's period and the first
// wait are long (an hour, half a minute): only the fake timers firing bring them, and each test
// reads the ledger outcome, the lazy trainer slashed and its accuser rewarded.
// ------------------------------------------------------------------------------------------------

/** The intake's recheck period here: an hour, that no test waits out on the wall clock. */
const RECHECK_MS = 60 * 60_000;
/**
 * First wait before a proof the ledger did not answer for is taken again: half a minute (below
 * `MAX_END_RETRY_MS`, so the second wait, doubled, differs from it).
 */
const RETRY_MS = 30_000;
/** The accuser's stake here (pledged or deposited): well above the false-accusation penalty. */
const ACCUSER_STAKE = 10_000;
/** What a test gets: a ledger side on fake timers, a lazy receipt credited there, its proof. */
interface TimedIntake {
  timers: FakeTimers;
  ledger: ActorRef<ValidatorMessage>;
  training: ActorRef<TrainingValidatorMessage>;
  /** The ledger looks stopped to the training validator while on. */
  down: (down: boolean) => void;
  /** The accuser of {@link TimedIntake.proof} (not staked here yet). */
  accuser: Identity;
  /** A `loss_mismatch` proof every checker confirms, against the lazy receipt. */
  proof: TrainingFraudProof;
  /** Hand the proof over as a peer's. */
  send: () => Promise<unknown>;
  /** The lazy receipt's record here. */
  record: () => Promise<ReceiptRecord>;
  /** An account here. */
  account: (key: Uint8Array) => Promise<Account>;
  /** The validator's mailbox drained: what it was told before has been handled. */
  drained: () => Promise<TrainingValidatorStats>;
  /** The durations of the waits armed on the fake timers, ms. */
  armed: () => number[];
  /** Move the ledger's clock past the challenge window and finalize: what is paid is paid now. */
  closeWindow: () => Promise<void>;
}

/**
 * Run `test` on a fresh ledger and training validator (its waits on {@link FakeTimers}, its
 * intake's recheck every {@link RECHECK_MS}, its first retry after {@link RETRY_MS}; no challenges;
 * its holds kept on disk) on a test clock, with a lazy trainer's receipt credited here (paid when
 * its window closes) and an accuser's proof of it at hand.
 */
async function onTimedIntake(name: string, test: (run: TimedIntake) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-${name}-` });
  const system = new ActorSystem({ name });
  const timers = new FakeTimers();
  let clock = 1_000_000;
  const now = () => clock;
  try {
    const down = ledgerDownSwitch(system);
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork([]),
    });
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now,
      models,
      resumeOwnProofs: true,
      challenge: {
        challengeProbability: 0,
        network: "node/network",
        timers,
        pledgeRecheckMs: RECHECK_MS,
        endRetryMs: RETRY_MS,
        now,
        log: () => {},
      },
    });
    const accuser = Identity.generate();
    const proof = lossFraud(model.cid, accuser, 8);
    const id = trainingReceiptId(proof.receipt);
    const record = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))!;
    // The round's outcome credits the lazy receipt here: paid when its window closes.
    await ledger.ask({ type: "deposit", key: proof.receipt.trainer, amount: LAZY_TRAINER_STAKE });
    await training.ask({
      type: "credit",
      receipts: [proof.receipt],
      terms: { round: 0, startModel: model.cid, steps: proof.receipt.steps },
    });
    const credited = await record();
    assert.ok(credited.credit > 0 && credited.status === "pending", "credited, paid when final");
    await test({
      timers,
      ledger,
      training,
      down,
      accuser,
      proof,
      send: () =>
        training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: PEER }),
      record,
      account: (key) => ledger.ask<Account>({ type: "account", key }),
      drained: () => training.ask<TrainingValidatorStats>({ type: "stats" }),
      armed: () => [...timers.armed.values()].map(({ ms }) => ms),
      closeWindow: async () => {
        clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
        await ledger.ask({ type: "finalize" });
      },
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * After the window: the lazy receipt `fraud` here, the lazy trainer's locked slash taken and
 * nothing paid, its accuser rewarded `validatorRewardShare` of the slash and charged nothing.
 */
async function assertConvicted(run: TimedIntake, locked: number): Promise<void> {
  await run.closeWindow();
  assert.equal((await run.record()).status, "fraud", "the lazy trainer was paid here");
  assert.deepEqual(
    await run.account(run.proof.receipt.trainer),
    { balance: 0, stake: LAZY_TRAINER_STAKE - locked, locked: 0 } satisfies Account,
    "the lazy trainer loses its locked slash and is not paid",
  );
  assert.deepEqual(
    await run.account(run.accuser.publicKey),
    {
      balance: roundCredits(locked * DEFAULT_ECONOMICS.validatorRewardShare),
      stake: ACCUSER_STAKE,
      locked: 0,
    } satisfies Account,
    "the accuser earns its share of the slash, and is charged nothing",
  );
}

Deno.test("a peer's fraud proof held for its accuser's pledge is taken again at the intake's recheck on the validator's timers once the pledge came: the lazy trainer slashed, the accuser rewarded", () =>
  onTimedIntake("intake-timers-pledge", async (run) => {
    const { locked } = await run.record();
    assert.deepEqual(
      await run.send(),
      { queued: false, skipped: "unstaked_accuser", awaitingPledge: true },
      "held for its accuser's pledge",
    );
    const pledge = signStakePledge(run.accuser, ACCUSER_STAKE, 1);
    assert.equal(await run.ledger.ask({ type: "pledge", pledge, origin: PEER }), true);
    await run.drained();
    assert.equal((await run.record()).status, "pending", "nothing taken before the recheck");
    // The recheck waits on the validator's timers (before: on real time, an hour away).
    await eventually(
      () => run.armed().includes(RECHECK_MS),
      "the intake's recheck armed on the validator's timers",
    );
    run.timers.fireAll();
    await eventually(async () => (await run.record()).status === "fraud", "the proof to settle");
    assert.equal((await run.drained()).checked, 1, "re-run once");
    await assertConvicted(run, locked);
  }));

Deno.test("a peer's fraud proof kept because the ledger did not answer its intake is taken again at each wait the validator's timers fire, doubling: the lazy trainer slashed once the ledger answers", () =>
  onTimedIntake("intake-timers-unanswered", async (run) => {
    const { locked } = await run.record();
    await run.ledger.ask({ type: "deposit", key: run.accuser.publicKey, amount: ACCUSER_STAKE });
    run.down(true);
    await run.send();
    await run.drained();
    // Kept: its first wait is armed on the validator's timers (before: due on the wall clock,
    // taken at a recheck on real time).
    await eventually(
      () => run.armed().includes(retryWait(RETRY_MS, 1)),
      "the kept proof's first wait armed on the validator's timers",
    );
    // Fired while the ledger is still down: taken again, unanswered, kept with a doubled wait.
    run.timers.fireAll();
    await eventually(
      () => run.armed().includes(retryWait(RETRY_MS, 2)),
      "the kept proof's second wait, doubled",
    );
    await run.drained();
    assert.equal((await run.record()).status, "pending", "not settled while the ledger is down");
    assert.equal((await run.drained()).checked, 0, "nothing re-run while the ledger is down");
    run.down(false);
    await run.drained();
    assert.equal((await run.record()).status, "pending", "nothing taken before the wait fires");
    run.timers.fireAll();
    await eventually(async () => (await run.record()).status === "fraud", "the proof to settle");
    assert.equal((await run.drained()).checked, 1, "re-run once");
    await assertConvicted(run, locked);
  }));
