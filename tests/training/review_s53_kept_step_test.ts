/**
 * Review s53: a takeover of a peer's `opening_missing` claim passes, and keeps the trainer's last
 * opened step (step H − 1) to check the receipt's delta against when it comes (the coordinator's
 * report, a round's outcome). The takeover took this validator's one challenge of the receipt, so
 * that kept step is the only check this ledger makes of the delta. It was kept in memory only:
 * lost with a restart of the training validator, or pushed out by 8 later takeovers, the delta
 * went to the coin, which refuses a receipt challenged here, and a lazy trainer whose delta is not
 * its trained end state was paid here. Now it is also kept on disk (beside the ledger, with the
 * validator's own proofs) until it is checked or the receipt's window closes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { RoundModels } from "../../training/round_models.ts";
import { KeptLastSteps } from "../../training/_kept_last_steps.ts";
import { InProcessTrainerEngine, type TrainFunction } from "../../training/trainer_engine.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH, TEST_HYPER } from "./_fixtures.ts";
import { shuffledDeltaTrainer } from "./_shuffled_delta.ts";
import {
  assertConfirmedElsewhere,
  assertPaid,
  bareChallengeRun,
  claim,
  type ClaimNode,
  claimNode,
  H,
  split,
  START,
  start,
  toldProofs,
  trainedEngine,
  TRAINER_STAKE,
  trainerLink,
} from "./_claim_node.ts";

/** The validator's own answer window (wall clock). */
const WINDOW_MS = 3_000;
/** Takeovers whose last steps the challenge run kept in memory before this review. */
const KEPT_IN_MEMORY_BEFORE = 8;

/** A trainer whose engine trained `rounds` receipts (by `train`), answering every challenge. */
async function trainer(startModel: string, rounds: number, train?: TrainFunction) {
  const { identity, engine, receipts } = await trainedEngine(startModel, rounds, { train });
  const { connection, challenges } = trainerLink(identity, (c) => engine.open(c));
  return { identity, receipts, connection, challenges };
}

/**
 * A lazy trainer (its deltas shuffled) whose engine trained `rounds` receipts and keeps their
 * traces on disk under `dir`, as a node's does: it opens each one, not only its latest few.
 */
async function diskTrainer(startModel: string, rounds: number, dir: string) {
  const identity = Identity.generate();
  const engine = new InProcessTrainerEngine(identity, split.shards[0], shuffledDeltaTrainer, {
    dir,
  });
  const receipts = [];
  for (let round = 0; round < rounds; round++) {
    receipts.push(
      await engine.train({
        arch: TEST_ARCH,
        round,
        startModel,
        start,
        steps: H,
        dataSeed: 11 + round,
        hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER },
      }),
    );
  }
  const { connection, challenges } = trainerLink(identity, (c) => engine.open(c));
  return { identity, receipts, connection, challenges };
}

/** Run `test` on a fresh claim node (its ledger and validator on disk) linked to a trainer. */
async function withNode(
  name: string,
  train: TrainFunction | undefined,
  test: (n: ClaimNode, t: Awaited<ReturnType<typeof trainer>>) => Promise<void>,
): Promise<void> {
  let link: Connection | undefined;
  const n = await claimNode(`s53-${name}`, () => link, WINDOW_MS);
  try {
    const t = await trainer(n.model.cid, 1, train);
    link = t.connection;
    await test(n, t);
  } finally {
    await n.close();
  }
}

