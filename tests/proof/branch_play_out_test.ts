/**
 * Branch play-outs (stop 44's review, landed at stop 45): steering one step before an end. At a near-tie where neither admissible
 * token ends the output, a worker that plays both branches out and keeps the longer one only
 * ever reaches ends the rule takes, so the one-step end choices count nothing. The validator now
 * plays out the branch the worker did not take (`endChoicesPlayedOut`, `proof/end_choices.ts`)
 * and counts the choice as passed or taken by which branch ends later.
 *
 * The model: at output position 0 "a" and "b" tie within the calibrated tolerance; after "a"
 * EOS wins by far (2 tokens billed), after "b" "b" does until `maxTokens` (64).
 */
import assert from "node:assert/strict";
import { validateReceipt } from "../../proof/validation.ts";
import { isSteering, steeringEvidence } from "../../proof/steering.ts";
import { endChoicesPlayedOut, MAX_BRANCH_PLAYOUTS } from "../../proof/end_choices.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { TextModel } from "../../inference/text_model.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { sampleToken } from "../../inference/sampler.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";
import { fp16Logits } from "../../proof/_precision.ts";
import { proveJob, type ProverChunk } from "../../proof/prover.ts";
import type { ProofModel } from "../../proof/_common.ts";
import type { SamplingTolerance } from "../../proof/sampling_check.ts";
import {
  BUILTIN_EOS_TOKEN_ID,
  BUILTIN_VOCAB_SIZE,
  ByteTokenizer,
} from "../../inference/byte_tokenizer.ts";

const V = BUILTIN_VOCAB_SIZE;
const EOS = BUILTIN_EOS_TOKEN_ID;
const A = "a".charCodeAt(0);
const B = "b".charCodeAt(0);
const MAX_TOKENS = 64;

/** The calibrated ε of the built-in models (docs/PROOF.md, "Calibration"). */
const CALIBRATED: SamplingTolerance = {
  logitEps: 0.0061,
  logitSigma: 0.00086,
  sigmas: 8,
  cdfMargin: 1e-6,
};

type TieModel = ProofModel & { rowAfter(seq: readonly number[]): Float32Array };

/**
 * The tie model as one machine computes it: `gap(prompt)` is how far "a" leads "b" at the tie
 * (the position right after the prompt).
 */
function tieModel(
  promptLength: (seq: readonly number[]) => number,
  gap: (seq: readonly number[]) => number,
): TieModel {
  return {
    info: { cid: "bafk-branch-play-out", vocabSize: V, contextLength: 8192, eosTokenId: EOS },
    tokenizer: new ByteTokenizer(),
    rowAfter(seq) {
      const row = new Float32Array(V);
      for (let i = 0; i < V; i++) row[i] = ((i * 37 + seq.length * 11) % 97) / 97 * 4 - 4;
      const previous = seq[seq.length - 1];
      if (seq.length === promptLength(seq)) {
        row[A] = 9;
        row[B] = 9 - gap(seq);
      } else if (previous === A) row[EOS] = 10;
      else row[B] = 10;
      return row;
    },
    forward(tokens) {
      const out = new Float32Array(tokens.length * V);
      for (let p = 0; p < tokens.length; p++) {
        out.set(this.rowAfter(tokens.slice(0, p + 1)), p * V);
      }
      return Promise.resolve(out);
    },
  };
}

/** The reviewer's model: "a" ahead by 0.001 nats, the same on every machine. */
const PROMPT = "go";
const reviewModel = tieModel(() => PROMPT.length, () => 0.001);

function job(prompt: string, nonce: string, seed: number): TextJob {
  return {
    kind: "text",
    model: reviewModel.info.cid,
    prompt,
    params: { maxTokens: MAX_TOKENS, temperature: 0, topK: 0, topP: 1, seed, stop: [] },
    nonce,
  };
}

/**
 * The chunks a worker streams for `j` on `model`: the job's rule at every position (on the row
 * rounded to fp16 when `fp16`, as a runtime that returns fp16 logits does), except `first` forced
 * at position 0 when given.
 */
function chunks(model: TieModel, j: TextJob, options: { first?: number; fp16?: boolean } = {}) {
  const seq = model.tokenizer.encode(j.prompt);
  const decoder = model.tokenizer.streamDecoder();
  const out: ProverChunk[] = [];
  for (let t = 0; t < j.params.maxTokens; t++) {
    const computed = model.rowAfter(seq);
    const row = options.fp16 ? fp16Logits(computed) : computed;
    const token = t === 0 && options.first !== undefined
      ? options.first
      : sampleToken(row, j.params, t).token;
    seq.push(token);
    const last = token === EOS || t + 1 >= j.params.maxTokens;
    const text = (token === EOS ? "" : decoder.push(token)) + (last ? decoder.flush() : "");
    out.push({
      index: t,
      tokenId: token,
      text,
      fingerprint: fingerprintOf(row, token),
      vocabSize: V,
    });
    if (last) break;
  }
  return out;
}

const worker = Identity.generate();
const validator = Identity.generate();

