/**
 * What each way a training challenge can end does to the ledger (a review of the branches: who
 * pays, trainer or accuser). Each test drives the TrainingValidator in front of a real ledger
 * and checks balances and receipt status, not only the verdict.
 *
 * - A fraud proof's `arch` travels beside the signed proof, unsigned. A relay (or the accuser)
 *   could swap it: an honest trainer's valid opening then fails to decode and a false
 *   `opening_mismatch` was confirmed (the honest trainer slashed, the accuser rewarded); a true
 *   step claim failed to decode and was refuted (the honest accuser charged, the cheat kept its
 *   pay), and the genuine copy arriving after it was dropped as already seen.
 * - A fraud proof that arrives before its receipt was dropped for good: the ledger later
 *   recorded and credited the receipt (an audited outcome) and paid the trainer every other
 *   ledger slashed.
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import type { GptArchitecture } from "../../inference/model_builder.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingFraudProof,
  TRAINING_FRAUD_PROOF_VERSION,
} from "../../training/training_fraud_proof.ts";
import { openChallengedSteps, unsealStepOpenings } from "../../training/step_opening.ts";
import { trainAndSign } from "../../training/training_round.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import { lossFraud } from "./_loss_fraud.ts";

const STAKE = 10_000_000;
/** Another architecture: the test model's states do not decode under it. */
const OTHER_ARCH: GptArchitecture = { ...TEST_ARCH, numLayers: 2 };

/** A ledger and training validator on a fresh actor system, with a log to wait on. */
async function node(prefix: string) {
  const dir = await Deno.makeTempDir({ prefix });
  const system = new ActorSystem({ name: prefix });
  const me = Identity.generate();
  const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const told: NetworkMessage[] = [];
  await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new RecordingNetwork(told),
  });
  const lines: string[] = [];
  const { ledger, training } = await spawnTrainingLedger(system, {
    identity: me,
    dir,
    now: Date.now,
    models,
    challenge: {
      challengeProbability: 0,
      network: "node/network",
      log: (line) => lines.push(line),
    },
  });
  const account = (key: Uint8Array) => ledger.ask<Account>({ type: "account", key });
  const status = (receiptId: string) =>
    ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId });
  /** Wait for the n-th fraud proof line of the log (settled, refuted or unchecked). */
  const proofLines = (n: number) =>
    eventually(() => {
      const done = lines.filter((l) => / fraud proof .*(confirmed|refuted|unchecked)/.test(l));
      return done.length >= n ? done : undefined;
    }, `${n} fraud proof(s) to be checked`);
  const close = async () => {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  };
  return { model, ledger, training, account, status, proofLines, lines, close };
}

Deno.test("an honest trainer's valid opening, gossiped as `opening_mismatch` under another architecture, slashes nobody and rewards nobody", async () => {
  const n = await node("veriflow-outcomes-arch-");
  try {
    const split = await testSplit();
    const trainer = Identity.generate();
    const run = await trainAndSign({
      arch: TEST_ARCH,
      round: 0,
      startModel: n.model.cid,
      start: n.model.weights,
      shard: split.shards[0],
      steps: 2,
      dataSeed: 3,
      hyper: TEST_HYPER,
      identity: trainer,
      keepEvery: 1,
    });
    const { receipt } = run.report;
    // The accuser is a staked validator the trainer answered, honestly.
    const accuser = Identity.generate();
    const challenge = drawTrainingChallenge(receipt, accuser);
    const sealed = await openChallengedSteps(run.trace, challenge);
    const unsealed = unsealStepOpenings(sealed, challenge, receipt, accuser);
    assert.ok(unsealed.ok, "the honest answer opens");
    const proof = signTrainingFraudProof({
      v: TRAINING_FRAUD_PROOF_VERSION,
      reason: "opening_mismatch",
      receipt,
      challenge,
      answer: { plaintext: unsealed.plaintext, sig: sealed.sig },
      issuedAt: Date.now(),
    }, accuser);
    await n.ledger.ask({ type: "deposit", key: trainer.publicKey, amount: STAKE });
    await n.ledger.ask({ type: "deposit", key: accuser.publicKey, amount: STAKE });
    const recorded = await n.training.ask<{ recorded: boolean }>({
      type: "receipt",
      body: { receipt, terms: { round: 0, startModel: n.model.cid, steps: receipt.steps } },
      origin: "peer",
    });
    assert.ok(recorded.recorded);

    await n.training.ask({
      type: "fraud_proof",
      body: { proof, arch: OTHER_ARCH },
      origin: "peer",
    });
    await n.proofLines(1);
    const id = trainingReceiptId(receipt);
    assert.equal((await n.status(id))?.status, "pending", "the honest receipt stays open");
    assert.equal((await n.account(trainer.publicKey)).stake, STAKE, "the trainer is not slashed");
    assert.equal((await n.account(accuser.publicKey)).balance, 0, "the accuser gains nothing");
  } finally {
    await n.close();
  }
});

