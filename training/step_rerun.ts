/**
 * Where a validator re-runs an opened training step (`checkVerifiedStep`, `step_verify.ts`): the
 * check of a trainer's answer to a challenge (`step_check.ts`) and the check of a training fraud
 * proof (`training_fraud_proof.ts`) both hand each opened step to a {@link StepRerun}.
 *
 * tfjs computes synchronously on the thread that calls it, and one step's re-run took up to
 * 4.3 s on a loaded 2-core machine (stop 76, `opening_window.ts`). On the node's main thread no
 * socket is read meanwhile: keepalives stall and trainers drop the coordinator's connection and
 * join again, though the check yields a turn between steps (`step_check.ts`). The trainer's
 * engine and the coordinator's held-out evaluator already run in workers of their own
 * (`trainer_engine.ts`, `held_out_evaluator.ts`); {@link WorkerStepRerun} does the same for the
 * validator's re-runs. It runs the very function the main thread ran
 * ({@link IN_PROCESS_STEP_RERUN}: the same wasm kernels on the same inputs), and everything signed
 * — the verdict, the fraud proof and its hash — is still made on the main thread from what it
 * answers: the verdicts are the bytes they were.
 *
 * A worker that fails (an uncaught error in it; an error in its re-run that is not a
 * `TrainingError`, such as its wasm engine's `Aborted()` after it ran out of memory, which every
 * later re-run on that engine repeats; or silent past `silenceMs` while it owes an answer: a worker
 * ended by `Deno.exit` or dropped by the runtime sends no event at all) is
 * reported (one log line), terminated and replaced by a fresh one; the step it was re-running is
 * re-run there ({@link RERUN_ATTEMPTS} tries in all), and the steps queued behind it are sent
 * again at no cost to their tries. A step whose tries are spent fails with `step_rerun_failed`:
 * the check throws, and its caller ends it as a check that could not be made here (see
 * docs/TRAINING.md, "Where the re-run runs", for who pays in each ending).
 *
 * A worker that runs out of JS heap is not one of these: Deno gives workers no heap limit of their
 * own, and V8 ends the whole process ("Fatal JavaScript out of memory", exit 133) before any event
 * reaches this thread: the node's process ends. A trainer cannot cause it: a re-run's memory is
 * set by the round, not by what a trainer sends (the states decode only to the round's
 * architecture, `verifyStepOpening`; the batch size and sample bytes are the round's
 * hyper-parameters, which the coordinator pins; a sample longer than the model's context fails
 * before tfjs computes), and the worker holds one step at a time.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import type { EvaluatorTimers } from "./held_out_evaluator.ts";
import type { TrainingReceipt } from "./training_receipt.ts";
import {
  type CheckStepOptions,
  checkVerifiedStep,
  type StepClaimReason,
  type StepMeasure,
  type VerifiedStep,
} from "./step_verify.ts";
import { TrainingError } from "./training_error.ts";

/** What re-running one opened step answers (`checkVerifiedStep`'s result). */
export type StepRerunResult =
  & ({ ok: true } | { ok: false; reason: StepClaimReason; detail: string })
  & StepMeasure;

/** Re-runs opened steps: `checkVerifiedStep`, on this thread or elsewhere. */
export interface StepRerun {
  /** `checkVerifiedStep(receipt, step, options, only)`, wherever it runs. */
  check(
    receipt: TrainingReceipt,
    step: VerifiedStep,
    options: CheckStepOptions,
    only?: StepClaimReason,
  ): Promise<StepRerunResult>;
}

/** Re-runs on the calling thread (the worker's inside; checks outside a node: tests, tools). */
export const IN_PROCESS_STEP_RERUN: StepRerun = { check: checkVerifiedStep };

/** Main thread → re-run worker. */
export interface StepRerunRequest {
  /** Answered by this id. */
  id: number;
  /** What to re-run: `checkVerifiedStep`'s arguments. */
  receipt: TrainingReceipt;
  step: VerifiedStep;
  options: CheckStepOptions;
  only?: StepClaimReason;
}

/**
 * Re-run worker → main thread: the step's result, a `TrainingError` of its inputs (`code`), or
 * `fatal`: the re-run failed in a way that is the worker's, not the step's (its engine broke), and
 * the worker has closed itself.
 */
export type StepRerunReply =
  | { id: number; ok: true; result: StepRerunResult }
  | { id: number; ok: false; code: string; message: string }
  | { id: number; ok: false; fatal: true; message: string };

/**
 * How long a worker owing an answer may stay silent before it is called dead: 10 minutes, as the
 * held-out evaluator's (`EVALUATOR_SILENCE_MS`). A live worker answers one step in seconds (4.3 s
 * the worst `tiny` step measured, on a loaded machine); a silence as long as the longest opening
 * window (`MAX_OPENING_WINDOW_MS`) is no slow machine, and without a bound a worker that ended
 * with no event left its check, and the receipt it holds `challenged`, waiting for good.
 */
