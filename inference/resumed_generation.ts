/**
 * Resuming a text job after the first k tokens were delivered by a worker that was lost: this
 * worker continues at position k and stands behind the whole output.
 *
 * The router hands over the job and the k token ids its client already has (the *prefix*).
 * One teacher-forced pass over prompt ‖ prefix gives this worker the logits row of every prefix
 * position; it checks that each prefix token is exactly what its own sampling rule gives there
 * (draw t depends only on `(seed, t)`, so position t is reproducible anywhere), and fingerprints
 * each row as generation would have. Then it generates from position k with `startIndex: k`,
 * and the continuation is what an undisturbed run would have produced.
 *
 * The stream yields k *replayed* chunks (index `0 … k−1`, for the prover only: the requester has
 * these tokens) and then the continuation. So the prover commits to all n positions and signs an
 * ordinary receipt: output hash over the full text, token count n, every position checkable by
 * any validator in the usual context (prompt ‖ output). Nothing about the receipt says it was
 * resumed, so every validator, fraud checker and ledger handles it as it is.
 *
 * What generation alone would get wrong after a cut, and is done here over the full output:
 * - the text: the stream decoder is primed with the prefix, so a character split across the cut
 *   and tokenizers whose decoding depends on the left neighbour come out as in one run;
 * - stop sequences: checked over prefix ‖ continuation text, so a stop string that begins
 *   before the cut still ends the job where an undisturbed run ends it.
 *
 * A prefix this worker cannot reproduce is refused (`resume_mismatch`) rather than signed: a
 * near-tie that another machine's rounding flipped, or tokens the lost worker (or the router)
 * made up. A prefix that could not have come from the job at all — out of the vocabulary, no
 * room left, already past a stop — is `invalid_resume`.
 *
 * @module
 */
import type { GenerationParams } from "../protocols/job.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { fingerprintOf } from "../proof/fingerprint.ts";
import { sampleToken } from "./sampler.ts";
import type { FinishReason, TokenChunk } from "./text_model.ts";
import type { TokenStreamDecoder } from "./token_stream_decoder.ts";
import { endTokenIds } from "./end_tokens.ts";

/** The resume cannot be honoured here: wrong shape, or a model that cannot resume. */
export class InvalidResumeError extends VeriflowError {
  /**
   * Create it.
   * @param message What is wrong with the resume.
   */
  constructor(message: string) {
    super("invalid_resume", message);
  }
}

/**
 * The prefix is not what this worker's model gives at some position, or the continuation would
 * end where the job does not: this worker will not sign for it.
 */
export class ResumeMismatchError extends VeriflowError {
  /**
   * The first prefix position whose token is not what this worker's model gives there (NaN: the
   * prefix is not what failed, or a worker's refusal whose message does not say). A requester
   * learns it from the message, `prefix token <t> is …` ({@link RESUME_MISMATCH_MESSAGE}).
   */
  readonly position: number;
  /**
   * Create it.
   * @param message Which position and why.
   * @param position The first prefix position that is not the model's (default NaN).
   */
  constructor(message: string, position = NaN) {
    super("resume_mismatch", message);
    this.position = position;
  }
}

/**
 * How a {@link ResumeMismatchError} over a prefix token begins; group 1 is its position. The
 * wire carries an error's code and message only, so a requester reads the position from here.
 */
export const RESUME_MISMATCH_MESSAGE = /^prefix token (\d+) is /;

/**
 * How an {@link InvalidResumeError} over a prefix token begins (out of the vocabulary, an end
 * token, a stop the prefix already completed); group 1 or 2 is its position. Its other messages
 * (no room left, a model that cannot resume) are about the job or the worker, not the prefix.
 */
export const INVALID_PREFIX_MESSAGE =
  /^(?:prefix token (\d+) |the prefix already ends the job at token (\d+))/;

/**
 * The first prefix position a takeover's refusal says the delivered tokens go wrong at: a
 * {@link ResumeMismatchError}'s (NaN when it does not say), an {@link InvalidResumeError}'s over a
 * prefix token; undefined for any other error, which refuses no token.
 */
