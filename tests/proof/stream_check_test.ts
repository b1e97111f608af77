/**
 * The checker of a stream claim (`proof/stream_check.ts`): a requester's claim that a worker
 * streamed, and signed (`protocols/stream_commitment.ts`), a token the job's sampling rule could
 * not give at the position the takeover workers refused. An honest stream is never convicted at
 * any position, a token the rule gives near-zero probability is, and so is a token streamed
 * after the job had ended; a claim that does not hold together decides nothing against anyone.
 *
 * The worker streams from the fixture's honest model with one thread; the checker replays with
 * two (another machine's rounding), under the model's calibration and under the loose defaults.
 *
 * @module
 */
import assert from "node:assert/strict";
import { checkStreamClaim, streamClaimHash } from "../../proof/stream_check.ts";
import type { ValidationOptions } from "../../proof/validation.ts";
import { checkSampledToken, DEFAULT_SAMPLING_TOLERANCE } from "../../proof/sampling_check.ts";
import { type CalibrationProfile, tolerancesFor } from "../../proof/calibration.ts";
import type { TextModel } from "../../inference/text_model.ts";
import { cidOf } from "../../protocols/cid.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { type StreamClaim, StreamSigner } from "../../protocols/stream_commitment.ts";
import { loadCalibratedFixture, loadFixture } from "./_models.ts";
import { honestTokens, leastLikely, sampledJob } from "./_stream_fixtures.ts";

const worker = Identity.generate();
/** Tokens per signed event: the claim carries only the last event's signature. */
const TOKENS_PER_EVENT = 3;
/** The tampered position of the tests that tamper. */
const TAMPERED_AT = 5;

/** A sampled job and a greedy one (temperature 0), of `maxTokens` tokens. */
function jobs(model: TextModel, maxTokens = 16): TextJob[] {
  const sampled = sampledJob(model, "sampled", maxTokens);
  const greedy = { ...sampled.params, temperature: 0, seed: 0 };
  return [sampled, { ...sampled, params: greedy, nonce: "greedy" }];
}

/**
 * A claim over `tokenIds` at `at`, signed by `signer` event by event as a worker streams
 * ({@link TOKENS_PER_EVENT} a time): the last event's signature covers all of them.
 */
function claimOf(
  job: TextJob,
  tokenIds: number[],
  at: number,
  signer: Identity = worker,
  final = false,
): StreamClaim {
  const chain = new StreamSigner(signer, jobId(job));
  let sig: Uint8Array = new Uint8Array();
  for (let i = 0; i < tokenIds.length; i += TOKENS_PER_EVENT) {
    const last = i + TOKENS_PER_EVENT >= tokenIds.length;
    sig = chain.sign(tokenIds.slice(i, i + TOKENS_PER_EVENT), final && last);
  }
  const claim: StreamClaim = { job, worker: worker.publicKey, tokenIds, sig, at };
  if (final) claim.final = true;
  return claim;
}

/** The option sets a checker may run under: the model's calibration, and none (defaults). */
async function optionSets(): Promise<{ name: string; options: ValidationOptions }[]> {
  const { calibration } = await loadCalibratedFixture();
  return [{ name: "calibrated", options: { calibration } }, { name: "defaults", options: {} }];
}

Deno.test("stream check: an honest stream is refuted at every position, sampled and greedy", async () => {
  const f = await loadFixture();
  for (const job of jobs(f.honest)) {
    const tokenIds = await honestTokens(f.honest, job);
    assert.ok(tokenIds.length >= 8, `${job.nonce}: an output to check`);
    for (const { name, options } of await optionSets()) {
      for (let at = 0; at < tokenIds.length; at++) {
        const r = await checkStreamClaim(claimOf(job, tokenIds, at), f.honestThreads, options);
        assert.deepEqual(
          { confirmed: r.confirmed, inconclusive: r.inconclusive, reason: r.reason },
          { confirmed: false, inconclusive: false, reason: "not_reproduced" },
          `${job.nonce}, ${name}, at ${at}`,
        );
      }
    }
  }
});

