/**
 * Review s45, the trainer's side of proof of training: an honest trainer convicted or unpaid,
 * a lazy (or steering) trainer passing. Each test failed on the code before its fix.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { gptModelId, seededGptWeights } from "../../training/gpt_weights.ts";
import { batchIndices, sampleAt } from "../../training/brown_corpus.ts";
import { runTrainingStep } from "../../training/local_trainer.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import {
  commitShard,
  startTrainingState,
  type TrainingState,
} from "../../training/training_state.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import { STEP_TOLERANCE } from "../../training/step_verify.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { WorkerTrainerEngine } from "../../training/trainer_engine.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { challengeRun } from "./_challenge_run.ts";
import { type LazyOptions, signStates } from "./_pot_lazy_trainers.ts";

const split = await testSplit();
const shard = split.shards[0];
const start = seededGptWeights(TEST_ARCH, 0);
const startModel = gptModelId(TEST_ARCH, start);
const hyper = { ...DEFAULT_LOCAL_HYPER_PARAMS, ...TEST_HYPER };

const l2 = (a: Float32Array) => Math.sqrt(a.reduce((s, x) => s + x * x, 0));
const copyState = (s: TrainingState): TrainingState => {
  const c = (m: Map<string, { shape: number[]; data: Float32Array }>) =>
    new Map([...m].map(([k, t]) => [k, { shape: t.shape, data: t.data.slice() }]));
  return { weights: c(s.weights), m: c(s.m), v: c(s.v) };
};

/**
 * A trainer that runs every step honestly, then nudges one weight of a byte that never occurs
 * in its shard (its gradient is exactly zero, so m = v = 0): m gets a push well inside the
 * moments' tolerance, v stays 0, and the weight is set to the AdamW update of those moments,
 * m̂ / (√0 + ε) = m̂ / 1e-8 — a step of thousands of learning rates, each one "consistent".
 */
async function steeringRun(steps: number) {
  const o: LazyOptions = {
    arch: TEST_ARCH,
    startModel,
    start,
    shard,
    steps,
    dataSeed: 11,
    hyper: TEST_HYPER,
    identity: Identity.generate(),
  };
  const size = commitShard(shard, hyper.sampleBytes).size;
  const seen = new Set<number>();
  for (let k = 0; k < steps; k++) {
    for (const i of batchIndices(o.dataSeed, k, hyper.batchSize, size)) {
      for (const b of sampleAt(shard, hyper.sampleBytes, i).bytes) seen.add(b);
    }
  }
  const trigger = [...Array(256).keys()].find((b) => !seen.has(b))!;
  const name = "transformer.wte.weight";
  const at = trigger * TEST_ARCH.hiddenSize; // dimension 0 of the trigger byte's embedding
  let state = startTrainingState(start);
  const states = [state];
  const losses: number[] = [];
  for (let k = 0; k < steps; k++) {
    const batch = batchIndices(o.dataSeed, k, hyper.batchSize, size)
      .map((i) => sampleAt(shard, hyper.sampleBytes, i).bytes);
    const r = await runTrainingStep(TEST_ARCH, hyper, state, batch, k);
    const next = copyState(r.state);
    const m = next.m.get(name)!.data;
    const v = next.v.get(name)!.data;
    const w = next.weights.get(name)!.data;
    assert.equal(v[at], 0, "the trigger byte's embedding has no gradient");
    m[at] += 0.4 * STEP_TOLERANCE * l2(m); // 40 % of the moments' tolerance
    const t = k + 1;
    const c1 = 1 - hyper.beta1 ** t;
    const c2 = 1 - hyper.beta2 ** t;
    const w0 = state.weights.get(name)!.data[at];
    const u = m[at] / c1 / (Math.sqrt(v[at] / c2) + hyper.epsilon) + hyper.weightDecay * w0;
    w[at] = Math.fround(w0 - hyper.learningRate * u);
    losses.push(r.loss);
    states.push(next);
    state = next;
  }
  const moved = Math.abs(states[steps].weights.get(name)!.data[at] - start.get(name)!.data[at]);
  return { run: signStates(o, states, losses), moved };
}

Deno.test("a trainer steering a weight through v = 0 (m̂ / ε: thousands of learning rates a step) is convicted (step_mismatch) and any node confirms it", async () => {
  const H = 4;
  const { run, moved } = await steeringRun(H);
  // AdamW moves a weight by about lr a step (|m̂| / √v̂ ≤ ~1 for moments of one gradient
  // history): H · lr here. The steered weight went much further.
  assert.ok(moved > 50 * H * hyper.learningRate, `moved ${moved}`);
  console.log(
    `steered weight moved ${moved.toFixed(3)} in ${H} steps (H · lr = ${H * hyper.learningRate})`,
  );
  const { check: r, independent } = await challengeRun(run, start, { steps: H });
  assert.equal(r.ok ? "ok" : r.reason, "step_mismatch", "the steering trainer passed");
  if (r.ok || !r.proof || !independent) throw new Error("no proof");
  assert.equal(independent.reason, "confirmed");
});

Deno.test("a challenge of an earlier run is answered while the trainer's worker trains the next round (it queued behind the whole round, past its deadline: opening_missing)", async () => {
  const round = (n: number, steps: number) => ({
    arch: TEST_ARCH,
    round: n,
    startModel,
    start,
    steps,
    dataSeed: 100 + n,
    hyper,
  });
  const engine = new WorkerTrainerEngine(Identity.generate(), shard);
  try {
    const first = await engine.train(round(0, 4));
    // The outcome of round 0 is audited and its trainers challenged by other nodes just as
    // the coordinator announces round 1: the challenge arrives while round 1 trains.
    const order: string[] = [];
    let stepsTaken = 0;
    const training = engine.train(round(1, 80), () => stepsTaken++).then((report) => (
      order.push("round 1"), report
    ));
    while (stepsTaken < 2) await new Promise((r) => setTimeout(r, 20));
    const validator = Identity.generate();
    const challenge = drawTrainingChallenge(first.receipt, validator, { steps: 2 });
    const opened = engine.open(challenge).then((sealed) => (order.push("opened"), sealed));
    const sealed = await opened;
    const second = await training;
    assert.deepEqual(order, ["opened", "round 1"], "the answer waited for the whole next round");
    const r = await checkStepOpenings(first.receipt, challenge, sealed, {
      validator,
      arch: TEST_ARCH,
      startWeights: start,
      delta: first.delta,
      shardSize: first.receipt.shardSize,
    });
    assert.deepEqual(r, { ok: true });
    // The round the opening interleaved with is unchanged: its own steps open and pass (a state
    // computed differently would not recompute to its committed hash: trace_diverged).
    const c2 = drawTrainingChallenge(second.receipt, validator, { steps: 9 });
    const r2 = await checkStepOpenings(second.receipt, c2, await engine.open(c2), {
      validator,
      arch: TEST_ARCH,
      startWeights: start,
      delta: second.delta,
      shardSize: second.receipt.shardSize,
    });
    assert.deepEqual(r2, { ok: true });
  } finally {
    await engine.close();
  }
});
