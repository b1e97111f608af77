/**
 * The adversarial suite on the tiny model, validated against the model's calibration profile
 * (measured in the test process): honest work is never flagged (500+ receipts from workers
 * on other thread counts, without graph optimization and with logits returned in fp16), and
 * every cheat is caught on every challenged receipt — another model, perturbed or cheaper
 * copies of the model (bf16 and int8 weights, 0.3 % noise), tampered tokens, truncation,
 * another prompt or seed, fabricated fingerprints — with a fraud proof an independent checker
 * confirms wherever the failure is a computation mismatch. The rates behind these claims, over
 * thousands of receipts and on the `small` model too, are `bench/detection_bench.ts`'s.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { type GenerationParams, jobId, type TextJob } from "../../protocols/job.ts";
import { type Receipt, signReceipt } from "../../protocols/receipt.ts";
import { verifyVerdict } from "../../protocols/verdict.ts";
import { type ProvedJob, proveJob } from "../../proof/prover.ts";
import {
  validateReceipt,
  type ValidationOptions,
  type ValidationResult,
} from "../../proof/validation.ts";
import { checkFraudProof } from "../../proof/fraud_check.ts";
import { commitmentRoot, packTokens, unpackTokens } from "../../proof/commitment.ts";
import { signFraudProof } from "../../protocols/fraud_proof.ts";
import { openChunks } from "../../proof/commitment.ts";
import {
  cheaperCopy,
  loadCalibratedFixture,
  loadFixture,
  manualStream,
  type ModelVariant,
  variantName,
} from "./_models.ts";
import { TextModel } from "../../inference/text_model.ts";
import { isTestedSet } from "../../proof/fingerprint.ts";

const worker = Identity.generate();
const validator = Identity.generate();

const PROMPTS = [
  "Hello world",
  "The quick brown fox jumps over the lazy dog",
  "a",
  "Veriflow proves inference without trusting the worker. ",
  "1 2 3 4 5 6 7",
  "Ünïcödé prompts ✓ work too",
  "def main():\n    return 42\n",
  "Once upon a time, in a land far away, there lived",
];

function params(i: number, maxTokens: number): GenerationParams {
  const mode = i % 4;
  return {
    maxTokens,
    temperature: mode === 0 ? 0 : mode === 1 ? 0.7 : mode === 2 ? 1 : 1.4,
    topK: mode === 3 ? 24 : 0,
    topP: mode === 2 ? 0.92 : 1,
    seed: 1000 + i,
    stop: [],
  };
}

function textJob(model: TextModel, i: number, maxTokens = 32): TextJob {
  return {
    kind: "text",
    model: model.info.cid,
    prompt: PROMPTS[i % PROMPTS.length],
    params: params(i, maxTokens),
    nonce: `n${i}`,
  };
}

async function honestRun(model: TextModel, job: TextJob): Promise<ProvedJob> {
  const ids = model.tokenizer.encode(job.prompt);
  return await proveJob(job, model.generate(ids, job.params), worker);
}

/** The validation options of the suite: the honest model's calibration profile. */
async function calibrated(): Promise<ValidationOptions> {
  return { calibration: (await loadCalibratedFixture()).calibration };
}

/** Validate as the challenged validator would, then have a third party check any proof. */
async function challenge(
  model: TextModel,
  job: TextJob,
  run: { receipt: unknown; proof: ProvedJob["proof"]; output?: string },
  options?: ValidationOptions,
): Promise<ValidationResult & { confirmed?: boolean }> {
  options ??= await calibrated();
  const result = await validateReceipt(
    { job, receipt: run.receipt, proof: run.proof, output: run.output },
    model,
    validator,
    options,
  );
  assert.ok(verifyVerdict(result.verdict), "verdicts are signed");
  if (result.fraudProof) {
    const check = await checkFraudProof(result.fraudProof, model, options);
    return { ...result, confirmed: check.confirmed };
  }
  return result;
}

