/**
 * A job whose precision class the validator's calibration profile lacks (review s80, F1): the
 * nearest coarser class the profile has stands in (fp16 → bf16), and with none (a profile saved
 * with `--precisions fp32`) a receipt that passes the defaults is not paid on them
 * (`inconclusive / class_uncalibrated`: unpaid, nobody slashed). Before, both fell back to the
 * loose defaults, and a worker running cheaper weights on an fp16 job was paid.
 *
 * @module
 */
import assert from "node:assert/strict";
import { endOf } from "../../actors/_challenges.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import type { JobPrecision, TextJob } from "../../protocols/job.ts";
import { receiptId } from "../../protocols/receipt.ts";
import {
  type CalibrationProfile,
  classCoverage,
  classCoverageNote,
  fingerprintToleranceOf,
  samplingToleranceOf,
  tolerancesFor,
} from "../../proof/calibration.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { DEFAULT_FINGERPRINT_TOLERANCE } from "../../proof/fingerprint.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import { Ledger } from "../../proof/ledger.ts";
import { proveJob } from "../../proof/prover.ts";
import { CLASS_UNCALIBRATED, validateReceipt } from "../../proof/validation.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { withLedgerDir } from "./_ledger_fixtures.ts";
import { cheaperCopy, loadCalibratedFixture, loadFixture } from "./_models.ts";

const requester = Identity.generate();
const validator = Identity.generate();
const PROMPTS = ["Hello world", "Once upon a time"];

/** The fixture's profile (fp32 and bf16) with only its fp32 class: `--precisions fp32`. */
function fp32Only(profile: CalibrationProfile): CalibrationProfile {
  const { bf16: _, ...rest } = profile.precisions;
  return { ...profile, precisions: rest };
}

/** Job `i` of `precision` on the fixture's model, 48 tokens. */
async function jobOf(i: number, precision: JobPrecision): Promise<TextJob> {
  return {
    kind: "text",
    model: (await loadFixture()).honest.info.cid,
    prompt: PROMPTS[i],
    params: { maxTokens: 48, temperature: i, topK: 0, topP: 1, seed: 7 + i, stop: [] },
    nonce: `class-${i}`,
    precision,
    requester: toHex(requester.publicKey),
  };
}

/** `worker` runs `job` on `model`; the validator checks it with `profile`. */
async function challenge(
  job: TextJob,
  model: TextModel,
  worker: Identity,
  profile: CalibrationProfile,
) {
  const c = await loadCalibratedFixture();
  const run = await proveJob(
    job,
    model.generate(model.tokenizer.encode(job.prompt), job.params),
    worker,
  );
  const calibration = (cid: string) => (cid === profile.model ? profile : undefined);
  const result = await validateReceipt(
    { job, receipt: run.receipt, proof: run.proof, output: run.output },
    c.validator,
    validator,
    { calibration },
  );
  return { run, result, calibration };
}

Deno.test("calibration class: a missing class borrows the nearest coarser calibrated one; with none, the defaults marked missing; a present class is unchanged", async () => {
  const { profile } = await loadCalibratedFixture();
  const bf16 = profile.precisions.bf16!;
  // Present: exactly the class's own tolerances, as before.
  assert.deepEqual(tolerancesFor(profile, "bf16"), {
    fingerprint: fingerprintToleranceOf(bf16),
    sampling: samplingToleranceOf(bf16),
    calibrated: true,
  });
  // fp16 missing, bf16 present: bf16's, not the defaults (7.5× looser than a measured fp16).
  assert.deepEqual(tolerancesFor(profile, "fp16"), {
    fingerprint: fingerprintToleranceOf(bf16),
    sampling: samplingToleranceOf(bf16),
    calibrated: false,
    standIn: "bf16",
  });
  assert.ok(fingerprintToleranceOf(bf16).logProbSigma < DEFAULT_FINGERPRINT_TOLERANCE.logProbSigma);
  assert.deepEqual(classCoverage(profile), {
    fp32: "calibrated",
    fp16: "bf16",
    bf16: "calibrated",
  });
  // Only fp32: no coarser class for fp16 or bf16.
  const only = fp32Only(profile);
  for (const precision of ["fp16", "bf16"] as const) {
    const tol = tolerancesFor(only, precision);
    assert.equal(tol.classMissing, true, precision);
    assert.equal(tol.calibrated, false, precision);
    assert.deepEqual(tol.fingerprint, DEFAULT_FINGERPRINT_TOLERANCE, precision);
  }
  assert.deepEqual(classCoverage(only), { fp32: "calibrated", fp16: "missing", bf16: "missing" });
  // What a node logs at start, and `cli.ts calibrate` prints, for each.
  assert.match(
    classCoverageNote(profile)!,
    /^no fp16 class: fp16 jobs checked under the bf16 class/,
  );
  assert.match(classCoverageNote(only)!, /no fp16 class: .*class_uncalibrated.*; no bf16 class: /);
  assert.equal(
    classCoverageNote({
      ...profile,
      precisions: { ...profile.precisions, fp16: profile.precisions.bf16 },
    }),
    undefined,
  );
  // No profile at all: the defaults, as before (nothing is known about the model).
  assert.equal(tolerancesFor(undefined, "fp16").classMissing, undefined);
});

