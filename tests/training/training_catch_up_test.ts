/**
 * A ledger-keeping peer that connects after a training conviction catches up, as it does after an
 * inference one (`actors/_catch_up.ts`, `tests/network/catch_up_test.ts`): gossip
 * (`publish_training`) reaches only the peers connected at the moment. Before, a ledger that had
 * recorded a lazy trainer's receipt (through other peers) and was away when the trainer was
 * convicted never heard of it, and paid the trainer when the window closed, while the convicting
 * ledger slashed it. Now every training fraud proof this node's ledger settled as confirmed is kept
 * while its receipt's window is open and sent to each training peer that connects; a copy of one
 * the peer already settled is dropped before its re-run.
 *
 * Two nodes' ledger-keeping actors (validator, network, training validator) in one system, joined
 * in memory; every ledger runs on the test's clock.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingFraudProof } from "../../training/training_fraud_proof.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import {
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { eventually } from "../_helpers/wait.ts";
import {
  HONEST_MODELS,
  type LedgerClock,
  type LedgerReads,
  ledgerReads,
  START,
} from "../actors/_validator_fixture.ts";
import {
  joinLedgerNodes,
  type LedgerNode,
  spawnLedgerNode,
  STAKE,
} from "../network/_ledger_node.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { LAZY_TRAINER_STAKE, lossFraud, recordLazyReceipt } from "./_loss_fraud.ts";

/** A node's ledger-keeping actors with its training validator, and what the test reads of it. */
interface TrainingLedgerNode extends LedgerNode {
  training: ActorRef<TrainingValidatorMessage>;
  reads: LedgerReads;
  /** Its training validator's log. */
  lines: string[];
}

/**
 * Node `name`: validator, network (offering training: its training validator takes peers'
 * training gossip) and training validator, challenging nothing, all on `clock`.
 */
async function trainingNode(
  system: ActorSystem,
  dir: string,
  name: string,
  identity: Identity,
  clock: LedgerClock,
  models: RoundModels,
): Promise<TrainingLedgerNode> {
  const trainingValidator = `${name}/training-validator`;
  const node = await spawnLedgerNode(system, dir, name, {
    identity,
    pledge: signStakePledge(identity, STAKE, 1),
    models: HONEST_MODELS,
    clock,
    trainingValidator,
  });
  const lines: string[] = [];
  const training = await system.spawn<TrainingValidatorMessage>({
    name: trainingValidator,
    factory: () =>
      new TrainingValidator({
        identity,
        models,
        ledger: `${name}/validator`,
        network: `${name}/network`,
        challengeProbability: 0,
        now: () => clock.t,
        log: (line) => lines.push(line),
      }),
  });
  return { ...node, training, reads: ledgerReads(() => node.validator, clock), lines };
}

/** What a test runs on: two nodes, A (the accuser) and C (away at the conviction), and the proof. */
interface Setting {
  a: TrainingLedgerNode;
  c: TrainingLedgerNode;
  proof: TrainingFraudProof;
  id: string;
  clock: LedgerClock;
}

/**
 * Run `test` with A and C both holding the lazy trainer's receipt (pending) and its stake, and A
 * holding its own pledge; they are not connected. A convicts the trainer (its own `loss_mismatch`
 * proof, confirmed and settled in A's ledger).
 */
async function withConviction(name: string, test: (s: Setting) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-${name}-` });
  const system = new ActorSystem({ name });
  const clock = { t: START };
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const start = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
    const [aKey, cKey] = [Identity.generate(), Identity.generate()];
    const a = await trainingNode(system, dir, "a", aKey, clock, models);
    const c = await trainingNode(system, dir, "c", cKey, clock, models);
    assert.equal(
      await a.validator.ask({ type: "pledge", pledge: signStakePledge(aKey, STAKE, 1) }),
      true,
    );
    const proof = lossFraud(start.cid, aKey);
    const id = trainingReceiptId(proof.receipt);
    // Both recorded the lazy trainer's receipt (gossip from a third node); C goes away.
    await recordLazyReceipt(a.validator, a.training, proof, start.cid);
    await recordLazyReceipt(c.validator, c.training, proof, start.cid);
    // A's challenge caught the trainer: its proof checked and settled in A's ledger (gossiped to
    // no one: A has no peer now).
    await a.training.ask({
      type: "fraud_proof",
      body: { proof, arch: TEST_ARCH },
      origin: "local",
    });
    await eventually(async () => (await a.reads.record(id))?.status === "fraud", "A's conviction");
    assert.equal((await c.reads.record(id))?.status, "pending", "C heard nothing yet");
    await test({ a, c, proof, id, clock });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

const statsOf = (node: TrainingLedgerNode) =>
  node.training.ask<TrainingValidatorStats>({ type: "stats" });

Deno.test("a lazy trainer convicted while a training ledger is away is slashed in that ledger once it connects, not paid", () =>
  withConviction("training-catch-up", async ({ a, c, proof, id }) => {
    await joinLedgerNodes(c, a);
    // A bounded wait for the conviction to arrive (a re-run of one step: 10 s was too short on a
    // loaded 2-core machine, s80 whole-suite run); then the window closes
    // on whatever C has.
    await eventually(
      async () => (await c.reads.record(id))?.status === "fraud",
      "the conviction to reach C",
      { timeoutMs: 60_000 },
    ).catch(() => {});
    await c.reads.closeWindow();
    assert.equal(
      (await c.reads.record(id))?.status,
      "fraud",
      "the ledger that connected after the conviction settled the lazy receipt otherwise",
    );
    const trainer = await c.reads.account(proof.receipt.trainer);
    assert.equal(trainer.balance, 0, "the lazy trainer was paid");
    assert.ok(trainer.stake < LAZY_TRAINER_STAKE, "the lazy trainer was not slashed");
    assert.ok((await c.reads.account(proof.validator)).balance > 0, "the accuser not rewarded");
  }));

Deno.test("a training conviction a ledger is sent again when it reconnects is dropped before its re-run", () =>
  withConviction("training-catch-up-again", async ({ a, c, proof, id }) => {
    await joinLedgerNodes(c, a);
    await eventually(
      async () => (await c.reads.record(id))?.status === "fraud",
      "the conviction to reach C",
      { timeoutMs: 60_000 },
    );
    assert.equal((await statsOf(c)).checked, 1);
    await joinLedgerNodes(a, c); // a second connection: the catch-up is sent again
    await eventually(
      () => c.lines.some((l) => l.includes("not checked (repeated_accusation)")),
      "the copy to be dropped",
    );
    assert.equal((await statsOf(c)).checked, 1, "the copy was re-run");
    assert.ok((await c.reads.account(proof.receipt.trainer)).stake < LAZY_TRAINER_STAKE);
  }));
