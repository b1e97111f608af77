/**
 * Calibration profiles: how far honest work lands from a validator's recomputation, measured
 * for one model on one machine, where they are kept, and the tolerances validators derive
 * from them.
 *
 * A validator recomputes a worker's logits and compares. Honest workers differ from it by
 * floating-point noise whose size depends on the model and on how each side executes it:
 * thread counts, graph optimization levels, execution providers, logits returned in fp16, and
 * — when the job allows it — weights stored in fp16 or bf16. `calibrateModel`
 * (`calibrate_model.ts`) runs the model under each of those execution variants next to a reference run (the validator's own
 * configuration), over a set of generations, and records per precision class
 * ({@link JobPrecision}) the honest noise of each fingerprint component, the largest per-logit
 * difference, and how that difference moves probability masses. The result is a
 * {@link CalibrationProfile}, keyed by the model's CID and stored as `<cid>.json` in a
 * {@link CalibrationStore} (the node's `<dataDir>/calibration/`; `cli.ts calibrate` writes it).
 *
 * Validators turn a profile into tolerances ({@link tolerancesFor}): the fingerprint test's
 * noise scales ({@link fingerprintToleranceOf}) and the sampling check's ε and σ
 * ({@link samplingToleranceOf}). The profile holds measurements only; the safety factors live
 * here, named, so a profile written today is read with today's rules.
 *
 * @module
 */
import { join } from "node:path";
import { z } from "zod";
import { coarserPrecisions, JOB_PRECISIONS, type JobPrecision } from "../protocols/job.ts";
import {
  DEFAULT_FINGERPRINT_TOLERANCE,
  FINGERPRINT_QUANTIZATION_RMS,
  FINGERPRINT_SCHEME,
  type FingerprintTolerance,
} from "./fingerprint.ts";
import { DEFAULT_SAMPLING_TOLERANCE, type SamplingTolerance } from "./sampling_check.ts";
import { keepToOwner, OWNER_DIR_MODE } from "../protocols/owner_only.ts";
import { removeTemporaries, writeFileDurably } from "./_durable_file.ts";

const encoder = new TextEncoder();

/**
 * A save's temporary file this old was left by a process that died mid-save (a save writes a few
 * KiB: it takes milliseconds), so an open removes it; a younger one may be another `calibrate`
 * run's save in progress.
 */
const STALE_TEMPORARY_MS = 10 * 60_000;

/** Version of the profile format. */
export const CALIBRATION_PROFILE_VERSION = 1;

/** The honest noise of one precision class, as measured. */
export interface NoiseProfile {
  /** The execution variants measured (`cpu/threads=2/graph=all/logits=fp16/weights=fp32`, …). */
  variants: string[];
  /** Generations compared, over all variants. */
  receipts: number;
  /** Positions compared, over all variants. */
  positions: number;
  /** RMS difference of `logProb`, claimed (quantized) vs recomputed, of the noisiest variant. */
  logProbRms: number;
  /** RMS difference of `projection`, of the noisiest variant. */
  projectionRms: number;
  /** Largest per-position score seen, with these RMS values as noise scales. */
  maxScore: number;
  /** Largest mean score over one generation seen. */
  maxMeanScore: number;
  /**
   * Largest difference of one logit (centred on the row's mean difference), over the logits
   * within {@link RELEVANT_LOGIT_RANGE} of the row's largest (nats).
   */
  logitMax: number;
  /**
   * The per-logit noise as it moves probability masses: the RMS of `|Δc| / unit` over the masses
   * c of the top 1..4 ids, where unit = `√((1 − c)²Σ_S p² + c²Σ_R p²)` (temperature 1). For
   * independent noise it is the per-logit RMS; correlated noise shows as more.
   */
  massSigma: number;
  /** Largest `|Δc| / unit` seen, in units of `massSigma`. */
  massMaxZ: number;
  /**
   * Calibration positions whose honestly sampled token failed the sampling check under the
   * tolerances derived from this profile (a self-check: 0 unless a safety factor is too thin).
   */
  samplingFailures: number;
  /** Calibration generations the fingerprint test flagged under the derived tolerances (0). */
  flagged: number;
}

