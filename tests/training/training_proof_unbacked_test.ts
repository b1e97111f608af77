/**
 * A training fraud proof from a key that pledged here but whose stake is spent (or short of the
 * false-accusation penalty) is still checked — "unbacked" — while its receipt is open, within a
 * budget no number of keys enlarges (`actors/_unbacked_checks.ts`: 3 per receipt, 16 in flight),
 * as the inference side does. Before, such a proof was skipped for good (`unstaked_accuser`), so
 * whether a lazy trainer was slashed here hung on its accuser's stake at that moment: a valid
 * proof from an accuser an earlier false one had spent left the cheat paid here and slashed where
 * the proofs came in the other order.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import { MAX_UNBACKED_CHECKS_PER_RECEIPT } from "../../actors/_unbacked_checks.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

/** Where the gossip comes from. */
const PEER = "ee".repeat(32);
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
      await ledger.ask({ type: "pledge", pledge: signStakePledge(key, amount, 1), origin: PEER }),
      true,
    );
  const send = (proof: TrainingFraudProof) =>
    training.ask<Record<string, unknown>>({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: PEER,
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
