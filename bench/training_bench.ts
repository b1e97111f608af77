/**
 * Training bench: local AdamW steps of the built-in GPT on a Brown corpus shard, on tfjs's
 * wasm backend against its pure-JS cpu backend measured in the same run (the ratio is the
 * number to read), plus the held-out loss each reaches after the same steps (they should
 * agree: same data, same seeds, float32 both).
 *
 * ```
 * deno run -A bench/training_bench.ts [--steps 20] [--size tiny|test] [--batch 8]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { GPT_MODEL_SIZES, type GptArchitecture } from "../inference/model_builder.ts";
import { loadBrownCorpus, splitCorpus } from "../training/brown_corpus.ts";
import { seededGptWeights } from "../training/gpt_weights.ts";
import { evaluateLoss, trainLocal } from "../training/local_trainer.ts";
import type { TrainingBackend } from "../training/tf_backend.ts";
import { gptForwardFlops } from "../training/tf_gpt.ts";

/** Backward ≈ 2× forward, so a training step is ≈ 3 forward passes of matmul FLOPs. */
const TRAIN_FLOPS_PER_FORWARD = 3;
/** Warm-up steps per backend (kernel compilation, first allocations) before timing. */
const WARMUP_STEPS = 2;
/** Held-out samples evaluated after training. */
const EVAL_SAMPLES = 64;

const ARCHS: Record<string, GptArchitecture> = {
  test: { numLayers: 1, hiddenSize: 32, numHeads: 2, contextLength: 64 },
  tiny: GPT_MODEL_SIZES.tiny,
};

const { values } = parseArgs({
  args: Deno.args,
  options: {
    steps: { type: "string", default: "20" },
    size: { type: "string", default: "tiny" },
    batch: { type: "string", default: "8" },
    "sample-bytes": { type: "string", default: "65" },
  },
});
const STEPS = Number(values.steps);
const arch = ARCHS[values.size!];
if (!arch) throw new Error(`unknown size ${values.size} (${Object.keys(ARCHS).join(", ")})`);
const hyper = { batchSize: Number(values.batch), sampleBytes: Number(values["sample-bytes"]) };

const split = splitCorpus(await loadBrownCorpus({ limit: 60 }), 2);
const start = seededGptWeights(arch, 0);
const seq = hyper.sampleBytes - 1;
const stepFlops = TRAIN_FLOPS_PER_FORWARD * gptForwardFlops(arch, hyper.batchSize * seq, seq);
const params = [...start.values()].reduce((n, t) => n + t.data.length, 0);
console.log(
  `model L=${arch.numLayers} d=${arch.hiddenSize} h=${arch.numHeads} (${params} params), ` +
    `batch ${hyper.batchSize}×${seq} bytes, ${STEPS} steps, ` +
    `${(stepFlops / 1e6).toFixed(1)} MFLOP/step`,
);

interface Row {
  backend: TrainingBackend;
  stepsPerSecond: number;
  gflops: number;
  heldOut: number;
  lastLoss: number;
}
const rows: Row[] = [];
for (const backend of ["wasm", "cpu"] as const) {
  const common = { arch, start, shard: split.shards[0], seed: 1, hyper, backend };
  const warm = await trainLocal({ ...common, steps: WARMUP_STEPS });
  if (warm.backend !== backend) console.log(`(${backend} unavailable, ran ${warm.backend})`);
  const t0 = performance.now();
  const run = await trainLocal({ ...common, steps: STEPS });
  const seconds = (performance.now() - t0) / 1000;
  const next = new Map(
    [...start].map(([k, w]) => [k, {
      shape: w.shape,
      data: w.data.map((x, i) => x - run.pseudoGradient.get(k)!.data[i]),
    }]),
  );
  const heldOut = await evaluateLoss(arch, next, split.heldOut, {
    sampleBytes: hyper.sampleBytes,
    maxSamples: EVAL_SAMPLES,
  });
  rows.push({
    backend: run.backend,
    stepsPerSecond: STEPS / seconds,
    gflops: (stepFlops * STEPS) / seconds / 1e9,
    heldOut,
    lastLoss: run.losses.at(-1)!,
  });
}

const base = rows.find((r) => r.backend === "cpu") ?? rows[0];
console.log("backend  steps/s  tokens/s  GFLOP/s  ×cpu   last-loss  held-out (nats/byte)");
for (const r of rows) {
  console.log(
    `${r.backend.padEnd(8)} ${r.stepsPerSecond.toFixed(2).padStart(7)}  ` +
      `${(r.stepsPerSecond * hyper.batchSize * seq).toFixed(0).padStart(8)}  ` +
      `${r.gflops.toFixed(2).padStart(7)}  ${
        (r.stepsPerSecond / base.stepsPerSecond).toFixed(2)
      }×  ` +
      `${r.lastLoss.toFixed(3).padStart(9)}  ${r.heldOut.toFixed(3)}`,
  );
}