Deno.test("honest work: zero false positives over 520 receipts across threads, graph optimization and fp16 logits", async () => {
  const c = await loadCalibratedFixture();
  assert.equal(c.profile.precisions.fp32.flagged, 0, "the calibration's own self-check");
  let checked = 0;
  for (let i = 0; i < 520; i++) {
    const { name, model } = c.workers[i % c.workers.length];
    const job = textJob(c.validator, i, 4 + (i * 7) % 61);
    const ids = model.tokenizer.encode(job.prompt);
    const run = await proveJob(job, model.generate(ids, job.params), worker);
    const result = await challenge(c.validator, job, run);
    assert.equal(
      result.verdict.outcome,
      "valid",
      `receipt ${i} from ${name} (${
        JSON.stringify(job.params)
      }) flagged: ${result.verdict.reason} ${JSON.stringify(result.verdict.details)}`,
    );
    assert.equal(result.stats.calibrated, true);
    assert.equal(result.fraudProof, undefined);
    checked++;
  }
  assert.equal(checked, 520);
});

Deno.test("honest long outputs stay valid, their mean score near the calibrated noise", async () => {
  const c = await loadCalibratedFixture();
  for (let i = 0; i < 8; i++) {
    const { model } = c.workers[i % c.workers.length];
    const job = textJob(c.validator, i, 120);
    const run = await proveJob(
      job,
      model.generate(model.tokenizer.encode(job.prompt), job.params),
      worker,
    );
    const result = await challenge(c.validator, job, run);
    assert.equal(result.verdict.outcome, "valid", result.verdict.reason);
    assert.ok(result.stats.meanScore < 2, `mean score ${result.stats.meanScore}`);
  }
});

/** Run a cheat over several jobs; every one must be a confirmed fraud (or invalid, if told). */
async function expectCaught(
  name: string,
  cheat: (
    job: TextJob,
    i: number,
  ) => Promise<{ receipt: unknown; proof: ProvedJob["proof"]; output?: string }>,
  expected: { outcome: "fraud" | "invalid"; reasons?: string[] },
  jobs = 8,
) {
  const f = await loadFixture();
  for (let i = 0; i < jobs; i++) {
    const job = textJob(f.honest, i, 24);
    const run = await cheat(job, i);
    const result = await challenge(f.honestThreads, job, run);
    assert.equal(
      result.verdict.outcome,
      expected.outcome,
      `${name} job ${i}: ${result.verdict.reason}`,
    );
    if (expected.reasons) {
      assert.ok(expected.reasons.includes(result.verdict.reason), result.verdict.reason);
    }
    if (expected.outcome === "fraud") {
      assert.ok(result.fraudProof, `${name}: a fraud verdict comes with a proof`);
      assert.equal(result.confirmed, true, `${name} job ${i}: independent checker confirms`);
    }
  }
}

Deno.test("cheat: a different model (other weight seed) is caught with a confirmed fraud proof", async () => {
  const f = await loadFixture();
  await expectCaught(
    "other model",
    (job) =>
      proveJob(
        job,
        manualStream(() => f.otherSeed, f.honest.tokenizer.encode(job.prompt), job.params),
        worker,
      ),
    {
      outcome: "fraud",
    },
  );
});

Deno.test("cheat: the same model with weights perturbed by 1% is caught", async () => {
  const f = await loadFixture();
  await expectCaught(
    "perturbed",
    (job) =>
      proveJob(
        job,
        manualStream(() => f.perturbed, f.honest.tokenizer.encode(job.prompt), job.params),
        worker,
      ),
    {
      outcome: "fraud",
      reasons: ["fingerprint_mismatch", "sampling_rule"],
    },
  );
});

Deno.test("cheat: a smaller model for some positions is caught", async () => {
  const f = await loadFixture();
  await expectCaught("smaller for some", (job, i) =>
    proveJob(
      job,
      manualStream(
        (t) => (t >= 6 + (i % 5) && t < 12 + (i % 5) ? f.smaller : f.honest),
        f.honest.tokenizer.encode(job.prompt),
        job.params,
      ),
      worker,
    ), { outcome: "fraud" });
});