Deno.test("stream check: a token the rule gives near-zero probability convicts the stream whatever position the claim names (the refusers' position only says where they stopped); the stream signed up to it is refuted", async () => {
  const f = await loadFixture();
  for (const job of jobs(f.honest)) {
    const tokenIds = await honestTokens(f.honest, job);
    const { token, p } = await leastLikely(f.honest, job, tokenIds.slice(0, TAMPERED_AT));
    assert.ok(p < 1e-6, `${job.nonce}: the replacement is near-impossible (p = ${p})`);
    const tampered = tokenIds.with(TAMPERED_AT, token);
    const promptLength = f.honest.tokenizer.encode(job.prompt).length;
    for (const { name, options } of await optionSets()) {
      // Failed before stop 68's review: a claim at an earlier, honest position (a takeover that
      // rounded a near-tie there, or a colluder naming it) was refuted, and the liar escaped.
      for (const at of [0, TAMPERED_AT - 1, TAMPERED_AT, tampered.length - 1]) {
        const r = await checkStreamClaim(claimOf(job, tampered, at), f.honestThreads, options);
        assert.deepEqual(
          { confirmed: r.confirmed, inconclusive: r.inconclusive, reason: r.reason },
          { confirmed: true, inconclusive: false, reason: "confirmed" },
          `${job.nonce}, ${name}, at ${at}`,
        );
        assert.equal(r.forwardTokens, promptLength + tampered.length - 1, "one pass, every token");
      }
      const upTo = tampered.slice(0, TAMPERED_AT);
      const before = await checkStreamClaim(claimOf(job, upTo, 0), f.honestThreads, options);
      assert.equal(before.reason, "not_reproduced", `${job.nonce}, ${name}: signed up to it`);
      assert.equal(before.confirmed, false);
    }
  }
});

Deno.test("stream check: a token only tighter tolerances than an uncalibrated checker's refuse is inconclusive there", async () => {
  const f = await loadFixture();
  const [job] = jobs(f.honest);
  const tokenIds = await honestTokens(f.honest, job);
  const { token } = await leastLikely(f.honest, job, tokenIds.slice(0, TAMPERED_AT));
  const claim = claimOf(job, tokenIds.with(TAMPERED_AT, token), TAMPERED_AT);
  // Tolerances loose enough to admit any token, and no profile: only the tightest pass, which a
  // calibrated checker could apply, refuses the token, so this checker neither convicts nor clears.
  const loose = { sampling: { ...DEFAULT_SAMPLING_TOLERANCE, logitEps: 100 } };
  const r = await checkStreamClaim(claim, f.honestThreads, loose);
  assert.deepEqual(
    { confirmed: r.confirmed, inconclusive: r.inconclusive, reason: r.reason },
    { confirmed: false, inconclusive: true, reason: "uncalibrated" },
  );
  const { calibration } = await loadCalibratedFixture();
  const calibrated = await checkStreamClaim(claim, f.honestThreads, { ...loose, calibration });
  assert.equal(calibrated.reason, "not_reproduced", "a calibrated checker's override is its word");
});

Deno.test("stream check: a worker that took the job over is judged on the chain from position 0", async () => {
  const f = await loadFixture();
  const [job] = jobs(f.honest);
  const tokenIds = await honestTokens(f.honest, job);
  const { token } = await leastLikely(f.honest, job, tokenIds.slice(0, TAMPERED_AT));
  const tampered = tokenIds.with(TAMPERED_AT, token);
  // Handed the first 3 tokens, the resuming worker signs its own from there on.
  const resumed = new StreamSigner(worker, jobId(job), tampered.slice(0, 3));
  const sig = resumed.sign(tampered.slice(3));
  const claim: StreamClaim = { job, worker: worker.publicKey, tokenIds: tampered, sig, at: 0 };
  for (const at of [0, TAMPERED_AT]) {
    const r = await checkStreamClaim({ ...claim, at }, f.honestThreads);
    assert.equal(r.reason, "confirmed", `at ${at}`);
  }
  // The same worker's head over the honest prefix it was handed and its own honest tokens.
  const honest = new StreamSigner(worker, jobId(job), tokenIds.slice(0, 3));
  const clean = { ...claim, tokenIds, sig: honest.sign(tokenIds.slice(3)) };
  assert.equal((await checkStreamClaim(clean, f.honestThreads)).reason, "not_reproduced");
});