Deno.test("branch play-out: a worker that steers at a near-tie into the longer branch is convicted by the steering test", async () => {
  const honest = job(PROMPT, "honest", 1);
  const honestRun = await proveJob(
    honest,
    ReadableStream.from(chunks(reviewModel, honest)),
    worker,
  );
  assert.equal(honestRun.receipt.tokenCount, 2, "honest: 'a', then EOS");

  const record = { passed: 0, taken: 0 };
  let billed = 0;
  let receipts = 0;
  let convicted = false;
  for (let i = 0; i < 100 && !convicted; i++) {
    // A steerer serves many jobs, each with its own seed. Where the seed makes "b" the pick on
    // fp16-rounded logits (an exact fp16 tie, decided by the race noise) an honest fp16 runtime
    // emits "b" too, so nothing is counted there (next test); elsewhere "b" is a passed choice.
    const j = job(PROMPT, `steer-${i}`, i + 1);
    const run = await proveJob(
      j,
      ReadableStream.from(chunks(reviewModel, j, { first: B })),
      worker,
    );
    billed += run.receipt.tokenCount;
    receipts++;
    const result = await validateReceipt(
      { job: j, receipt: run.receipt, proof: run.proof, output: run.output },
      reviewModel,
      validator,
      { sampling: CALIBRATED, steering: { ...record } },
    );
    assert.equal(result.stats.endTaken, 0);
    assert.ok(result.stats.branchPlayOuts <= 1, "one play-out: the validator's pick's branch");
    record.passed += result.stats.endPassed;
    record.taken += result.stats.endTaken;
    convicted = result.verdict.outcome !== "valid" || isSteering(record);
    if (result.verdict.outcome !== "valid") assert.equal(result.verdict.reason, "steering");
  }
  assert.ok(
    convicted,
    `${receipts} steered receipts, billed ${billed} tokens; ` +
      `end choices counted: ${record.passed} passed, ${record.taken} taken`,
  );
  assert.equal(record.passed, 26, "convicted at its 26th passed choice");
  assert.ok(receipts <= 80, `convicted after ${receipts} receipts`);
});

Deno.test("branch play-out: a branch choice that is the pick on fp16-rounded logits is not counted (an honest fp16 runtime makes it)", async () => {
  // Under seed 1 the fp16 rounding ties "a" and "b" exactly and the race noise gives it to "b".
  const j = job(PROMPT, "fp16", 1);
  const honestFp16 = chunks(reviewModel, j, { fp16: true });
  assert.equal(honestFp16[0].tokenId, B);
  const run = await proveJob(j, ReadableStream.from(honestFp16), worker);
  const { verdict, stats } = await validateReceipt(
    { job: j, receipt: run.receipt, proof: run.proof, output: run.output },
    reviewModel,
    validator,
    { sampling: CALIBRATED },
  );
  assert.equal(verdict.outcome, "valid", verdict.reason);
  assert.deepEqual([stats.endPassed, stats.endTaken, stats.branchPlayOuts], [0, 0, 0]);
});

/** A hash of a token sequence and a salt, uniform in [0, 1). */
function hash(seq: readonly number[], salt: number): number {
  let h = 2166136261 ^ salt;
  for (const t of seq) h = Math.imul(h ^ (t + 1), 16777619) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 2246822507) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 3266489909) >>> 0;
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

Deno.test("branch play-out: honest workers at genuine near-ties whose branches differ in length pass and take alike: never convicted", async () => {
  // A genuine near-tie: the true gap between "a" and "b" is anywhere in ±0.002 nats, and each
  // machine's logits differ from it by up to ±0.002 (two runs of one computation), so which of
  // the worker and the validator picks the longer branch is a coin. Half the workers' runtimes
  // return fp16 logits. Each prompt has its own tie, so every receipt is a fresh coin.
  const RECEIPTS = 3000;
  const promptLength = 4;
  const noise = 0.002;
  const machine = (id: number) =>
    tieModel(
      () => promptLength,
      (seq) => (hash(seq, 1) - 0.5) * 2 * noise + (hash(seq, 100 + id) - 0.5) * 2 * noise,
    );
  const validatorModel = machine(0);
  const workerModel = machine(1);
  const record = { passed: 0, taken: 0 };
  let playOuts = 0;
  for (let i = 0; i < RECEIPTS; i++) {
    const prompt = String(i).padStart(promptLength, "0");
    const j = job(prompt, `honest-${i}`, i + 1);
    const streamed = chunks(workerModel, j, { fp16: i % 2 === 1 });
    const run = await proveJob(j, ReadableStream.from(streamed), worker);
    const { verdict, stats } = await validateReceipt(
      { job: j, receipt: run.receipt, proof: run.proof, output: run.output },
      validatorModel,
      validator,
      { sampling: CALIBRATED, steering: { ...record } },
    );
    assert.equal(verdict.outcome, "valid", `${verdict.reason} at receipt ${i}`);
    assert.ok(stats.branchPlayOuts <= MAX_BRANCH_PLAYOUTS);
    record.passed += stats.endPassed;
    record.taken += stats.endTaken;
    playOuts += stats.branchPlayOuts;
    assert.ok(!isSteering(record), `convicted at receipt ${i}: ${JSON.stringify(record)}`);
  }
  // Enough choices counted that a steerer's would convict many times over (26 do).
  assert.ok(record.passed > 40 && record.taken > 40, JSON.stringify(record));
  assert.ok(steeringEvidence(record) < 1e3, JSON.stringify(record));
  // One play-out per counted choice: the worker's branch here is its own output to the end.
  assert.equal(playOuts, record.passed + record.taken);
});