Deno.test("calibration class: an fp16 job on a profile without the fp16 class is checked under bf16's, so 0.5 % weight noise is caught (the defaults paid it)", async () => {
  const { profile } = await loadCalibratedFixture();
  const cheat = await cheaperCopy({ noise: 0.005 });
  for (let i = 0; i < PROMPTS.length; i++) {
    const job = await jobOf(i, "fp16");
    const { result, calibration } = await challenge(job, cheat, Identity.generate(), profile);
    const what = `job ${i}: ${result.verdict.reason}, mean score ${result.stats.meanScore}`;
    assert.equal(result.verdict.outcome, "fraud", what);
    assert.equal(result.verdict.details?.standIn, "bf16", what);
    // A checker with the same profile confirms it (the worker is slashed); one with no profile
    // cannot judge it and does not refute it (the validator is not charged).
    const model = (await loadCalibratedFixture()).validator;
    const confirmed = await checkFraudProof(result.fraudProof, model, { calibration });
    assert.equal(confirmed.confirmed, true, `${what}; checker: ${confirmed.reason}`);
    const bare = await checkFraudProof(result.fraudProof, model);
    assert.ok(bare.confirmed || bare.inconclusive, `${what}; bare checker: ${bare.reason}`);
  }
});

Deno.test("calibration class: with only fp32 calibrated, an fp16 or bf16 receipt that passes the defaults is inconclusive (unpaid, not slashed); one failing them is still fraud", async () => {
  const c = await loadCalibratedFixture();
  const only = fp32Only(c.profile);
  const cases: [string, JobPrecision, TextModel][] = [
    ["0.3 % weight noise on fp16", "fp16", await cheaperCopy({ noise: 0.003 })],
    ["bf16 weights on fp16", "fp16", await cheaperCopy("bf16")],
    ["honest on bf16", "bf16", c.workers[0].model],
  ];
  for (const [name, precision, model] of cases) {
    await withLedgerDir(async (dir, clock) => {
      const worker = Identity.generate();
      const job = await jobOf(0, precision);
      const { run, result } = await challenge(job, model, worker, only);
      const what = `${name}: ${result.verdict.outcome}/${result.verdict.reason}`;
      assert.equal(
        `${result.verdict.outcome}/${result.verdict.reason}`,
        `inconclusive/${CLASS_UNCALIBRATED}`,
        what,
      );
      assert.equal(result.fraudProof, undefined, what);
      // The ledger: the challenge ends unresolved; the window closes; the worker is neither paid
      // nor slashed, its stake whole and unlocked.
      const ledger = await Ledger.open(dir, validator, { now: () => clock.t });
      try {
        await ledger.deposit(worker.publicKey, 10_000);
        const assignment = signAssignment(
          { job, worker: worker.publicKey, issuedAt: 0 },
          requester,
        );
        await ledger.recordReceipt(run.receipt, { assignment });
        const id = receiptId(run.receipt);
        await ledger.openChallenge(id);
        const end = endOf(result.verdict);
        assert.equal(end, "unresolved", what);
        await ledger.leaveUnresolved(id, result.verdict.reason);
        clock.t += DEFAULT_ECONOMICS.challengeWindowMs + 1;
        await ledger.finalizeDue();
        assert.deepEqual(
          ledger.account(worker.publicKey),
          { balance: 0, stake: 10_000, locked: 0 },
          what,
        );
      } finally {
        await ledger.close();
      }
    });
  }
  // A cheat that fails even the defaults is convicted as before.
  const { result } = await challenge(
    await jobOf(1, "fp16"),
    await cheaperCopy("int8-tensor"),
    Identity.generate(),
    only,
  );
  assert.equal(`${result.verdict.outcome}/${result.verdict.reason}`, "fraud/fingerprint_mismatch");
});