export const RERUN_SILENCE_MS = 600_000;

/**
 * Tries a step gets, each on a worker of its own, before its check fails with
 * `step_rerun_failed`: a worker whose wasm engine ran out of memory (the 4 GiB a wasm heap holds,
 * or the machine's), or one the runtime dropped, is a passing cause worth one fresh worker; a step
 * that brings down two in a row is not re-run a third time (each try costs a worker's start, about
 * a second of CPU for tfjs and its wasm). A worker out of JS heap is no such cause: it ends the
 * node (see the module doc).
 */
export const RERUN_ATTEMPTS = 2;

/** Options of a {@link WorkerStepRerun}. */
export interface WorkerStepRerunOptions {
  /** How long a worker owing an answer may stay silent (default {@link RERUN_SILENCE_MS}). */
  silenceMs?: number;
  /** The timers of the silence bound (default the global ones; tests fire them by hand). */
  timers?: EvaluatorTimers;
  /** Where a failed worker is reported (one line each). */
  log?: (line: string) => void;
  /**
   * Start a worker (default `_step_rerun_worker.ts`, a module worker): tests start stand-ins that
   * are slow or die.
   */
  startWorker?: () => Worker;
}

/** A step sent to the worker and not answered yet. */
interface Owed {
  /** What was sent. */
  request: StepRerunRequest;
  /** Workers that failed while this step was the one they were re-running. */
  failures: number;
  /** Settles the caller's check. */
  waiter: PromiseWithResolvers<StepRerunResult>;
}

/**
 * Re-runs steps in a worker of its own (`_step_rerun_worker.ts`), started at the first step and
 * terminated by {@link WorkerStepRerun.close}; steps run there one after another, in the order
 * asked (one tfjs engine). See the module doc for a worker that fails.
 */
export class WorkerStepRerun implements StepRerun {
  readonly #silenceMs: number;
  readonly #timers: EvaluatorTimers;
  readonly #log: (line: string) => void;
  readonly #startWorker: () => Worker;
  #worker: Worker | undefined;
  /** The steps owed, in the order sent: the worker answers them in that order. */
  readonly #owed = new Map<number, Owed>();
  #next = 0;
  #closed = false;
  #silence: unknown;

