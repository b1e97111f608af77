/**
 * Measuring a calibration profile: the model run under each execution variant next to the
 * validator's own configuration (see `calibration.ts` for what the profile holds and how
 * validators use it).
 *
 * Each variant is a worker: over a fixed set of generations (greedy and sampled, prose, code,
 * numbers) its logits for the reference's tokens give the fingerprints it would claim
 * (quantized, as a worker commits them), and the reference's forward pass gives what a
 * validator recomputes. The variants: every execution provider that starts here (CPU; CUDA and
 * WebGPU where a device is present) × the thread counts ×
 * the graph optimization levels, each with logits as computed and rounded to fp16; the
 * reference's own KV-cached generation against its forward pass, alone and in continuous
 * batches of 1 to {@link CALIBRATION_MAX_BATCH} generations of mixed prompt and output lengths
 * (`inference/_batch_decoder.ts`: a worker serving several jobs at once); and, for the `fp16`
 * and `bf16` classes, the model with its weights rounded to that format.
 *
 * The profile is filed under the reference's model id (`inference/model_identity.ts`), and each
 * variant loads the directory again: a load whose files are not that model any more (changed
 * while calibrating) is refused, as is a rounded copy made from such files, so the profile never
 * holds another model's noise.
 *
 * @module
 */
import { join } from "node:path";
import type { GenerationParams, JobPrecision } from "../protocols/job.ts";
import {
  dequantizeFingerprint,
  type Fingerprint,
  FINGERPRINT_SCHEME,
  fingerprintDifference,
  fingerprintOf,
  fingerprintScore,
  fingerprintViolation,
  quantizeFingerprint,
} from "./fingerprint.ts";
import { checkSampledToken } from "./sampling_check.ts";
import { fingerprintsOf, LOGITS_PRECISIONS } from "./_common.ts";
import {
  CALIBRATION_PROFILE_VERSION,
  type CalibrationProfile,
  fingerprintToleranceOf,
  type NoiseProfile,
  RELEVANT_LOGIT_RANGE,
  samplingToleranceOf,
} from "./calibration.ts";
import { fp16Logits, mapModelWeights, weightRounding } from "./_precision.ts";
import { TextModel } from "../inference/text_model.ts";
import { ModelLoadError } from "../inference/errors.ts";
import { readTextModelFiles, textModelId } from "../inference/model_identity.ts";
import { sampleToken } from "../inference/sampler.ts";
import {
  cudaProviderInstalled,
  type ExecutionProvider,
  type GraphOptimizationLevel,
  webgpuProviderBundled,
} from "../inference/_session.ts";

/** Options of {@link calibrateModel}. */
export interface CalibrationOptions {
  /** Generations per variant (default 24: greedy and sampled, over eight prompts). */
  jobs?: number;
  /** Tokens per generation (default 64). */
  maxTokens?: number;
  /** Intra-op thread counts to measure (default 1 and every core). */
  threads?: number[];
  /** Graph optimization levels to measure (default `all` and `disabled`). */
  graphOptimizationLevels?: GraphOptimizationLevel[];
  /** Execution providers to measure (default CPU, and CUDA when its libraries are installed). */
  executionProviders?: ExecutionProvider[];
  /** Precision classes to calibrate (default all; fp32 always). */
  precisions?: JobPrecision[];
  /**
   * The validator's own configuration, which every variant is compared with. Default: CPU, one
   * thread per core, graph optimization `all` (what a node's model registry runs).
   */
  reference?: { threads?: number; executionProvider?: ExecutionProvider };
  /** Prompts (default a fixed mix of prose, code and numbers). */
  prompts?: string[];
  /** Told each variant as it starts. */
  onVariant?: (name: string) => void;
  /** Clock (unix ms) for `createdAt`. */
  now?: () => number;
}