/** A calibration profile: one model's honest noise on one machine, per precision class. */
export interface CalibrationProfile {
  /** Format version ({@link CALIBRATION_PROFILE_VERSION}). */
  v: number;
  /** CID of the model calibrated. */
  model: string;
  /** Fingerprint scheme the numbers are for (quantization is part of the noise). */
  scheme: string;
  /** Unix ms of the calibration. */
  createdAt: number;
  /** Where it ran. */
  machine: {
    /** `Deno.build.os`. */
    os: string;
    /** `Deno.build.arch`. */
    arch: string;
    /** Logical CPUs. */
    cpus: number;
    /** Execution providers present and measured. */
    executionProviders: string[];
  };
  /** The reference configuration (the validator's own) every variant was compared with. */
  reference: string;
  /** Noise per precision class; `fp32` always, `fp16`/`bf16` when calibrated. */
  precisions: { fp32: NoiseProfile; fp16?: NoiseProfile; bf16?: NoiseProfile };
}

/**
 * The largest per-logit difference (`logitMax`, nats) a profile may record. The noisiest class
 * measured here, bf16 weights, is 0.04 (docs/PROOF.md, "Calibration"); GPU kernels and larger
 * models add some, so 25 times that is room, and ε = 1.5 nats (30 × the default 0.05) is
 * already a check that admits nearly any token. A larger figure is a broken measurement or a
 * hand-edited file, and trusting it would pay a worker that ran another model.
 */
export const MAX_LOGIT_NOISE = 1;
/**
 * The largest RMS figure (`logProbRms`, `projectionRms`, `massSigma`) a profile may record. bf16
 * weights measure 0.007 (logProb, projection) and 0.004 (mass σ); 0.1 is 14 times that and 10
 * times the uncalibrated fingerprint σ (0.01): a class noisier than this has no fingerprint test
 * worth the name, so its profile is refused rather than trusted.
 */
export const MAX_RMS_NOISE = 0.1;

// z.number() refuses infinities (zod 4): a `1e999` in a file parses to Infinity and is refused.
const rms = (bf16: number) =>
  z.number().nonnegative().max(
    MAX_RMS_NOISE,
    `above ${MAX_RMS_NOISE} is not honest noise (bf16 weights measure ${bf16})`,
  );

const noiseSchema = z.object({
  variants: z.array(z.string()).min(1, "no execution variant measured"),
  receipts: z.number().int().positive("no generation measured"),
  positions: z.number().int().positive("no position measured"),
  logProbRms: rms(0.007),
  projectionRms: rms(0.007),
  maxScore: z.number().nonnegative(),
  maxMeanScore: z.number().nonnegative(),
  logitMax: z.number().nonnegative().max(
    MAX_LOGIT_NOISE,
    `above ${MAX_LOGIT_NOISE} nat is not honest noise (bf16 weights measure 0.04)`,
  ),
  massSigma: rms(0.004),
  massMaxZ: z.number().nonnegative(),
  samplingFailures: z.number().int().nonnegative(),
  flagged: z.number().int().nonnegative(),
}).superRefine((n, ctx) => {
  // Tolerances that flag the calibration's own honest generations would slash honest workers.
  if (n.flagged > 0 || n.samplingFailures > 0) {
    ctx.addIssue({
      code: "custom",
      message: `self-check failed: ${n.flagged} honest generation(s) flagged and ` +
        `${n.samplingFailures} honest token(s) refused under its own tolerances`,
    });
  }
});

/** The problems zod found, `path: message` each (`message` alone at the top level). */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => (i.path.length > 0 ? `${i.path.join(".")}: ${i.message}` : i.message))
    .join("; ");
}

/**
 * Why `noise` cannot be trusted as a precision class's honest noise, or undefined when it can:
 * a figure that is not a finite measurement within {@link MAX_LOGIT_NOISE} and
 * {@link MAX_RMS_NOISE}, nothing measured, or a failed self-check (`flagged` or
 * `samplingFailures` not 0).
 */
