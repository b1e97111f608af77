/**
 * Review s58: a training fraud proof that reaches a node while its training validator is down.
 *
 * A peer's `training.fraud_proof` (and `training.receipt`) is a one-way notify, passed on once
 * per connection: the sender does not send it again on that connection (the training catch-up
 * runs only on a new one). On this side `servePeer` handed it to the TrainingValidator with
 * `tell`: dropped at once when none was registered (`service_unavailable`, an error frame nothing
 * acts on), and lost with the mailbox when it crashed with it queued. The lazy trainer's receipt
 * then stayed pending and was paid here when its window closed, while the accuser's ledger
 * slashed it — as for the inference evidence (`review_s58_validator_down_test.ts`).
 *
 * The set-up: A — C on the test's clock, the lazy trainer's receipt and stake in both ledgers,
 * A's pledge in both. C's training validator is down (stopped; or crashing with the proof
 * queued) when A convicts the trainer and passes its proof on; it starts again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import {
  TrainingValidator,
  type TrainingValidatorMessage,
} from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  HONEST_MODELS,
  type LedgerClock,
  ledgerReads,
  START,
} from "../actors/_validator_fixture.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "../training/_loss_fraud.ts";
import { joinLedgerNodes, spawnLedgerNode, STAKE } from "./_ledger_node.ts";
import { crashingValidator, stoppedValidator } from "./_validator_down.ts";

/**
 * A — C holding the lazy receipt; `down` takes C's training validator down (given a factory of
 * the real one) and returns once A may convict, with a wait for the proof to have reached C and
 * a function that brings C's training validator back; then C's ledger outcome when the receipt's
 * window closes is checked.
 */
async function convictedWhileDown(
  label: string,
  down: (
    system: ActorSystem,
    name: string,
    restart: () => TrainingValidator,
  ) => Promise<{ passedOn: () => Promise<void>; back: () => Promise<void> }>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-s58-training-down-${label}-` });
  const system = new ActorSystem({ name: `s58-training-down-${label}` });
  const clock: LedgerClock = { t: START };
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const start = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const node = async (name: string, identity: Identity) => {
      const trainingName = `${name}/training-validator`;
      const ledger = await spawnLedgerNode(system, dir, name, {
        identity,
        pledge: signStakePledge(identity, STAKE, 1),
        models: HONEST_MODELS,
        clock,
        trainingValidator: trainingName,
      });
      const make = () =>
        new TrainingValidator({
          identity,
          models,
          ledger: `${name}/validator`,
          network: `${name}/network`,
          challengeProbability: 0,
          now: () => clock.t,
        });
      const training = await system.spawn<TrainingValidatorMessage>({
        name: trainingName,
        factory: make,
      });
      return { ...ledger, training, trainingName, make };
    };
    const [aKey, cKey] = [Identity.generate(), Identity.generate()];
    const [a, c] = [await node("a", aKey), await node("c", cKey)];
    assert.equal(
      await a.validator.ask({ type: "pledge", pledge: signStakePledge(aKey, STAKE, 1) }),
      true,
    );
    const proof = lossFraud(start.cid, aKey);
    const id = trainingReceiptId(proof.receipt);
    await recordLazyReceipt(a.validator, a.training, proof, start.cid);
    await recordLazyReceipt(c.validator, c.training, proof, start.cid);
    await joinLedgerNodes(a, c);
    const readsC = ledgerReads(() => c.validator, clock);
    await eventually(
      async () => (await readsC.account(aKey.publicKey)).stake === STAKE,
      "C to record A's pledge",
    );

    const { passedOn, back } = await down(system, c.trainingName, c.make);
    // A's challenge caught the trainer: its proof checked, settled in A's ledger, passed on to C.
    await a.training.ask({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: "local",
    });
    const readsA = ledgerReads(() => a.validator, clock);
    await eventually(async () => (await readsA.record(id))?.status === "fraud", "A's conviction");
    await passedOn();
    await back();
    // A wait for C's re-run of the step (the shared give-up time: a re-run beside other test
    // files can take seconds); then the window closes on whatever C has.
    await eventually(
      async () => (await readsC.record(id))?.status === "fraud",
      "C to settle the proof",
    ).catch(() => {});

    await readsC.closeWindow();
    assert.equal((await readsC.record(id))?.status, "fraud", "C paid the trainer A slashed");
    const trainer = await readsC.account(proof.receipt.trainer);
    assert.equal(trainer.balance, 0, "the lazy trainer was paid in C");
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "the lazy trainer was not slashed in C");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("review s58: a training fraud proof passed on while the peer's training validator is stopped is handed to it when it starts again: the lazy trainer is slashed there too, not paid", async () => {
  await convictedWhileDown("stopped", stoppedValidator);
});

Deno.test("review s58: a training fraud proof queued at a training validator that crashes is handed to its next incarnation: the lazy trainer is slashed there too, not paid", async () => {
  await convictedWhileDown(
    "crashed",
    (system, name, restart) =>
      crashingValidator<TrainingValidatorMessage>(
        system,
        name,
        restart,
        "training validator",
        "A's proof to be queued at C's training validator",
      ),
  );
});
