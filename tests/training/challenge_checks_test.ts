/**
 * The checks of proof of training against a cheating trainer or coordinator: an honest trainer is
 * never convicted or left unpaid, a lazy or steering trainer never passes, and the delta check
 * convicts every delta the round refuses for its form.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { gptModelId, type GptWeights, seededGptWeights } from "../../training/gpt_weights.ts";
import { batchIndices, sampleAt } from "../../training/brown_corpus.ts";
import { runTrainingStep } from "../../training/local_trainer.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";
import {
  commitShard,
  startTrainingState,
  type TrainingState,
} from "../../training/training_state.ts";
import { checkStepOpenings } from "../../training/step_check.ts";
import { deltaMismatch, STEP_TOLERANCE } from "../../training/step_verify.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { WorkerTrainerEngine } from "../../training/trainer_engine.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { challengeRun } from "./_challenge_run.ts";
import { honestStates, type LazyOptions, signStates } from "./_pot_lazy_trainers.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { ValidatorActor } from "../../actors/validator_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_messages.ts";
import type { Account } from "../../proof/ledger.ts";
import {
  decodeFittingDelta,
  decodeInt8Delta,
  deltaHash,
  dequantizeDelta,
  encodeInt8Delta,
  type Int8Tensor,
  nonCanonicalRow,
  quantizeDelta,
} from "../../training/int8_delta.ts";
import { signTrainingReceipt, type TrainingReceipt } from "../../training/training_receipt.ts";

// ------------------------------------------------------------------------------------------------
// The trainer's side of proof of training: an honest trainer convicted or unpaid, a lazy (or
// steering) trainer passing. Each test failed on the code before its fix.
// ------------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------------
// The checks of proof of training against a cheating trainer or coordinator. Each test failed on
// the code before its fix.
// ------------------------------------------------------------------------------------------------

/**
 * A trainer that runs every step honestly and commits to its honest states, then sends its
 * pseudo-gradient quantised with each row's scale `factor` × the one the format defines
 * (`max|row| / 127`): every value is still within half its (coarser) scale of the honest one,
 * which is all the delta check asked, so with a factor of 300 every value rounds to 0 — an empty
 * delta, paid as H steps, that pulls the round's average back toward its start model. (A factor
 * near 2 doubles or zeroes each element at the trainer's choice: a steer.)
 */
async function coarseDeltaRun(steps: number, factor: number, identity: Identity) {
  const o: LazyOptions = {
    arch: TEST_ARCH,
    startModel,
    start,
    shard,
    steps,
    dataSeed: 5,
    hyper: TEST_HYPER,
    identity,
  };
  const honest = await honestStates(o, steps);
  const run = signStates(o, honest.states, honest.losses);
  const end = honest.states[steps].weights;
  const tensors = decodeInt8Delta(run.report.delta);
  for (const t of tensors) {
    const s = start.get(t.name)!.data;
    const e = end.get(t.name)!.data;
    const width = t.values.length / t.scales.length;
    for (let r = 0; r < t.scales.length; r++) {
      if (t.scales[r] === 0) continue;
      t.scales[r] = Math.fround(t.scales[r] * factor);
      for (let i = r * width; i < (r + 1) * width; i++) {
        t.values[i] = Math.round((s[i] - e[i]) / t.scales[r]);
      }
    }
  }
  const delta = encodeInt8Delta(tensors);
  const { sig: _sig, trainer: _trainer, ...unsigned } = run.report.receipt;
  const receipt: TrainingReceipt = signTrainingReceipt(
    { ...unsigned, deltaHash: deltaHash(delta), deltaBytes: delta.length },
    identity,
  );
  return { report: { receipt, delta }, trace: { ...run.trace, receipt } };
}