export function refusedPrefixPosition(error: unknown): number | undefined {
  if (error instanceof ResumeMismatchError) return error.position;
  if (!(error instanceof InvalidResumeError)) return undefined;
  const named = INVALID_PREFIX_MESSAGE.exec(error.message);
  return named === null ? undefined : Number(named[1] ?? named[2]);
}

/** What a model needs to resume a job: `TextModel` has all of it. */
export interface ResumableModel {
  /** Shape of the model. */
  readonly info: {
    readonly vocabSize: number;
    readonly contextLength: number;
    readonly eosTokenId: number | undefined;
    /** Every end id (`TextModel`'s `info.eosTokenIds`); without it, `eosTokenId` alone. */
    readonly eosTokenIds?: readonly number[];
  };
  /** The streaming decoder generation uses. */
  readonly tokenizer: { streamDecoder(): TokenStreamDecoder };
  /** Teacher-forced pass: logits `[tokens.length × vocabSize]`. */
  forward(tokens: readonly number[], options?: { signal?: AbortSignal }): Promise<Float32Array>;
  /** KV-cached generation from output position `startIndex`. */
  generate(
    promptIds: number[],
    params: GenerationParams,
    options?: { signal?: AbortSignal; topLogprobs?: number; startIndex?: number },
  ): ReadableStream<TokenChunk>;
}

/** Whether `model` can resume a job (a teacher-forced pass, a stream decoder, its shape). */
export function isResumable(model: object): model is ResumableModel {
  const m = model as Partial<ResumableModel>;
  return typeof m.forward === "function" && typeof m.generate === "function" &&
    typeof m.tokenizer?.streamDecoder === "function" && typeof m.info?.vocabSize === "number" &&
    typeof m.info?.contextLength === "number";
}

/**
 * The checks that need no model run, done when the job is submitted so a bad resume is refused
 * before it takes a slot: every id in the vocabulary and not an end token, and room left after
 * the prefix for at least one more token (by `maxTokens` and by the context window).
 * Throws {@link InvalidResumeError}.
 */
export function checkResumePrefix(
  model: ResumableModel,
  promptLength: number,
  prefix: readonly number[],
  params: Pick<GenerationParams, "maxTokens">,
): void {
  const { vocabSize, contextLength } = model.info;
  const ends = endTokenIds(model.info);
  const k = prefix.length;
  if (k >= params.maxTokens) {
    throw new InvalidResumeError(
      `a prefix of ${k} tokens leaves nothing of maxTokens ${params.maxTokens}`,
    );
  }
  if (promptLength + k >= contextLength) {
    throw new InvalidResumeError(
      `prompt (${promptLength}) and prefix (${k}) fill the context window of ${contextLength}`,
    );
  }
  prefix.forEach((id, t) => {
    if (!Number.isSafeInteger(id) || id < 0 || id >= vocabSize) {
      throw new InvalidResumeError(`prefix token ${t} (${id}) is outside the vocabulary`);
    }
    if (ends.has(id)) throw new InvalidResumeError(`prefix token ${t} is end-of-text`);
  });
}

/** Options of {@link resumeGeneration}. */
export interface ResumeOptions {
  /** Aborting stops the replay or the generation. */
  signal?: AbortSignal;
  /** Top tokens listed on each continuation chunk (as `generate`). */
  topLogprobs?: number;
}

/**
 * The job's chunks when resuming after `prefix`: `prefix.length` replayed chunks (fingerprinted
 * from a teacher-forced pass, for the prover), then the continuation from that position, with
 * text and stop checks over the whole output. Pull-based like `generate`; the replay runs at the
 * first pull. Errors with {@link ResumeMismatchError} when the prefix is not reproducible here,
 * {@link InvalidResumeError} when it already ends the job. Call {@link checkResumePrefix} first.
 */
