/**
 * Resuming a job after k delivered tokens (`inference/resumed_generation.ts`): the continuation is
 * the undisturbed run's, token for token and character for character, also with a character split
 * across the cut.
 */
import nodeAssert from "node:assert/strict";
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import {
  checkResumePrefix,
  InvalidResumeError,
  isResumable,
  type ResumableModel,
  resumeGeneration,
  ResumeMismatchError,
} from "../../inference/resumed_generation.ts";
import type { FinishReason, TokenChunk } from "../../inference/text_model.ts";
import type { GenerationParams } from "../../protocols/job.ts";
import { collect, params, tinyModel } from "./_fixtures.ts";
import { ByteTokenizer } from "../../inference/byte_tokenizer.ts";
import { fingerprintOf } from "../../proof/fingerprint.ts";

// Resuming a job after k delivered tokens on the real tiny model: the continuation is the
// undisturbed run's, token for token and character for character, the replayed positions carry the
// fingerprints generation gives them, and a prefix the model does not give is refused.

const SAMPLED = params({ maxTokens: 24, temperature: 0.9, topK: 40, seed: 11 });

const GREEDY = params({ maxTokens: 24 });

/** The parts of a chunk an undisturbed run and a resumed one must agree on exactly. */
const visible = (c: TokenChunk) => ({
  index: c.index,
  tokenId: c.tokenId,
  text: c.text,
  finishReason: c.finishReason,
});

Deno.test("a resumed generation replays the prefix and continues exactly as the undisturbed run, at every cut", async () => {
  const { model, cleanup } = await tinyModel();
  try {
    assert(isResumable(model));
    for (const p of [SAMPLED, GREEDY]) {
      const prompt = model.tokenizer.encode("Once upon a time");
      const whole = await collect(model.generate(prompt, p));
      assertEquals(whole.length, 24);
      for (const k of [1, 5, 17, 23]) {
        const prefix = whole.slice(0, k).map((c) => c.tokenId);
        const resumed = await collect(resumeGeneration(model, prompt, prefix, p));
        assertEquals(resumed.map(visible), whole.map(visible), `cut at ${k}`);
        // Replayed rows come from a teacher-forced pass, generated ones from the KV cache: the
        // same computation up to float rounding, far inside what validators tolerate.
        for (let t = 0; t < whole.length; t++) {
          const a = resumed[t].fingerprint;
          const b = whole[t].fingerprint;
          assert(Math.abs(a.logProb - b.logProb) < 1e-4, `logProb at ${t} (cut ${k})`);
          assert(Math.abs(a.projection - b.projection) < 1e-4, `projection at ${t} (cut ${k})`);
        }
      }
    }
  } finally {
    await cleanup();
  }
});

Deno.test("a stop sequence that begins before the cut ends the resumed job where the undisturbed one ends", async () => {
  const { model, cleanup } = await tinyModel();
  try {
    const prompt = model.tokenizer.encode("The");
    const free = await collect(model.generate(prompt, SAMPLED));
    // A stop string spanning tokens 9..11 of the free run, cut inside it at 10.
    const starts: number[] = [];
    let text = "";
    for (const c of free) {
      starts.push(text.length);
      text += c.text;
    }
    const stop = text.slice(starts[9], starts[12]);
    assert(stop.length >= 2, "the three tokens have text");
    const p: GenerationParams = { ...SAMPLED, stop: [stop] };
    const whole = await collect(model.generate(prompt, p));
    assertEquals(whole.at(-1)?.finishReason, "stop");
    const prefix = whole.slice(0, 10).map((c) => c.tokenId);
    assert(prefix.length < whole.length, "the stop completes after the cut");
    const resumed = await collect(resumeGeneration(model, prompt, prefix, p));
    assertEquals(resumed.map(visible), whole.map(visible));
  } finally {
    await cleanup();
  }
});

Deno.test("a prefix the model does not give is refused with resume_mismatch before any continuation", async () => {
  const { model, cleanup } = await tinyModel();
  try {
    const prompt = model.tokenizer.encode("Hello");
    const whole = await collect(model.generate(prompt, SAMPLED));
    const prefix = whole.slice(0, 6).map((c) => c.tokenId);
    prefix[3] = (prefix[3] + 1) % 256;
    const error = await assertRejects(
      () => collect(resumeGeneration(model, prompt, prefix, SAMPLED)),
      ResumeMismatchError,
    );
    assertEquals(error.code, "resume_mismatch");
    assert(error.message.includes("prefix token 3"), error.message);
  } finally {
    await cleanup();
  }
});

