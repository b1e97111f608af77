/**
 * End choices (`proof/end_choices.ts`): on which side of an end a worker's token fell where it
 * differs from the validator's own pick, one step before an end included (branch play-outs).
 *
 * @module
 */
import assert from "node:assert/strict";
import { endChoices, endChoicesPlayedOut, MAX_BRANCH_PLAYOUTS } from "../../proof/end_choices.ts";
import { createTokenizer } from "../../inference/text_tokenizer.ts";
import { scriptedModel } from "./_scripted_model.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { isSteering, steeringEvidence } from "../../proof/steering.ts";
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

// `endChoices`: on which side of an end a worker's token fell where it differs from the validator's
// own pick. Token ids are bytes (the built-in byte tokenizer); EOS is its own id.

const model = scriptedModel("bafk-end-choices", { contextLength: 64 });
const EOS = model.info.eosTokenId!;
const ids = (text: string) => [...new TextEncoder().encode(text)];
const params = (stop: string[] = [], maxTokens = 16) => ({ maxTokens, stop });
/** Each position's validator pick, as computed only. */
const picks = (winners: number[]) => winners.map((w) => [w]);

Deno.test("endChoices: the validator's pick is EOS where the worker went on: passed", () => {
  const tokens = ids("abcd");
  const winners = [...tokens];
  winners[1] = EOS;
  assert.deepEqual(endChoices(model, 3, tokens, picks(winners), params()), { passed: 1, taken: 0 });
});

Deno.test("endChoices: the worker ended with EOS where the validator's pick went on: taken", () => {
  const tokens = [...ids("abc"), EOS];
  const winners = [...ids("abc"), "x".charCodeAt(0)];
  assert.deepEqual(endChoices(model, 3, tokens, picks(winners), params()), { passed: 0, taken: 1 });
});

Deno.test("endChoices: a pick that completes a stop string is an end; one that does not, is not", () => {
  // Stop "cd": after "abc", "d" ends the output and "e" does not.
  const went = ids("abce");
  const passedWinners = ids("abcd");
  assert.deepEqual(endChoices(model, 3, went, picks(passedWinners), params(["cd"])), {
    passed: 1,
    taken: 0,
  });
  const stopped = ids("abcd");
  const takenWinners = ids("abce");
  assert.deepEqual(endChoices(model, 3, stopped, picks(takenWinners), params(["cd"])), {
    passed: 0,
    taken: 1,
  });
});

Deno.test("endChoices: differences that change no end count nothing", () => {
  // Both continue; both end (EOS against a stop-completing byte); a stop string already in
  // the text before the position (completing it again is no new end).
  assert.deepEqual(
    endChoices(model, 3, ids("abc"), picks(ids("axc")), params()),
    { passed: 0, taken: 0 },
  );
  assert.deepEqual(
    endChoices(model, 3, [...ids("ab"), EOS], picks(ids("abz")), params(["z"])),
    { passed: 0, taken: 0 },
  );
  assert.deepEqual(endChoices(model, 3, ids("abc"), picks(ids("abc")), params()), {
    passed: 0,
    taken: 0,
  });
});

Deno.test("endChoices: where the output ends anyway (maxTokens, a full context) no choice is counted", () => {
  // maxTokens 3: the third token ends the output whatever it is.
  const tokens = ids("abc");
  const winners = [...ids("ab"), EOS];
  assert.deepEqual(endChoices(model, 3, tokens, picks(winners), params([], 3)), {
    passed: 0,
    taken: 0,
  });
  // Context 64 with a 61-token prompt: the third output token fills it.
  assert.deepEqual(endChoices(model, 61, tokens, picks(winners), params()), {
    passed: 0,
    taken: 0,
  });
  // One position earlier, both limits leave room: counted.
  assert.deepEqual(endChoices(model, 60, tokens, picks(winners), params([], 4)), {
    passed: 1,
    taken: 0,
  });
});

Deno.test("endChoices: a multi-byte character the stop string sits in is decoded as generation does", () => {
  // "é" is two bytes; the stop "é" completes only with the second. The validator's pick of the
  // second byte ends; the worker's "x" does not.
  const e = ids("é");
  const tokens = [...ids("a"), e[0], "x".charCodeAt(0)];
  const winners = [...ids("a"), e[0], e[1]];
  assert.deepEqual(endChoices(model, 3, tokens, picks(winners), params(["é"])), {
    passed: 1,
    taken: 0,
  });
});

