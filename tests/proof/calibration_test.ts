import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CalibrationStore,
  fingerprintToleranceOf,
  LOGIT_EPS_SAFETY,
  readCalibrationProfile,
  samplingToleranceOf,
  tolerancesFor,
} from "../../proof/calibration.ts";
import {
  DEFAULT_FINGERPRINT_TOLERANCE,
  FINGERPRINT_QUANTIZATION_RMS,
} from "../../proof/fingerprint.ts";
import { DEFAULT_SAMPLING_TOLERANCE } from "../../proof/sampling_check.ts";
import { roundToBf16, roundToFp16 } from "../../proof/_precision.ts";
import { jobId, type TextJob, textJobSchema } from "../../protocols/job.ts";
import { loadCalibratedFixture } from "./_models.ts";

Deno.test("calibration: fp32 noise sits at the fingerprint's rounding, bf16 weights far above it", async () => {
  const { profile } = await loadCalibratedFixture();
  const fp32 = profile.precisions.fp32;
  const bf16 = profile.precisions.bf16!;
  assert.ok(fp32.variants.some((v) => v.includes("graph=disabled")));
  assert.ok(fp32.variants.some((v) => v.includes("logits=fp16")));
  assert.ok(fp32.variants.some((v) => v.startsWith("generate")), "the KV-cached path is a variant");
  assert.ok(
    fp32.variants.some((v) => v.startsWith("generate in batches of 1–8")),
    "continuous batches of 1–8 generations are a variant",
  );
  assert.equal(profile.precisions.fp16, undefined, "not asked for");
  // Every variant is compared under the logits precision it used: what is left is rounding.
  assert.ok(fp32.logProbRms >= 0.8 * FINGERPRINT_QUANTIZATION_RMS, `${fp32.logProbRms}`);
  assert.ok(fp32.logProbRms < 3 * FINGERPRINT_QUANTIZATION_RMS, `${fp32.logProbRms}`);
  assert.ok(bf16.logProbRms > 5 * fp32.logProbRms, `bf16 ${bf16.logProbRms}`);
  // Logits returned in fp16 differ from fp32 by up to half an fp16 step (≥ 2^-12 for |l| ≥ 1).
  assert.ok(fp32.logitMax >= 2 ** -12, `${fp32.logitMax}`);
  assert.ok(fp32.logitMax < 0.01, `${fp32.logitMax}`);
  // The self-check: the derived rules flag none of the calibration's own honest generations.
  for (const noise of [fp32, bf16]) {
    assert.equal(noise.flagged, 0);
    assert.equal(noise.samplingFailures, 0);
    assert.ok(noise.maxMeanScore < 2, `${noise.maxMeanScore}`);
  }
});

Deno.test("calibration: tolerances derive from the profile for the job's precision, else defaults", async () => {
  const { profile } = await loadCalibratedFixture();
  const fp32 = tolerancesFor(profile, "fp32");
  assert.equal(fp32.calibrated, true);
  assert.equal(
    fp32.fingerprint.logProbSigma,
    Math.max(profile.precisions.fp32.logProbRms, FINGERPRINT_QUANTIZATION_RMS),
  );
  assert.equal(fp32.sampling.logitEps, LOGIT_EPS_SAFETY * profile.precisions.fp32.logitMax);
  assert.ok(fp32.sampling.logitEps < DEFAULT_SAMPLING_TOLERANCE.logitEps / 4);
  assert.ok(
    tolerancesFor(profile, "bf16").fingerprint.logProbSigma > fp32.fingerprint.logProbSigma,
  );
  for (
    const none of [
      tolerancesFor(undefined),
      tolerancesFor(profile, "fp16"),
      tolerancesFor({ ...profile, scheme: "vf-fp1" }),
    ]
  ) {
    assert.equal(none.calibrated, false);
    assert.deepEqual(none.fingerprint, DEFAULT_FINGERPRINT_TOLERANCE);
    assert.deepEqual(none.sampling, DEFAULT_SAMPLING_TOLERANCE);
  }
  // Never below the floors, whatever a profile says.
  const silent = {
    ...profile.precisions.fp32,
    logProbRms: 0,
    projectionRms: 0,
    logitMax: 0,
    massSigma: 0,
  };
  assert.equal(fingerprintToleranceOf(silent).logProbSigma, FINGERPRINT_QUANTIZATION_RMS);
  assert.ok(samplingToleranceOf(silent).logitEps > 0 && samplingToleranceOf(silent).logitSigma > 0);
});

Deno.test("calibration store: profiles saved by CID are found again; foreign files are skipped", async () => {
  const { profile } = await loadCalibratedFixture();
  const dir = await Deno.makeTempDir({ prefix: "veriflow-calibration-" });
  try {
    const store = await CalibrationStore.open(dir);
    assert.equal(store.lookup(profile.model), undefined);
    const path = await store.save(profile);
    assert.equal(path, join(dir, `${profile.model}.json`));
    assert.deepEqual(await readCalibrationProfile(path), profile);
    await Deno.writeTextFile(join(dir, "bafkreinotthisone.json"), JSON.stringify(profile));
    await Deno.writeTextFile(join(dir, "garbage.json"), "{ not json");
    const reopened = await CalibrationStore.open(dir);
    assert.deepEqual(reopened.models, [profile.model]);
    assert.deepEqual(reopened.lookup(profile.model), profile);
    await assert.rejects(() => store.save({ ...profile, v: 2 }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("job precision: absent, the job id is unchanged; present, it is another job; only three values", () => {
  const job: TextJob = {
    kind: "text",
    model: "bafkreiexample",
    prompt: "Hello",
    params: { maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
    nonce: "n",
  };
  // The id this job had before jobs could declare a precision.
  assert.equal(jobId(job), "94022a80d0ab473763addbc208532e467e8a1cb8ace8902c4fbce33e5dfcafb4");
  assert.equal(jobId(textJobSchema.parse(job)), jobId(job), "parsing adds no field");
  assert.notEqual(jobId({ ...job, precision: "bf16" }), jobId(job));
  for (const precision of ["fp32", "fp16", "bf16"]) {
    assert.equal(textJobSchema.safeParse({ ...job, precision }).success, true);
  }
  assert.equal(textJobSchema.safeParse({ ...job, precision: "int4" }).success, false);
});

Deno.test("precision rounding: bf16 keeps 8 significant bits, fp16 11, both round to nearest even", () => {
  assert.equal(roundToBf16(1 + 2 ** -8), 1, "a tie goes to the even neighbour");
  assert.equal(roundToBf16(1 + 3 * 2 ** -8), 1 + 2 ** -6);
  assert.equal(roundToFp16(1 + 2 ** -11), 1);
  assert.equal(roundToFp16(1 + 3 * 2 ** -11), 1 + 2 ** -9);
  assert.equal(roundToFp16(65520), Infinity, "overflow");
  assert.equal(roundToFp16(2 ** -25), 0, "below half the smallest subnormal");
  assert.equal(roundToFp16(-3.1415926), -3.140625);
});