Deno.test("stream check: an id outside the vocabulary is confirmed without a forward pass", async () => {
  const f = await loadFixture();
  const [job] = jobs(f.honest);
  const tokenIds = await honestTokens(f.honest, job);
  const tampered = tokenIds.with(2, f.honest.info.vocabSize + 7);
  for (const at of [2, 4]) {
    const r = await checkStreamClaim(claimOf(job, tampered, at), f.honestThreads);
    assert.equal(r.reason, "confirmed", `at ${at}`);
    assert.equal(r.forwardTokens, 0);
  }
});

Deno.test("stream check: a token streamed after the job had ended (past maxTokens, after a stop) is confirmed", async () => {
  const f = await loadFixture();
  const [long] = jobs(f.honest, 12);
  const tokenIds = await honestTokens(f.honest, long);
  assert.equal(tokenIds.length, 12, "no end token in the honest output");
  // The same job with maxTokens 8: the same seed and prompt give the same first 8 tokens, and the
  // 9th is what the rule gives there, so only the job's end convicts it.
  const short: TextJob = { ...long, params: { ...long.params, maxTokens: 8 } };
  const nine = tokenIds.slice(0, 9);
  const honestAt8 = await checkStreamClaim(claimOf(long, nine, 8), f.honestThreads);
  assert.equal(honestAt8.reason, "not_reproduced", "the sampling rule alone admits it");
  const past = await checkStreamClaim(claimOf(short, nine, 8), f.honestThreads);
  assert.equal(past.reason, "confirmed", "the 9th token of an 8-token job");
  const eight = tokenIds.slice(0, 8);
  const last = await checkStreamClaim(claimOf(short, eight, 7), f.honestThreads);
  assert.equal(last.reason, "not_reproduced", "the 8th is the job's own");

  // A stop string completed at position p ends the job there: a token at p + 1 is past its end.
  const pieces = tokenIds.map((id) => String.fromCharCode(id));
  const p = pieces.findIndex((c, i) =>
    i >= 2 && /[a-z]/.test(c) && !pieces.slice(0, i).includes(c)
  );
  assert.ok(p >= 2 && p + 1 < tokenIds.length, "a fresh letter to stop at");
  const stopped: TextJob = { ...long, params: { ...long.params, stop: [pieces[p]] } };
  const afterStop = await checkStreamClaim(
    claimOf(stopped, tokenIds.slice(0, p + 2), p + 1),
    f.honestThreads,
  );
  assert.equal(afterStop.reason, "confirmed", `a token after the stop at ${p}`);
  const atStop = await checkStreamClaim(
    claimOf(stopped, tokenIds.slice(0, p + 1), p),
    f.honestThreads,
  );
  assert.equal(atStop.reason, "not_reproduced", "the token that completes the stop is legal");
});

Deno.test("stream check: a signature by another key, over other tokens or for another job is bad_signature", async () => {
  const f = await loadFixture();
  const [job, other] = jobs(f.honest);
  const tokenIds = await honestTokens(f.honest, job);
  const honest = claimOf(job, tokenIds, TAMPERED_AT);
  const claims: [string, StreamClaim][] = [
    ["another key", claimOf(job, tokenIds, TAMPERED_AT, Identity.generate())],
    ["other tokens", {
      ...honest,
      tokenIds: tokenIds.with(TAMPERED_AT, tokenIds[TAMPERED_AT] ^ 1),
    }],
    ["fewer tokens", { ...honest, tokenIds: tokenIds.slice(0, -1) }],
    ["another job", { ...claimOf(other, tokenIds, TAMPERED_AT), job }],
  ];
  for (const [name, claim] of claims) {
    const r = await checkStreamClaim(claim, f.honestThreads);
    assert.deepEqual(
      { confirmed: r.confirmed, inconclusive: r.inconclusive, reason: r.reason },
      { confirmed: false, inconclusive: false, reason: "bad_signature" },
      name,
    );
    assert.equal(r.forwardTokens, 0, `${name}: no replay`);
  }
});