export function resumeGeneration(
  model: ResumableModel,
  promptIds: readonly number[],
  prefix: readonly number[],
  params: GenerationParams,
  options: ResumeOptions = {},
): ReadableStream<TokenChunk> {
  checkResumePrefix(model, promptIds.length, prefix, params);
  const { vocabSize, contextLength } = model.info;
  const ends = endTokenIds(model.info);
  const signal = options.signal;
  const stops = params.stop.filter((s) => s.length > 0);
  const longestStop = stops.reduce((n, s) => Math.max(n, s.length), 0);
  const decoder = model.tokenizer.streamDecoder();
  let output = "";
  let replayed: TokenChunk[] | undefined;
  let source: ReadableStreamDefaultReader<TokenChunk> | undefined;

  /** Add one token's text to the output; whether it completes a stop sequence. */
  const append = (tokenId: number): { text: string; stopped: boolean } => {
    if (ends.has(tokenId)) return { text: "", stopped: true };
    const text = decoder.push(tokenId);
    const searchFrom = Math.max(0, output.length - longestStop + 1);
    output += text;
    return { text, stopped: stops.some((s) => output.indexOf(s, searchFrom) >= 0) };
  };

  const replay = async (): Promise<TokenChunk[]> => {
    const k = prefix.length;
    if (k === 0) return [];
    // Row P−1+t predicts output token t: the pass needs the prefix up to its last token only.
    const logits = await model.forward([...promptIds, ...prefix.slice(0, k - 1)], { signal });
    signal?.throwIfAborted();
    return prefix.map((tokenId, t) => {
      const offset = (promptIds.length - 1 + t) * vocabSize;
      const row = logits.subarray(offset, offset + vocabSize);
      const expected = sampleToken(row, params, t).token;
      if (expected !== tokenId) {
        throw new ResumeMismatchError(
          `prefix token ${t} is ${tokenId}, but the job's sampling rule gives ${expected} here`,
          t,
        );
      }
      const { text, stopped } = append(tokenId);
      if (stopped) throw new InvalidResumeError(`the prefix already ends the job at token ${t}`);
      return { index: t, tokenId, text, fingerprint: fingerprintOf(row, tokenId), vocabSize };
    });
  };

  /** The continuation chunk with the whole output's text and finish reason. */
  const continued = (chunk: TokenChunk): TokenChunk => {
    const { text, stopped } = append(chunk.tokenId);
    const full = chunk.index + 1 >= params.maxTokens ||
      promptIds.length + chunk.index + 1 >= contextLength;
    const finishReason: FinishReason | undefined = stopped ? "stop" : full ? "length" : undefined;
    if (chunk.finishReason !== undefined && finishReason === undefined) {
      // Generation ended where the job does not (it is given no stop sequences): not the rule.
      throw new ResumeMismatchError(
        `generation ended at token ${chunk.index}, where the job's output does not end`,
      );
    }
    const out: TokenChunk = { ...chunk, text: finishReason ? text + decoder.flush() : text };
    delete out.finishReason;
    if (finishReason !== undefined) out.finishReason = finishReason;
    return out;
  };

  return new ReadableStream<TokenChunk>({
    pull: async (controller) => {
      replayed ??= await replay();
      const next = replayed.shift();
      if (next !== undefined) {
        controller.enqueue(next);
        return;
      }
      // Without the stop sequences: they are checked here over the whole output (`continued`).
      // The continuation's own text is not the job's: a character split across the cut starts
      // it with a lone byte, which decodes as U+FFFD, and a stop sequence that matches it there
      // would end generation where the job's output goes on.
      source ??= model.generate([...promptIds, ...prefix], { ...params, stop: [] }, {
        signal,
        topLogprobs: options.topLogprobs,
        startIndex: prefix.length,
      }).getReader();
      const { done, value } = await source.read();
      if (done) {
        controller.close();
        return;
      }
      const chunk = continued(value);
      controller.enqueue(chunk);
      if (chunk.finishReason !== undefined) {
        controller.close();
        // Generation does not know the job's stop sequences (see above): stop it.
        if (value.finishReason === undefined) source.cancel().catch(() => {});
      }
    },
    cancel: (reason) => {
      source?.cancel(reason).catch(() => {});
    },
  }, { highWaterMark: 0 });
}