Deno.test("review s53 kept step: a takeover's last opened step survives a restart of the training validator — the lazy trainer's delta that comes after it is convicted on the takeover's challenge and slashed here, not paid", () =>
  withNode("restart-lazy", shuffledDeltaTrainer, async (n, t) => {
    const [{ receipt, delta }] = t.receipts;
    const claimant = Identity.generate(); // the lazy trainer's own second key
    const record = await n.credited(receipt, claimant);
    await n.claim(claim(receipt, claimant));
    await eventually(async () => (await n.stats()).falseClaims === 1, "the takeover to pass");
    await n.restartTraining();
    const outcome = await (await n.deltaComes(receipt, delta, t.connection)).result;
    assert.equal(outcome.reason, "delta_mismatch", "the delta checked against the kept step");
    await assertConfirmedElsewhere(outcome.proof);
    assert.equal(t.challenges.length, 1, "no second challenge (the trainer would refuse it)");
    await eventually(
      async () => (await n.record(record.receiptId)).status === "fraud",
      "the delta proof to settle",
    );
    await n.closeWindow();
    assert.equal((await n.record(record.receiptId)).status, "fraud");
    const account = await n.account(t.identity.publicKey);
    assert.equal(account.balance, 0, "the lazy trainer is not paid");
    assert.equal(account.stake, TRAINER_STAKE - record.locked, "its locked stake is slashed");
    assert.ok((await n.account(n.identity.publicKey)).balance > 0, "its validator rewarded");
  }));

Deno.test("review s53 kept step: after a restart an honest trainer's delta passes the kept step's check — no second challenge, paid in full", () =>
  withNode("restart-honest", undefined, async (n, t) => {
    const [{ receipt, delta }] = t.receipts;
    const claimant = Identity.generate();
    const record = await n.credited(receipt, claimant);
    await n.claim(claim(receipt, claimant));
    await eventually(async () => (await n.stats()).falseClaims === 1, "the takeover to pass");
    await n.restartTraining();
    const outcome = await (await n.deltaComes(receipt, delta, t.connection)).result;
    assert.deepEqual(outcome, { challenged: true, ok: true });
    assert.equal(t.challenges.length, 1);
    await assertPaid(n, record);
    assert.equal((await n.stats()).frauds, 0);
  }));

Deno.test("review s53 kept step: eight later takeovers do not push out the first one's kept step — the first lazy delta that comes with the round's outcome is still convicted, with no second challenge", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53-kept-steps-" });
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const model = await models.publish(TEST_ARCH, start);
    const t = await diskTrainer(model.cid, KEPT_IN_MEMORY_BEFORE + 1, join(dir, "traces"));
    const { run, ctx, told } = bareChallengeRun({
      models,
      openingDeadlineMs: WINDOW_MS,
      connectionTo: () => Promise.resolve(t.connection),
      reach: () => Promise.resolve(t.connection),
      lastStepsDir: join(dir, "kept"),
    });
    for (const { receipt } of t.receipts) {
      const outcome = await run.takeover({
        receipt,
        arch: TEST_ARCH,
        connection: t.connection,
        pendingUntil: START + DEFAULT_ECONOMICS.challengeWindowMs,
      }, ctx);
      assert.equal(outcome, "served");
    }
    const [first] = t.receipts;
    const body = {
      round: first.receipt.round,
      startModel: model.cid,
      arch: TEST_ARCH,
      reports: [{ receipt: first.receipt, deltaFile: "unused" }],
    } as unknown as OutcomeBody;
    await run.afterRound(body, body.reports[0], first.delta, ctx);
    const proofs = toldProofs(told);
    assert.equal(proofs.length, 1, "the first receipt's delta proof, told to the validator");
    await assertConfirmedElsewhere(proofs[0]);
    assert.equal(t.challenges.length, t.receipts.length, "one challenge per receipt, no second");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s53 kept step: a damaged kept-step file is treated as absent and removed, and one past its receipt's window is removed when the store opens", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53-kept-files-" });
  try {
    const damaged = "a".repeat(64);
    const expired = "b".repeat(64);
    await Deno.writeFile(join(dir, `${START + 1}-${damaged}.cbor`), Uint8Array.of(1, 2, 3));
    await Deno.writeFile(join(dir, `${START - 1}-${expired}.cbor`), Uint8Array.of(1, 2, 3));
    const lines: string[] = [];
    const kept = new KeptLastSteps(dir, () => START, (line) => lines.push(line));
    assert.equal(await kept.has(expired), false, "past its window: gone");
    assert.equal(await kept.has(damaged), true);
    assert.equal(await kept.take(damaged), undefined, "damaged: no step to check against");
    assert.equal(await kept.any(), false);
    const left = [];
    for await (const entry of Deno.readDir(dir)) left.push(entry.name);
    assert.deepEqual(left, [], "both files removed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