Deno.test("a true training fraud proof relayed under another architecture does not charge its accuser, and the genuine copy after it still slashes", async () => {
  const n = await node("veriflow-outcomes-relay-");
  try {
    const proof = lossFraud(n.model.cid);
    const { receipt } = proof;
    await n.ledger.ask({ type: "deposit", key: receipt.trainer, amount: STAKE });
    await n.ledger.ask({ type: "deposit", key: proof.validator, amount: STAKE });
    await n.training.ask({
      type: "receipt",
      body: { receipt, terms: { round: 0, startModel: n.model.cid, steps: receipt.steps } },
      origin: "peer",
    });
    const locked = (await n.account(receipt.trainer)).locked;
    assert.ok(locked > 0);

    // A relay's altered copy first, then the accuser's own.
    await n.training.ask({
      type: "fraud_proof",
      body: { proof, arch: OTHER_ARCH },
      origin: "relay",
    });
    await n.proofLines(1);
    assert.equal(
      (await n.account(proof.validator)).stake,
      STAKE,
      "the honest accuser pays no false-accusation penalty for a relay's copy",
    );
    await n.training.ask({ type: "fraud_proof", body: { proof, arch: TEST_ARCH }, origin: "peer" });
    await n.proofLines(2);
    const id = trainingReceiptId(receipt);
    assert.equal((await n.status(id))?.status, "fraud", "the cheat is convicted");
    assert.equal((await n.account(receipt.trainer)).stake, STAKE - locked, "and slashed");
    assert.equal(
      (await n.account(proof.validator)).balance,
      locked * DEFAULT_ECONOMICS.validatorRewardShare,
      "the accuser is rewarded",
    );
  } finally {
    await n.close();
  }
});

Deno.test("a training fraud proof that arrives before its receipt is settled once the receipt is recorded", async () => {
  const n = await node("veriflow-outcomes-early-");
  try {
    const proof = lossFraud(n.model.cid);
    const { receipt } = proof;
    await n.ledger.ask({ type: "deposit", key: receipt.trainer, amount: STAKE });
    await n.ledger.ask({ type: "deposit", key: proof.validator, amount: STAKE });
    const body = { proof, arch: TEST_ARCH };
    assert.deepEqual(
      await n.training.ask({ type: "fraud_proof", body, origin: "peer" }),
      { queued: false, skipped: "receipt_unknown", held: true },
      "not re-run while its receipt is unknown here, but held",
    );
    // The receipt comes in later (here with credit, as from an audited round outcome).
    await n.training.ask({
      type: "credit",
      receipts: [receipt],
      terms: { round: 0, startModel: n.model.cid, steps: receipt.steps },
    });
    await n.proofLines(1);
    const id = trainingReceiptId(receipt);
    const locked = receipt.steps * DEFAULT_ECONOMICS.trainingCreditPerStep *
      DEFAULT_ECONOMICS.slashMultiplier;
    assert.equal((await n.status(id))?.status, "fraud", "convicted here as everywhere else");
    assert.equal((await n.account(receipt.trainer)).stake, STAKE - locked);
  } finally {
    await n.close();
  }
});