Deno.test("endChoices: a token that is the pick on the fp16-rounded logits counts nothing (an honest fp16 runtime follows it)", () => {
  const tokens = ids("abcd");
  // Position 1: as computed the validator picks EOS; rounded to fp16 (a tie the rule breaks by
  // the lower id) it picks the worker's "b".
  const winners = tokens.map((t) => [t]);
  winners[1] = [EOS, tokens[1]];
  assert.deepEqual(endChoices(model, 3, tokens, winners, params()), { passed: 0, taken: 0 });
  // A position the validator could not pick at (a row with no finite logit) counts nothing.
  winners[1] = [];
  assert.deepEqual(endChoices(model, 3, tokens, winners, params()), { passed: 0, taken: 0 });
});

Deno.test("endChoices: a stop string of several tokens: declining a pick that would start or extend it is passed, the reverse taken", () => {
  // Stop "##": the validator's pick "#" starts it, the worker's "x" does not.
  assert.deepEqual(endChoices(model, 3, ids("abx"), picks(ids("ab#")), params(["##"])), {
    passed: 1,
    taken: 0,
  });
  assert.deepEqual(endChoices(model, 3, ids("ab#"), picks(ids("abx")), params(["##"], 4)), {
    passed: 0,
    taken: 1,
  });
  // Both picks leave the text as far from every stop: nothing.
  assert.deepEqual(endChoices(model, 3, ids("abx"), picks(ids("aby")), params(["##"])), {
    passed: 0,
    taken: 0,
  });
});

Deno.test("endChoices: a stop string of one two-byte character: declining its first byte is passed, the reverse taken", () => {
  // "é" is C3 A9. The stream decoder emits nothing for C3 alone, yet C3 is half of the stop.
  const [lead, trail] = ids("é");
  const e = "e".charCodeAt(0);
  assert.deepEqual(
    endChoices(
      model,
      3,
      [...ids("a"), e, ...ids("b")],
      picks([...ids("a"), lead, trail]),
      params(["é"]),
    ),
    { passed: 1, taken: 0 },
  );
  assert.deepEqual(
    endChoices(model, 3, [...ids("a"), lead, trail], picks([...ids("a"), e, trail]), params(["é"])),
    { passed: 0, taken: 1 },
  );
});

Deno.test("endChoices: a CJK stop string of 3-byte characters is measured byte by byte", () => {
  // "世界" is E4 B8 96 E7 95 8C: each byte the validator would add takes the text closer.
  const stop = ids("世界");
  const x = "x".charCodeAt(0);
  for (let k = 0; k < stop.length; k++) {
    const before = [...ids("a"), ...stop.slice(0, k)];
    assert.deepEqual(
      endChoices(model, 3, [...before, x], picks([...before, stop[k]]), params(["世界"])),
      { passed: 1, taken: 0 },
      `declining byte ${k}`,
    );
    assert.deepEqual(
      endChoices(model, 3, [...before, stop[k]], picks([...before, x]), params(["世界"])),
      { passed: 0, taken: 1 },
      `taking byte ${k}`,
    );
  }
  // Two continuations that leave the text as far from the stop (after its first byte, a
  // non-matching second byte either way) count nothing.
  const lead = [...ids("a"), stop[0]];
  assert.deepEqual(
    endChoices(model, 3, [...lead, x], picks([...lead, "y".charCodeAt(0)]), params(["世界"])),
    { passed: 0, taken: 0 },
  );
});

Deno.test("endChoices: a stop's lead byte after an unfinished character is still progress", () => {
  // E2 starts a 3-byte character that C3 breaks off: the decoder emits U+FFFD for E2 and holds
  // C3, the first byte of the stop "é".
  const [lead] = ids("é");
  const tokens = [...ids("a"), 0xe2, "e".charCodeAt(0)];
  const winners = [...ids("a"), 0xe2, lead];
  assert.deepEqual(endChoices(model, 3, tokens, picks(winners), params(["é"])), {
    passed: 1,
    taken: 0,
  });
});

