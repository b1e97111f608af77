/**
 * The pull-based stream of a generation's tokens ({@link generationStream}): each pull computes
 * the next step where the model runs (in worker mode, within a run-ahead credit window), decodes
 * it here and checks the stop conditions; an abort, a cancel or the model's disposal stops it
 * within one step, and a stream dropped unread frees its KV cache when collected
 * (`abandonedStreams`). Used by `TextModel.generate` (`text_model.ts`), which checks the request
 * first. Not part of the public API.
 *
 * @module
 */
import type { GenerationParams } from "../protocols/job.ts";
import type { ModelConfig } from "./_model_config.ts";
import { maxLength } from "./_stop_sequences.ts";
import type { TextSequence } from "./_text_engine.ts";
import { endTokenIds } from "./end_tokens.ts";
import type { SamplingParams } from "./sampler.ts";
import type { TextTokenizer } from "./text_tokenizer.ts";
import type { FinishReason, TokenChunk } from "./text_model.ts";

/**
 * What a stream leaves behind when it is collected: its KV cache, and the listener it put on
 * its caller's `AbortSignal` (a long-lived signal, such as a server's shutdown, outlives it).
 */
interface StreamResources {
  sequence?: TextSequence;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * Closes the KV cache of a stream dropped without being cancelled or read to the end (in
 * worker mode the cache lives in the worker, which cannot see the stream being collected), and
 * takes its listener off the signal. Nothing here may reach the stream, or it is never collected:
 * the listener reaches its controller only through a `WeakRef`.
 */
const abandonedStreams = new FinalizationRegistry<StreamResources>((state) => {
  state.sequence?.close();
  if (state.onAbort) state.signal?.removeEventListener("abort", state.onAbort);
});

/** What a generation's stream reads of its model (`TextModel`, whose state stays private there). */
export interface StreamModel {
  /** The model's tokenizer: each chunk's text, and its top tokens' names. */
  readonly tokenizer: TextTokenizer;
  /** The model's dimensions and end tokens. */
  readonly config: ModelConfig;
  /** Workers computing for the model: 0 in-thread, where nothing runs ahead. */
  readonly workerCount: number;
  /** Throws `ModelDisposedError` once the model is disposed. */
  checkUsable(): void;
  /** A new KV cache (in worker mode, placed on a worker). */
  sequence(): TextSequence;
  /** Counts one model execution (`TextModel.runCount`). */
  countRun(): void;
}

/** A generation as `TextModel.generate` has checked it. */
export interface GenerationRequest {
  /** The prompt, non-empty, in the vocabulary, shorter than the context window. */
  promptIds: readonly number[];
  /** The sampling rule and `maxTokens`. */
  params: GenerationParams;
  /** The stop sequences (`checkStopSequences`'s copy). */
  stops: string[];
  /** Output position of the first generated token. */
  startIndex: number;
  /** Steps the worker may compute beyond the chunks pulled (worker mode only). */
  requestedRunAhead: number;
  /** How many of each row's most likely tokens to list on every chunk. */
  topLogprobs: number;
  /** Aborting stops generation within one step. */
  signal: AbortSignal | undefined;
}

/**
 * Stream the tokens of `request` from `model` (see `TextModel.generate`): nothing is computed
 * before the first pull, except in worker mode the prompt's read, within the run-ahead credit.
 */
export function generationStream(
  model: StreamModel,
  request: GenerationRequest,
): ReadableStream<TokenChunk> {
  const { promptIds, params, stops, startIndex, requestedRunAhead, topLogprobs, signal } = request;
  const contextLength = model.config.contextLength;

  // Only what the rule reads travels with each step (not the stop list, not maxTokens).
  const { temperature, topK, topP, seed } = params;
  const rule: SamplingParams = { temperature, topK, topP, seed };
  const vocabSize = model.config.vocabSize;
  const decoder = model.tokenizer.streamDecoder();
  const ends = endTokenIds(model.config);
  const sequence = [...promptIds];
  // The KV cache, opened at the first pull (in worker mode: placed on a worker then), and the
  // abort listener: what `abandonedStreams` frees if the stream is dropped.
  const cache: StreamResources = {};
  let fed = 0; // tokens of `sequence` already in the cache
  let index = startIndex;
  let output = "";
  let finished = false;
  // Weak: the signal holds `onAbort`, and a signal that outlives the stream must not keep it
  // (and its cache) alive; a live stream keeps its controller.
  let controllerRef: WeakRef<ReadableStreamDefaultController<TokenChunk>> | undefined;
  const release = () => {
    cache.sequence?.close();
    abandonedStreams.unregister(cache);
  };
  const onAbort = () => {
    if (finished) return;
    finished = true;
    release();
    controllerRef?.deref()?.error(signal?.reason);
  };

  const finish = () => {
    finished = true;
    release();
    signal?.removeEventListener("abort", onAbort);
  };

  // Run-ahead (worker mode): the step of chunk t+1 is sent as soon as chunk t is back, so
  // the worker computes it while this thread delivers chunk t. The consumer's pulls are the
  // credit: a step starts only while fewer than `runAhead` computed chunks wait beyond what
  // was pulled, so a consumer that stops pulling stops the worker after the window.
  const runAhead = model.workerCount > 0 ? requestedRunAhead : 0;
  const ready: TokenChunk[] = []; // computed, not yet delivered
  let failure: { error: unknown } | undefined; // a failed step, delivered after `ready`
  let producing: Promise<void> | undefined; // the step in flight, if any
  let produced = startIndex; // index of the next chunk to compute
  let pulled = startIndex; // chunks the consumer has asked for (last asked index + 1)
  let exhausted = false; // the last chunk has been computed

  /** Compute and sample one chunk (where the model runs), then decode it here. */
  const produce = async () => {
    model.checkUsable();
    const newTokens = sequence.slice(fed);
    cache.sequence ??= model.sequence();
    model.countRun();
    // With a run-ahead window the worker may compute the next steps (each feeding back the
    // token before) before they are asked for: as many as there can be (this promises them),
    // of which it runs at most two beyond the last asked; a stop sequence or a cancel then
    // wastes those.
    const ahead = runAhead > 0
      ? Math.max(0, Math.min(params.maxTokens - index - 1, contextLength - sequence.length - 1))
      : 0;
    const { tokenId: token, fingerprint, top } = await cache.sequence.step(
      newTokens,
      {
        params: rule,
        position: index,
      },
      topLogprobs,
      ahead,
    );
    // Aborted or cancelled while the step ran: drop its result, compute nothing more.
    if (finished) return;
    fed = sequence.length;
    sequence.push(token);
    let finishReason: FinishReason | undefined;
    let text = "";
    if (ends.has(token)) {
      finishReason = "stop";
    } else {
      text = decoder.push(token);
      const searchFrom = Math.max(0, output.length - maxLength(stops) + 1);
      output += text;
      if (stops.some((s) => output.indexOf(s, searchFrom) >= 0)) finishReason = "stop";
    }
    if (!finishReason && index + 1 >= params.maxTokens) finishReason = "length";
    if (!finishReason && sequence.length >= contextLength) finishReason = "length";
    if (finishReason) text += decoder.flush();
    const chunk: TokenChunk = {
      index,
      tokenId: token,
      text,
      fingerprint,
      vocabSize,
      finishReason,
    };
    if (top !== undefined) {
      chunk.topLogprobs = top.map(({ tokenId, logprob }) => ({
        tokenId,
        text: model.tokenizer.decode([tokenId]),
        logprob,
      }));
    }
    ready.push(chunk);
    index++;
    produced++;
    if (finishReason) exhausted = true;
  };

  /** Start the next step if none is running and the consumer's credit allows it. */
  const pump = () => {
    if (producing || finished || exhausted || failure) return;
    if (produced >= pulled + runAhead) return;
    producing = produce().catch((error) => {
      failure = { error };
      // The cache is useless after a failed step: free it now, not at the next pull.
      release();
    }).finally(() => {
      producing = undefined;
      pump();
    });
  };

  const stream = new ReadableStream<TokenChunk>({
    start: (controller) => {
      controllerRef = new WeakRef(controller);
      if (signal) {
        signal.addEventListener("abort", onAbort, { once: true });
        cache.signal = signal;
        cache.onAbort = onAbort;
      }
      if (index >= params.maxTokens) {
        finish();
        controller.close();
      }
      // Worker mode: the prompt's read starts now, within the run-ahead credit (none
      // in-thread, where it would block this thread before the stream is even returned).
      pump();
    },
    pull: async (controller) => {
      if (finished) return;
      try {
        // A chunk computed ahead must not outlive the model's disposal.
        model.checkUsable();
      } catch (error) {
        finish();
        throw error;
      }
      pulled++;
      pump();
      while (ready.length === 0 && !failure && !finished && producing) await producing;
      if (finished) return;
      const chunk = ready.shift();
      if (!chunk) {
        finish();
        throw failure?.error ?? new Error("generation stalled without a chunk or an error");
      }
      controller.enqueue(chunk);
      if (chunk.finishReason) {
        finish();
        controller.close();
      }
    },
    cancel: () => {
      finish();
    },
  }, { highWaterMark: 0 });
  abandonedStreams.register(stream, cache, cache);
  return stream;
}