/** Default calibration prompts: prose, code, numbers, non-ASCII. */
const CALIBRATION_PROMPTS = [
  "Hello world",
  "The quick brown fox jumps over the lazy dog",
  "def main():\n    return 42\n",
  "1 2 3 4 5 6 7",
  "Once upon a time, in a land far away, there lived",
  "Ünïcödé prompts ✓ work too",
  "Veriflow proves inference without trusting the worker. ",
  "SELECT name FROM users WHERE id = ",
];

/** Sampling settings the calibration generations cycle through: greedy and sampled. */
const CALIBRATION_SETTINGS: Pick<GenerationParams, "temperature" | "topK" | "topP">[] = [
  { temperature: 0, topK: 0, topP: 1 },
  { temperature: 0.7, topK: 0, topP: 1 },
  { temperature: 1, topK: 0, topP: 0.92 },
  { temperature: 1.4, topK: 24, topP: 1 },
];

/** One calibration generation: the reference's tokens and recomputation. */
interface Sample {
  promptIds: number[];
  tokens: number[];
  params: GenerationParams;
  /** Reference forward-pass logits over prompt ‖ tokens. */
  logits: Float32Array;
  /** Fingerprints of the reference's own KV-cached generation (unquantized). */
  generated: Fingerprint[];
}

/** Component differences, per sample and position. */
interface Differences {
  logProb: number[][];
  projection: number[][];
}

/** The measurements of one variant. */
interface VariantNoise {
  name: string;
  /** Differences under each of `LOGITS_PRECISIONS` (the validator's two recomputations). */
  d: Differences[];
  /** The hypothesis this variant's logits follow (index into `LOGITS_PRECISIONS`). */
  match: number;
  logitMax: number;
  massRatios: number[];
  /** Worker rows per sample (for the sampling self-check). */
  rows: Float32Array[];
}

/**
 * Measure the honest noise of the model in `dir` on this machine (see the module doc).
 *
 * @example
 * ```ts ignore
 * const profile = await calibrateModel(".veriflow/models/tiny-0");
 * await (await CalibrationStore.open(".veriflow/calibration")).save(profile);
 * ```
 */
