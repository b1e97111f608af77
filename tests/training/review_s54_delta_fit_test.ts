/**
 * Review s54 (proof of training): the challenge's delta check (`deltaMismatch`, on the last opened
 * step) must convict every delta the round refuses for its form (`decodeFittingDelta` in
 * `aggregateRound`). A delta that passes its challenge and is then refused by the coordinator
 * leaves its sender unpaid but unpunished — the outcome `int8_delta.ts`'s `nonCanonicalRow`
 * says the format rules out by convicting non-canonical deltas. Each test failed before its fix.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { gptModelId, seededGptWeights } from "../../training/gpt_weights.ts";
import type { GptWeights } from "../../training/gpt_weights.ts";
import {
  decodeFittingDelta,
  decodeInt8Delta,
  deltaHash,
  encodeInt8Delta,
  type Int8Tensor,
  nonCanonicalRow,
  quantizeDelta,
} from "../../training/int8_delta.ts";
import { deltaMismatch } from "../../training/step_verify.ts";
import { signTrainingReceipt, type TrainingReceipt } from "../../training/training_receipt.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";
import { challengeRun } from "./_challenge_run.ts";
import { honestStates, type LazyOptions, signStates } from "./_pot_lazy_trainers.ts";

const split = await testSplit();
const shard = split.shards[0];
const start = seededGptWeights(TEST_ARCH, 0);
const startModel = gptModelId(TEST_ARCH, start);

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