Deno.test("cheat: tampered tokens (re-committed and re-signed) are caught", async () => {
  const f = await loadFixture();
  await expectCaught("tampered tokens", async (job, i) => {
    const run = await honestRun(f.honest, job);
    const tokens = unpackTokens(run.proof.tokens, run.proof.tokenBytes);
    const at = 3 + (i % 10);
    tokens[at] = (tokens[at] + 1 + i) % 256; // another byte
    const proof = { ...run.proof, tokens: packTokens(tokens, run.proof.tokenBytes) };
    const output = new TextDecoder().decode(new Uint8Array(tokens.filter((t) => t < 256)));
    const { sig: _s, worker: _w, ...unsigned } = run.receipt;
    const receipt = signReceipt({
      ...unsigned,
      outputHash: (await import("../../protocols/receipt.ts")).textOutputHash(output),
      commitment: { ...run.receipt.commitment, root: commitmentRoot(proof) },
    }, worker);
    return { receipt, proof };
  }, { outcome: "fraud" });
});

Deno.test("cheat: truncated output is caught (termination proof, no forward pass needed)", async () => {
  const f = await loadFixture();
  await expectCaught(
    "truncated",
    (job) =>
      proveJob(
        job,
        manualStream(() => f.honest, f.honest.tokenizer.encode(job.prompt), job.params, {
          stopAfter: 10,
        }),
        worker,
      ),
    {
      outcome: "fraud",
      reasons: ["truncated"],
    },
  );
});

Deno.test("cheat: output computed for a different prompt is caught", async () => {
  const f = await loadFixture();
  await expectCaught(
    "other prompt",
    (job) =>
      proveJob(
        job,
        manualStream(
          () => f.honest,
          f.honest.tokenizer.encode(job.prompt + " (cached)"),
          job.params,
        ),
        worker,
      ),
    {
      outcome: "fraud",
    },
  );
});

Deno.test("cheat: fabricated fingerprints under a consistent commitment are caught", async () => {
  const f = await loadFixture();
  await expectCaught("fabricated", async (job, i) => {
    const run = await honestRun(f.honest, job);
    const fingerprints = run.proof.fingerprints.slice();
    // A worker that skipped the model invents plausible fingerprints.
    for (let b = 0; b < fingerprints.length; b++) fingerprints[b] = (b * 37 + i * 11) & 0xff;
    const proof = { ...run.proof, fingerprints };
    const { sig: _s, worker: _w, ...unsigned } = run.receipt;
    const receipt = signReceipt({
      ...unsigned,
      commitment: { ...run.receipt.commitment, root: commitmentRoot(proof) },
    }, worker);
    return { receipt, proof, output: run.output };
  }, { outcome: "fraud", reasons: ["fingerprint_mismatch"] });
});

Deno.test("cheat: proof data that does not open the signed commitment is invalid", async () => {
  const f = await loadFixture();
  await expectCaught(
    "unopenable",
    async (job) => {
      const run = await honestRun(f.honest, job);
      const fingerprints = run.proof.fingerprints.slice();
      fingerprints[0] ^= 1;
      return { receipt: run.receipt, proof: { ...run.proof, fingerprints } };
    },
    { outcome: "invalid", reasons: ["commitment_mismatch"] },
    3,
  );
});

Deno.test("cheat: a receipt replayed from another job is invalid", async () => {
  const f = await loadFixture();
  await expectCaught(
    "replayed",
    async (job) => {
      const other = { ...job, nonce: job.nonce + "-other" };
      const run = await honestRun(f.honest, other);
      return { receipt: run.receipt, proof: run.proof };
    },
    { outcome: "invalid", reasons: ["job_mismatch"] },
    3,
  );
});

Deno.test("cheat: a forged worker signature is invalid", async () => {
  const f = await loadFixture();
  const forger = Identity.generate();
  await expectCaught(
    "forged",
    async (job) => {
      const run = await honestRun(f.honest, job);
      const { sig: _s, worker: _w, ...unsigned } = run.receipt;
      const forged: Receipt = { ...signReceipt(unsigned, forger), worker: worker.publicKey };
      return { receipt: forged, proof: run.proof };
    },
    { outcome: "invalid", reasons: ["bad_signature"] },
    3,
  );
});