Deno.test("stream check: a position at or past the signed tokens is bad_position", async () => {
  const f = await loadFixture();
  const [job] = jobs(f.honest);
  const tokenIds = await honestTokens(f.honest, job);
  for (const at of [tokenIds.length, tokenIds.length + 1, 1_000_000]) {
    const r = await checkStreamClaim(claimOf(job, tokenIds, at), f.honestThreads);
    assert.equal(r.reason, "bad_position", `at ${at}`);
    assert.equal(r.confirmed, false);
  }
});

Deno.test("stream check: a value that is not a claim is malformed", async () => {
  const f = await loadFixture();
  const [job] = jobs(f.honest);
  const claim = claimOf(job, await honestTokens(f.honest, job), 1);
  const values: unknown[] = [
    undefined,
    null,
    "claim",
    42,
    {},
    { ...claim, at: -1 },
    { ...claim, at: 1.5 },
    { ...claim, tokenIds: [] },
    { ...claim, tokenIds: [1, -2] },
    { ...claim, sig: claim.sig.slice(1) },
    { ...claim, worker: "worker" },
    { ...claim, job: { ...job, kind: "tensor" } },
  ];
  for (const [i, value] of values.entries()) {
    const r = await checkStreamClaim(value, f.honestThreads);
    assert.deepEqual(
      { confirmed: r.confirmed, inconclusive: r.inconclusive, reason: r.reason, hash: r.claimHash },
      { confirmed: false, inconclusive: false, reason: "malformed", hash: "" },
      `value ${i}`,
    );
  }
});

Deno.test("stream check: without the job's model, or with another, nothing is decided", async () => {
  const f = await loadFixture();
  const [job] = jobs(f.honest);
  const tokenIds = await honestTokens(f.honest, job);
  const { token } = await leastLikely(f.honest, job, tokenIds.slice(0, TAMPERED_AT));
  const claim = claimOf(job, tokenIds.with(TAMPERED_AT, token), TAMPERED_AT);
  for (const [model, reason] of [[undefined, "no_model"], [f.otherSeed, "wrong_model"]] as const) {
    const r = await checkStreamClaim(claim, model);
    assert.deepEqual(
      { confirmed: r.confirmed, inconclusive: r.inconclusive, reason: r.reason },
      { confirmed: false, inconclusive: true, reason },
    );
    assert.equal(r.forwardTokens, 0);
  }
});

Deno.test("stream check: a job that names an input cannot be replayed from the claim: inconclusive", async () => {
  const f = await loadFixture();
  const [plain] = jobs(f.honest);
  const job: TextJob = { ...plain, input: cidOf(new TextEncoder().encode("stored text")) };
  const r = await checkStreamClaim(claimOf(job, [104, 105, 106], 1), f.honestThreads);
  assert.deepEqual(
    { confirmed: r.confirmed, inconclusive: r.inconclusive, reason: r.reason },
    { confirmed: false, inconclusive: true, reason: "input_required" },
  );
});

Deno.test("stream check: the claim's hash names the claim, its position included", async () => {
  const f = await loadFixture();
  const [job] = jobs(f.honest);
  const tokenIds = await honestTokens(f.honest, job);
  const claim = claimOf(job, tokenIds, 3);
  const r = await checkStreamClaim(claim, f.honestThreads);
  assert.match(r.claimHash, /^[0-9a-f]{64}$/);
  assert.equal(r.claimHash, streamClaimHash(claim));
  assert.equal(streamClaimHash(structuredClone(claim)), r.claimHash, "a copy hashes the same");
  assert.notEqual(streamClaimHash({ ...claim, at: 4 }), r.claimHash);
  assert.notEqual(streamClaimHash({ ...claim, tokenIds: tokenIds.slice(0, 5) }), r.claimHash);
});

