/**
 * Where a trainer's compute runs: H local steps (`trainAndSign`) and, later, the opening of
 * challenged steps (`openChallengedSteps`), with the traces that connect the two kept beside
 * the shard they came from.
 *
 * tfjs computes synchronously on the thread that calls it: a round of H steps, or an opening
 * that recomputes up to `keepEvery` steps per challenged step, holds that thread for seconds
 * (measured: 0.8 s for 12 steps of the test model, 4.1 s to open 8 of them; `tiny` is ~10×).
 * On a node's main thread that is seconds without keepalives, and peers with the default 5 s
 * idle timeout drop the trainer mid-round. {@link WorkerTrainerEngine} runs the same work in a
 * worker of its own, which also keeps the shard and the traces off the node's main thread;
 * {@link InProcessTrainerEngine} runs it in place (the worker's inside, and test fixtures that
 * substitute the training function).
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import type { Identity } from "../protocols/identity.ts";
import type { TextShard } from "./brown_corpus.ts";
import type { GptWeights } from "./gpt_weights.ts";
import type { TrainingBackend } from "./tf_backend.ts";
import type { LocalHyperParams } from "./hyper_params.ts";
import {
  trainAndSign,
  type TrainAndSignOptions,
  type TrainAndSignResult,
  type TrainerReport,
} from "./training_round.ts";
import type { TrainingChallenge } from "./training_challenge.ts";
import {
  openChallengedSteps,
  OpenedStates,
  type SealedStepOpenings,
  type TrainingTrace,
} from "./step_opening.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import { TrainingError } from "./training_error.ts";
import { TraceStore } from "./trace_store.ts";

/** How a trainer trains one round (the honest `trainAndSign`, or a test fixture's). */
export type TrainFunction = (options: TrainAndSignOptions) => Promise<TrainAndSignResult>;

/**
 * Runs whose traces are kept in memory for challenges: most challenges come within a round or
 * two of the report (the coordinator checks before it aggregates). Older runs, and runs from
 * before a restart, are opened from the trainer's {@link TraceStore} when it has one.
 */
export const KEPT_TRACES = 4;

/**
 * Receipts whose recomputed states an engine keeps between their challenges, and the memory
 * each may use ({@link OpenedStates}): the validators auditing a round challenge its receipt at
 * about the same time, so the latest receipts opened are the ones asked again. 128 MiB is every
 * state of `tiny` (1.8 MB each) up to H = 70, and 10 states of the largest model on the wire.
 */
export const OPENED_RECEIPTS = 2;
/** See {@link OPENED_RECEIPTS}. */
export const OPENED_STATES_BYTES = 128 * 1024 * 1024;

/** Where an engine keeps its runs' traces on disk (`trace_store.ts`). */
export interface TraceKeeping {
  /** The directory of the trace files. */
  dir: string;
  /** How long a trace is kept; default `DEFAULT_TRACE_RETAIN_MS`. */
  retainMs?: number;
}

/** One round's training, as the engine is asked for it. */
export interface RoundTraining {
  /** Architecture. */
  arch: GptArchitecture;
  /** Round number. */
  round: number;
  /** Start model CID. */
  startModel: string;
  /** Start weights. */
  start: GptWeights;
  /** Local steps H. */
  steps: number;
  /** Batch seed. */
  dataSeed: number;
  /** Inner hyper-parameters. */
  hyper: LocalHyperParams;
  /** tfjs backend; default wasm (falls back to cpu). */
  backend?: TrainingBackend;
}

/** Hears one local step: its number and its training loss (nats per byte). */
export type StepListener = (step: number, loss: number) => void;

/** A trainer's compute; see the module doc. */
export interface TrainerEngine {
  /**
   * Train one round on the engine's shard; the run's trace is kept for {@link open}.
   * `onStep` hears each step's loss (nats per byte) as it is taken. Once `signal` aborts (its
   * round is lost: nobody will read the report) the run stops before its next step, nothing
   * signed, and this rejects with `round_abandoned`: the engine's next round does not wait
   * behind up to H steps of work nobody pays for.
   */
  train(round: RoundTraining, onStep?: StepListener, signal?: AbortSignal): Promise<TrainerReport>;
  /**
   * The challenged steps of a kept run (in memory, or on disk), opened and sealed to the
   * challenge's validator.
   * @throws {TrainingError} `unknown_receipt` when no kept run has the challenged receipt.
   */
  open(challenge: TrainingChallenge): Promise<SealedStepOpenings>;
  /** Release the engine (its worker, its traces). */
  close(): Promise<void>;
}

