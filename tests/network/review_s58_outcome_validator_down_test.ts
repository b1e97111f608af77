/**
 * Review s58: a round's outcome that reaches a node while its training validator is down.
 *
 * A peer's `training.outcome` is a one-way notify, passed on once per connection, like the
 * training receipts and fraud proofs (`review_s58_training_validator_down_test.ts`). Handed to
 * the TrainingValidator with `tell`, it was dropped at once when none was registered (an error
 * frame nothing acts on) and lost with the mailbox when it crashed with it queued: this node then
 * never audited the round, and its honest trainers went uncredited in this ledger while every
 * other ledger credited them.
 *
 * The set-up: A — C on the test's clock; the round's coordinator and trainers staked in C's
 * ledger. C's training validator is down (stopped; or crashing with the outcome queued) when A
 * passes the round's signed outcome on; it starts again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { type OutcomeBody, OutcomeMessage } from "../../protocols/training_messages.ts";
import { RoundModels } from "../../training/round_models.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
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
import { honestRound } from "../training/_honest_round.ts";
import { joinLedgerNodes, spawnLedgerNode, STAKE } from "./_ledger_node.ts";
import { crashingValidator, stoppedValidator } from "./_validator_down.ts";

/** Stake of the round's coordinator and trainers in C's ledger: above any bar to be audited. */
const ROUND_STAKE = 1_000_000;

/**
 * A — C, the round's keys staked in C; `down` takes C's training validator down (given a factory
 * of the real one) and returns once A may pass the outcome on, with a wait for it to have reached
 * C and a function that brings C's training validator back; then C's ledger is checked: the
 * round's receipts recorded there with their credit.
 */
async function outcomeWhileDown(
  label: string,
  down: (
    system: ActorSystem,
    name: string,
    restart: () => TrainingValidator,
  ) => Promise<{ passedOn: () => Promise<void>; back: () => Promise<void> }>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-s58-outcome-down-${label}-` });
  const system = new ActorSystem({ name: `s58-outcome-down-${label}` });
  const clock: LedgerClock = { t: START };
  try {
    // The round's files are where C's training validator looks for them: no fetch needed.
    const storageRef = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: join(dir, "store") }),
    });
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => storageRef });
    const round = await honestRound(models, 3);
    const coordinator = Identity.generate();
    const signed = signOutcome(round.outcome, coordinator);
    const [aKey, cKey] = [Identity.generate(), Identity.generate()];
    const a = await spawnLedgerNode(system, dir, "a", {
      identity: aKey,
      pledge: signStakePledge(aKey, STAKE, 1),
      models: HONEST_MODELS,
      clock,
      // Offers the training protocol (to pass the outcome on); A's own validator is not needed.
      trainingValidator: "a/training-validator",
    });
    const trainingName = "c/training-validator";
    const c = await spawnLedgerNode(system, dir, "c", {
      identity: cKey,
      pledge: signStakePledge(cKey, STAKE, 1),
      models: HONEST_MODELS,
      clock,
      trainingValidator: trainingName,
    });
    const make = () =>
      new TrainingValidator({
        identity: cKey,
        models,
        ledger: "c/validator",
        network: "c/network",
        challengeProbability: 0,
        now: () => clock.t,
        serve: () => Promise.resolve(),
      });
    await system.spawn<TrainingValidatorMessage>({ name: trainingName, factory: make });
    for (const key of [coordinator, ...round.trainers]) {
      await c.validator.ask({ type: "deposit", key: key.publicKey, amount: ROUND_STAKE });
    }
    const connection = await joinLedgerNodes(a, c);
    const readsC = ledgerReads(() => c.validator, clock);
    await eventually(
      async () => (await readsC.account(aKey.publicKey)).stake === STAKE,
      "C to record A's pledge",
    );
    const recorded = (receipt: OutcomeBody["reports"][number]["receipt"]) =>
      c.validator.ask<ReceiptRecord | undefined>({
        type: "receipt_status",
        receiptId: trainingReceiptId(receipt),
      });

    const { passedOn, back } = await down(system, trainingName, make);
    // A passes the round's signed outcome on to C, once on this connection.
    await connection.notify(OutcomeMessage, signed);
    await passedOn();
    await back();
    // A wait for C's audit (it redoes the outer step: the shared give-up time, as a re-run
    // beside other test files can take seconds); then C's ledger is read.
    await eventually(
      async () => {
        for (const { receipt } of round.outcome.reports) {
          if (((await recorded(receipt))?.credit ?? 0) <= 0) return false;
        }
        return true;
      },
      "C to credit the round's trainers",
    ).catch(() => {});

    for (const { receipt } of round.outcome.reports) {
      const record = await recorded(receipt);
      assert.ok(record !== undefined, "the round's receipt was never recorded in C's ledger");
      assert.ok(record.credit > 0, "the honest trainer went uncredited in C's ledger");
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("review s58: a round's outcome passed on while the peer's training validator is stopped is handed to it when it starts again: the round's trainers are credited there too", async () => {
  await outcomeWhileDown("stopped", stoppedValidator);
});

Deno.test("review s58: a round's outcome queued at a training validator that crashes is handed to its next incarnation: the round's trainers are credited there too", async () => {
  await outcomeWhileDown(
    "crashed",
    (system, name, restart) =>
      crashingValidator<TrainingValidatorMessage>(
        system,
        name,
        restart,
        "training validator",
        "A's outcome to be queued at C's training validator",
      ),
  );
});