  /**
   * Make the re-run; its worker starts at the first step.
   * @param options Its silence bound, timers, log and worker.
   */
  constructor(options: WorkerStepRerunOptions = {}) {
    this.#silenceMs = options.silenceMs ?? RERUN_SILENCE_MS;
    this.#timers = options.timers ?? {
      now: () => Date.now(),
      setTimeout: (callback, ms) => setTimeout(callback, ms),
      clearTimeout: (handle) => clearTimeout(handle as number),
    };
    this.#log = options.log ?? (() => {});
    this.#startWorker = options.startWorker ??
      (() =>
        new Worker(new URL("./_step_rerun_worker.ts", import.meta.url).href, { type: "module" }));
  }

  /** See {@link StepRerun.check}; rejects with `step_rerun_failed` or `step_rerun_stopped`. */
  check(
    receipt: TrainingReceipt,
    step: VerifiedStep,
    options: CheckStepOptions,
    only?: StepClaimReason,
  ): Promise<StepRerunResult> {
    if (this.#closed) {
      return Promise.reject(new TrainingError("step_rerun_stopped", "the step re-run stopped"));
    }
    const request: StepRerunRequest = {
      id: this.#next++,
      receipt,
      step,
      // Only what the re-run reads crosses: a caller's options may hold more (keys, clocks).
      options: {
        arch: options.arch,
        startWeights: startWeightsFor(receipt, step, options, only),
        ...(options.delta === undefined ? {} : { delta: options.delta }),
        ...(options.backend === undefined ? {} : { backend: options.backend }),
        ...(options.slack === undefined ? {} : { slack: options.slack }),
      },
      ...(only === undefined ? {} : { only }),
    };
    const owed: Owed = { request, failures: 0, waiter: Promise.withResolvers() };
    this.#owed.set(request.id, owed);
    this.#send(owed);
    return owed.waiter.promise;
  }

  /**
   * `step` as it crosses to the worker, and the buffer to transfer with it: its samples copied
   * into one buffer of their own (the batch's bytes). They are views of the trainer's whole
   * decoded answer (`verifyOpeningsPlaintext`), and a posted view carries its whole buffer: every
   * step sent cloned all of the answer's plaintext, 32 MiB at hidden size 128 (review s77 vtrain
   * F4). The states are cloned, not transferred: a step is sent again to a fresh worker when its
   * worker fails, and the caller reads the last step's end weights after.
   */
  static #crossing(step: VerifiedStep): { step: VerifiedStep; transfer: ArrayBuffer } {
    const batch = new Uint8Array(step.samples.reduce((bytes, sample) => bytes + sample.length, 0));
    let at = 0;
    const samples = step.samples.map((sample) => {
      const copy = batch.subarray(at, at += sample.length);
      copy.set(sample);
      return copy;
    });
    return { step: { ...step, samples }, transfer: batch.buffer };
  }

  /** Terminate the worker; the steps owed fail with `step_rerun_stopped`. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#disarmSilence();
    this.#worker?.terminate();
    this.#worker = undefined;
    const stopped = new TrainingError("step_rerun_stopped", "the step re-run stopped");
    for (const owed of this.#owed.values()) owed.waiter.reject(stopped);
    this.#owed.clear();
  }

  /** Post `owed` to the worker (started if none), bounding its silence if nothing else is owed. */
  #send(owed: Owed): void {
    const worker = this.#worker ??= this.#start();
    if (this.#silence === undefined) this.#armSilence();
    // Made afresh for each send (a retry too): the samples' buffer goes with it, transferred.
    const { step, transfer } = WorkerStepRerun.#crossing(owed.request.step);
    try {
      worker.postMessage({ ...owed.request, step }, [transfer]);
    } catch (error) {
      // Not cloneable: nothing was sent, and nothing is owed for it.
      this.#owed.delete(owed.request.id);
      if (this.#owed.size === 0) this.#disarmSilence();
      owed.waiter.reject(error);
    }
  }

  #start(): Worker {
    const worker = this.#startWorker();
    worker.onmessage = (event: MessageEvent<StepRerunReply>) => {
      if (worker !== this.#worker) return;
      const reply = event.data;
      const owed = this.#owed.get(reply.id);
      if (owed === undefined) return;
      if (!reply.ok && "fatal" in reply) {
        // Not the step's fault: it stays owed (the oldest: the one charged a try) and goes to a
        // fresh worker. Kept, the broken engine failed every later re-run with no line logged
        // (review s77 vtrain F2).
        this.#workerFailed(`its re-run failed: ${reply.message}`);
        return;
      }
      this.#owed.delete(reply.id);
      // The next step owed, if any, gets a whole silence bound of its own.
      this.#disarmSilence();
      if (this.#owed.size > 0) this.#armSilence();
      if (reply.ok) owed.waiter.resolve(reply.result);
      else owed.waiter.reject(new TrainingError(reply.code, reply.message));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      if (worker !== this.#worker) return;
      this.#workerFailed(`an uncaught error in it: ${event.message}`);
    };
    return worker;
  }

  /**
   * Drop the failed worker; charge the failure to the step it was re-running (the oldest owed:
   * it answers in order), fail that step if its tries are spent, and send every step still owed
   * to a fresh worker.
   */
  #workerFailed(why: string): void {
    this.#disarmSilence();
    this.#worker?.terminate();
    this.#worker = undefined;
    const running = this.#owed.values().next().value;
    if (running === undefined) return;
    running.failures++;
    const spent = running.failures >= RERUN_ATTEMPTS;
    const { step, receipt } = running.request;
    this.#log(
      `training validator: the step re-run worker failed (${why}) while it re-ran step ` +
        `${step.step} of a receipt of trainer ${toHex(receipt.trainer).slice(0, 16)}; ` +
        (spent
          ? `${running.failures} workers failed on it: its check ends without a verdict ` +
            `(step_rerun_failed)`
          : `re-running it on a fresh worker (try ${running.failures + 1} of ${RERUN_ATTEMPTS})`),
    );
    if (spent) {
      this.#owed.delete(running.request.id);
      running.waiter.reject(
        new TrainingError(
          "step_rerun_failed",
          `step ${step.step} brought down ${running.failures} re-run workers (last: ${why})`,
        ),
      );
    }
    for (const owed of this.#owed.values()) this.#send(owed);
  }

  #armSilence(): void {
    this.#silence = this.#timers.setTimeout(() => {
      this.#silence = undefined;
      this.#workerFailed(`no answer for ${this.#silenceMs} ms: the worker ended or hangs`);
    }, this.#silenceMs);
  }

  #disarmSilence(): void {
    if (this.#silence === undefined) return;
    this.#timers.clearTimeout(this.#silence);
    this.#silence = undefined;
  }
}

/**
 * The start weights a step's re-run reads (`checkVerifiedStep`: state 0 against them, state H
 * against them and the delta), else none: the other steps' copies to the worker would be a
 * whole model each for nothing.
 */
function startWeightsFor(
  receipt: TrainingReceipt,
  step: VerifiedStep,
  options: CheckStepOptions,
  only?: StepClaimReason,
): CheckStepOptions["startWeights"] {
  const want = (reason: StepClaimReason) => only === undefined || only === reason;
  const reads = (step.step === 0 && want("start_mismatch")) ||
    (step.step === receipt.steps - 1 && Boolean(options.delta) && want("delta_mismatch"));
  return reads ? options.startWeights : new Map();
}
