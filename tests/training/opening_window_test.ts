/**
 * A challenge's answer window grows with the steps it makes the trainer re-run (stop 76: every
 * receipt challenged beside a CPU hog, load 9–11 on 2 cores, opening 9 of 20 steps took an honest
 * trainer past the fixed 60 s deadline, and it was slashed 40000 `opening_missing`). A slow honest
 * trainer answers within the window and is not slashed; a trainer that withholds is still
 * convicted once it has passed; the window is capped. Time is the challenge's own (`issuedAt`,
 * `deadline`) and clocks the checks are given: nothing sleeps.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ActorContext } from "../../actors/actor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { ConnectionClosedError } from "../../protocols/protocol_errors.ts";
import type { OutcomeBody } from "../../protocols/training_messages.ts";
import { ChallengeEndings } from "../../training/_challenge_endings.ts";
import { ChallengedReceipts } from "../../training/_challenged_receipts.ts";
import { TrainingChallengeRun } from "../../training/_training_challenge_run.ts";
import {
  MAX_OPENING_WINDOW_MS,
  OPENING_MS_PER_STEP,
  openingWindowMs,
  recomputedSteps,
} from "../../training/opening_window.ts";
import { RoundModels } from "../../training/round_models.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import {
  DEFAULT_OPENING_DEADLINE_MS,
  drawTrainingChallenge,
  TRAINING_CHALLENGE_STEPS,
} from "../../training/training_challenge.ts";
import {
  checkTrainingFraudProof,
  type TrainingFraudProof,
} from "../../training/training_fraud_proof.ts";
import type { TrainingValidatorMessage } from "../../training/training_validator.ts";
import { start, type Told, toldProofs, trainedEngine, trainerLink } from "./_claim_node.ts";
import { TEST_ARCH } from "./_fixtures.ts";

/** Local steps of the receipt: README's "Training across nodes" example (H = 20). */
const STEPS = 20;
/**
 * The slowest step re-run measured in stop 76 on the loaded machine (4.3 s, the validator's re-run
 * of one `tiny` step), and what sealing and sending a `tiny` answer costs (~0.8 s): the slow honest
 * trainer re-runs every one of its H steps at that pace, more than any challenge asks of it.
 */
const LOADED_STEP_MS = 4_300;
const SEAL_MS = 800;

/** A validator's challenge run with its default window, on the test's key; what it told. */
function validatorRun(
  models: RoundModels,
  identity: Identity,
  connectionTo: () => Connection | undefined,
) {
  const told: Told[] = [];
  const ctx = {
    signal: new AbortController().signal,
    self: { tell: (message: Told) => (told.push(message), Promise.resolve()) },
  } as unknown as ActorContext<TrainingValidatorMessage>;
  const now = () => Date.now();
  const run = new TrainingChallengeRun({
    identity,
    models,
    challengeProbability: 1,
    random: () => 0,
    // No `openingDeadlineMs`: the node's default, as README's example runs it.
    check: checkStepOpenings,
    endings: new ChallengeEndings({
      askEnd: () => Promise.resolve(true),
      settleInLedger: () => Promise.resolve({ settled: true }),
      log: () => {},
    }),
    challenged: new ChallengedReceipts(undefined, now),
    now,
    ask: <R>(_ctx: unknown, message: { type: string }) =>
      Promise.resolve((message.type === "training_challenge" ? true : undefined) as R),
    hasLedger: () => true,
    connectionTo: () => Promise.resolve(connectionTo()),
    reach: () => Promise.resolve(undefined),
    log: () => {},
  });
  return { run, ctx, told };
}