Deno.test("cheat: sampling with a seed other than the job's is caught", async () => {
  const f = await loadFixture();
  const f2 = await loadFixture();
  for (let i = 0; i < 8; i++) {
    const job = {
      ...textJob(f.honest, i, 24),
      params: { ...params(1 + (i % 3), 24), seed: 50 + i },
    };
    const run = await proveJob(
      job,
      manualStream(() => f2.honest, f.honest.tokenizer.encode(job.prompt), job.params, {
        seed: 999 + i,
      }),
      worker,
    );
    const result = await challenge(f.honestThreads, job, run);
    assert.equal(result.verdict.outcome, "fraud", `job ${i}`);
    assert.equal(result.verdict.reason, "sampling_rule");
    assert.equal(result.confirmed, true);
  }
});

Deno.test("an honest receipt yields no fraud proof, and a forged accusation against it is refuted", async () => {
  const f = await loadFixture();
  const job = textJob(f.honest, 1, 40);
  const run = await honestRun(f.honest, job);
  const result = await challenge(f.honestThreads, job, run);
  assert.equal(result.verdict.outcome, "valid");
  assert.equal(result.fraudProof, undefined);
  for (const kind of ["fingerprint", "sampling", "termination", "output"] as const) {
    const accusation = signFraudProof({
      v: 1,
      kind,
      job,
      receipt: run.receipt,
      chunks: openChunks(run.proof, 1, new Set([0, 1])),
      cited: [
        { position: 5 },
        { position: 6 },
        { position: 7 },
        { position: 8 },
        { position: 9 },
        {
          position: 10,
        },
        { position: 11 },
        { position: 12 },
      ],
      issuedAt: Date.now(),
    }, validator);
    const check = await checkFraudProof(accusation, f.honest);
    assert.equal(check.confirmed, false, `${kind} accusation must not check`);
  }
  assert.equal(jobId(job), run.receipt.jobId);
});

Deno.test("stop strings: honest early stops are valid; running on past a stop is caught", async () => {
  const f = await loadFixture();
  let overruns = 0;
  for (let i = 0; i < 8; i++) {
    const base = textJob(f.honest, i, 40);
    const job = { ...base, params: { ...base.params, stop: [" ", "e"] } };
    const run = await honestRun(f.honest, job);
    const ok = await challenge(f.honestThreads, job, run);
    assert.equal(ok.verdict.outcome, "valid", `job ${i}: ${ok.verdict.reason}`);
    // The cheat ignores the stop list and bills for more tokens.
    const ids = f.honest.tokenizer.encode(job.prompt);
    const cheat = await proveJob(job, manualStream(() => f.honest, ids, job.params), worker);
    if (cheat.receipt.tokenCount === run.receipt.tokenCount) continue; // never reached a stop
    const caught = await challenge(f.honestThreads, job, cheat);
    assert.equal(caught.verdict.outcome, "fraud");
    assert.equal(caught.verdict.reason, "overrun");
    assert.equal(caught.confirmed, true);
    overruns++;
  }
  assert.ok(overruns >= 4, `only ${overruns} jobs hit a stop string`);
});

/** A cheaper copy of the honest model, built once per test process. */
for (const v of ["bf16", "int8-tensor", "int8-channel", { noise: 0.003 }] as ModelVariant[]) {
  Deno.test(`cheat: a cheaper copy of the model (${variantName(v)}) is caught within 128 tokens`, async () => {
    const copy = await cheaperCopy(v);
    const f = await loadFixture();
    for (let i = 0; i < 6; i++) {
      const job = textJob(f.honest, 100 + i, 128);
      const run = await proveJob(
        job,
        copy.generate(copy.tokenizer.encode(job.prompt), job.params),
        worker,
      );
      const result = await challenge(f.honestThreads, job, run);
      assert.equal(
        result.verdict.outcome,
        "fraud",
        `${variantName(v)} job ${i}: ${result.verdict.reason}`,
      );
      assert.equal(result.confirmed, true, `${variantName(v)} job ${i}: the checker confirms`);
    }
  });
}

/**
 * A worker that runs a cheaper copy on part of the positions only (review s74): the honest
 * positions around them diluted every prefix's mean below its limit, so these were paid.
 */
