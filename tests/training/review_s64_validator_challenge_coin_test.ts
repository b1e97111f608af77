/**
 * Review s64: the TrainingValidator's challenge coin defaults to the economics its ledger runs
 * with (`economics.challengeProbability`), as every other part of it does (b05c308), not the
 * default economics' chance whatever the ledger's. Before, a validator on a ledger that asks every
 * receipt challenged (`challengeProbability` 1), given no coin of its own, drew at the default
 * 0.1: a lazy trainer's receipt drawn at 0.5 went unchallenged and the trainer was paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type { ChallengeOutcome } from "../../training/training_validator.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { answeringConnection } from "./_lost_open_answer.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

/** The coin's draw: above the default chance (0.1), below the ledger's (1). */
const DRAW = 0.5;

Deno.test("review s64: a training validator given its ledger's economics and no coin of its own challenges at the ledger's chance: a receipt drawn at 0.5 under a chance of 1 is challenged and its lazy trainer slashed", async () => {
  assert.ok(DEFAULT_ECONOMICS.challengeProbability <= DRAW, "the default chance would not draw it");
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s64-challenge-coin-" });
  const system = new ActorSystem({ name: "s64-challenge-coin" });
  let clock = Date.now();
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    await system.spawn<NetworkMessage>({
      name: "node/network",
      factory: () => new RecordingNetwork([]),
    });
    const me = Identity.generate();
    const proof = lossFraud(model.cid, me); // what this validator's check of the lazy steps finds
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: me,
      dir,
      now: () => clock,
      models,
      economics: { challengeProbability: 1 },
      challenge: {
        network: "node/network",
        random: () => DRAW,
        check: () => Promise.resolve({ ok: false, reason: proof.reason, proof }),
        now: () => clock,
      },
    });
    await recordLazyReceipt(ledger, training, proof, model.cid);
    const { receipt } = proof;
    const { result } = await training.ask<{ result: Promise<ChallengeOutcome> }>({
      type: "challenge",
      report: { receipt, delta: new Uint8Array(1) },
      connection: answeringConnection(),
      terms: { round: 0, startModel: model.cid, steps: receipt.steps },
      arch: TEST_ARCH,
      shardSize: receipt.shardSize,
      shardRoot: receipt.shardRoot,
    });
    // Before: { challenged: false } (drawn at the default 0.1), and the lazy trainer paid.
    assert.equal((await result).challenged, true, "drawn at the ledger's chance");
    const receiptId = trainingReceiptId(receipt);
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId }))?.status;
    await eventually(async () => (await status()) === "fraud", "the proof settled");
    clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
    const trainer = await ledger.ask<Account>({ type: "account", key: receipt.trainer });
    assert.equal(await status(), "fraud", "the lazy receipt");
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, `its stake cut: ${trainer.stake}`);
    assert.equal(trainer.balance, 0, "and it is not paid");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
