/**
 * A takeover of a peer's `opening_missing` claim keeps the trainer's last opened step (step H - 1)
 * and checks the receipt's delta against it when the delta comes; the kept step outlives a restart
 * and later takeovers.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import type { Connection } from "../../protocols/connection.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { RoundModels } from "../../training/round_models.ts";
import { trainingChallengeId } from "../../training/training_challenge.ts";
import { InProcessTrainerEngine, type TrainFunction } from "../../training/trainer_engine.ts";
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
import { KeptLastSteps } from "../../training/_kept_last_steps.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";

// ------------------------------------------------------------------------------------------------
// A takeover of a peer's `opening_missing` claim keeps the last opened step (step H − 1) and checks
// the delta against it when the delta comes (the coordinator's report, a round's outcome). The node
// is `_claim_node.ts`'s; its trainer stand-in can hold back its answer to a challenge until the
// test lets it go.
// ------------------------------------------------------------------------------------------------

/** The validator's own answer window (wall clock): room for the test to hold an answer back. */
const WINDOW_MS = 3_000;

/** A trainer of one receipt; `hold()` makes it hold back its next answer until `release()`. */
async function trainer(startModel: string, train?: TrainFunction) {
  const { identity, engine, receipts: [{ receipt, delta }] } = await trainedEngine(
    startModel,
    1,
    { train },
  );
  let gate: PromiseWithResolvers<void> | undefined;
  const { connection, challenges } = trainerLink(identity, async (challenge) => {
    await gate?.promise;
    return await engine.open(challenge);
  });
  return {
    identity,
    receipt,
    delta,
    connection,
    challenges,
    hold: () => gate = Promise.withResolvers<void>(),
    release: () => gate?.resolve(),
  };
}

/** Run `test` on a fresh node linked to a fresh trainer (trained by `train`). */
async function withNode(
  name: string,
  train: TrainFunction | undefined,
  test: (
    n: ClaimNode,
    t: Awaited<ReturnType<typeof trainer>>,
  ) => Promise<void>,
): Promise<void> {
  let link: Connection | undefined;
  const n = await claimNode(name, () => link, WINDOW_MS);
  try {
    const t = await trainer(n.model.cid, train);
    link = t.connection;
    await test(n, t);
  } finally {
    await n.close();
  }
}

Deno.test("a delta that comes while the takeover is under way (the lazy trainer held its answer back until the round's outcome came) is checked against the step the takeover keeps, not lost to the coin the takeover's mark refuses", () =>
  withNode("in-flight", shuffledDeltaTrainer, async (n, t) => {
    const claimant = Identity.generate(); // the lazy trainer's own second key
    const record = await n.credited(t.receipt, claimant);
    t.hold(); // it answers the takeover only once the delta has come
    await n.claim(claim(t.receipt, claimant));
    await eventually(() => Promise.resolve(t.challenges.length === 1), "the takeover's ask");
    // The delta comes meanwhile (a report, or an outcome's `afterRound`, whose coin path this is).
    const { result } = await n.deltaComes(t.receipt, t.delta, t.connection);
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.release();
    await eventually(async () => (await n.stats()).falseClaims === 1, "the takeover to pass");
    const outcome = await result;
    assert.equal(outcome.reason, "delta_mismatch", "the delta checked against the kept step");
    await assertConfirmedElsewhere(outcome.proof);
    assert.equal(t.challenges.length, 1, "no second challenge");
    await eventually(
      async () => (await n.record(record.receiptId)).status === "fraud",
      "the delta proof to settle",
    );
    await n.closeWindow();
    assert.equal((await n.record(record.receiptId)).status, "fraud");
    const account = await n.account(t.identity.publicKey);
    assert.equal(account.balance, 0);
    assert.equal(account.stake, TRAINER_STAKE - record.locked);
    assert.ok((await n.account(n.identity.publicKey)).balance > 0, "its validator rewarded");
  }));

Deno.test("the proof a kept step gives is what any other ledger confirms (checkTrainingFraudProof: the takeover's challenge, step H − 1's opening, the receipt's delta)", () =>
  withNode("peer-check", shuffledDeltaTrainer, async (n, t) => {
    const claimant = Identity.generate();
    await n.credited(t.receipt, claimant);
    await n.claim(claim(t.receipt, claimant));
    await eventually(async () => (await n.stats()).falseClaims === 1, "the takeover to pass");
    const outcome = await (await n.deltaComes(t.receipt, t.delta, t.connection)).result;
    await assertConfirmedElsewhere(outcome.proof);
    const proof = outcome.proof!;
    assert.equal(trainingChallengeId(proof.challenge), trainingChallengeId(t.challenges[0]));
    assert.equal(proof.opening?.step, H - 1);
    assert.equal(sha256Hex(proof.delta!), t.receipt.deltaHash);
  }));