/** Trains and opens on the calling thread. */
export class InProcessTrainerEngine implements TrainerEngine {
  readonly #identity: Identity;
  readonly #shard: TextShard;
  readonly #train: TrainFunction;
  readonly #traces = new Map<string, TrainingTrace>();
  readonly #store: TraceStore | undefined;
  /** States recomputed for the challenges of the latest receipts opened (oldest first). */
  readonly #opened = new Map<string, OpenedStates>();

  /**
   * @param identity The trainer's key.
   * @param shard Its private shard.
   * @param train How a round is trained; default `trainAndSign`.
   * @param traces Where runs' traces are kept on disk (absent: in memory only, the last
   * {@link KEPT_TRACES}).
   */
  constructor(
    identity: Identity,
    shard: TextShard,
    train: TrainFunction = trainAndSign,
    traces?: TraceKeeping,
  ) {
    this.#identity = identity;
    this.#shard = shard;
    this.#train = train;
    this.#store = traces && new TraceStore(traces);
  }

  /**
   * See {@link TrainerEngine.train}; `between` is awaited before each step (the worker yields
   * there, so it opens challenges of earlier runs while it trains). `signal` is looked at there
   * too, before and after `between`.
   */
  async train(
    round: RoundTraining,
    onStep?: StepListener,
    signal?: AbortSignal,
    between?: () => Promise<void>,
  ): Promise<TrainerReport> {
    const stop = () => {
      if (signal?.aborted) {
        throw new TrainingError(
          "round_abandoned",
          `round ${round.round} was abandoned while it trained: stopped, nothing signed`,
        );
      }
    };
    stop();
    const before = signal === undefined ? between : async () => {
      stop();
      await between?.();
      stop();
    };
    const { report, trace } = await this.#train({
      ...round,
      shard: this.#shard,
      identity: this.#identity,
      onStep,
      ...(before ? { between: before } : {}),
    });
    stop(); // aborted during the last step: the receipt signed never leaves
    // On disk before the receipt leaves: a challenge may come after a restart.
    await this.#store?.save(trace);
    this.#traces.set(trainingReceiptId(report.receipt), trace);
    while (this.#traces.size > KEPT_TRACES) {
      this.#traces.delete(this.#traces.keys().next().value!);
    }
    return report;
  }

  /** See {@link TrainerEngine.open}. */
  async open(challenge: TrainingChallenge): Promise<SealedStepOpenings> {
    const trace = this.#traces.get(challenge.receiptId) ??
      await this.#store?.load(challenge.receiptId, this.#identity, this.#shard);
    if (trace === undefined) {
      throw new TrainingError("unknown_receipt", "no kept run of this trainer has that receipt");
    }
    return await openChallengedSteps(
      trace,
      challenge,
      this.#openedStates(challenge.receiptId, trace),
    );
  }

  /** The states recomputed for `receiptId`'s earlier challenges (made room for, if new). */
  #openedStates(receiptId: string, trace: TrainingTrace): OpenedStates {
    let opened = this.#opened.get(receiptId);
    if (opened === undefined) {
      const state = trace.kept.get(0) ?? trace.kept.values().next().value;
      let values = 0;
      for (const tensor of state?.weights.values() ?? []) values += tensor.data.length;
      // Weights and both moments, float32.
      const maxStates = Math.floor(OPENED_STATES_BYTES / Math.max(1, values * 12));
      opened = new OpenedStates(Math.min(maxStates, trace.receipt.steps + 1));
      this.#opened.set(receiptId, opened);
      while (this.#opened.size > OPENED_RECEIPTS) {
        this.#opened.delete(this.#opened.keys().next().value!);
      }
    }
    return opened;
  }

  /** See {@link TrainerEngine.close}. */
  close(): Promise<void> {
    this.#traces.clear();
    this.#opened.clear();
    return Promise.resolve();
  }
}

