/**
 * Review s60: a round outcome (or a credit of its receipts) kept because the ledger did not answer
 * outlives a restart of the training validator.
 *
 * Stop 59 made the training validator keep, and take again, an outcome whose ledger ask went
 * unanswered: a peer's outcome at the gate (the coordinator's stake), or a credit of a round's
 * receipts (`training/_outcome_audits.ts`). Kept in memory only, a stop or restart of the
 * training validator while one was kept lost it, nothing brought it back (a peer passes an outcome
 * on once; this node's coordinator forgets its credit once the training validator answered), and
 * the round's honest trainers, paid in every other ledger, went unpaid in this one. Each test
 * restarts the training validator on the same ledger directory while the item is kept and reads
 * the ledger outcome: the trainers' receipts final, their balances paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account } from "../../proof/ledger.ts";
import type { ReceiptRecord } from "../../proof/ledger_state.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { RoundModels } from "../../training/round_models.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import type { TrainingValidatorMessage } from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import { honestRound } from "./_honest_round.ts";
import { LEDGER, spawnTrainingLedger, TRAINING_VALIDATOR } from "./_training_ledger.ts";

/** Local steps of the round: what is paid does not depend on them. */
const H = 3;
/** Stake of the round's coordinator and trainers here: above any bar to be audited or recorded. */
const ROUND_STAKE = 1_000_000;
/** The relaying peer (hex key). */
const PEER = "ee".repeat(32);
/** First wait before an unanswered ledger ask is made again, ms (doubling). */
const RETRY_MS = 20;

/**
 * A ledger and a training validator (keeping what it keeps in the ledger's directory, as a node
 * does) on one test clock, the round's keys staked; `stopLedger`/`startLedger` take the ledger
 * down and back, `restartTraining` stops the training validator and starts a new one on the same
 * directory; `assertPaid` reads the ledger outcome.
 */
async function onNode(
  label: string,
  test: (node: {
    signed: OutcomeBody;
    training: () => ReturnType<ActorSystem["lookup"]>;
    stopLedger: () => Promise<void>;
    startLedger: () => Promise<void>;
    restartTraining: () => Promise<void>;
    log: string[];
    assertPaid: () => Promise<void>;
  }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-s60-outcome-${label}-` });
  const system = new ActorSystem({ name: `s60-outcome-${label}` });
  const clock = { t: 1_000_000 };
  const log: string[] = [];
  try {
    const storageRef = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: join(dir, "store") }),
    });
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => storageRef });
    const round = await honestRound(models, H);
    const coordinator = Identity.generate();
    const signed = signOutcome(round.outcome, coordinator);
    const { startLedger, restartTraining } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: () => clock.t,
      models,
      resumeOwnProofs: true,
      challenge: {
        challengeProbability: 0,
        now: () => clock.t,
        endRetryMs: RETRY_MS,
        serve: () => Promise.resolve(),
        log: (line) => log.push(line),
      },
    });
    const ledger = () => system.lookup<ValidatorMessage>(LEDGER)!;
    for (const key of [coordinator, ...round.trainers]) {
      await ledger().ask({ type: "deposit", key: key.publicKey, amount: ROUND_STAKE });
    }
    const receipts = round.outcome.reports.map((r) => r.receipt);
    const record = (id: string) =>
      ledger().ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id });
    await test({
      signed,
      training: () => system.lookup<TrainingValidatorMessage>(TRAINING_VALIDATOR),
      stopLedger: async () => assert.ok(await system.stop(LEDGER), "the ledger stops"),
      startLedger: async () => void await startLedger(),
      restartTraining: async () => void await restartTraining(),
      log,
      assertPaid: async () => {
        // A bounded wait for the credit (the audit redoes the outer step); then the ledger is read.
        await eventually(
          async () => {
            for (const receipt of receipts) {
              if (((await record(trainingReceiptId(receipt)))?.credit ?? 0) <= 0) return false;
            }
            return true;
          },
          "the round's receipts credited",
          { timeoutMs: 10_000 },
        ).catch(() => {});
        clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
        await ledger().ask({ type: "finalize" });
        for (const [i, receipt] of receipts.entries()) {
          const entry = await record(trainingReceiptId(receipt));
          assert.ok(entry !== undefined, `trainer ${i}'s receipt was never recorded here`);
          assert.equal(entry.status, "final", `trainer ${i}'s receipt final`);
          assert.ok(entry.credit > 0, `trainer ${i} went uncredited in this ledger`);
          const account = await ledger().ask<Account>({ type: "account", key: receipt.trainer });
          assert.equal(account.balance, entry.credit, `trainer ${i} paid its credit`);
        }
      },
    });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("review s60: a peer's round outcome kept at the gate for a stopped ledger outlives a restart of the training validator: the round's honest trainers are paid here too", () =>
  onNode("gate", async (node) => {
    await node.stopLedger();
    await node.training()!.ask({ type: "outcome", body: node.signed, origin: PEER });
    await eventually(
      () => node.log.some((l) => l.includes("kept, the ledger did not answer")),
      "the outcome kept",
    );
    await node.restartTraining();
    await node.startLedger();
    await node.assertPaid();
  }));

Deno.test("review s60: the credit this node's coordinator made of its round, kept for a stopped ledger, outlives a restart of the training validator: its honest trainers are paid in its own ledger", () =>
  onNode("coordinator-credit", async (node) => {
    await node.stopLedger();
    const { round, startModel, reports } = node.signed;
    await node.training()!.ask({
      type: "credit",
      receipts: reports.map((r) => r.receipt),
      terms: { round, startModel, steps: H },
    });
    assert.ok(
      node.log.some((l) => l.includes("kept, the ledger did not answer")),
      "the credit kept",
    );
    await node.restartTraining();
    await node.startLedger();
    await node.assertPaid();
  }));