export function noiseProfileProblem(noise: NoiseProfile): string | undefined {
  const parsed = noiseSchema.safeParse(noise);
  return parsed.success ? undefined : describeIssues(parsed.error);
}

/** Zod schema of a stored profile (checked where a file is read and before one is written). */
const calibrationProfileSchema: z.ZodType<CalibrationProfile> = z.object({
  v: z.literal(CALIBRATION_PROFILE_VERSION),
  model: z.string().min(1).max(128),
  scheme: z.string().max(32),
  createdAt: z.number().nonnegative(),
  machine: z.object({
    os: z.string(),
    arch: z.string(),
    cpus: z.number().int().nonnegative(),
    executionProviders: z.array(z.string()),
  }),
  reference: z.string(),
  precisions: z.object({
    fp32: noiseSchema,
    fp16: noiseSchema.optional(),
    bf16: noiseSchema.optional(),
  }),
});

/** Finds the profile of a model by CID (undefined: not calibrated here). */
export type CalibrationLookup = (model: string) => CalibrationProfile | undefined;

/**
 * ε is the largest honest per-logit difference measured, times 1.5: it is a bound (the largest
 * difference seen, not a typical one) over every variant, so a modest factor covers another
 * machine's kernels; a larger one widens the set of tokens a worker may choose from at
 * near-ties (docs/PROOF.md, "Sampling check").
 */
export const LOGIT_EPS_SAFETY = 1.5;
/** σ of the sampling check's top-p bound: twice the measured mass noise. */
export const MASS_SIGMA_SAFETY = 2;
/** ε never below this (nats): a model whose variants all agree bit for bit still rounds. */
export const MIN_LOGIT_EPS = 1e-4;
/** Logits further than this below a row's largest are irrelevant to sampling (weight < e^{−10} at T = 2). */
export const RELEVANT_LOGIT_RANGE = 20;

/** The tolerances of a validation: what a profile (or its absence) gives. */
export interface Tolerances {
  /** Fingerprint test. */
  fingerprint: FingerprintTolerance;
  /** Sampling check. */
  sampling: SamplingTolerance;
  /**
   * True when they come from the profile's class for the job's own precision; false: the
   * defaults, or a coarser class standing in ({@link Tolerances.standIn}). A fraud-proof checker
   * refutes a citation it does not reproduce only when true (a looser stand-in may miss what the
   * job's own class catches).
   */
  calibrated: boolean;
  /**
   * Why the profile's class for the job's precision was refused and the defaults apply
   * ({@link noiseProfileProblem}); absent when there was none to refuse.
   */
  refused?: string;
  /**
   * The coarser class whose measurements stand in for the job's own, which the profile lacks:
   * the nearest calibrated one after it in {@link JOB_PRECISIONS} (fp16 → bf16). Looser than the
   * job's class would be, but never as loose as the defaults.
   */
  standIn?: JobPrecision;
  /**
   * The profile lacks the job's class and every coarser one (e.g. a bf16 or fp16 job on a
   * profile saved with `--precisions fp32`): the defaults apply, and a check that finds no fault
   * under them cannot tell the job's precision from a cheaper one, so it decides nothing
   * (`inconclusive / class_uncalibrated`, `validation.ts`: unpaid, nobody slashed).
   */
  classMissing?: boolean;
}

/** The fingerprint test's tolerance from measured noise (never below the quantization noise). */
export function fingerprintToleranceOf(noise: NoiseProfile): FingerprintTolerance {
  return {
    ...DEFAULT_FINGERPRINT_TOLERANCE,
    logProbSigma: Math.max(noise.logProbRms, FINGERPRINT_QUANTIZATION_RMS),
    projectionSigma: Math.max(noise.projectionRms, FINGERPRINT_QUANTIZATION_RMS),
  };
}