/** Main thread → engine worker. */
export type EngineRequest =
  | { id: number; op: "init"; secretKey: Uint8Array; shard: TextShard; traces?: TraceKeeping }
  | { id: number; op: "train"; round: RoundTraining }
  | { id: number; op: "open"; challenge: TrainingChallenge }
  /** Stop the `train` request `id` before its next step (see {@link TrainerEngine.train}). */
  | { id: number; op: "cancel" };

/** Engine worker → main thread: an answer, or a step of the `train` request `id`. */
export type EngineReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; code: string; message: string }
  | { id: number; step: number; loss: number };

/** Trains and opens in a worker of its own (`_trainer_engine_worker.ts`). */
export class WorkerTrainerEngine implements TrainerEngine {
  readonly #worker: Worker;
  readonly #pending = new Map<number, PromiseWithResolvers<unknown>>();
  readonly #listeners = new Map<number, StepListener>();
  #next = 0;
  #closed = false;

  /**
   * Start the worker and hand it the key and the shard.
   * @param identity The trainer's key (its secret goes to the worker, which signs receipts).
   * @param shard The private shard (copied into the worker).
   * @param traces Where the worker keeps runs' traces on disk (absent: in memory only).
   */
  constructor(identity: Identity, shard: TextShard, traces?: TraceKeeping) {
    this.#worker = new Worker(new URL("./_trainer_engine_worker.ts", import.meta.url).href, {
      type: "module",
    });
    this.#worker.onmessage = (event: MessageEvent<EngineReply>) => {
      const reply = event.data;
      if ("step" in reply) return this.#listeners.get(reply.id)?.(reply.step, reply.loss);
      const waiter = this.#pending.get(reply.id);
      if (waiter === undefined) return;
      this.#pending.delete(reply.id);
      this.#listeners.delete(reply.id);
      if (reply.ok) waiter.resolve(reply.value);
      else waiter.reject(new TrainingError(reply.code, reply.message));
    };
    this.#worker.onerror = (event) => {
      event.preventDefault();
      this.#failAll(new TrainingError("trainer_worker_failed", event.message));
    };
    // Answered before any other request: the worker handles its messages in order.
    void this.#ask({ op: "init", secretKey: identity.exportSecretKey(), shard, traces })
      .catch(() => {});
  }

  /**
   * See {@link TrainerEngine.train}: an abort of `signal` is passed to the worker (`cancel`),
   * which stops the run at its next step and answers `round_abandoned`; a run still queued
   * there behind another does not start.
   */
  async train(
    round: RoundTraining,
    onStep?: StepListener,
    signal?: AbortSignal,
  ): Promise<TrainerReport> {
    const id = this.#next;
    const answer = this.#ask({ op: "train", round }, onStep);
    const cancel = () => {
      if (!this.#closed) this.#worker.postMessage({ id, op: "cancel" } satisfies EngineRequest);
    };
    if (signal?.aborted) cancel();
    else signal?.addEventListener("abort", cancel, { once: true });
    try {
      return await answer as TrainerReport;
    } finally {
      signal?.removeEventListener("abort", cancel);
    }
  }

  /** See {@link TrainerEngine.open}. */
  async open(challenge: TrainingChallenge): Promise<SealedStepOpenings> {
    return await this.#ask({ op: "open", challenge }) as SealedStepOpenings;
  }

  /** Stop the worker; what is in flight fails with `trainer_stopped`. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#worker.terminate();
      this.#failAll(new TrainingError("trainer_stopped", "the trainer stopped"));
    }
    return Promise.resolve();
  }

  #ask(
    request: DistributiveOmit<Exclude<EngineRequest, { op: "cancel" }>, "id">,
    onStep?: StepListener,
  ): Promise<unknown> {
    if (this.#closed) {
      return Promise.reject(new TrainingError("trainer_stopped", "the trainer stopped"));
    }
    const id = this.#next++;
    const waiter = Promise.withResolvers<unknown>();
    this.#pending.set(id, waiter);
    if (onStep) this.#listeners.set(id, onStep);
    this.#worker.postMessage({ ...request, id } as EngineRequest);
    return waiter.promise;
  }

  #failAll(error: Error): void {
    for (const waiter of this.#pending.values()) waiter.reject(error);
    this.#pending.clear();
    this.#listeners.clear();
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
