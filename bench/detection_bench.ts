/**
 * Detection bench: what calibrated validation catches and what it never flags, measured in one
 * run on the built-in models (`tiny` and `small`):
 *
 * 1. **Calibration** of the honest model on this machine (`proof/calibrate_model.ts`).
 * 2. **Honest sweep**: receipts from the honest model under every execution variant a
 *    calibration measures — worker thread counts × graph optimization levels, validated by the
 *    reference with its logits as computed or rounded to fp16 — greedy and sampled, with and
 *    without stop strings: how many are flagged (verdict not `valid`) and slashed (a fraud
 *    proof an independent checker confirms).
 * 3. **Detection**: receipts of 128 output tokens from cheaper copies of the model (weights in
 *    bf16/fp16, int8 per tensor/per channel, relative weight noise, an int8 KV cache) and from
 *    substitute models (another seed, fewer layers, narrower), validated against the calibrated
 *    profile: detection rate with its 95 % lower bound, the share an independent checker
 *    confirms, and how many positions the proof needed.
 *    **Partial cheats** (review s74): 192-token fp32 jobs where a cheaper copy (fp16 weights, an
 *    int8 KV cache, 0.02 % weight noise) runs on the second half, the last quarter or every
 *    other position only, the honest model elsewhere. **Precision classes**: an honest worker of
 *    the class (weights rounded to bf16 / fp16, as calibration runs it) on jobs that declare it,
 *    then the detection table's cheats on such jobs: what each class accepts.
 * 4. **Near-ties**: at sampled positions of honest receipts, how often the sampling check
 *    admits more than one token (calibrated ε, and the uncalibrated default for comparison),
 *    what a worker that steers among admissible tokens to avoid stop strings bills extra, and
 *    the end choices (`proof/end_choices.ts`) of honest and steered receipts: how many of its
 *    challenges a validator's steering test (`proof/steering.ts`) needs to convict a steerer.
 * 5. **Economics**: the expected profit of each cheat under `DEFAULT_ECONOMICS`, with the
 *    measured detection rate and the cheat's cost taken as zero (the most a cheat can save);
 *    for steering, once convicted (every receipt with an end passed over is then caught), with
 *    the one-off gain before the conviction printed below the table.
 *
 * Run: `deno task bench detection` or `deno run -A bench/detection_bench.ts [--sizes tiny,small]
 * [--honest N] [--cheats N] [--steer N] [--partial N]` (per size; defaults 1000 / 300 / 60 / 60
 * honest receipts, cheat receipts per modification, steered jobs, and receipts per partial-cheat
 * and precision-class row on tiny, 200 / 60 / 12 / 12 on small). Every number is measured in the
 * run.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { buildGptModel, type GptModelSize } from "../inference/model_builder.ts";
import { TextModel } from "../inference/text_model.ts";
import { sampleToken } from "../inference/sampler.ts";
import { Identity } from "../protocols/identity.ts";
import type { GenerationParams, JobPrecision, TextJob } from "../protocols/job.ts";
import { type ProvedJob, proveJob } from "../proof/prover.ts";
import { validateReceipt, type ValidationOptions } from "../proof/validation.ts";
import { checkFraudProof } from "../proof/fraud_check.ts";
import { calibrateModel } from "../proof/calibrate_model.ts";
import { type CalibrationProfile, tolerancesFor } from "../proof/calibration.ts";
import {
  admissibleTokens,
  DEFAULT_SAMPLING_TOLERANCE,
  type SamplingTolerance,
} from "../proof/sampling_check.ts";
import { fingerprintOf, meanScoreLimit } from "../proof/fingerprint.ts";
import { unpackTokens } from "../proof/commitment.ts";
import { cheatingAdvantage, DEFAULT_ECONOMICS } from "../proof/economics.ts";
import { isSteering } from "../proof/steering.ts";
import type { GraphOptimizationLevel } from "../inference/_session.ts";
import type { TokenChunk } from "../inference/text_model.ts";
import {
  buildVariant,
  manualStream,
  type ModelVariant,
  variantKey,
  variantName,
} from "../tests/proof/_models.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string", default: "tiny,small" },
    honest: { type: "string" },
    cheats: { type: "string" },
    steer: { type: "string" },
    partial: { type: "string" },
  },
});
const SIZES = values.sizes.split(",") as GptModelSize[];
/** Work per size: tiny is ~10× cheaper to run than small. */
const WORK: Record<
  GptModelSize,
  { honest: number; cheats: number; steer: number; partial: number }
