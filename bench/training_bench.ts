/**
 * Training bench: local AdamW steps of the built-in GPT on a Brown corpus shard, on tfjs's
 * wasm backend against its pure-JS cpu backend measured in the same run (the ratio is the
 * number to read), plus the held-out loss each reaches after the same steps (they should
 * agree: same data, same seeds, float32 both).
 *
 * Then DiLoCo as `cli.ts train` runs it (`trainModel`: trainers in parallel workers, H local
 * steps, the outer step), at the H the node and `cli.ts train` ship with, side by side in the
 * same run: 3 trainers against 1 for the same wall time, as two pairs in the order 3, 1, 1, 3 (so
 * neither side always runs on the warmer machine) — training tokens/s per node while training and
 * per second of wall time (the outer step and the held-out evaluations included), held-out bits
 * per byte reached, against the random-weight start; bytes per round (the measured encoded int8
 * deltas up and int8 outer update down: payload, not framing) against a ring all-reduce of fp32
 * gradients every step; and the held-out bits per byte of the shipped default model (`brown`).
 * `--diloco-steps` runs another H, labelled as not the default.
 *
 * Trainers here are workers of one process (`trainModel`), not nodes on a network: the round's
 * messages, receipts and audits are not in these figures (the networked round is tested in
 * `tests/training/`).
 *
 * ```
 * deno run -A bench/training_bench.ts [--steps 20] [--size tiny|test] [--batch 8]
 *   [--diloco-seconds 45] [--diloco-steps H (default: the node's)] [--no-diloco]
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseNodeConfig } from "../node/config.ts";
import { GPT_MODEL_SIZES, type GptArchitecture } from "../inference/model_builder.ts";
import { TRAINED_BUILTIN_MODELS, trainedModelBytes } from "../inference/builtin_model.ts";
import { loadBrownCorpus, splitCorpus } from "../training/brown_corpus.ts";
import {
  gptModelBytesFromWeights,
  seededGptWeights,
  weightsFromOnnx,
} from "../training/gpt_weights.ts";
import { evaluateLoss, trainLocal } from "../training/local_trainer.ts";
import type { TrainingBackend } from "../training/tf_backend.ts";
import { gptForwardFlops } from "../training/tf_gpt.ts";
import {
  defaultSampleBytes,
  heldOutBitsPerByte,
  trainModel,
  type TrainRunResult,
} from "../training/train_run.ts";

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
    "diloco-seconds": { type: "string", default: "45" },
    "diloco-steps": { type: "string" },
    "no-diloco": { type: "boolean" },
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

/**
 * Held-out samples of the DiLoCo rows and of the shipped model: the figure `cli.ts train`
 * prints at the end of a run uses as many (docs/TRAINING.md).
 */
const DILOCO_EVAL_SAMPLES = 256;
/** Trainers of the many-node run (the acceptance criterion's 3 nodes). */
const MANY = 3;
/** The acceptance goal on bytes per round against all-reduce. */
const BYTES_GOAL = 100;
/** The node's default H (`training.coordinator.steps`; `cli.ts train --steps` has the same). */
const DEFAULT_H = parseNodeConfig({}).training.coordinator.steps;
/** Bytes of an fp32 value (the all-reduce baseline exchanges fp32 gradients). */
const FP32_BYTES = 4;