Deno.test("a prefix that leaves no room, holds a token outside the vocabulary or already stops is invalid_resume", async () => {
  const { model, cleanup } = await tinyModel();
  try {
    const prompt = model.tokenizer.encode("Hi");
    const room = params({ maxTokens: 3 });
    nodeAssert.throws(
      () => checkResumePrefix(model, prompt.length, [1, 2, 3], room),
      InvalidResumeError,
    );
    nodeAssert.throws(
      () => checkResumePrefix(model, prompt.length, [1, 99_999], room),
      InvalidResumeError,
    );
    nodeAssert.throws(
      () => checkResumePrefix(model, model.info.contextLength - 1, [1], params()),
      InvalidResumeError,
    );
    const whole = await collect(model.generate(prompt, SAMPLED));
    const text = whole.slice(0, 4).map((c) => c.text).join("");
    const p = { ...SAMPLED, stop: [text.slice(-1)] };
    const prefix = whole.slice(0, 4).map((c) => c.tokenId);
    const error = await assertRejects(
      () => collect(resumeGeneration(model, prompt, prefix, p)),
      Error,
    );
    // The stop already matched inside the prefix: either the sampled check (an earlier stop
    // ended it) or the prefix check refuses; never a continuation.
    assert(error instanceof InvalidResumeError || error instanceof ResumeMismatchError);
  } finally {
    await cleanup();
  }
});

// Resuming with a character split across the cut and a stop sequence the lone half of it would
// match: the continuation's own text (its decoder not primed with the prefix) is not the job's, so
// it must not decide where the job ends.

const EOS = 256;

const VOCAB = 257;

/** The model's output, whatever the prompt: "é" (two bytes, split at the cut), then "abcd". */
const SCRIPT = [0xc3, 0xa9, 0x61, 0x62, 0x63, 0x64];

/** Logits that make every rule pick `token`. */
function rowFor(token: number): Float32Array {
  const row = new Float32Array(VOCAB);
  row[token] = 10;
  return row;
}

/**
 * A byte-level model that always says {@link SCRIPT}, with `generate`'s contract as
 * `TextModel.generate` has it: a fresh stream decoder, and the job ends at the token whose text
 * completes a stop sequence in the output it decoded.
 */
const model: ResumableModel = {
  info: { vocabSize: VOCAB, contextLength: 64, eosTokenId: EOS },
  tokenizer: new ByteTokenizer(),
  forward(tokens: readonly number[], _options?: { signal?: AbortSignal }) {
    // Row i predicts output position i − (prompt length − 1); the prompt here is one token.
    const logits = new Float32Array(tokens.length * VOCAB);
    tokens.forEach((_, i) => logits.set(rowFor(SCRIPT[i] ?? EOS), i * VOCAB));
    return Promise.resolve(logits);
  },
  generate(_promptIds: number[], p: GenerationParams, options?: { startIndex?: number }) {
    const decoder = new ByteTokenizer().streamDecoder();
    let index = options?.startIndex ?? 0;
    let output = "";
    return new ReadableStream<TokenChunk>({
      pull(controller) {
        const tokenId = SCRIPT[index] ?? EOS;
        let text = decoder.push(tokenId);
        output += text;
        let finishReason: FinishReason | undefined;
        if (p.stop.some((s) => output.includes(s))) finishReason = "stop";
        else if (index + 1 >= p.maxTokens) finishReason = "length";
        if (finishReason) text += decoder.flush();
        const fingerprint = fingerprintOf(rowFor(tokenId), tokenId);
        controller.enqueue({ index, tokenId, text, fingerprint, vocabSize: VOCAB, finishReason });
        index++;
        if (finishReason) controller.close();
      },
    }, { highWaterMark: 0 });
  },
};

Deno.test("a job resumed inside a character runs on as the undisturbed one, though the character's lone second byte would match a stop sequence (U+FFFD)", async () => {
  const p = params({ maxTokens: SCRIPT.length, temperature: 0, stop: ["\uFFFD"] });
  const prompt = [0x41];
  const whole = await collect(model.generate(prompt, p));
  assertEquals(whole.map((c) => c.text).join(""), "éabcd");
  assertEquals(whole.at(-1)?.finishReason, "length");
  const resumed = await collect(resumeGeneration(model, prompt, SCRIPT.slice(0, 1), p));
  assertEquals(resumed.map(visible), whole.map(visible));
});