/** One honest receipt of {@link STEPS} steps challenged by a validator run with its defaults. */
async function challengedHonestReceipt() {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-opening-window-" });
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const model = await models.publish(TEST_ARCH, start);
    const { identity, engine, receipts: [{ receipt, delta }] } = await trainedEngine(
      model.cid,
      1,
      { steps: STEPS },
    );
    // The honest trainer on the loaded machine: when would its answer land, against the deadline?
    const landed: { at: number; deadline: number }[] = [];
    const link = trainerLink(identity, (challenge) => {
      landed.push({
        at: challenge.issuedAt + STEPS * LOADED_STEP_MS + SEAL_MS,
        deadline: challenge.deadline,
      });
      return engine.open(challenge);
    });
    const validator = Identity.generate();
    const { run, ctx, told } = validatorRun(models, validator, () => link.connection);
    const body = {
      round: 0,
      startModel: model.cid,
      arch: TEST_ARCH,
      reports: [{ receipt, deltaFile: "unused" }],
    } as unknown as OutcomeBody;
    await run.afterRound(body, body.reports[0], delta, ctx);
    return { receipt, validator, challenges: link.challenges, landed, told };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const honest = await challengedHonestReceipt();

Deno.test("a slow honest trainer whose re-run takes longer than 60 s, within the scaled window, is not slashed", async () => {
  assert.equal(honest.challenges.length, 1, "challenged once");
  const [challenge] = honest.challenges;
  const [{ at, deadline }] = honest.landed;
  assert.ok(at - challenge.issuedAt > DEFAULT_OPENING_DEADLINE_MS, "slower than the old 60 s");
  assert.ok(
    at < deadline,
    `the slow honest answer lands ${at - challenge.issuedAt} ms after the challenge, ` +
      `its window is ${deadline - challenge.issuedAt} ms`,
  );
  assert.deepEqual(toldProofs(honest.told), [], "its answer passed: no fraud proof");
  // Had its answer not come yet when it would land, the validator still waits: no proof then.
  const pending = await checkStepOpenings(honest.receipt, challenge, undefined, {
    validator: honest.validator,
    arch: TEST_ARCH,
    startWeights: start,
    shardSize: honest.receipt.shardSize,
    now: () => at,
  });
  assert.deepEqual(pending, { ok: false, reason: "opening_pending" });
});

Deno.test("a withholding trainer is still convicted once the scaled window has passed", async () => {
  const [challenge] = honest.challenges;
  const missing = await checkStepOpenings(honest.receipt, challenge, undefined, {
    validator: honest.validator,
    arch: TEST_ARCH,
    startWeights: start,
    shardSize: honest.receipt.shardSize,
    now: () => challenge.deadline,
  });
  assert.equal(missing.ok ? "ok" : missing.reason, "opening_missing");
  const proof = (missing as { proof: TrainingFraudProof }).proof;
  const checked = await checkTrainingFraudProof(proof, { arch: TEST_ARCH, startWeights: start });
  assert.deepEqual([checked.confirmed, checked.reason], [true, "confirmed"]);
  // The window is bounded: the withholder's conviction waits at most this long.
  assert.ok(challenge.deadline - challenge.issuedAt <= MAX_OPENING_WINDOW_MS);
});

Deno.test("the window grows by the steps re-run from the nearest kept state, and is capped", () => {
  // Kept every 16: step 5 runs from state 1 (step 0's end), step 19 from kept state 16.
  assert.equal(recomputedSteps([0, 5, 19], 16), 1 + 5 + 4);
  assert.equal(
    openingWindowMs([0, 5, 19]),
    DEFAULT_OPENING_DEADLINE_MS + 10 * OPENING_MS_PER_STEP,
  );
  // The worst a default challenge asks: each of its steps just below a kept state, 16 re-run.
  const worst = Array.from({ length: TRAINING_CHALLENGE_STEPS }, (_, i) => 16 * i + 15);
  assert.equal(recomputedSteps(worst, 16), 16 * TRAINING_CHALLENGE_STEPS);
  assert.equal(openingWindowMs(worst), MAX_OPENING_WINDOW_MS);
  // A huge per-step allowance (a node's option, or a sparse keep) is capped too.
  assert.equal(openingWindowMs([0, 1], { perStepMs: 1e9 }), MAX_OPENING_WINDOW_MS);
  assert.equal(openingWindowMs([999], { keepEvery: 1_000 }), MAX_OPENING_WINDOW_MS);
});

Deno.test("a challenge's window is fixed when given, or a function of the steps drawn", () => {
  const validator = Identity.generate();
  const fixed = drawTrainingChallenge(honest.receipt, validator, {
    deadlineMs: 1_500,
    now: () => 0,
  });
  assert.equal(fixed.deadline, 1_500);
  const scaled = drawTrainingChallenge(honest.receipt, validator, {
    deadlineMs: (steps) => openingWindowMs(steps),
    now: () => 0,
  });
  assert.equal(scaled.deadline, openingWindowMs(scaled.steps));
});

Deno.test("an honest trainer whose connection closes during its challenge, and that joins again later, is asked again and not slashed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-opening-window-" });
  try {
    const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
    const model = await models.publish(TEST_ARCH, start);
    const { identity, engine, receipts: [{ receipt, delta }] } = await trainedEngine(model.cid, 1);
    // Stop 76, loaded: the trainer dropped the coordinator (5 s of silence) while it answered,
    // and joined again seconds later; it does not listen, so the validator cannot dial it.
    let asksOnCut = 0;
    const cut = {
      peerKey: identity.publicKey,
      isClosed: true,
      request: () => {
        asksOnCut++;
        return Promise.reject(new ConnectionClosedError("connection closed"));
      },
    } as unknown as Connection;
    const rejoined = trainerLink(identity, (c) => engine.open(c));
    // Its connection as the validator's node sees it: the cut one, then none for a while.
    const seen = [cut, undefined, undefined];
    const { run, ctx, told } = validatorRun(
      models,
      Identity.generate(),
      () => seen.length > 0 ? seen.shift() : rejoined.connection,
    );
    const body = {
      round: 0,
      startModel: model.cid,
      arch: TEST_ARCH,
      reports: [{ receipt, deltaFile: "unused" }],
    } as unknown as OutcomeBody;
    await run.afterRound(body, body.reports[0], delta, ctx);
    assert.equal(asksOnCut, 1, "asked on the connection that closed");
    assert.equal(rejoined.challenges.length, 1, "asked again once the trainer joined again");
    assert.deepEqual(toldProofs(told), [], "no fraud proof: not slashed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