Deno.test("a trainer whose delta is quantised with a scale other than max|row| / 127 (an empty delta for honest work) is convicted (delta_mismatch), any node confirms it, and its ledger slashes it unpaid", async () => {
  const H = 2;
  const trainer = Identity.generate();
  const run = await coarseDeltaRun(H, 300, trainer);
  const dequantized = dequantizeDelta(decodeInt8Delta(run.report.delta));
  assert.ok(
    [...dequantized.values()].every((t) => t.data.every((x) => x === 0)),
    "the delta sent carries nothing",
  );
  // It fits the round (the coordinator takes it in): its challenge is what must catch it.
  decodeFittingDelta(run.report.delta, start);
  const validator = Identity.generate();
  const { challenge, check: r, independent } = await challengeRun(run, start, {
    steps: H,
    validator,
  });
  assert.ok(challenge.steps.includes(H - 1), "the last step is opened");
  assert.equal(r.ok ? "ok" : r.reason, "delta_mismatch", "the empty delta passed its challenge");
  if (r.ok || !r.proof || !independent) throw new Error("no proof");
  assert.equal(independent.reason, "confirmed");

  // The ledger: the receipt is credited (its round's outcome named it), the proof settles it.
  const dir = await Deno.makeTempDir({ prefix: "review-s46-" });
  const system = new ActorSystem({ name: "review-s46" });
  const clock = { t: 1_000_000 };
  try {
    const ledger = await system.spawn<ValidatorMessage>({
      name: "node/validator",
      factory: () =>
        new ValidatorActor({
          identity: validator,
          ledgerDir: `${dir}/ledger`,
          ledger: { now: () => clock.t },
          finalizeIntervalMs: 0,
          models: { get: () => Promise.resolve(undefined) },
        }),
    });
    const stake = 10_000_000;
    await ledger.ask({ type: "deposit", key: trainer.publicKey, amount: stake });
    const receipt = run.report.receipt;
    const terms = { round: receipt.round, startModel, steps: H };
    await ledger.ask({ type: "training_receipt", receipt, terms, credited: true });
    await ledger.ask({
      type: "training_fraud",
      receipt,
      fraudProofHash: independent.proofHash,
      validator: validator.publicKey,
      confirmed: independent.confirmed,
      reason: independent.reason,
    });
    clock.t += 60 * 60 * 1000; // past the challenge window
    await ledger.ask({ type: "finalize" });
    const account = await ledger.ask<Account>({ type: "account", key: trainer.publicKey });
    assert.equal(account.balance, 0, "the empty delta is not paid");
    assert.ok(account.stake < stake, "the trainer is slashed");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// The challenge's delta check (`deltaMismatch`, on the last opened step) must convict every delta
// the round refuses for its form (`decodeFittingDelta` in `aggregateRound`). A delta that passes
// its challenge and is then refused by the coordinator leaves its sender unpaid but unpunished —
// the outcome `int8_delta.ts`'s `nonCanonicalRow` says the format rules out by convicting
// non-canonical deltas. Each test failed before its fix.
// ------------------------------------------------------------------------------------------------

/** A small honest-looking end state: start minus a seeded perturbation. */
function endOf(start: GptWeights): GptWeights {
  const noise = seededGptWeights(TEST_ARCH, 9);
  const end: GptWeights = new Map();
  for (const [name, w] of start) {
    const n = noise.get(name)!.data;
    end.set(name, {
      shape: [...w.shape],
      data: w.data.map((x, i) => Math.fround(x - 1e-2 * n[i])),
    });
  }
  return end;
}

/** `start − end`, quantised as the format defines. */
function honestTensors(start: GptWeights, end: GptWeights): Int8Tensor[] {
  const d: GptWeights = new Map();
  for (const [name, w] of start) {
    const e = end.get(name)!.data;
    d.set(name, { shape: [...w.shape], data: w.data.map((x, i) => x - e[i]) });
  }
  return quantizeDelta(d);
}

/** The forms of a delta the round refuses, each built from an honest one. */
const FORGED: Record<string, (tensors: Int8Tensor[]) => Int8Tensor[]> = {
  // One row's scale Infinity, every value of it ±127: 127 · ∞ − anything is within ∞ / 2.
  "an Infinity scale": (tensors) => {
    const t = tensors[0];
    const width = t.values.length / t.scales.length;
    t.scales[0] = Infinity;
    for (let i = 0; i < width; i++) t.values[i] = i % 2 === 0 ? 127 : -127;
    return tensors;
  },
  // A tensor named twice: the check kept the last copy, the round refuses the count.
  "a tensor named twice": (tensors) => [...tensors, tensors[tensors.length - 1]],
  // A rank-2 tensor [r, c] sent as [r, c, 1]: the same rows, scales and values, another shape.
  "a tensor of another shape": (tensors) =>
    tensors.map((t) => t.shape.length === 2 ? { ...t, shape: [...t.shape, 1] } : t),
};

for (const [form, forge] of Object.entries(FORGED)) {
  Deno.test(`a delta with ${form}, which the round refuses, fails the challenge's delta check`, () => {
    const end = endOf(start);
    assert.equal(
      deltaMismatch(start, end, encodeInt8Delta(honestTensors(start, end))),
      null,
      "the honest delta passes",
    );
    const forged = encodeInt8Delta(forge(honestTensors(start, end)));
    assert.throws(() => decodeFittingDelta(forged, start), "the round refuses it");
    assert.notEqual(deltaMismatch(start, end, forged), null, `a delta with ${form} passed`);
  });
}

Deno.test("a row scaled by Infinity is not the format's scale (nonCanonicalRow)", () => {
  const t: Int8Tensor = {
    name: "x",
    shape: [1, 2],
    scales: new Float32Array([Infinity]),
    values: new Int8Array([127, -3]),
  };
  assert.notEqual(nonCanonicalRow(t), null);
});

Deno.test("a trainer that trains honestly and sends its delta with an Infinity scale is convicted (delta_mismatch), and any node confirms it", async () => {
  const H = 2;
  const identity = Identity.generate();
  const o: LazyOptions = {
    arch: TEST_ARCH,
    startModel,
    start,
    shard,
    steps: H,
    dataSeed: 5,
    hyper: TEST_HYPER,
    identity,
  };
  const honest = await honestStates(o, H);
  const run = signStates(o, honest.states, honest.losses);
  const delta = encodeInt8Delta(FORGED["an Infinity scale"](decodeInt8Delta(run.report.delta)));
  assert.throws(() => decodeFittingDelta(delta, start), "the coordinator refuses it");
  const { sig: _sig, trainer: _trainer, ...unsigned } = run.report.receipt;
  const receipt: TrainingReceipt = signTrainingReceipt(
    { ...unsigned, deltaHash: deltaHash(delta), deltaBytes: delta.length },
    identity,
  );
  const forged = { report: { receipt, delta }, trace: { ...run.trace, receipt } };
  const { check, independent } = await challengeRun(forged, start, { steps: H });
  assert.equal(check.ok ? "ok" : check.reason, "delta_mismatch", "the junk delta passed");
  assert.equal(independent?.reason, "confirmed");
});