> = {
  tiny: { honest: 1000, cheats: 300, steer: 60, partial: 60 },
  small: { honest: 200, cheats: 60, steer: 12, partial: 12 },
  brown: { honest: 1000, cheats: 300, steer: 60, partial: 60 },
};
for (const size of SIZES) {
  if (values.honest) WORK[size].honest = Number(values.honest);
  if (values.cheats) WORK[size].cheats = Number(values.cheats);
  if (values.steer) WORK[size].steer = Number(values.steer);
  if (values.partial) WORK[size].partial = Number(values.partial);
}
/** The acceptance horizon: a cheat must be caught within this many output tokens. */
const CHEAT_TOKENS = 128;
const CORES = Math.max(1, navigator.hardwareConcurrency || 1);
/**
 * Output tokens of a partial cheat (review s74's length): long enough that an honest head or
 * honest positions in between dilute every prefix of the receipt below its limit.
 */
const PARTIAL_TOKENS = 192;
/** Where a partial cheat runs its cheaper copy; the honest model everywhere else. */
const PARTS: { name: string; at: (t: number) => boolean }[] = [
  { name: "the second half", at: (t) => t >= PARTIAL_TOKENS / 2 },
  { name: "the last quarter", at: (t) => t >= PARTIAL_TOKENS * 3 / 4 },
  { name: "every other position", at: (t) => t % 2 === 1 },
];
/** The cheaper copies a partial cheat runs: review s74's three, each caught when run throughout. */
const PARTIAL_VARIANTS: ModelVariant[] = ["fp16", "kv-int8", { noise: 0.0002 }];
/**
 * Precision classes other than fp32: the honest worker of each (its weights rounded to that
 * format, as calibration runs it) and the cheats of the detection table run on jobs that declare
 * the class (review s74: the class's wider σ admitted some of them).
 */
const CLASS_CHEATS: Record<"bf16" | "fp16", ModelVariant[]> = {
  bf16: ["int8-tensor", "int8-channel", { noise: 0.003 }, { noise: 0.001 }, "kv-int8"],
  fp16: ["bf16", "int8-tensor", "int8-channel", { noise: 0.003 }, { noise: 0.001 }, "kv-int8"],
};

const PROMPTS = [
  "Hello world",
  "The quick brown fox jumps over the lazy dog",
  "a",
  "Veriflow proves inference without trusting the worker. ",
  "1 2 3 4 5 6 7",
  "Ünïcödé prompts ✓ work too",
  "def main():\n    return 42\n",
  "Once upon a time, in a land far away, there lived",
  "Dear committee, ",
  "SELECT * FROM jobs WHERE ",
];
/** Sampling settings, greedy first; the honest sweep and the cheats cycle through them. */
const SETTINGS: Pick<GenerationParams, "temperature" | "topK" | "topP">[] = [
  { temperature: 0, topK: 0, topP: 1 },
  { temperature: 0.7, topK: 0, topP: 1 },
  { temperature: 1, topK: 0, topP: 0.92 },
  { temperature: 1.4, topK: 24, topP: 1 },
  { temperature: 0.3, topK: 5, topP: 0.9 },
];
/** Stop strings of the jobs that have some (every third honest job, every steered job). */
const STOPS = ["e ", "t"];

const worker = Identity.generate();
const validator = Identity.generate();