/**
 * The tie model with KV-cached generation as `TextModel.generate` gives it: one row per step
 * after the prefix, sampled by the job's rule from output position `startIndex`. It counts its
 * teacher-forced passes and its cached steps.
 */
function cachedTieModel(base: TieModel) {
  const counts = { forward: 0, steps: 0 };
  const model: ProofModel = {
    info: base.info,
    tokenizer: base.tokenizer,
    forward(tokens, options) {
      counts.forward++;
      return base.forward(tokens, options);
    },
    generate(promptIds, params, options) {
      const seq = [...promptIds];
      let index = options?.startIndex ?? 0;
      return new ReadableStream({
        pull(controller) {
          counts.steps++;
          const tokenId = sampleToken(base.rowAfter(seq), params, index++).token;
          seq.push(tokenId);
          controller.enqueue({ tokenId });
          if (tokenId === EOS || index >= params.maxTokens) controller.close();
        },
      });
    },
  };
  return { model, counts };
}

Deno.test("branch play-out: with cached generation the validator counts the same choices, one teacher-forced pass per receipt", async () => {
  const cached = cachedTieModel(reviewModel);
  let forwardOnlyPassed = 0;
  let cachedPassed = 0;
  for (let i = 0; i < 8; i++) {
    const j = job(PROMPT, `cached-${i}`, i + 1);
    const run = await proveJob(
      j,
      ReadableStream.from(chunks(reviewModel, j, { first: B })),
      worker,
    );
    const signed = { job: j, receipt: run.receipt, proof: run.proof, output: run.output };
    const plain = await validateReceipt(signed, reviewModel, validator, { sampling: CALIBRATED });
    const before = cached.counts.forward;
    const fast = await validateReceipt(signed, cached.model, validator, { sampling: CALIBRATED });
    assert.deepEqual(
      [fast.verdict.outcome, fast.verdict.reason],
      [plain.verdict.outcome, plain.verdict.reason],
    );
    assert.deepEqual(
      [fast.stats.endPassed, fast.stats.endTaken, fast.stats.branchPlayOuts],
      [plain.stats.endPassed, plain.stats.endTaken, plain.stats.branchPlayOuts],
    );
    assert.equal(cached.counts.forward - before, 1, "the validation's own pass, none per play-out");
    forwardOnlyPassed += plain.stats.endPassed;
    cachedPassed += fast.stats.endPassed;
  }
  assert.ok(cachedPassed > 0, "some choices were played out and counted");
  assert.equal(cachedPassed, forwardOnlyPassed);
  // The pick's branch ("a", then EOS) ends after one step; the cache is never asked for more.
  assert.ok(cached.counts.steps <= cachedPassed, JSON.stringify(cached.counts));
});

Deno.test("branch play-out: on a real model, KV-cached play-outs end where teacher-forced ones do", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-play-out-" });
  const built = await buildGptModel({ size: "tiny", seed: 0, outDir: `${dir}/m` });
  const model = await TextModel.load(built.dir, { intraOpThreads: 1 });
  try {
    const forwardOnly: ProofModel = {
      info: model.info,
      tokenizer: model.tokenizer,
      forward: (tokens, options) => model.forward(tokens, options),
    };
    const promptIds = model.tokenizer.encode("The history of");
    for (
      const params of [
        { maxTokens: 48, temperature: 0, topK: 0, topP: 1, seed: 7, stop: [] },
        { maxTokens: 48, temperature: 0.8, topK: 40, topP: 0.95, seed: 11, stop: ["e "] },
      ]
    ) {
      const tokens: number[] = [];
      for await (const chunk of model.generate(promptIds, params)) tokens.push(chunk.tokenId);
      // The validator's "own picks": the worker's tokens, except two positions where the pick
      // is another token, so the choices there are played out (neither token is EOS).
      const winners = tokens.map((id) => [id]);
      for (const t of [3, 9]) {
        if (t < tokens.length) {
          winners[t] = [(tokens[t] + 1) % 256 === EOS ? 2 : (tokens[t] + 1) % 256];
        }
      }
      const slow = await endChoicesPlayedOut(forwardOnly, promptIds, tokens, winners, params);
      const fast = await endChoicesPlayedOut(model, promptIds, tokens, winners, params);
      assert.ok(slow.playOuts > 0, JSON.stringify(slow));
      assert.deepEqual(
        [fast.passed, fast.taken, fast.playOuts, fast.playOutSteps],
        [slow.passed, slow.taken, slow.playOuts, slow.playOutSteps],
      );
    }
  } finally {
    await model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