/** DiLoCo, 3 trainers against 1 for the same wall time, and the shipped model. */
async function dilocoRows(): Promise<void> {
  const seconds = Number(values["diloco-seconds"]);
  const H = values["diloco-steps"] === undefined ? DEFAULT_H : Number(values["diloco-steps"]);
  const hLabel = H === DEFAULT_H ? "the node's default" : `NOT the node's default ${DEFAULT_H}`;
  const docs = await loadBrownCorpus();
  const { heldOut } = splitCorpus(docs, 1);
  const outDir = await Deno.makeTempDir({ prefix: "veriflow-training-bench-" });
  const cores = navigator.hardwareConcurrency;
  console.log(
    `\nDiLoCo (cli.ts train): ${arch === ARCHS.test ? "test" : values.size} model, H = ${H} ` +
      `local steps per round (${hLabel}), ${seconds} s of wall time per run, two pairs run ` +
      `${MANY}, 1, 1, ${MANY}; trainers are workers in parallel on this machine's ${cores} cores ` +
      `(${MANY} trainers share them)`,
  );
  try {
    const run = (trainers: number): Promise<TrainRunResult> =>
      trainModel({
        arch,
        trainers,
        rounds: 1_000,
        steps: H,
        seed: 0,
        outDir: `${outDir}/n${trainers}`,
        minutes: seconds / 60,
        hyper,
        evalSamples: DILOCO_EVAL_SAMPLES,
      });
    // Two pairs, 3 · 1 · 1 · 3: the machine's drift hits both sides alike.
    const many1 = await run(MANY);
    const one1 = await run(1);
    const one2 = await run(1);
    const many2 = await run(MANY);
    const perNode = (r: TrainRunResult, n: number) =>
      r.rounds.length === 0
        ? 0
        : r.rounds.reduce((s, x) => s + x.tokensPerSecond, 0) / r.rounds.length / n;
    // Per second of the run's wall time: the outer step and the evaluations included.
    const perNodeWall = (r: TrainRunResult) =>
      r.rounds.length * H * hyper.batchSize * seq / (r.elapsedMs / 1000);
    console.log(
      "run           rounds  tokens/s/node training  tokens/s/node wall  held-out bits/byte (start → end)",
    );
    const rows = [
      [`${MANY} nodes (a)`, many1, MANY],
      ["1 node (a)", one1, 1],
      ["1 node (b)", one2, 1],
      [`${MANY} nodes (b)`, many2, MANY],
    ] as const;
    for (const [label, r, n] of rows) {
      console.log(
        `${label.padEnd(12)}  ${String(r.rounds.length).padStart(6)}  ` +
          `${perNode(r, n).toFixed(0).padStart(22)}  ${perNodeWall(r).toFixed(0).padStart(18)}  ` +
          `${r.startBitsPerByte.toFixed(3)} → ${r.heldOutBitsPerByte.toFixed(3)}`,
      );
    }
    const mean = (a: number, b: number) => (a + b) / 2;
    const manyBits = mean(many1.heldOutBitsPerByte, many2.heldOutBitsPerByte);
    const oneBits = mean(one1.heldOutBitsPerByte, one2.heldOutBitsPerByte);
    const pairsWon = [[many1, one1], [many2, one2]]
      .filter(([m, o]) => m.heldOutBitsPerByte < o.heldOutBitsPerByte).length;
    console.log(
      `held-out after ${seconds} s (mean of the two runs each): ${MANY} nodes ` +
        `${manyBits.toFixed(3)}, 1 node ${oneBits.toFixed(3)}, random weights ` +
        `${many1.startBitsPerByte.toFixed(3)} bits/byte — ${MANY} nodes ` +
        `${
          manyBits < oneBits && pairsWon === 2 ? "better" : "NOT better"
        } than 1 in ${pairsWon} of 2 pairs (goal: better; H = ${H}, ${hLabel})`,
    );
    const many = many1;
    const one = one1;
    // Extra row: the same number of rounds (each node's H steps per round), what the wall-time
    // comparison would be if each node had a core of its own rather than 3 sharing 2.
    const same = Math.min(many.rounds.length, one.rounds.length);
    if (same > 0) {
      const m = many.rounds[same - 1].heldOutBitsPerByte;
      const o = one.rounds[same - 1].heldOutBitsPerByte;
      console.log(
        `extra row, after the same ${same} round(s) (= the same wall time on a core per node): ` +
          `${MANY} nodes ${m.toFixed(3)}, 1 node ${o.toFixed(3)} bits/byte — ` +
          `${m < o ? "better" : "not better"}`,
      );
    }

    // Bytes per round, measured on the 3-node run: each trainer sends its int8 delta and
    // downloads the round's int8 outer update (it holds the start model). The headline is at
    // the H the node and `cli.ts train` ship with; this run's H is an extra row.
    const round = many.rounds[0];
    if (round) {
      const params = many.params;
      const up = round.deltaBytes;
      const down = MANY * round.updateBytes;
      const modelBytes = gptModelBytesFromWeights(arch, many.weights).length;
      // Ring all-reduce: each node sends 2·(n−1)/n of the gradient per step.
      const allReducePerNodeStep = (2 * (MANY - 1) / MANY) * params * FP32_BYTES;
      const allReduce = (h: number) => allReducePerNodeStep * h * MANY;
      const fmt = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
      const ratio = (h: number, bytes: number) => `${(allReduce(h) / bytes).toFixed(0)}×`;
      const headline = allReduce(DEFAULT_H) / (up + down);
      console.log(
        `bytes per round, ${MANY} nodes (${params.toLocaleString("en-US")} params):\n` +
          `  int8 deltas up (measured)          ${fmt(up)} (${up / MANY} B per trainer)\n` +
          `  int8 outer update down (measured)  ${fmt(down)} (${round.updateBytes} B to each)\n` +
          `  ring all-reduce, fp32, every step  ${
            fmt(allReduce(DEFAULT_H))
          } at H = ${DEFAULT_H}, ` +
          `${fmt(allReduce(H))} at H = ${H} (2·(n−1)/n · params · 4 B per node per step)\n` +
          `  at H = ${DEFAULT_H} (the default of the node and cli.ts train): ` +
          `${headline.toFixed(0)}× less (up + down); goal ≥ ${BYTES_GOAL}× — ` +
          `${headline >= BYTES_GOAL ? "met" : "not met"}\n` +
          `  extra rows: at H = ${H} (this run) ${ratio(H, up + down)}; deltas only ` +
          `${ratio(DEFAULT_H, up)}; a trainer without the start model downloads the fp32 model ` +
          `(${modelBytes} B ONNX): ${ratio(DEFAULT_H, up + MANY * modelBytes)}; every trainer ` +
          `also auditing the round (it fetches the ${MANY} deltas to redo the step, as a trainer ` +
          `keeping a ledger does): ${ratio(DEFAULT_H, up + MANY * up)}`,
      );
    }

    // The shipped default model.
    const shipped = TRAINED_BUILTIN_MODELS.brown;
    if (shipped) {
      const sArch = GPT_MODEL_SIZES.brown;
      const weights = weightsFromOnnx(await trainedModelBytes("brown"), sArch);
      const sampleBytes = defaultSampleBytes(sArch);
      const bpb = await heldOutBitsPerByte(
        sArch,
        weights,
        heldOut,
        DILOCO_EVAL_SAMPLES,
        sampleBytes,
      );
      const random = await heldOutBitsPerByte(
        sArch,
        seededGptWeights(sArch, 0),
        heldOut,
        DILOCO_EVAL_SAMPLES,
        sampleBytes,
      );
      console.log(
        `shipped default model brown (${shipped.cid}): held-out ${bpb.toFixed(3)} bits/byte ` +
          `on ${DILOCO_EVAL_SAMPLES} samples of ${sampleBytes - 1}+1 bytes ` +
          `(random weights of its architecture: ${random.toFixed(3)})`,
      );
    }
  } finally {
    await Deno.remove(outDir, { recursive: true }).catch(() => {});
  }
}

if (!values["no-diloco"]) await dilocoRows();
