/**
 * The requester's side of the InferenceActor's `submit` message: {@link submitJob} asks the
 * actor, unwraps its {@link SubmitReply} into a handle or the typed refusal, and ties the
 * requester's `AbortSignal` to the job (a `cancel` message while the answer is pending, the
 * handle's `cancel()` after). It runs in the requester, not in the actor.
 *
 * Re-exported by `inference_actor.ts` (and `mod.ts`), where its users import it from; used by
 * `LocalInferencePort` and tests. Not part of the public API under this path.
 *
 * @module
 */
import type { ActorRef } from "./actor_ref.ts";
import type { TextJobHandle } from "./inference_job.ts";
import type { InferenceMessage, SubmitReply, TensorJobHandle } from "./inference_actor.ts";
import { tellQuietly } from "./_prepared_jobs.ts";
import { type Job, jobId as computeJobId, type TensorJob, type TextJob } from "../protocols/job.ts";

/** Options of {@link submitJob}. */
export interface SubmitJobOptions {
  /**
   * Aborting it cancels the job (queued or running): by `handle.cancel()` once the job is
   * accepted, by a `cancel` message while the submission is still unanswered.
   */
  signal?: AbortSignal;
  /** How long to wait for the actor's answer; default two minutes (covers a model load). */
  timeoutMs?: number;
  /** Text jobs: top tokens listed per position (`SubmitJob.topLogprobs`); default 0. */
  topLogprobs?: number;
  /** Text jobs: resume after these delivered token ids (`SubmitJob.resume`). */
  resume?: readonly number[];
  /** Text jobs: the bytes of the job's `input` (`SubmitJob.input`). */
  input?: Uint8Array;
  /** The job's place in its model's queue while it waits (`SubmitJob.onQueued`). */
  onQueued?: (position: number) => void;
  /** Who asked, for the queue's turns and per-client cap (`SubmitJob.client`); default `""`. */
  client?: string;
}

/**
 * Submit a text job and unwrap the reply: resolves to the handle, or rejects with the typed
 * refusal (`TooManyJobsError`, `UnknownModelError`, `ContextLengthError`, ...).
 *
 * @example
 * ```ts ignore
 * const handle = await submitJob(inference, { kind: "text", model, prompt, params, nonce });
 * ```
 */
export function submitJob(
  ref: ActorRef<InferenceMessage>,
  job: TextJob,
  options?: SubmitJobOptions,
): Promise<TextJobHandle>;
/** Submit a one-shot tensor job; resolves to its handle (outputs arrive on `handle.outputs`). */
export function submitJob(
  ref: ActorRef<InferenceMessage>,
  job: TensorJob,
  options?: SubmitJobOptions,
): Promise<TensorJobHandle>;
/** Submit any job. */
export async function submitJob(
  ref: ActorRef<InferenceMessage>,
  job: Job,
  options?: SubmitJobOptions,
): Promise<TextJobHandle | TensorJobHandle> {
  const signal = options?.signal;
  const sent = !signal?.aborted; // an ask with an aborted signal is refused before it is sent
  let reply: SubmitReply;
  try {
    reply = await ref.ask<SubmitReply>(
      {
        type: "submit",
        job,
        topLogprobs: options?.topLogprobs,
        resume: options?.resume,
        input: options?.input,
        onQueued: options?.onQueued,
        client: options?.client,
      },
      { timeoutMs: options?.timeoutMs ?? SUBMIT_TIMEOUT_MS, signal },
    );
  } catch (error) {
    // Gave up waiting (aborted, timed out): the actor still handles the submission, and may
    // accept the job with nobody left to read it. The cancel queues behind the submission, so
    // it reaches the job once it exists.
    if (sent) {
      let jobId: string | undefined;
      try {
        jobId = computeJobId(job);
      } catch {
        // No id (no canonical bytes): the actor refuses such a job, so nothing is left to cancel.
      }
      if (jobId !== undefined) tellQuietly(ref, { type: "cancel", jobId });
    }
    throw error;
  }
  if (!reply.accepted) throw reply.error;
  const { handle } = reply;
  if (signal !== undefined) cancelOnAbort(signal, handle);
  return handle;
}

/** Cancel `handle` when `signal` aborts, and forget the signal once a text job has ended. */
function cancelOnAbort(signal: AbortSignal, handle: TextJobHandle | TensorJobHandle): void {
  if (signal.aborted) {
    handle.cancel();
    return;
  }
  const onAbort = () => handle.cancel();
  signal.addEventListener("abort", onAbort, { once: true });
  // A long-lived signal must not keep every finished job's handle reachable.
  const ended = handle.kind === "text" ? handle.done : handle.outputs;
  ended.finally(() => signal.removeEventListener("abort", onAbort)).catch(() => {});
}

/**
 * How long a submission may take to be answered. It covers a first-time model load (seconds
 * for a large ONNX file); after that, answers take microseconds.
 */
const SUBMIT_TIMEOUT_MS = 120_000;