Deno.test("endChoices: a tokenizer without bytesOf is measured on decoded text, as before", () => {
  const tokenizer = {
    encode: (text: string) => model.tokenizer.encode(text),
    streamDecoder: () => model.tokenizer.streamDecoder(),
  };
  const textOnly = { ...model, tokenizer };
  // ASCII stops are counted as with bytes; the first byte of "é" is invisible in decoded text.
  assert.deepEqual(endChoices(textOnly, 3, ids("abx"), picks(ids("ab#")), params(["##"])), {
    passed: 1,
    taken: 0,
  });
  const e = "e".charCodeAt(0);
  assert.deepEqual(
    endChoices(textOnly, 3, [...ids("a"), e], picks([...ids("a"), ids("é")[0]]), params(["é"])),
    { passed: 0, taken: 0 },
  );
});

Deno.test("endChoices: byte-fallback tokens of a SentencePiece-style vocabulary count toward a non-ASCII stop", () => {
  const tokenizer = createTokenizer(byteFallbackTokenizerJson(), {}, 2);
  const sp = { ...model, info: { ...model.info, eosTokenId: 2 }, tokenizer };
  const [a, lead, trail] = tokenizer.encode("aé");
  assert.deepEqual([...tokenizer.bytesOf(lead), ...tokenizer.bytesOf(trail)], ids("é"));
  const x = tokenizer.encode("x")[0];
  assert.deepEqual(endChoices(sp, 3, [a, x], picks([a, lead]), params(["é"])), {
    passed: 1,
    taken: 0,
  });
  assert.deepEqual(endChoices(sp, 3, [a, lead, trail], picks([a, x, trail]), params(["é"])), {
    passed: 0,
    taken: 1,
  });
});

/**
 * A SentencePiece-style `tokenizer.json` (Llama's shape): "▁" for spaces, a few pieces, and
 * `<0xNN>` byte tokens for everything else; `</s>` (id 2) ends the text.
 */
function byteFallbackTokenizerJson(): Record<string, unknown> {
  const specials = ["<unk>", "<s>", "</s>"];
  const vocab: Record<string, number> = Object.fromEntries(specials.map((t, i) => [t, i]));
  for (let b = 0; b < 256; b++) {
    vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = specials.length + b;
  }
  for (const piece of ["▁", "a", "x", "▁a"]) vocab[piece] = Object.keys(vocab).length;
  return {
    version: "1.0",
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      unk_token: "<unk>",
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: ["▁ a"],
    },
  };
}

// Branch play-outs: steering one step before an end. At a near-tie where neither admissible token
// ends the output, a worker that plays both branches out and keeps the longer one only ever reaches
// ends the rule takes, so the one-step end choices count nothing. The validator now plays out the
// branch the worker did not take (`endChoicesPlayedOut`, `proof/end_choices.ts`) and counts the
// choice as passed or taken by which branch ends later.
//
// The model: at output position 0 "a" and "b" tie within the calibrated tolerance; after "a" EOS
// wins by far (2 tokens billed), after "b" "b" does until `maxTokens` (64).

const V = BUILTIN_VOCAB_SIZE;
const PLAY_OUT_EOS = BUILTIN_EOS_TOKEN_ID;
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
    info: {
      cid: "bafk-branch-play-out",
      vocabSize: V,
      contextLength: 8192,
      eosTokenId: PLAY_OUT_EOS,
    },
    tokenizer: new ByteTokenizer(),
    rowAfter(seq) {
      const row = new Float32Array(V);
      for (let i = 0; i < V; i++) row[i] = ((i * 37 + seq.length * 11) % 97) / 97 * 4 - 4;
      const previous = seq[seq.length - 1];
      if (seq.length === promptLength(seq)) {
        row[A] = 9;
        row[B] = 9 - gap(seq);
      } else if (previous === A) row[PLAY_OUT_EOS] = 10;
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
    const last = token === PLAY_OUT_EOS || t + 1 >= j.params.maxTokens;
    const text = (token === PLAY_OUT_EOS ? "" : decoder.push(token)) +
      (last ? decoder.flush() : "");
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
          if (tokenId === PLAY_OUT_EOS || index >= params.maxTokens) controller.close();
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
          winners[t] = [(tokens[t] + 1) % 256 === PLAY_OUT_EOS ? 2 : (tokens[t] + 1) % 256];
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