async function expectPartialCheatCaught(
  v: ModelVariant,
  cheapAt: (t: number, tokens: number) => boolean,
  name: string,
): Promise<void> {
  const TOKENS = 192;
  const copy = await cheaperCopy(v);
  const f = await loadFixture();
  for (let i = 0; i < 8; i++) {
    // Four prompts × greedy and three sampled settings, seeds of their own: a mix on which
    // both cheats passed some jobs under tails and prefixes only (measured for review s74).
    const job: TextJob = {
      ...textJob(f.honest, i, TOKENS),
      prompt: PROMPTS[[0, 1, 6, 7][i % 4]],
      params: { ...params(i, TOKENS), seed: 9000 + i },
      nonce: `partial${i}`,
    };
    const run = await proveJob(
      job,
      manualStream(
        (t) => cheapAt(t, TOKENS) ? copy : f.honest,
        f.honest.tokenizer.encode(job.prompt),
        job.params,
      ),
      worker,
    );
    const result = await challenge(f.honestThreads, job, run);
    assert.equal(result.verdict.outcome, "fraud", `${name} job ${i}: ${result.verdict.reason}`);
    assert.equal(result.confirmed, true, `${name} job ${i}: the checker confirms`);
    const proof = result.fraudProof!;
    const cited = proof.cited.map((c) => c.position);
    assert.ok(cited.some((t) => cheapAt(t, TOKENS)), `${name}: cites a cheated position`);
    // A set version-1 checkers do not test travels as version 2; signed as version 1 it proves
    // nothing (what a version-1 checker would answer), so both versions settle it alike.
    assert.equal(proof.v, isTestedSet(cited) ? 1 : 2, `${name} job ${i}: version`);
    if (proof.v === 2) {
      const { sig: _sig, validator: _key, ...unsigned } = proof;
      const asV1 = signFraudProof({ ...unsigned, v: 1 }, validator);
      const check = await checkFraudProof(asV1, f.honestThreads, await calibrated());
      assert.equal(check.confirmed, false, `${name} job ${i}: a version-1 citation of it`);
      assert.equal(check.reason, "not_reproduced");
    }
  }
}

Deno.test("cheat: 0.02 % weight noise on the last quarter of an fp32 job is caught by a suffix", async () => {
  await expectPartialCheatCaught(
    { noise: 0.0002 },
    (t, n) => t >= n * 3 / 4,
    "0.02 % noise on the last quarter",
  );
});

Deno.test("cheat: 0.017 % weight noise on every other position of an fp32 job is caught by a stride-2 set", async () => {
  // Strong enough that the odd positions' own mean clears its limit, weak enough that the honest
  // even positions pulled every prefix under its limit (caught on 6 of 8 jobs before review s74).
  await expectPartialCheatCaught(
    { noise: 0.00017 },
    (t) => t % 2 === 1,
    "0.017 % noise on odd positions",
  );
});

Deno.test("precision: a bf16 worker is paid on a job that declares bf16 and caught on an fp32 job", async () => {
  const copy = await cheaperCopy("bf16");
  const f = await loadFixture();
  for (let i = 0; i < 4; i++) {
    const fp32Job = textJob(f.honest, 200 + i, 96);
    const bf16Job: TextJob = { ...fp32Job, precision: "bf16" };
    for (const [job, expected] of [[bf16Job, "valid"], [fp32Job, "fraud"]] as const) {
      const run = await proveJob(
        job,
        copy.generate(copy.tokenizer.encode(job.prompt), job.params),
        worker,
      );
      const result = await challenge(f.honestThreads, job, run);
      assert.equal(result.verdict.outcome, expected, `${job.precision ?? "fp32"} job ${i}`);
    }
  }
});

Deno.test("a checker without the profile neither confirms nor refutes a calibrated accusation", async () => {
  const copy = await cheaperCopy("bf16");
  const f = await loadFixture();
  const job = textJob(f.honest, 300, 128);
  const run = await proveJob(
    job,
    copy.generate(copy.tokenizer.encode(job.prompt), job.params),
    worker,
  );
  const result = await challenge(f.honestThreads, job, run);
  assert.ok(result.fraudProof, "caught with the profile");
  const uncalibrated = await checkFraudProof(result.fraudProof, f.honestThreads, {});
  assert.equal(uncalibrated.confirmed, false);
  assert.equal(uncalibrated.inconclusive, true);
  assert.equal(uncalibrated.reason, "uncalibrated");
  // Without a profile the validator itself uses the loose defaults: bf16 passes there.
  const loose = await challenge(f.honestThreads, job, run, {});
  assert.equal(loose.verdict.outcome, "valid");
  assert.equal(loose.stats.calibrated, false);
});