Deno.test("stream check: a head signed final (its last token ends the job) where the job's ending rule does not end it is confirmed: the worker cut the answer short; the whole honest answer signed final is refuted", async () => {
  const f = await loadFixture();
  for (const job of jobs(f.honest)) {
    const tokenIds = await honestTokens(f.honest, job);
    assert.equal(tokenIds.length, job.params.maxTokens, `${job.nonce}: no end token sampled`);
    const whole = await checkStreamClaim(
      claimOf(job, tokenIds, 0, worker, true),
      f.honestThreads,
    );
    assert.equal(whole.reason, "not_reproduced", `${job.nonce}: the whole answer, final`);
    // Failed before stop 68's second review: the finish reason was not signed, so every token of
    // a cut answer was legal and the claim was refuted.
    for (const cut of [1, TAMPERED_AT, tokenIds.length - 1]) {
      const short = tokenIds.slice(0, cut);
      const r = await checkStreamClaim(claimOf(job, short, 0, worker, true), f.honestThreads);
      assert.equal(r.reason, "confirmed", `${job.nonce}: cut at ${cut}`);
      assert.equal(r.forwardTokens, 0, "the ending rule needs no forward pass");
      const open = await checkStreamClaim(claimOf(job, short, 0), f.honestThreads);
      assert.equal(open.reason, "not_reproduced", `${job.nonce}: ${cut} tokens, not final`);
    }
  }
});

Deno.test("stream check: a token between two calibrations a few percent apart is convicted by the tighter checker and left undecided, not refuted, by the looser one (its accuser is not charged where profiles differ)", async () => {
  const { profile } = await loadCalibratedFixture();
  const fp32 = profile.precisions.fp32;
  const looser: CalibrationProfile = {
    ...profile,
    precisions: {
      ...profile.precisions,
      fp32: { ...fp32, logitMax: fp32.logitMax * 1.05, massSigma: fp32.massSigma * 1.05 },
    },
  };
  const model = (await loadFixture()).honest;
  assert.equal(model.info.cid, profile.model);
  const [tight, loose] = [tolerancesFor(profile).sampling, tolerancesFor(looser).sampling];
  const vocab = model.info.vocabSize;
  // Greedy jobs, deterministic: the first token the tighter profile refuses and the looser takes.
  let found: { job: TextJob; ids: number[] } | undefined;
  search: for (let k = 0; k < 150; k++) {
    const [base] = jobs(model);
    const job: TextJob = {
      ...base,
      prompt: `${base.prompt} ${k}`,
      params: { ...base.params, temperature: 0, seed: k },
      nonce: `gap-${k}`,
    };
    const honest = await honestTokens(model, job, 8);
    const promptIds = model.tokenizer.encode(job.prompt);
    const logits = await model.forward([...promptIds, ...honest]);
    for (let t = 0; t < honest.length; t++) {
      const at = (promptIds.length - 1 + t) * vocab;
      for (let id = 0; id < vocab; id++) {
        const byTight = checkSampledToken(logits, id, t, job.params, tight, at, vocab).ok;
        const byLoose = checkSampledToken(logits, id, t, job.params, loose, at, vocab).ok;
        if (!byTight && byLoose) {
          found = { job, ids: [...honest.slice(0, t), id] };
          break search;
        }
      }
    }
  }
  assert.ok(found, "a token in the gap between the two profiles");
  const claim = claimOf(found.job, found.ids, found.ids.length - 1);
  const lookup = (p: CalibrationProfile) => (cid: string) => cid === p.model ? p : undefined;
  const atTight = await checkStreamClaim(claim, model, { calibration: lookup(profile) });
  const atLoose = await checkStreamClaim(claim, model, { calibration: lookup(looser) });
  assert.equal(atTight.reason, "confirmed");
  // Failed before review s69's third round: `not_reproduced`, and a peer with the looser profile
  // charged the router that had convicted the liar.
  assert.deepEqual(
    { confirmed: atLoose.confirmed, inconclusive: atLoose.inconclusive, reason: atLoose.reason },
    { confirmed: false, inconclusive: true, reason: "near_tolerance" },
  );
});