/** The sampling check's tolerance from measured noise. */
export function samplingToleranceOf(noise: NoiseProfile): SamplingTolerance {
  const logitEps = Math.max(MIN_LOGIT_EPS, LOGIT_EPS_SAFETY * noise.logitMax);
  return {
    ...DEFAULT_SAMPLING_TOLERANCE,
    logitEps,
    // The statistical bound is never looser than the worst case it refines, nor tighter than
    // what the bound ε on each logit allows as an RMS.
    logitSigma: Math.min(logitEps, Math.max(MIN_LOGIT_EPS, MASS_SIGMA_SAFETY * noise.massSigma)),
  };
}

/**
 * The tolerances for a job of `precision` on a model with `profile`. Without a profile, or for
 * another fingerprint scheme: the defaults. A profile without that precision's class lends the
 * nearest coarser class it has ({@link Tolerances.standIn}); with none, the defaults and
 * {@link Tolerances.classMissing}. A class that is not a plausible measurement, or whose
 * self-check failed, is refused (the defaults, with `refused` saying why): the lookup may hand
 * over a profile that no store checked.
 *
 * @example
 * ```ts
 * import { tolerancesFor } from "./calibration.ts";
 * tolerancesFor(undefined, "fp32").calibrated; // false: defaults
 * ```
 */
export function tolerancesFor(
  profile: CalibrationProfile | undefined,
  precision: JobPrecision = "fp32",
): Tolerances {
  const defaults: Tolerances = {
    fingerprint: DEFAULT_FINGERPRINT_TOLERANCE,
    sampling: DEFAULT_SAMPLING_TOLERANCE,
    calibrated: false,
  };
  if (profile?.scheme !== FINGERPRINT_SCHEME) return defaults;
  const noise = profile.precisions[precision];
  if (!noise) {
    // Review s80 F1: the defaults here (σ 0.01 nats) were looser than a coarser class the profile
    // holds, so an fp16 job was checked more loosely than a bf16 one and cheaper work was paid.
    for (const coarser of coarserPrecisions(precision)) {
      const lent = profile.precisions[coarser];
      if (!lent || noiseProfileProblem(lent) !== undefined) continue;
      return {
        fingerprint: fingerprintToleranceOf(lent),
        sampling: samplingToleranceOf(lent),
        calibrated: false,
        standIn: coarser,
      };
    }
    return { ...defaults, classMissing: true };
  }
  const problem = noiseProfileProblem(noise);
  if (problem !== undefined) return { ...defaults, refused: `${precision}: ${problem}` };
  return {
    fingerprint: fingerprintToleranceOf(noise),
    sampling: samplingToleranceOf(noise),
    calibrated: true,
  };
}

/**
 * How a profile covers each {@link JobPrecision} (what a node logs at start): `"calibrated"`, the
 * coarser class standing in for a missing one, or `"missing"` (the defaults: jobs of that class
 * end `inconclusive / class_uncalibrated` unless they fail even those).
 *
 * @example
 * ```ts ignore
 * classCoverage(profile); // { fp32: "calibrated", fp16: "bf16", bf16: "calibrated" }
 * ```
 */
export function classCoverage(
  profile: CalibrationProfile,
): Record<JobPrecision, "calibrated" | "missing" | JobPrecision> {
  const coverage = {} as Record<JobPrecision, "calibrated" | "missing" | JobPrecision>;
  for (const precision of JOB_PRECISIONS) {
    const tol = tolerancesFor(profile, precision);
    coverage[precision] = tol.calibrated ? "calibrated" : tol.standIn ?? "missing";
  }
  return coverage;
}

/**
 * What a node logs at start about a profile's missing classes ({@link classCoverage}), or
 * undefined when it has every class.
 *
 * @example
 * ```ts ignore
 * classCoverageNote(profile); // "no fp16 class: fp16 jobs checked under the bf16 class (…)"
 * ```
 */
export function classCoverageNote(profile: CalibrationProfile): string | undefined {
  const coverage = classCoverage(profile);
  const notes = JOB_PRECISIONS.flatMap((precision) => {
    const c = coverage[precision];
    if (c === "calibrated") return [];
    const what = c === "missing"
      ? "challenged here end unpaid unless convicted (inconclusive / class_uncalibrated)"
      : `checked under the ${c} class (what ${c} allows passes)`;
    return [`no ${precision} class: ${precision} jobs ${what}`];
  });
  if (notes.length === 0) return undefined;
  const rerun = "run `cli.ts calibrate --precisions fp32,fp16,bf16` to measure them";
  return `${notes.join("; ")}; ${rerun}`;
}

