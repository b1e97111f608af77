/**
 * Test fixture: a ledger node whose training validator challenges every receipt and re-runs its
 * steps in the given {@link WorkerStepRerun}, and an honest trainer's run of 2 steps, staked,
 * credited and challenged over a connection that answers with its openings. Shared by
 * `challenge_rerun_worker_test.ts` and the tests of review s77 vtrain's fixes.
 *
 * @module
 */
import { ActorSystem } from "../../actors/actor_system.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { encodeCbor } from "../../protocols/cbor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { openChallengedSteps } from "../../training/step_opening.ts";
import type { WorkerStepRerun } from "../../training/step_rerun.ts";
import type { TrainingChallenge } from "../../training/training_challenge.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { trainAndSign } from "../../training/training_round.ts";
import type { ChallengeOutcome } from "../../training/training_validator.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";

/** The honest trainer's stake. */
export const HONEST_STAKE = 10_000_000;

/** See the module doc; `dataSeed` varies the trainer's run. */
export async function challengedHonestRun(dir: string, rerun: WorkerStepRerun, dataSeed = 3) {
  const system = new ActorSystem({ name: "challenged-honest-run" });
  const clock = { t: Date.now() };
  const models = new RoundModels({ modelsDir: dir, storage: () => undefined });
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const { ledger, training } = await spawnTrainingLedger(system, {
    identity: Identity.generate(),
    dir,
    now: () => clock.t,
    models,
    challenge: { challengeProbability: 1, random: () => 0, rerun },
  });
  const trainer = Identity.generate();
  const run = await trainAndSign({
    arch: TEST_ARCH,
    round: 0,
    startModel: model.cid,
    start: model.weights,
    shard: (await testSplit()).shards[0],
    steps: 2,
    dataSeed,
    hyper: TEST_HYPER,
    identity: trainer,
    keepEvery: 1,
  });
  const { receipt } = run.report;
  const terms = { round: 0, startModel: receipt.startModel, steps: receipt.steps };
  await ledger.ask({ type: "deposit", key: receipt.trainer, amount: HONEST_STAKE });
  await training.ask({ type: "credit", receipts: [receipt], terms });
  let body: Uint8Array | undefined;
  const connection = {
    peerKey: trainer.publicKey,
    request: async (_type: unknown, payload: { challenge?: TrainingChallenge }) => {
      if (payload.challenge !== undefined) {
        body = encodeCbor(await openChallengedSteps(run.trace, payload.challenge));
        return { size: body.length, parts: 1, sha256: sha256Hex(body) };
      }
      return { bytes: body! };
    },
  } as unknown as Connection;
  const { result } = await training.ask<{ result: Promise<ChallengeOutcome> }>({
    type: "challenge",
    report: run.report,
    connection,
    terms,
    arch: TEST_ARCH,
    shardSize: receipt.shardSize,
    shardRoot: receipt.shardRoot,
  });
  result.catch(() => {});
  const id = trainingReceiptId(receipt);
  const status = async () =>
    (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
      ?.status;
  const account = () => ledger.ask<Account>({ type: "account", key: trainer.publicKey });
  const closeWindow = async () => {
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
  };
  return { system, training, result, status, account, closeWindow };
}
