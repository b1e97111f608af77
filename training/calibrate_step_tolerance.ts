/**
 * Calibrate the tolerance of re-run training steps (`step_verify.ts`): train honest traces
 * (every state kept) on each backend from several seeds, re-run every step on the same and on
 * the other backend, and print the worst relative L2 distance of the moments m, v, the worst
 * weight-update error in ulps and the worst
 * relative loss difference; also what a faked step (state k + 1 := state k) scores, for the
 * margin. `STEP_TOLERANCE` / `LOSS_TOLERANCE` are set ~10× the worst honest figure.
 *
 * ```
 * deno run -A training/calibrate_step_tolerance.ts [--seeds 6] [--steps 10] [--size test|tiny]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { GPT_MODEL_SIZES, type GptArchitecture } from "../inference/model_builder.ts";
import { batchIndices, loadBrownCorpus, sampleAt, splitCorpus } from "./brown_corpus.ts";
import { seededGptWeights } from "./gpt_weights.ts";
import { runTrainingStep, trainLocal } from "./local_trainer.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "./hyper_params.ts";
import { tf, type TrainingBackend } from "./tf_backend.ts";
import { stateDistance, trainingStateHash } from "./training_state.ts";
import { weightUpdateUlps } from "./step_verify.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seeds: { type: "string", default: "6" },
    steps: { type: "string", default: "10" },
    size: { type: "string", default: "test" },
  },
});
const ARCHS: Record<string, GptArchitecture> = {
  test: { numLayers: 1, hiddenSize: 32, numHeads: 2, contextLength: 64 },
  tiny: GPT_MODEL_SIZES.tiny,
};
const arch = ARCHS[values.size!];
const H = Number(values.steps);
const hyper = { ...DEFAULT_LOCAL_HYPER_PARAMS, batchSize: 8, sampleBytes: 65 };
const split = splitCorpus(await loadBrownCorpus({ limit: 60 }), 2);
const backends: TrainingBackend[] = ["wasm", "cpu"];

const worst = new Map<string, { d: number; w: number; loss: number; n: number }>();
let ulpsWorst = 0;
let fakeUlpsMin = Infinity;
let fakeMin = Infinity;
let recomputeExact = 0;
let recomputeTotal = 0;
for (let seed = 1; seed <= Number(values.seeds); seed++) {
  const shard = split.shards[seed % 2];
  for (const trainOn of backends) {
    const run = await trainLocal({
      arch,
      start: seededGptWeights(arch, seed),
      shard,
      steps: H,
      seed: 1000 + seed,
      hyper,
      backend: trainOn,
      record: { keepEvery: 1 },
    });
    for (let k = 0; k < H; k++) {
      const before = run.keptStates!.get(k)!;
      const after = run.keptStates!.get(k + 1)!;
      const n = shard.documents.reduce((a, d) => a + Math.floor(d.bytes.length / 65), 0);
      const samples = batchIndices(1000 + seed, k, hyper.batchSize, n).map((i) =>
        sampleAt(shard, 65, i).bytes
      );
      ulpsWorst = Math.max(ulpsWorst, weightUpdateUlps(before, after, hyper, k).ulps);
      fakeUlpsMin = Math.min(fakeUlpsMin, weightUpdateUlps(before, before, hyper, k).ulps);
      for (const rerunOn of backends) {
        const r = await runTrainingStep(arch, hyper, before, samples, k, rerunOn);
        const d = stateDistance(after, r.state);
        const dd = Math.max(d.m, d.v);
        const le = Math.abs(r.loss - run.losses[k]) / Math.abs(r.loss);
        const key = `${trainOn}→${rerunOn}`;
        const w = worst.get(key) ?? { d: 0, w: 0, loss: 0, n: 0 };
        worst.set(key, {
          d: Math.max(w.d, dd),
          w: Math.max(w.w, d.weights),
          loss: Math.max(w.loss, le),
          n: w.n + 1,
        });
        if (rerunOn === trainOn) {
          recomputeTotal++;
          if (trainingStateHash(arch, r.state) === run.stateHashes![k + 1]) recomputeExact++;
        }
        if (rerunOn !== trainOn) {
          const fake = stateDistance(before, r.state);
          fakeMin = Math.min(fakeMin, Math.max(fake.m, fake.v));
        }
      }
    }
  }
}
const wasmThreads = await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT").catch(() => "?");
console.log(
  `arch L=${arch.numLayers} d=${arch.hiddenSize}, ${values.seeds} seeds × ${H} steps, ` +
    `wasm multithread support: ${wasmThreads}`,
);
console.log(
  "trained→re-run  steps  worst rel-L2 m/v  (weights, not used)  worst rel loss diff",
);
for (const [k, w] of worst) {
  console.log(
    `${k.padEnd(14)} ${String(w.n).padStart(5)}  ${w.d.toExponential(2).padStart(16)}  ${
      w.w.toExponential(2).padStart(20)
    }  ${w.loss.toExponential(2).padStart(19)}`,
  );
}
console.log(`same-backend re-run bit-exact (hash equal): ${recomputeExact}/${recomputeTotal}`);
console.log(
  `weights against the AdamW update of the claimed moments: worst ${ulpsWorst.toFixed(2)} ulps`,
);
console.log(
  `a faked step (state k+1 := state k) scores at least ${fakeMin.toExponential(2)} (moments), ` +
    `${fakeUlpsMin.toExponential(2)} ulps (weights)`,
);
