import assert from "node:assert/strict";
import { join } from "node:path";
import {
  CalibrationStore,
  fingerprintToleranceOf,
  LOGIT_EPS_SAFETY,
  MAX_LOGIT_NOISE,
  MAX_RMS_NOISE,
  type NoiseProfile,
  noiseProfileProblem,
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
import { handProfile } from "../_helpers/hand_profile.ts";

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

Deno.test("calibration store: profiles saved by CID are found again; foreign files are skipped and listed with why", async () => {
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
    // Skipped, but not silently: each is named with why.
    const rejected = [...reopened.rejected].sort((a, b) => a.file.localeCompare(b.file));
    assert.deepEqual(rejected.map((r) => r.file), ["bafkreinotthisone.json", "garbage.json"]);
    assert.match(rejected[0].reason, /holds the profile of .*not of the CID it is named for/);
    assert.match(rejected[1].reason, /JSON/);
    await assert.rejects(() => store.save({ ...profile, v: 2 }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("calibration: an implausible, unmeasured or self-check-failed profile is refused with a reason, never trusted", async () => {
  // The noisiest class measured (bf16 weights: ε 0.04, RMS 0.007) and the bounds themselves load.
  const plausible: [string, Partial<NoiseProfile>][] = [
    ["Ok", {}],
    ["Bfsixteen", { logitMax: 0.0373, logProbRms: 0.00697, projectionRms: 0.00694 }],
    ["Atbounds", {
      logitMax: MAX_LOGIT_NOISE,
      logProbRms: MAX_RMS_NOISE,
      projectionRms: MAX_RMS_NOISE,
      massSigma: MAX_RMS_NOISE,
    }],
  ];
  const refused: [string, Partial<NoiseProfile>, RegExp][] = [
    // With noise 1e12 a worker running another model was paid as "calibrated".
    [
      "Huge",
      { logitMax: 1e300, logProbRms: 1e300, projectionRms: 1e300, massSigma: 1e300 },
      /logProbRms: above 0\.1 is not honest noise.*logitMax: above 1 nat/,
    ],
    ["Logit", { logitMax: 1.01 }, /logitMax: above 1 nat/],
    ["Mass", { massSigma: 0.2 }, /massSigma: above 0\.1/],
    ["Zero", { receipts: 0, positions: 0, logProbRms: 0, logitMax: 0 }, /no position measured/],
    ["Novariant", { variants: [] }, /no execution variant measured/],
    ["Flagged", { flagged: 24, samplingFailures: 500 }, /self-check failed: 24 .*flagged and 500/],
    ["Samplingfail", { samplingFailures: 1 }, /self-check failed: 0 .*flagged and 1/],
    ["Negative", { logitMax: -1 }, /logitMax: Too small/],
  ];
  const dir = await Deno.makeTempDir({ prefix: "veriflow-calibration-" });
  try {
    for (const [model, edit] of [...plausible, ...refused]) {
      await Deno.writeTextFile(
        join(dir, `${model}.json`),
        JSON.stringify(handProfile(model, edit)),
      );
    }
    // JSON reads 1e999 as Infinity.
    await Deno.writeTextFile(
      join(dir, "Infinite.json"),
      JSON.stringify(handProfile("Infinite")).replace(/"logitMax":[^,]*/, '"logitMax":1e999'),
    );
    const store = await CalibrationStore.open(dir);
    assert.deepEqual(store.models.sort(), plausible.map(([m]) => m).sort());
    const reasons = new Map(store.rejected.map((r) => [r.file, r.reason]));
    assert.equal(reasons.size, refused.length + 1, JSON.stringify(store.rejected));
    for (const [model, , reason] of refused) {
      assert.match(reasons.get(`${model}.json`) ?? "(loaded)", reason, model);
      assert.equal(store.lookup(model), undefined, model);
    }
    assert.match(reasons.get("Infinite.json")!, /logitMax: .*Infinity/);
    for (const [model] of plausible) {
      assert.equal(tolerancesFor(store.lookup(model), "fp32").calibrated, true, model);
    }
    // A profile no store checked (a lookup may hand any object over) is refused just the same,
    // and the store will not write one.
    for (const [model, edit, reason] of refused) {
      const tol = tolerancesFor(handProfile(model, edit), "fp32");
      assert.equal(tol.calibrated, false, model);
      assert.deepEqual(tol.sampling, DEFAULT_SAMPLING_TOLERANCE, model);
      assert.deepEqual(tol.fingerprint, DEFAULT_FINGERPRINT_TOLERANCE, model);
      assert.match(tol.refused ?? "", new RegExp(`^fp32: .*${reason.source}`), model);
      assert.match(noiseProfileProblem(handProfile(model, edit).precisions.fp32) ?? "", reason);
      await assert.rejects(() => store.save(handProfile(model, edit)), model);
    }
    assert.equal(tolerancesFor(handProfile("Ok"), "fp32").refused, undefined);
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