/**
 * A worker serving several jobs at once computes them in continuous batches
 * (`inference/_batch_decoder.ts`); its receipts are validated like any other, by one unbatched
 * teacher-forced pass. Every worker variant of the suite, batches of 1 to 8 jobs of mixed prompt
 * and output lengths and sampling rules, in-thread and in a model worker.
 */
Deno.test("honest work in batches of 1–8 (mixed lengths), validated unbatched: zero false positives", async () => {
  const c = await loadCalibratedFixture();
  const inWorker = await TextModel.load(c.honestDir, {
    intraOpThreads: 2,
    worker: true,
    workerCount: 1,
  });
  try {
    const workers = [...c.workers, { name: "model worker, 2 threads", model: inWorker }];
    let checked = 0;
    let next = 1000;
    for (const { name, model } of workers) {
      const before = await model.batchStats();
      for (let size = 1; size <= 8; size++) {
        const jobs = Array.from(
          { length: size },
          (_, k) => textJob(c.validator, next++, 4 + ((k * 13 + size * 5) % 57)),
        );
        const runs = await Promise.all(
          jobs.map((job) =>
            proveJob(job, model.generate(model.tokenizer.encode(job.prompt), job.params), worker)
          ),
        );
        for (let k = 0; k < size; k++) {
          const result = await challenge(c.validator, jobs[k], runs[k]);
          assert.equal(
            result.verdict.outcome,
            "valid",
            `${name}, batch of ${size}, job ${k}: ${result.verdict.reason} ${
              JSON.stringify(result.verdict.details)
            }`,
          );
          assert.equal(result.fraudProof, undefined);
          checked++;
        }
      }
      const after = await model.batchStats();
      const largest = Math.max(...after.map((s) => s.maxBatch));
      const rows = after.reduce((a, s) => a + s.decodeRows, 0) -
        before.reduce((a, s) => a + s.decodeRows, 0);
      const runsDone = after.reduce((a, s) => a + s.decodeRuns, 0) -
        before.reduce((a, s) => a + s.decodeRuns, 0);
      assert.ok(largest >= 6, `${name}: the jobs really ran in batches (largest ${largest})`);
      assert.ok(rows / runsDone > 2, `${name}: mean batch ${(rows / runsDone).toFixed(2)}`);
    }
    assert.equal(checked, workers.length * 36);
  } finally {
    await inWorker.dispose();
  }
});

Deno.test("a cheat inside a batch is still caught, and its honest batch-mates stay valid", async () => {
  const c = await loadCalibratedFixture();
  const model = c.workers[0].model;
  const jobs = Array.from({ length: 6 }, (_, k) => textJob(c.validator, 2000 + k, 24 + k * 5));
  const runs = await Promise.all(
    jobs.map((job) =>
      proveJob(job, model.generate(model.tokenizer.encode(job.prompt), job.params), worker)
    ),
  );
  // Job 3's worker swaps one token of its output, re-commits and re-signs.
  const run = runs[3];
  const tokens = unpackTokens(run.proof.tokens, run.proof.tokenBytes);
  tokens[5] = (tokens[5] + 1) % 256;
  const proof = { ...run.proof, tokens: packTokens(tokens, run.proof.tokenBytes) };
  const output = new TextDecoder().decode(new Uint8Array(tokens.filter((t) => t < 256)));
  const { sig: _s, worker: _w, ...unsigned } = run.receipt;
  const cheat = {
    proof,
    receipt: signReceipt({
      ...unsigned,
      outputHash: (await import("../../protocols/receipt.ts")).textOutputHash(output),
      commitment: { ...run.receipt.commitment, root: commitmentRoot(proof) },
    }, worker),
  };
  for (let k = 0; k < jobs.length; k++) {
    const result = await challenge(c.validator, jobs[k], k === 3 ? cheat : runs[k]);
    if (k === 3) assert.equal(result.verdict.outcome, "fraud", "the tampered job is caught");
    else assert.equal(result.verdict.outcome, "valid", `batch-mate ${k}: ${result.verdict.reason}`);
  }
});