function job(
  model: string,
  i: number,
  maxTokens: number,
  stop: string[] = [],
  precision: JobPrecision = "fp32",
): TextJob {
  return {
    kind: "text",
    model,
    prompt: PROMPTS[i % PROMPTS.length],
    params: { ...SETTINGS[i % SETTINGS.length], maxTokens, seed: 1000 + i, stop },
    nonce: `bench-${i}`,
    // fp32 is the default and not encoded (`protocols/job.ts`).
    ...(precision === "fp32" ? {} : { precision }),
  };
}

/** A variant's name with the noise in full (`variantName` rounds it to 0.1 %). */
function variantLabel(v: ModelVariant): string {
  return typeof v === "string" ? variantName(v) : `noise ${+(v.noise * 100).toPrecision(3)} %`;
}

/** Wilson score interval's lower end at 95 % for k successes in n. */
function lowerBound95(k: number, n: number): number {
  if (n === 0) return 0;
  const z = 1.96;
  const p = k / n;
  const centre = p + z * z / (2 * n);
  const spread = z * Math.sqrt((p * (1 - p) + z * z / (4 * n)) / n);
  return Math.max(0, (centre - spread) / (1 + z * z / n));
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;

interface DetectionRow {
  size: GptModelSize;
  name: string;
  kind: "honest" | "cheat" | "steer";
  receipts: number;
  flagged: number;
  confirmed: number;
  meanTokens: number;
  /** Cheats: mean positions a fraud proof needed (last cited + 1). */
  meanCited: number;
  /** Steering: extra tokens billed, relative to honest generation of the same jobs. */
  gain?: number;
  /**
   * Steering: end choices over the receipts (`proof/end_choices.ts`), and the share of billed
   * tokens in receipts that are lost once the worker is convicted (flagged, or with an end
   * passed over).
   */
  ends?: {
    passed: number;
    taken: number;
    caughtTokenShare: number;
    /** Tokens of the valid receipts with an end passed over, per honest token billed. */
    evidenceTokenShare: number;
  };
}
const rows: DetectionRow[] = [];
const notes: string[] = [];

for (const size of SIZES) {
  const work = WORK[size];
  const dir = await Deno.makeTempDir({ prefix: `veriflow-detection-${size}-` });
  try {
    const built = await buildGptModel({ size, seed: 0, outDir: `${dir}/honest` });
    const t0 = performance.now();
    const profile = await calibrateModel(built.dir);
    const calibrationMs = performance.now() - t0;
    const options: ValidationOptions = {
      calibration: (cid) => (cid === built.cid ? profile : undefined),
    };
    const tol = tolerancesFor(profile, "fp32");
    const fp32 = profile.precisions.fp32;
    notes.push(
      `${size}: calibrated in ${(calibrationMs / 1000).toFixed(1)} s over ${fp32.receipts} ` +
        `generations × variants (${fp32.variants.length} fp32 variants, ${fp32.positions} ` +
        `positions): σ(logProb) ${fp32.logProbRms.toExponential(2)}, σ(projection) ` +
        `${fp32.projectionRms.toExponential(2)} nats; largest logit difference ` +
        `${fp32.logitMax.toExponential(2)} → ε ${tol.sampling.logitEps.toExponential(2)}; ` +
        `bf16 class σ ${profile.precisions.bf16?.logProbRms.toExponential(2)}`,
    );
    const reference = await TextModel.load(built.dir, { intraOpThreads: CORES });

    // 2. Honest sweep: workers under every variant, the validator as it runs (the reference).
    await buildVariant(built.dir, `${dir}/logits-fp16`, "logits-fp16");
    const configs: { threads: number; graph: GraphOptimizationLevel; logits: string }[] = [];
    for (const threads of [...new Set([1, CORES])]) {
      for (const graph of ["all", "disabled"] as const) {
        for (const logits of ["fp32", "fp16"]) configs.push({ threads, graph, logits });
      }
    }
    const workers = await Promise.all(
      configs.map((c) =>
        TextModel.load(c.logits === "fp16" ? `${dir}/logits-fp16` : built.dir, {
          intraOpThreads: c.threads,
          graphOptimizationLevel: c.graph,
        })
      ),
    );
    const honest = { receipts: 0, flagged: 0, confirmed: 0, tokens: 0, passed: 0, taken: 0 };
    const near = { positions: 0, multiCalibrated: 0, multiDefault: 0, greedy: 0, greedyMulti: 0 };
    let maxMeanScore = 0;
    for (let i = 0; i < work.honest; i++) {
      const model = workers[i % workers.length];
      const j = job(built.cid, i, 8 + (i * 37) % 121, i % 3 === 2 ? STOPS : []);
      const run = await proveJob(
        j,
        model.generate(model.tokenizer.encode(j.prompt), j.params),
        worker,
      );
      const result = await validateReceipt(
        { job: j, receipt: run.receipt, proof: run.proof, output: run.output },
        reference,
        validator,
        options,
      );
      honest.receipts++;
      honest.tokens += run.receipt.tokenCount;
      honest.passed += result.stats.endPassed;
      honest.taken += result.stats.endTaken;
      maxMeanScore = Math.max(maxMeanScore, result.stats.meanScore);
      if (result.verdict.outcome !== "valid") {
        honest.flagged++;
        notes.push(`${size} honest receipt ${i} flagged: ${result.verdict.reason}`);
        if (result.fraudProof) {
          const check = await checkFraudProof(result.fraudProof, reference, options);
          if (check.confirmed) honest.confirmed++;
        }
      }
      // 4. Near-ties: the admissible set at each position of every eighth receipt.
      if (i % 8 === 0) await countNearTies(reference, j, run, tol.sampling, near);
    }
    rows.push({
      size,
      name: `honest: threads ${[...new Set(configs.map((c) => c.threads))].join("/")} × graph ` +
        `all/disabled × logits fp32/fp16`,
      kind: "honest",
      receipts: honest.receipts,
      flagged: honest.flagged,
      confirmed: honest.confirmed,
      meanTokens: honest.tokens / honest.receipts,
      meanCited: 0,
    });
    notes.push(
      `${size}: largest mean fingerprint score of an honest receipt ${
        maxMeanScore.toFixed(2)
      } (the limit for 128 positions is ${
        meanScoreLimit(128, tol.fingerprint).toFixed(1)
      }); sampled positions with more than ` +
        `one admissible token: ${near.multiCalibrated}/${near.positions} = ` +
        `${pct(near.multiCalibrated / Math.max(1, near.positions))} calibrated (ε ` +
        `${tol.sampling.logitEps.toExponential(2)}), ${
          pct(near.multiDefault / Math.max(1, near.positions))
        } with the uncalibrated default (ε 0.05); greedy positions ` +
        `${near.greedyMulti}/${near.greedy} = ${pct(near.greedyMulti / Math.max(1, near.greedy))}`,
    );
    notes.push(
      `${size}: end choices of the ${honest.receipts} honest receipts (where the worker's token ` +
        `and the validator's own pick differ on ending the output): ${honest.passed} passed ` +
        `over, ${honest.taken} taken (the steering test expects them alike)`,
    );
    for (const m of workers) await m.dispose();

    // 3. Detection.
    const cheats: { name: string; dir: string }[] = [];
    const modifications: ModelVariant[] = [
      "bf16",
      "int8-tensor",
      "int8-channel",
      { noise: 0.003 },
      { noise: 0.01 },
      "fp16",
      { noise: 0.001 },
      "kv-int8",
    ];
    for (const v of modifications) {
      const name = variantName(v);
      await buildVariant(built.dir, `${dir}/${name.replace(/\W+/g, "_")}`, v);
      cheats.push({ name: `weights: ${name}`, dir: `${dir}/${name.replace(/\W+/g, "_")}` });
    }
    await buildGptModel({ size, seed: 1, outDir: `${dir}/other-seed` });
    cheats.push({ name: "substitute: other weight seed", dir: `${dir}/other-seed` });
    const arch = (await buildGptModel({ size, seed: 0, outDir: `${dir}/ref-arch` })).architecture;
    await buildGptModel({
      size,
      seed: 0,
      numLayers: Math.max(1, arch.numLayers - 1),
      outDir: `${dir}/fewer-layers`,
    });
    const layers = Math.max(1, arch.numLayers - 1);
    cheats.push({
      name: `substitute: ${layers} layer${layers === 1 ? "" : "s"}`,
      dir: `${dir}/fewer-layers`,
    });
    await buildGptModel({
      size,
      seed: 0,
      hiddenSize: arch.hiddenSize / 2,
      outDir: `${dir}/narrower`,
    });
    cheats.push({ name: `substitute: width ${arch.hiddenSize / 2}`, dir: `${dir}/narrower` });
    /** Run `receipts` jobs whose token t comes from `modelAt(t)`, validated as a cheat row. */
    const measure = async (
      name: string,
      modelAt: (t: number) => TextModel,
      receipts: number,
      tokens = CHEAT_TOKENS,
      precision: JobPrecision = "fp32",
      kind: "cheat" | "honest" = "cheat",
      mixed = false,
    ) => {
      const r = { receipts: 0, flagged: 0, confirmed: 0, tokens: 0, cited: 0 };
      for (let i = 0; i < receipts; i++) {
        const j = job(built.cid, 5000 + i, tokens, [], precision);
        const first = modelAt(0);
        const ids = first.tokenizer.encode(j.prompt);
        const run = await proveJob(
          j,
          mixed ? manualStream(modelAt, ids, j.params) : first.generate(ids, j.params),
          worker,
        );
        const result = await validateReceipt(
          { job: j, receipt: run.receipt, proof: run.proof, output: run.output },
          reference,
          validator,
          options,
        );
        r.receipts++;
        r.tokens += run.receipt.tokenCount;
        if (result.verdict.outcome === "valid") continue;
        r.flagged++;
        if (kind === "honest") notes.push(`${size} ${name} receipt ${i}: ${result.verdict.reason}`);
        if (result.fraudProof) {
          r.cited += Math.max(...result.fraudProof.cited.map((c) => c.position)) + 1;
          const check = await checkFraudProof(result.fraudProof, reference, options);
          if (check.confirmed) r.confirmed++;
        }
      }
      rows.push({
        size,
        name,
        kind,
        receipts: r.receipts,
        flagged: r.flagged,
        confirmed: r.confirmed,
        meanTokens: r.tokens / Math.max(1, r.receipts),
        meanCited: r.flagged ? r.cited / r.flagged : 0,
      });
    };
    for (const cheat of work.cheats > 0 ? cheats : []) {
      const model = await TextModel.load(cheat.dir, { intraOpThreads: CORES });
      await measure(cheat.name, () => model, work.cheats);
      await model.dispose();
    }
    /** A cheaper copy of the honest model, built once per size. */
    const copies = new Map<string, TextModel>();
    const copyOf = async (v: ModelVariant) => {
      const key = variantKey(v);
      if (!copies.has(key)) {
        const d = `${dir}/copy-${key.replace(/\W+/g, "_")}`;
        await buildVariant(built.dir, d, v);
        copies.set(key, await TextModel.load(d, { intraOpThreads: CORES }));
      }
      return copies.get(key)!;
    };
    // 3b. Partial cheats (review s74): a cheaper copy on part of the positions of an fp32 job.
    for (const v of work.partial > 0 ? PARTIAL_VARIANTS : []) {
      const cheap = await copyOf(v);
      for (const part of PARTS) {
        await measure(
          `partial: ${variantLabel(v)} on ${part.name} (${PARTIAL_TOKENS} tokens)`,
          (t) => part.at(t) ? cheap : reference,
          work.partial,
          PARTIAL_TOKENS,
          "fp32",
          "cheat",
          true,
        );
      }
    }
    // 3c. The precision classes: honest class workers, then the cheats on jobs of that class.
    for (const precision of work.cheats > 0 ? (["bf16", "fp16"] as const) : []) {
      if (!profile.precisions[precision]) continue;
      const own = await copyOf(precision);
      await measure(
        `honest: ${precision} weights on ${precision} jobs`,
        () => own,
        work.partial,
        CHEAT_TOKENS,
        precision,
        "honest",
      );
      for (const v of CLASS_CHEATS[precision]) {
        const cheap = await copyOf(v);
        await measure(
          `${precision} job: weights ${variantLabel(v)}`,
          () => cheap,
          work.partial,
          CHEAT_TOKENS,
          precision,
        );
      }
    }
    for (const m of copies.values()) await m.dispose();

    // 4b. Steering among admissible tokens to avoid stop strings and EOS.
    const strategies: [string, SamplingTolerance | null, ValidationOptions][] = [
      ["steer within calibrated ε", tol.sampling, options],
      ["steer within default ε 0.05 (uncalibrated validator)", DEFAULT_SAMPLING_TOLERANCE, {}],
      ["steer always (ignore the check)", null, options],
    ];
    for (const [name, tolerance, validation] of work.steer > 0 ? strategies : []) {
      const r = {
        receipts: 0,
        flagged: 0,
        confirmed: 0,
        tokens: 0,
        honestTokens: 0,
        passed: 0,
        taken: 0,
        caughtTokens: 0,
        evidenceTokens: 0,
      };
      for (let i = 0, made = 0; made < work.steer; i++) {
        // Sampled settings only: greedy near-ties are counted above.
        const j = job(built.cid, 9000 + i, CHEAT_TOKENS, STOPS);
        if (j.params.temperature === 0) continue;
        made++;
        const ids = reference.tokenizer.encode(j.prompt);
        const honestRun = await proveJob(j, reference.generate(ids, j.params), worker);
        const run = await proveJob(
          j,
          steeredStream(reference, ids, j.params, tolerance),
          worker,
        );
        const result = await validateReceipt(
          { job: j, receipt: run.receipt, proof: run.proof, output: run.output },
          reference,
          validator,
          validation,
        );
        r.receipts++;
        r.tokens += run.receipt.tokenCount;
        r.honestTokens += honestRun.receipt.tokenCount;
        r.passed += result.stats.endPassed;
        r.taken += result.stats.endTaken;
        if (result.verdict.outcome !== "valid" || result.stats.endPassed > 0) {
          r.caughtTokens += run.receipt.tokenCount;
        }
        if (result.verdict.outcome === "valid" && result.stats.endPassed > 0) {
          r.evidenceTokens += run.receipt.tokenCount;
        }
        if (result.verdict.outcome !== "valid") {
          r.flagged++;
          if (result.fraudProof) {
            const check = await checkFraudProof(result.fraudProof, reference, validation);
            if (check.confirmed) r.confirmed++;
          }
        }
      }
      rows.push({
        size,
        name: `${name}: bills ${pct(r.tokens / Math.max(1, r.honestTokens) - 1)} more`,
        kind: "steer",
        receipts: r.receipts,
        flagged: r.flagged,
        confirmed: r.confirmed,
        meanTokens: r.tokens / Math.max(1, r.receipts),
        meanCited: 0,
        gain: r.tokens / Math.max(1, r.honestTokens) - 1,
        ends: {
          passed: r.passed,
          taken: r.taken,
          caughtTokenShare: r.caughtTokens / Math.max(1, r.tokens),
          evidenceTokenShare: r.evidenceTokens / Math.max(1, r.honestTokens),
        },
      });
    }
    await reference.dispose();
    printProfile(size, profile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Count, at each position of `run`, how many tokens the check admits (sampled and greedy). */
async function countNearTies(
  model: TextModel,
  j: TextJob,
  run: ProvedJob,
  tolerance: SamplingTolerance,
  near: {
    positions: number;
    multiCalibrated: number;
    multiDefault: number;
    greedy: number;
    greedyMulti: number;
  },
): Promise<void> {
  const ids = model.tokenizer.encode(j.prompt);
  const out = unpackTokens(run.proof.tokens, run.proof.tokenBytes);
  if (out.length === 0) return;
  const logits = await model.forward([...ids, ...out.slice(0, -1)]);
  const V = model.info.vocabSize;
  for (let t = 0; t < out.length; t++) {
    const offset = (ids.length - 1 + t) * V;
    const calibrated = admissibleTokens(logits, t, j.params, tolerance, offset, V).length;
    if (j.params.temperature === 0) {
      near.greedy++;
      if (calibrated > 1) near.greedyMulti++;
      continue;
    }
    near.positions++;
    if (calibrated > 1) near.multiCalibrated++;
    if (admissibleTokens(logits, t, j.params, undefined, offset, V).length > 1) near.multiDefault++;
  }
}

/**
 * A worker that steers: at each position it takes the honest token unless that ends the output
 * (EOS or a stop string), and then any other token the validator's check admits (`tolerance`),
 * or, with `null`, the best-scoring token that does not end it, admitted or not.
 */
async function* steeredStream(
  model: TextModel,
  promptIds: readonly number[],
  params: GenerationParams,
  tolerance: SamplingTolerance | null,
): AsyncGenerator<TokenChunk> {
  const eos = model.info.eosTokenId;
  const decoder = model.tokenizer.streamDecoder();
  const seq = [...promptIds];
  const V = model.info.vocabSize;
  let text = "";
  // Whether emitting `token` now ends the output (the stop strings here are ASCII).
  const ends = (token: number) =>
    token === eos ||
    params.stop.some((s) =>
      !text.includes(s) && (text + (token < 128 ? String.fromCharCode(token) : "")).includes(s)
    );
  for (let t = 0; t < params.maxTokens; t++) {
    const logits = await model.forward(seq);
    const row = logits.slice((seq.length - 1) * V, seq.length * V);
    let token = sampleToken(row, params, t).token;
    if (ends(token) && t + 1 < params.maxTokens) {
      const candidates = tolerance
        ? admissibleTokens(row, t, params, tolerance)
        : Array.from({ length: V }, (_, id) => id).sort((a, b) => row[b] - row[a]);
      const other = candidates.find((id) => !ends(id));
      if (other !== undefined) token = other;
    }
    seq.push(token);
    const last = token === eos || t + 1 >= params.maxTokens ||
      seq.length >= model.info.contextLength;
    let piece = token === eos ? "" : decoder.push(token);
    text += piece;
    const stopped = params.stop.some((s) => text.includes(s));
    if (last || stopped) piece += decoder.flush();
    yield {
      index: t,
      tokenId: token,
      text: piece,
      fingerprint: fingerprintOf(row, token),
      vocabSize: V,
    };
    if (last || stopped) return;
  }
}

function printProfile(size: string, profile: CalibrationProfile): void {
  const fmt = (x: number) => x.toExponential(2);
  console.log(`\n${size}: calibration profile ${profile.model} (reference ${profile.reference})`);
  for (const [precision, noise] of Object.entries(profile.precisions)) {
    if (!noise) continue;
    console.log(
      `  ${precision}: ${noise.variants.length} variants, ${noise.positions} positions; ` +
        `σ logProb ${fmt(noise.logProbRms)}, σ projection ${fmt(noise.projectionRms)}, ` +
        `largest logit difference ${fmt(noise.logitMax)}, mass σ ${fmt(noise.massSigma)}; ` +
        `self-check: ${noise.flagged} flagged, ${noise.samplingFailures} sampling failures`,
    );
  }
}

// 5. The table, with the economics of each cheat.
const e = DEFAULT_ECONOMICS;
console.log(
  `\ndetection bench — ${CORES} CPU threads; cheats generate ${CHEAT_TOKENS} tokens; economics: ` +
    `p = ${e.challengeProbability}, m = ${e.slashMultiplier}; E[profit] is per unit of reward, ` +
    `the cheat's cost taken as 0 (its largest saving)\n`,
);
console.log(
  `| model | modification | receipts | flagged | 95 % lower | slashed (checker) | ` +
    `tokens | cited | E[cheat − honest] / R |`,
);
console.log(`|---|---|--:|--:|--:|--:|--:|--:|--:|`);
for (const r of rows) {
  const rate = r.flagged / Math.max(1, r.receipts);
  let profit = "—";
  if (r.kind === "cheat") {
    profit = (cheatingAdvantage({ ...e, detectionRate: rate }, { reward: 1, costSaved: 1 }))
      .toFixed(2);
  } else if (r.kind === "steer") {
    profit = steeringProfit(r).toFixed(3);
  }
  console.log(
    `| ${r.size} | ${r.name} | ${r.receipts} | ${r.flagged} (${pct(rate)}) | ` +
      `${
        r.kind === "honest" ? "—" : pct(lowerBound95(r.flagged, r.receipts))
      } | ${r.confirmed} | ` +
      `${r.meanTokens.toFixed(0)} | ${r.kind === "cheat" ? r.meanCited.toFixed(0) : "—"} | ` +
      `${profit} |`,
  );
}
console.log("");
for (const n of notes) console.log(n);
for (const r of rows) if (r.kind === "steer") console.log(steeringNote(r));

/**
 * A steerer's expected profit per job, per unit of the honest reward, once a validator's
 * steering test (`proof/steering.ts`) has convicted it: extra tokens billed at no extra cost,
 * paid unless challenged and caught; caught (flagged, or an end passed over, which after the
 * conviction makes the receipt `steering`): not paid and slashed `m` × its credit. Before the
 * conviction only flagged receipts are caught ({@link steeringNote} gives that one-off gain).
 */
function steeringProfit(r: DetectionRow): number {
  const gain = r.gain ?? 0;
  const caught = r.ends?.caughtTokenShare ?? r.flagged / Math.max(1, r.receipts);
  return (1 + gain) * (1 - e.challengeProbability * caught * (1 + e.slashMultiplier)) - 1;
}

/**
 * How soon a validator's steering test convicts a steerer, and what steering earns it: until the
 * conviction, and then the claw-back of the evidence's credit `(1 + m)` times over
 * (`Ledger.settleSteering`), in units of one honest job's reward.
 */
function steeringNote(r: DetectionRow): string {
  const ends = r.ends ?? { passed: 0, taken: 0, caughtTokenShare: 0, evidenceTokenShare: 0 };
  const perReceipt = { passed: ends.passed / r.receipts, taken: ends.taken / r.receipts };
  const head = `${r.size} ${r.name.split(":")[0]}: ${ends.passed} ends passed over, ` +
    `${ends.taken} taken in ${r.receipts} receipts`;
  if (perReceipt.passed <= perReceipt.taken) {
    return r.flagged > 0
      ? `${head}: caught receipt by receipt (${r.flagged} flagged; end choices are counted on ` +
        `valid receipts only)`
      : `${head}: the steering test never convicts`;
  }
  let checked = 1;
  while (
    !isSteering({ passed: checked * perReceipt.passed, taken: checked * perReceipt.taken })
  ) checked++;
  const jobs = checked / e.challengeProbability;
  const q = e.challengeProbability * r.flagged / Math.max(1, r.receipts);
  const before = (1 + (r.gain ?? 0)) * (1 - q * (1 + e.slashMultiplier)) - 1;
  const gained = before * jobs;
  // The evidence: the challenged receipts with an end passed over, per honest job of reward.
  const clawedBack = (1 + e.slashMultiplier) * checked * ends.evidenceTokenShare;
  return `${head}: convicted by a validator after ~${checked} of its challenges (~${
    jobs.toFixed(0)
  } jobs at p = ${e.challengeProbability}), having gained ${gained.toFixed(1)} jobs' reward ` +
    `(${before.toFixed(3)} per job); the conviction claws back ${clawedBack.toFixed(1)} (net ${
      (gained - clawedBack).toFixed(1)
    }), and after it steering earns ${
      steeringProfit(r).toFixed(3)
    } per job. A steerer that stops just short of the evidence keeps at most ~${
      Math.max(0, gained).toFixed(1)
    } jobs' reward, per validator and key`;
}
