/**
 * A round that averaged a delta this node's ledger convicted (review s73 F6). A peer drew trainer
 * A of round 0 after the round, and its proof settled here before round 0's outcome came. Before,
 * the audit refused the whole outcome (`convicted_included`): round 0's honest trainer went
 * unpaid, no momentum was kept for round 0's model, and so round 1 — other, honest trainers — was
 * taken unverified and paid nothing here either, as every later round of that coordinator would
 * be. Now the round is reproduced as published and adopted, its momentum kept, every receipt but
 * the convicted one credited, and the coordinator's signed outcome naming the convicted receipt
 * is recorded against it (`convictedIncluded`). The control, without the conviction, pays the same
 * honest trainers the same.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Account } from "../../proof/ledger.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import type { TrainingValidatorStats } from "../../training/training_validator.ts";
import { trainingReceiptId } from "../../training/training_receipt.ts";
import { eventually } from "../_helpers/wait.ts";
import { honestRound, trainedRound } from "./_honest_round.ts";
import { spawnTrainingLedger } from "./_training_ledger.ts";
import { TEST_ARCH, testModelCredit } from "./_fixtures.ts";

/** Local steps per trainer. */
const H = 3;
/** What every key holds in the ledger before the rounds. */
const STAKE = 1_000_000;

/**
 * Two honest rounds (round 0 by trainers A and B, round 1 from its model by two others) whose
 * signed outcomes reach a ledger's training validator from a peer; with `convictFirst`, a
 * confirmed fraud proof against A's round-0 receipt settles there first. The ledger's clock then
 * passes the challenge window and it finalizes.
 */
async function chain(convictFirst: boolean) {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-convicted-included-" });
  const system = new ActorSystem({ name: "convicted-included" });
  const clock = { t: 1_000_000 };
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: join(dir, "store") }),
    });
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => storage });
    // honestRound publishes the seed model and makes round 0's trainers; the round is trained
    // again here for the momentum round 1 carries.
    const r0 = await honestRound(models, H);
    const round0 = await trainedRound(models, {
      round: 0,
      start: { ...r0.seed, file: r0.seed.file!, weights: seededGptWeights(TEST_ARCH, 0) },
      trainers: r0.trainers,
      steps: H,
    });
    const r1Trainers = [Identity.generate(), Identity.generate()];
    const round1 = await trainedRound(models, {
      round: 1,
      start: {
        cid: round0.model.cid,
        file: round0.model.file!,
        weights: round0.model.weights,
      },
      momentum: round0.momentum,
      trainers: r1Trainers,
      steps: H,
    });
    const coordinator = Identity.generate();
    const accuser = Identity.generate();
    const { ledger, training } = await spawnTrainingLedger(system, {
      identity: Identity.generate(),
      dir,
      now: () => clock.t,
      models,
      challenge: { challengeProbability: 0, now: () => clock.t, serve: () => Promise.resolve() },
    });
    for (const k of [coordinator, accuser, ...r0.trainers, ...r1Trainers]) {
      await ledger.ask({ type: "deposit", key: k.publicKey, amount: STAKE });
    }
    const convictedReceipt = round0.outcome.reports[0].receipt;
    let slashed = 0;
    if (convictFirst) {
      const settled = await ledger.ask<{ settled: boolean; slashed: number }>({
        type: "training_fraud",
        receipt: convictedReceipt,
        fraudProofHash: "ab".repeat(32),
        validator: accuser.publicKey,
        confirmed: true,
        reason: "step_mismatch",
      });
      assert.ok(settled.settled && settled.slashed > 0, JSON.stringify(settled));
      slashed = settled.slashed;
    }
    for (const body of [round0.outcome, round1.outcome]) {
      await training.ask({
        type: "outcome",
        body: signOutcome(body, coordinator),
        origin: "ee".repeat(32),
      });
      await eventually(
        async () => {
          const s = await training.ask<TrainingValidatorStats>({ type: "stats" });
          return s.adopted.includes(body.model) || s.unverified.includes(body.model) ||
            s.refused.some((r) => r.model === body.model);
        },
        "the outcome audited",
        { timeoutMs: 60_000 },
      );
    }
    // The credits are made after the audit, outside the mailbox: each receipt ends credited, or
    // (the convicted one) as fraud.
    const receipts = [...round0.outcome.reports, ...round1.outcome.reports].map((r) => r.receipt);
    await eventually(
      async () => {
        for (const receipt of receipts) {
          const rec = await ledger.ask<{ credit: number; status: string } | undefined>({
            type: "receipt_status",
            receiptId: trainingReceiptId(receipt),
          });
          if ((rec?.credit ?? 0) <= 0 && rec?.status !== "fraud") return false;
        }
        return true;
      },
      "every receipt credited or convicted",
      { timeoutMs: 30_000 },
    );
    clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
    await ledger.ask({ type: "finalize" });
    const account = (k: Identity) => ledger.ask<Account>({ type: "account", key: k.publicKey });
    return {
      stats: await training.ask<TrainingValidatorStats>({ type: "stats" }),
      models: [round0.outcome.model, round1.outcome.model],
      coordinator: toHex(coordinator.publicKey),
      convictedId: trainingReceiptId(convictedReceipt),
      slashed,
      convicted: await account(r0.trainers[0]),
      round0Honest: await account(r0.trainers[1]),
      round1: await Promise.all(r1Trainers.map(account)),
    };
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/** What an honest trainer of this test's rounds holds after the window: its credit, its stake. */
const PAID: Account = { balance: testModelCredit(H), stake: STAKE, locked: 0 };

Deno.test("a conviction before a round's outcome costs only the convicted trainer: the round and the next are adopted, every other trainer paid", async () => {
  const run = await chain(true);
  assert.deepEqual(run.stats.refused, []);
  assert.deepEqual(run.stats.unverified, [], "round 1 audited from round 0's momentum");
  assert.deepEqual(run.stats.adopted, run.models);
  assert.deepEqual(run.round0Honest, PAID);
  assert.deepEqual(run.round1, [PAID, PAID]);
  // The convicted trainer: nothing credited, its stake slashed by the proof.
  assert.deepEqual(run.convicted, { balance: 0, stake: STAKE - run.slashed, locked: 0 });
  // The coordinator's signed outcome naming the convicted receipt is kept against it.
  assert.deepEqual(run.stats.convictedIncluded, [
    { model: run.models[0], coordinator: run.coordinator, receipts: [run.convictedId] },
  ]);
});

Deno.test("honest rounds without a conviction are paid as before and record nothing against the coordinator", async () => {
  const run = await chain(false);
  assert.deepEqual(run.stats.refused, []);
  assert.deepEqual(run.stats.unverified, []);
  assert.deepEqual(run.stats.adopted, run.models);
  assert.deepEqual(run.convicted, PAID);
  assert.deepEqual(run.round0Honest, PAID);
  assert.deepEqual(run.round1, [PAID, PAID]);
  assert.deepEqual(run.stats.convictedIncluded, []);
});
