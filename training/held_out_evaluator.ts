/**
 * Where a training coordinator measures held-out loss: in a worker of its own
 * ({@link WorkerHeldOutEvaluator}), off the node's event loop.
 *
 * tfjs computes synchronously on the thread that calls it, and an evaluation's promise settles
 * in microtasks only, so a round's evaluations (the start model, each accepted delta alone, the
 * mean, the search: `_round_run.ts`) ran back to back without the event loop turning once.
 * Measured on the README's three-node example (`tiny`, 2 trainers, a shared 2-core machine,
 * `tmp/s75/trainloop/`): the coordinator's loop was held 2.1 to 3.0 s at each round's end, and
 * in the review's run past the 5 s `network.idleTimeoutMs`: no keepalive went out or was read, so
 * the coordinator and its trainers dropped each other at every round boundary (a storage repair
 * pass, trainers leaving and joining again; review s75 newcomer F1). The worker computes the same
 * numbers (the same wasm kernels on the same inputs: `evaluateHeldOut`, which the worker runs,
 * is also what {@link InThreadHeldOutEvaluator} runs), while the node's loop goes on.
 *
 * The held-out samples are handed to the worker once; they stay in this process (the text never
 * leaves the node).
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import { sampleCount, type TextShard } from "./brown_corpus.ts";
import type { GptWeights } from "./gpt_weights.ts";
import { loadTrainingEngine } from "./training_engine.ts";
import { TrainingError } from "./training_error.ts";

/** What an evaluator measures: the held-out samples of a run and the model's architecture. */
export interface HeldOutEvaluation {
  /** The model's architecture. */
  arch: GptArchitecture;
  /** The samples (`heldOutSamples`: each one `sampleBytes`-byte document); every window is read. */
  samples: TextShard;
  /** Bytes of one sample. */
  sampleBytes: number;
}

/** Measures held-out loss; see the module doc. */
export interface HeldOutEvaluator {
  /** Mean loss (nats per byte) of `weights` over every sample (NaN: no whole sample). */
  evaluate(weights: GptWeights): Promise<number>;
  /** Release it (its worker); an evaluation in flight fails with `evaluator_stopped`. */
  close(): void;
}

/**
 * Mean loss (nats per byte) of `weights` over every `sampleBytes`-byte window of
 * `evaluation.samples`, on this thread, on the wasm backend (what the worker runs).
 */
export async function evaluateHeldOut(
  evaluation: HeldOutEvaluation,
  weights: GptWeights,
): Promise<number> {
  const { evaluateLoss, useTrainingBackend } = await loadTrainingEngine();
  await useTrainingBackend("wasm");
  return await evaluateLoss(evaluation.arch, weights, evaluation.samples, {
    sampleBytes: evaluation.sampleBytes,
    maxSamples: sampleCount(evaluation.samples, evaluation.sampleBytes),
  });
}

/** Evaluates on the calling thread (holds it for the whole evaluation). */
export class InThreadHeldOutEvaluator implements HeldOutEvaluator {
  readonly #evaluation: HeldOutEvaluation;

  /** @param evaluation What it measures. */
  constructor(evaluation: HeldOutEvaluation) {
    this.#evaluation = evaluation;
  }

  /** See {@link HeldOutEvaluator.evaluate}. */
  evaluate(weights: GptWeights): Promise<number> {
    return evaluateHeldOut(this.#evaluation, weights);
  }

  /** Nothing to release. */
  close(): void {}
}

/** Main thread → evaluator worker. */
export type EvaluatorRequest =
  | { id: number; op: "init"; evaluation: HeldOutEvaluation }
  | { id: number; op: "evaluate"; weights: GptWeights };

/** Evaluator worker → main thread. */
export type EvaluatorReply =
  | { id: number; ok: true; loss: number }
  | { id: number; ok: false; code: string; message: string };

/**
 * Evaluates in a worker of its own (`_held_out_evaluator_worker.ts`), started on the first
 * evaluation; evaluations run there one after another, in the order asked.
 */
export class WorkerHeldOutEvaluator implements HeldOutEvaluator {
  readonly #evaluation: HeldOutEvaluation;
  #worker: Worker | undefined;
  readonly #pending = new Map<number, PromiseWithResolvers<number>>();
  #next = 0;
  #closed = false;

  /** @param evaluation What it measures (copied into the worker at its start). */
  constructor(evaluation: HeldOutEvaluation) {
    this.#evaluation = evaluation;
  }

  /** See {@link HeldOutEvaluator.evaluate}. */
  evaluate(weights: GptWeights): Promise<number> {
    if (this.#closed) {
      return Promise.reject(new TrainingError("evaluator_stopped", "the evaluator stopped"));
    }
    const worker = this.#worker ??= this.#start();
    const id = this.#next++;
    const waiter = Promise.withResolvers<number>();
    this.#pending.set(id, waiter);
    worker.postMessage({ id, op: "evaluate", weights } satisfies EvaluatorRequest);
    return waiter.promise;
  }

  /** See {@link HeldOutEvaluator.close}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker?.terminate();
    this.#failAll(new TrainingError("evaluator_stopped", "the evaluator stopped"));
  }

  #start(): Worker {
    const worker = new Worker(
      new URL("./_held_out_evaluator_worker.ts", import.meta.url).href,
      { type: "module" },
    );
    worker.onmessage = (event: MessageEvent<EvaluatorReply>) => {
      const reply = event.data;
      const waiter = this.#pending.get(reply.id);
      if (waiter === undefined) return;
      this.#pending.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.loss);
      else waiter.reject(new TrainingError(reply.code, reply.message));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      this.#failAll(new TrainingError("evaluator_worker_failed", event.message));
    };
    // Handled before any evaluation: the worker takes its messages in order.
    worker.postMessage(
      { id: -1, op: "init", evaluation: this.#evaluation } satisfies EvaluatorRequest,
    );
    return worker;
  }

  #failAll(error: Error): void {
    for (const waiter of this.#pending.values()) waiter.reject(error);
    this.#pending.clear();
  }
}
