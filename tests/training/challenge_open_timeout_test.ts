/**
 * A training challenge opens its hold in the ledger by an ask to the ValidatorActor
 * (`training_challenge` `open`). An ask that fails (a timeout, the answer lost) does not take its
 * message back: the ValidatorActor may still move the receipt to `challenged` after the ask gave
 * up. Before, the training validator then did not hold the receipt, so its ending (passed,
 * undecided) was never asked: the receipt stayed `challenged` with nobody holding it, and an
 * honest trainer whose challenge passed was not paid when its window closed (the next start
 * ended it unresolved, unpaid). Now a failed open ask holds the receipt all the same, and its
 * ending is asked; a ledger that never opened it answers false.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import {
  type ChallengeOutcome,
  TrainingValidator,
  type TrainingValidatorMessage,
} from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { answeringConnection, LosesOpenAnswer } from "./_lost_open_answer.ts";
import { lossFraud } from "./_loss_fraud.ts";

const STAKE = 10_000_000;
const LEDGER = "node/validator";
/** What the training validator asks: the ledger, behind a stand-in that loses one answer. */
const PROXY = "node/validator-proxy";

Deno.test("a training challenge whose open ask failed after the ledger took it still ends there: the honest trainer whose challenge passed is paid when its window closes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-open-timeout-" });
  const system = new ActorSystem({ name: "open-timeout" });
  try {
    const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
    const start = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const me = Identity.generate();
    let clock = Date.now();
    const ledger = await system.spawn<ValidatorMessage>({
      name: LEDGER,
      factory: () =>
        new ValidatorActor({
          identity: me,
          ledgerDir: join(dir, "ledger"),
          ledger: { now: () => clock },
          finalizeIntervalMs: 0,
          models: { get: () => Promise.resolve(undefined) },
          trainingProofsResumed: true,
        }),
    });
    const proxy = new LosesOpenAnswer(LEDGER);
    await system.spawn<ValidatorMessage>({ name: PROXY, factory: () => proxy });
    const training = await system.spawn<TrainingValidatorMessage>({
      name: "node/training-validator",
      factory: () =>
        new TrainingValidator({
          identity: me,
          models,
          ledger: PROXY,
          ownProofsDir: join(dir, "ledger"),
          challengeProbability: 1,
          random: () => 0,
          check: () => Promise.resolve({ ok: true }),
          endRetryMs: 10,
          now: () => clock,
        }),
    });
    // The check says it passes: an honest trainer's receipt.
    const { receipt } = lossFraud(start.cid, me);
    const id = trainingReceiptId(receipt);
    const terms = { round: 0, startModel: receipt.startModel, steps: receipt.steps };
    await ledger.ask({ type: "deposit", key: receipt.trainer, amount: STAKE });
    await training.ask({ type: "credit", receipts: [receipt], terms });
    const { result } = await training.ask<{ result: Promise<ChallengeOutcome> }>({
      type: "challenge",
      report: { receipt, delta: new Uint8Array(1) },
      connection: answeringConnection(),
      terms,
      arch: TEST_ARCH,
      shardSize: receipt.shardSize,
      shardRoot: receipt.shardRoot,
    });
    assert.deepEqual(await result, { challenged: true, ok: true });
    const status = async () =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status;
    await eventually(async () => (await status()) !== "challenged", "the hold to end")
      .catch(() => undefined);
    clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });

    assert.equal(proxy.lost, 1, "the open's answer was lost once");
    assert.equal(await status(), "final", "the pass reached the ledger");
    const paid = await ledger.ask<Account>({ type: "account", key: receipt.trainer });
    assert.ok(paid.balance > 0, "the honest trainer is paid");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
