/**
 * Test fixture: a calibration profile written by hand, not measured: figures a CPU calibration
 * of the tiny model gives, so the store and `noiseProfileProblem` accept it as it is. Tests that
 * need a profile on disk, or one figure pushed past a bound, start from it.
 *
 * @module
 */
import type { CalibrationProfile, NoiseProfile } from "../../proof/calibration.ts";
import { FINGERPRINT_SCHEME } from "../../proof/fingerprint.ts";

/** A profile of `model` with one fp32 noise measurement: the figures below, `edit` applied. */
export function handProfile(model: string, edit: Partial<NoiseProfile> = {}): CalibrationProfile {
  return {
    v: 1,
    model,
    scheme: FINGERPRINT_SCHEME,
    createdAt: 0,
    machine: { os: "linux", arch: "x86_64", cpus: 2, executionProviders: ["cpu"] },
    reference: "cpu/threads=2/graph=all/logits=fp32",
    precisions: {
      fp32: {
        variants: ["cpu/threads=1/graph=all/logits=fp32"],
        receipts: 24,
        positions: 1536,
        logProbRms: 0.00029,
        projectionRms: 0.00028,
        maxScore: 3,
        maxMeanScore: 1,
        logitMax: 0.0041,
        massSigma: 0.00086,
        massMaxZ: 4,
        samplingFailures: 0,
        flagged: 0,
        ...edit,
      },
    },
  };
}