Deno.test("an honest trainer's delta passes the kept step's check: not convicted, paid in full", () =>
  withNode("honest", undefined, async (n, t) => {
    const claimant = Identity.generate();
    const record = await n.credited(t.receipt, claimant);
    await n.claim(claim(t.receipt, claimant));
    await eventually(async () => (await n.stats()).falseClaims === 1, "the takeover to pass");
    const outcome = await (await n.deltaComes(t.receipt, t.delta, t.connection)).result;
    assert.deepEqual(outcome, { challenged: true, ok: true });
    assert.equal(t.challenges.length, 1);
    await assertPaid(n, record);
    assert.equal((await n.stats()).frauds, 0);
  }));

/**
 * A bare TrainingChallengeRun takes over `t`'s receipt, and a round's outcome brings its delta
 * (`afterRound`): while the takeover is under way (`inFlight`: the trainer holds its answer back
 * until then), or after it passed. The proofs it tells the validator.
 */
async function takeoverThenOutcome(inFlight: boolean): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s51-delta-after-round-" });
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const model = await models.publish(TEST_ARCH, start);
    const t = await trainer(model.cid, shuffledDeltaTrainer);
    const { run, ctx, told } = bareChallengeRun({
      models,
      openingDeadlineMs: WINDOW_MS,
      connectionTo: () => Promise.resolve(t.connection),
      reach: () => Promise.resolve(t.connection),
    });
    if (inFlight) t.hold();
    const takeover = run.takeover({
      receipt: t.receipt,
      arch: TEST_ARCH,
      connection: t.connection,
      pendingUntil: START + DEFAULT_ECONOMICS.challengeWindowMs,
    }, ctx);
    await eventually(() => Promise.resolve(t.challenges.length === 1), "the takeover's ask");
    const body = {
      round: 0,
      startModel: model.cid,
      arch: TEST_ARCH,
      reports: [{ receipt: t.receipt, deltaFile: "unused" }],
    } as unknown as OutcomeBody;
    if (!inFlight) assert.equal(await takeover, "served");
    const afterRound = run.afterRound(body, body.reports[0], t.delta, ctx);
    await new Promise((resolve) => setTimeout(resolve, 100));
    t.release();
    assert.equal(await takeover, "served");
    await afterRound;
    const proofs = toldProofs(told);
    assert.equal(proofs.length, 1, "the delta proof, told to the validator");
    await assertConfirmedElsewhere(proofs[0]);
    assert.equal(t.challenges.length, 1, "no second challenge");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a round's outcome audited after the takeover passed (afterRound) checks the delta against the kept step and convicts one that is not its end state, with no second challenge", () =>
  takeoverThenOutcome(false));

Deno.test("a round's outcome audited while the takeover is under way (afterRound) waits for the takeover's kept step and convicts a delta that is not its end state", () =>
  takeoverThenOutcome(true));

// ------------------------------------------------------------------------------------------------
// A takeover of a peer's `opening_missing` claim passes, and keeps the trainer's last opened step
// (step H − 1) to check the receipt's delta against when it comes (the coordinator's report, a
// round's outcome). The takeover took this validator's one challenge of the receipt, so that kept
// step is the only check this ledger makes of the delta. It was kept in memory only: lost with a
// restart of the training validator, or pushed out by 8 later takeovers, the delta went to the
// coin, which refuses a receipt challenged here, and a lazy trainer whose delta is not its trained
// end state was paid here. Now it is also kept on disk (beside the ledger, with the validator's own
// proofs) until it is checked or the receipt's window closes.
// ------------------------------------------------------------------------------------------------

/** Takeovers whose last steps the challenge run kept in memory before this review. */
const KEPT_IN_MEMORY_BEFORE = 8;

/** A trainer whose engine trained `rounds` receipts (by `train`), answering every challenge. */
async function trainerKept(startModel: string, rounds: number, train?: TrainFunction) {
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
async function withNodeKept(
  name: string,
  train: TrainFunction | undefined,
  test: (n: ClaimNode, t: Awaited<ReturnType<typeof trainerKept>>) => Promise<void>,
): Promise<void> {
  let link: Connection | undefined;
  const n = await claimNode(`s53-${name}`, () => link, WINDOW_MS);
  try {
    const t = await trainerKept(n.model.cid, 1, train);
    link = t.connection;
    await test(n, t);
  } finally {
    await n.close();
  }
}

Deno.test("a takeover's last opened step survives a restart of the training validator — the lazy trainer's delta that comes after it is convicted on the takeover's challenge and slashed here, not paid", () =>
  withNodeKept("restart-lazy", shuffledDeltaTrainer, async (n, t) => {
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

Deno.test("after a restart an honest trainer's delta passes the kept step's check — no second challenge, paid in full", () =>
  withNodeKept("restart-honest", undefined, async (n, t) => {
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

Deno.test("eight later takeovers do not push out the first one's kept step — the first lazy delta that comes with the round's outcome is still convicted, with no second challenge", async () => {
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

Deno.test("a damaged kept-step file is treated as absent and removed, and one past its receipt's window is removed when the store opens", async () => {
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