/** A file {@link CalibrationStore.open} did not load, and why. */
export interface RejectedProfile {
  /** The file's name in the store's directory. */
  file: string;
  /** Why: not JSON, not a plausible profile (which field, which bound), or named for another CID. */
  reason: string;
}

/**
 * A directory of profiles, one `<cid>.json` each, read once at open and kept in memory: the
 * lookup validators call on every challenge is synchronous.
 *
 * @example
 * ```ts ignore
 * const store = await CalibrationStore.open(".veriflow/calibration");
 * await validateReceipt(material, model, identity, { calibration: store.lookup });
 * ```
 */
export class CalibrationStore {
  /** The directory. */
  readonly dir: string;
  #profiles = new Map<string, CalibrationProfile>();
  #rejected: RejectedProfile[] = [];

  private constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Open `dir` (created if missing) and read every profile in it. A file that is not a valid
   * profile, or is named for another CID than it holds, is not loaded and is listed in
   * {@link CalibrationStore.rejected} with the reason (its model gets the default tolerances).
   */
  static async open(dir: string): Promise<CalibrationStore> {
    const store = new CalibrationStore(dir);
    // Owner-only like the rest of the data directory (`protocols/owner_only.ts`); one an
    // earlier version made with the umask is tightened.
    await Deno.mkdir(dir, { recursive: true, mode: OWNER_DIR_MODE });
    keepToOwner(dir);
    // Saves do not lock the directory: only a temporary no save can still be writing goes.
    await removeTemporaries(dir, (target) => target.endsWith(".json"), {
      olderThanMs: STALE_TEMPORARY_MS,
    });
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      let profile: CalibrationProfile;
      try {
        profile = await readCalibrationProfile(join(dir, entry.name));
      } catch (error) {
        const reason = error instanceof z.ZodError
          ? describeIssues(error)
          : (error as Error).message;
        store.#rejected.push({ file: entry.name, reason });
        continue;
      }
      if (`${profile.model}.json` !== entry.name) {
        store.#rejected.push({
          file: entry.name,
          reason: `holds the profile of ${profile.model}, not of the CID it is named for`,
        });
        continue;
      }
      store.#profiles.set(profile.model, profile);
    }
    return store;
  }

  /** The profile of `model`, if calibrated. Bound: pass it around as a {@link CalibrationLookup}. */
  readonly lookup: CalibrationLookup = (model) => this.#profiles.get(model);

  /** Files of the directory that were not loaded at open, with why (a node logs each). */
  get rejected(): readonly RejectedProfile[] {
    return this.#rejected;
  }

  /** Models with a profile. */
  get models(): string[] {
    return [...this.#profiles.keys()];
  }

  /**
   * Write `profile` as `<dir>/<cid>.json` (replacing any earlier one, atomically) and keep it.
   * Throws, writing nothing, for a profile {@link CalibrationStore.open} would reject (a failed
   * self-check included).
   */
  async save(profile: CalibrationProfile): Promise<string> {
    const parsed = calibrationProfileSchema.parse(profile);
    if (!/^[A-Za-z0-9]+$/.test(parsed.model)) throw new RangeError("model CID is not a file name");
    const path = join(this.dir, `${parsed.model}.json`);
    // Durably (fsync, rename, fsync of the directory) and through a temporary of its own
    // (review s75 F3): a profile sets a validator's tolerances, so a power cut must not leave an
    // empty one, and two `calibrate` runs for one model used to rename each other's `.tmp` away.
    await writeFileDurably(path, encoder.encode(JSON.stringify(parsed, null, 2) + "\n"));
    this.#profiles.set(parsed.model, parsed);
    return path;
  }
}

/** Read and check one profile file. */
export async function readCalibrationProfile(path: string): Promise<CalibrationProfile> {
  return calibrationProfileSchema.parse(JSON.parse(await Deno.readTextFile(path)));
}