export async function calibrateModel(
  dir: string,
  options: CalibrationOptions = {},
): Promise<CalibrationProfile> {
  const cores = Math.max(1, navigator.hardwareConcurrency || 1);
  const jobs = options.jobs ?? 24;
  const maxTokens = options.maxTokens ?? 64;
  const threads = [...new Set(options.threads ?? [1, cores])];
  const levels = options.graphOptimizationLevels ?? ["all", "disabled"];
  const providers = options.executionProviders ?? [
    "cpu",
    ...(cudaProviderInstalled() ? ["cuda" as const] : []),
    ...(webgpuProviderBundled() ? ["webgpu" as const] : []),
  ];
  const precisions = new Set<JobPrecision>(["fp32", ...(options.precisions ?? ["fp16", "bf16"])]);
  const prompts = options.prompts ?? CALIBRATION_PROMPTS;
  const refThreads = options.reference?.threads ?? cores;
  const refProvider = options.reference?.executionProvider ?? "cpu";
  const reference = await TextModel.load(dir, {
    intraOpThreads: refThreads,
    executionProvider: refProvider,
  });
  const referenceName =
    `${reference.info.executionProvider}/threads=${refThreads}/graph=all/logits=fp32`;
  const scratch = await Deno.makeTempDir({ prefix: "veriflow-calibration-" });
  try {
    const samples = await referenceSamples(reference, prompts, jobs, maxTokens);
    const measured: { variant: VariantNoise; weights: JobPrecision }[] = [];
    measured.push({ variant: generationNoise(reference, samples), weights: "fp32" });
    options.onVariant?.("generate in batches of 1–8 (KV cache) against forward");
    measured.push({ variant: await batchedGenerationNoise(reference, samples), weights: "fp32" });
    const measure = async (model: TextModel, name: string, weights: JobPrecision) => {
      for (const logits of ["fp32", "fp16"] as const) {
        const full = `${name}/logits=${logits}/weights=${weights}`;
        options.onVariant?.(full);
        const variant = await forwardNoise(reference, model, samples, full, logits === "fp16");
        measured.push({ variant, weights });
      }
    };
    for (const provider of providers) {
      // A GPU provider that cannot start here (no device, no adapter) measures nothing new: one
      // probe, not a failed session per variant.
      if (provider !== "cpu") {
        const probe = await sameModel(
          reference,
          await TextModel.load(dir, { executionProvider: provider, intraOpThreads: 1 }),
        );
        const starts = probe.info.executionProvider === provider;
        await probe.dispose();
        if (!starts) continue;
      }
      for (const n of threads) {
        for (const level of levels) {
          const model = await sameModel(
            reference,
            await TextModel.load(dir, {
              intraOpThreads: n,
              graphOptimizationLevel: level,
              executionProvider: provider,
            }),
          );
          try {
            // A CUDA request that fell back to CPU measures nothing new.
            if (model.info.executionProvider === provider) {
              await measure(model, `${provider}/threads=${n}/graph=${level}`, "fp32");
            }
          } finally {
            await model.dispose();
          }
        }
      }
    }
    for (const precision of ["fp16", "bf16"] as const) {
      if (!precisions.has(precision)) continue;
      const model = await roundedModel(
        dir,
        reference.info.cid,
        join(scratch, precision),
        precision,
        refThreads,
      );
      try {
        await measure(model, `cpu/threads=${refThreads}/graph=all`, precision);
      } finally {
        await model.dispose();
      }
    }
    // A class admits its own weight precision and every finer one.
    const classes: Partial<Record<JobPrecision, NoiseProfile>> = {};
    const admitted: Record<JobPrecision, JobPrecision[]> = {
      fp32: ["fp32"],
      fp16: ["fp32", "fp16"],
      bf16: ["fp32", "fp16", "bf16"],
    };
    for (const precision of precisions) {
      const variants = measured.filter((m) => admitted[precision].includes(m.weights));
      classes[precision] = summarize(variants.map((m) => m.variant), samples);
    }
    return {
      v: CALIBRATION_PROFILE_VERSION,
      model: reference.info.cid,
      scheme: FINGERPRINT_SCHEME,
      createdAt: (options.now ?? Date.now)(),
      machine: {
        os: Deno.build.os,
        arch: Deno.build.arch,
        cpus: cores,
        executionProviders: [...new Set(providers)],
      },
      reference: referenceName,
      precisions: classes as CalibrationProfile["precisions"],
    };
  } finally {
    await reference.dispose();
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

/** The calibration generations: tokens from the reference, and its recomputation of them. */
async function referenceSamples(
  model: TextModel,
  prompts: string[],
  jobs: number,
  maxTokens: number,
): Promise<Sample[]> {
  const samples: Sample[] = [];
  for (let j = 0; j < jobs; j++) {
    const setting = CALIBRATION_SETTINGS[j % CALIBRATION_SETTINGS.length];
    const params: GenerationParams = { ...setting, maxTokens, seed: 7919 * j + 1, stop: [] };
    const promptIds = model.tokenizer.encode(prompts[j % prompts.length]);
    const tokens: number[] = [];
    const generated: Fingerprint[] = [];
    for await (const chunk of model.generate(promptIds, params)) {
      tokens.push(chunk.tokenId);
      generated.push(chunk.fingerprint);
    }
    if (tokens.length === 0) continue;
    const logits = await model.forward([...promptIds, ...tokens.slice(0, -1)]);
    samples.push({ promptIds, tokens, params, logits, generated });
  }
  return samples;
}

/** Row of output position t in a forward pass over prompt ‖ tokens. */
function rowOf(logits: Float32Array, sample: Sample, t: number, vocab: number): Float32Array {
  const start = (sample.promptIds.length - 1 + t) * vocab;
  return logits.subarray(start, start + vocab);
}

/** Claimed (quantized round trip) minus recomputed, per component. */
function difference(worker: Fingerprint, validator: Fingerprint) {
  return fingerprintDifference(dequantizeFingerprint(quantizeFingerprint(worker)), validator);
}

/** Empty differences, one set per logits precision. */
function noDifferences(): Differences[] {
  return LOGITS_PRECISIONS.map(() => ({ logProb: [], projection: [] }));
}

/** Record one sample's differences of `claimed` fingerprints against the validator's rows. */
function recordDifferences(
  d: Differences[],
  claimed: Fingerprint[],
  validator: Float32Array,
  sample: Sample,
  vocab: number,
): void {
  const lp = d.map(() => [] as number[]);
  const pj = d.map(() => [] as number[]);
  sample.tokens.forEach((token, t) => {
    fingerprintsOf(rowOf(validator, sample, t, vocab), token).forEach((fp, h) => {
      const diff = difference(claimed[t], fp);
      lp[h].push(diff.logProb);
      pj[h].push(diff.projection);
    });
  });
  d.forEach((x, h) => {
    x.logProb.push(lp[h]);
    x.projection.push(pj[h]);
  });
}

/** The reference's KV-cached generation against its own forward pass. */
function generationNoise(model: TextModel, samples: Sample[]): VariantNoise {
  const vocab = model.info.vocabSize;
  const v: VariantNoise = {
    name: "generate (KV cache) against forward",
    d: noDifferences(),
    match: 0,
    logitMax: 0,
    massRatios: [],
    rows: [],
  };
  for (const s of samples) recordDifferences(v.d, s.generated, s.logits, s, vocab);
  return v;
}

/** Batch sizes the calibration's batched generations cycle through: 1, 2, …, this. */
export const CALIBRATION_MAX_BATCH = 8;
/** Each further member of a batch stops this many tokens earlier, so lengths are mixed. */
const BATCH_LENGTH_STEP = 7;

/**
 * The reference's KV-cached generation in continuous batches against its forward pass: the
 * samples in groups of 1, 2, …, {@link CALIBRATION_MAX_BATCH}, generated concurrently (one
 * batched execution per step), each member stopping at another length so that sequences leave
 * the batch at different steps. A member generates a prefix of its sample's tokens (the same
 * seeded draws); one whose tokens differ (a near-tie rounded the other way) is compared with a
 * forward pass over its own tokens.
 */
async function batchedGenerationNoise(model: TextModel, samples: Sample[]): Promise<VariantNoise> {
  const vocab = model.info.vocabSize;
  const v: VariantNoise = {
    name: `generate in batches of 1–${CALIBRATION_MAX_BATCH} against forward`,
    d: noDifferences(),
    match: 0,
    logitMax: 0,
    massRatios: [],
    rows: [],
  };
  let size = 1;
  for (let i = 0; i < samples.length; i += size, size = size % CALIBRATION_MAX_BATCH + 1) {
    const group = samples.slice(i, i + size);
    const runs = await Promise.all(group.map(async (s, k) => {
      const maxTokens = Math.max(1, s.tokens.length - BATCH_LENGTH_STEP * k);
      const tokens: number[] = [];
      const generated: Fingerprint[] = [];
      for await (const chunk of model.generate(s.promptIds, { ...s.params, maxTokens })) {
        tokens.push(chunk.tokenId);
        generated.push(chunk.fingerprint);
      }
      return { tokens, generated };
    }));
    for (let k = 0; k < group.length; k++) {
      const s = group[k];
      const { tokens, generated } = runs[k];
      const same = tokens.every((t, j) => t === s.tokens[j]);
      const logits = same
        ? s.logits
        : await model.forward([...s.promptIds, ...tokens.slice(0, -1)]);
      recordDifferences(v.d, generated, logits, { ...s, tokens, logits }, vocab);
    }
  }
  return v;
}

/** A worker running `model` (its logits rounded to fp16 if asked) against the reference. */
async function forwardNoise(
  reference: TextModel,
  model: TextModel,
  samples: Sample[],
  name: string,
  fp16: boolean,
): Promise<VariantNoise> {
  const vocab = reference.info.vocabSize;
  const v: VariantNoise = {
    name,
    d: noDifferences(),
    match: LOGITS_PRECISIONS.indexOf(fp16 ? "fp16" : "fp32"),
    logitMax: 0,
    massRatios: [],
    rows: [],
  };
  for (const s of samples) {
    let worker = await model.forward([...s.promptIds, ...s.tokens.slice(0, -1)]);
    if (fp16) worker = fp16Logits(worker);
    v.rows.push(worker);
    const claimed = s.tokens.map((token, t) => fingerprintOf(rowOf(worker, s, t, vocab), token));
    recordDifferences(v.d, claimed, s.logits, s, vocab);
    s.tokens.forEach((_, t) => {
      const w = rowOf(worker, s, t, vocab);
      const r = rowOf(s.logits, s, t, vocab);
      v.logitMax = Math.max(v.logitMax, centredLogitMax(w, r));
      v.massRatios.push(...massRatios(w, r));
    });
  }
  return v;
}

/** Largest |Δlᵢ − mean Δl| over the logits within the relevant range of the row's maximum. */
function centredLogitMax(worker: Float32Array, validator: Float32Array): number {
  let max = -Infinity;
  for (const v of validator) if (v > max) max = v;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < validator.length; i++) {
    if (validator[i] >= max - RELEVANT_LOGIT_RANGE) {
      sum += worker[i] - validator[i];
      n++;
    }
  }
  const mean = sum / n;
  let worst = 0;
  for (let i = 0; i < validator.length; i++) {
    if (validator[i] >= max - RELEVANT_LOGIT_RANGE) {
      worst = Math.max(worst, Math.abs(worker[i] - validator[i] - mean));
    }
  }
  return worst;
}

/** Ids whose masses calibrate the mass noise: the top 1..4 of the validator's row. */
const MASS_SETS = 4;

/**
 * `|Δc| / unit` for the masses c of the top 1..4 ids (temperature 1): how the honest noise
 * moves a sum of probabilities, in units of what independent per-logit noise of RMS 1 would.
 */
function massRatios(worker: Float32Array, validator: Float32Array): number[] {
  const n = validator.length;
  const order = Array.from({ length: n }, (_, i) => i)
    .sort((a, b) => validator[b] - validator[a] || a - b);
  const maxV = validator[order[0]];
  const maxW = worker[order[0]];
  const w = order.map((i) => Math.exp(validator[i] - maxV));
  const ww = order.map((i) => Math.exp(worker[i] - maxW));
  const total = w.reduce((a, b) => a + b, 0);
  const totalW = ww.reduce((a, b) => a + b, 0);
  let q = 0;
  for (const x of w) q += (x / total) ** 2;
  const out: number[] = [];
  let s = 0;
  let sw = 0;
  let qS = 0;
  for (let j = 0; j < Math.min(MASS_SETS, n - 1); j++) {
    s += w[j];
    sw += ww[j];
    qS += (w[j] / total) ** 2;
    const c = s / total;
    const unit = Math.sqrt((1 - c) ** 2 * qS + c * c * (q - qS));
    if (unit > 1e-12) out.push(Math.abs(sw / totalW - c) / unit);
  }
  return out;
}

/** Fold the variants of one class into its noise profile, and self-check the derived rules. */
function summarize(variants: VariantNoise[], samples: Sample[]): NoiseProfile {
  const rms = (xs: number[][]) => {
    let sum = 0;
    let n = 0;
    for (const row of xs) {
      for (const x of row) {
        sum += x * x;
        n++;
      }
    }
    return n > 0 ? Math.sqrt(sum / n) : 0;
  };
  const ratios = variants.flatMap((v) => v.massRatios);
  const massSigma = ratios.length > 0
    ? Math.sqrt(ratios.reduce((a, r) => a + r * r, 0) / ratios.length)
    : 0;
  const matched = (v: VariantNoise) => v.d[v.match];
  const noise: NoiseProfile = {
    variants: variants.map((v) => v.name),
    receipts: variants.reduce((a, v) => a + matched(v).logProb.length, 0),
    positions: variants.reduce(
      (a, v) => a + matched(v).logProb.reduce((b, r) => b + r.length, 0),
      0,
    ),
    logProbRms: Math.max(...variants.map((v) => rms(matched(v).logProb))),
    projectionRms: Math.max(...variants.map((v) => rms(matched(v).projection))),
    maxScore: 0,
    maxMeanScore: 0,
    logitMax: Math.max(...variants.map((v) => v.logitMax)),
    massSigma,
    massMaxZ: massSigma > 0 ? Math.max(...ratios) / massSigma : 0,
    samplingFailures: 0,
    flagged: 0,
  };
  const fingerprint = fingerprintToleranceOf(noise);
  const sampling = samplingToleranceOf(noise);
  const zero = { logProb: 0, projection: 0 };
  for (const v of variants) {
    for (let j = 0; j < matched(v).logProb.length; j++) {
      // Scores under each hypothesis, as a validator computes them.
      const scores = v.d.map((d) =>
        d.logProb[j].map((lp, t) =>
          fingerprintScore({ logProb: lp, projection: d.projection[j][t] }, zero, fingerprint)
        )
      );
      const best = scores[0].map((_, t) => Math.min(...scores.map((s) => s[t])));
      noise.maxScore = Math.max(noise.maxScore, ...best);
      const mean = best.reduce((a, b) => a + b, 0) / Math.max(1, best.length);
      noise.maxMeanScore = Math.max(noise.maxMeanScore, mean);
      if (fingerprintViolation(scores, fingerprint) !== null) noise.flagged++;
    }
    // The worker's own draw from its rows must pass the check on the reference's rows.
    v.rows.forEach((rows, j) => {
      const s = samples[j];
      const vocab = rows.length / (s.promptIds.length + s.tokens.length - 1);
      for (let t = 0; t < s.tokens.length; t++) {
        const { token } = sampleToken(rowOf(rows, s, t, vocab), s.params, t);
        const check = checkSampledToken(
          rowOf(s.logits, s, t, vocab),
          token,
          t,
          s.params,
          sampling,
        );
        if (!check.ok) noise.samplingFailures++;
      }
    });
  }
  return noise;
}

/**
 * `model`, when it is the reference's model (the same id: its files did not change since the
 * reference was loaded); else it is disposed and {@link ModelLoadError} thrown.
 */
async function sameModel(reference: TextModel, model: TextModel): Promise<TextModel> {
  if (model.info.cid === reference.info.cid) return model;
  await model.dispose();
  throw new ModelLoadError(
    `the model files in ${model.info.path} changed while calibrating ${reference.info.cid} ` +
      `(now ${model.info.cid})`,
  );
}

/**
 * A copy of the model `cid` in `dir` with its weights rounded to `precision`, loaded. Its files
 * are read once and must still be that model; the copy has the same config and tokenizer files
 * (an absent `tokenizer_config.json` stays absent, an unreadable one fails).
 */
async function roundedModel(
  dir: string,
  cid: string,
  out: string,
  precision: JobPrecision,
  threads: number,
): Promise<TextModel> {
  const files = await readTextModelFiles(dir);
  const now = textModelId(files);
  if (now !== cid) {
    throw new ModelLoadError(
      `the model files in ${dir} changed while calibrating ${cid} (now ${now})`,
    );
  }
  const round = weightRounding(precision);
  await Deno.mkdir(out, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) {
    const rounded = name === "model.onnx" && round ? mapModelWeights(bytes, round) : bytes;
    await Deno.writeFile(join(out, name), rounded);
  }
  return await TextModel.load(out, { intraOpThreads: threads });
}
