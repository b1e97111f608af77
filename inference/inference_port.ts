/**
 * The inference port: the one interface through which anything asks for inference.
 *
 * The HTTP and WebSocket edge, the relay that forwards a client's job to another node, and
 * library users all talk to an {@link InferencePort}; whether the model runs in this process
 * (`LocalInferencePort`, over the InferenceActor) or on a peer (`RemoteInferencePort`, over a
 * `Connection`) is the port's business. Everything a port hands back is plain data plus one
 * token stream, so the same handle shape works on both sides of a wire:
 *
 * ```
 * submit(job, { signal }) → InferenceHandle { jobId, model, promptTokens, tokens, done, cancel }
 * ```
 *
 * `tokens` is pull-driven (a slow reader slows only its own job; a job nobody reads waits, and
 * its `done` with it) and cancelling it — or aborting `signal`, or calling `cancel()` — stops the
 * computation wherever it runs. `done` never rejects: it resolves with the {@link JobSummary},
 * which carries the worker's signed receipt.
 *
 * @module
 */
import { type TextJob, textJobSchema } from "../protocols/job.ts";
import { InvalidGenerationParamsError } from "./errors.ts";
import type { TopLogprob } from "./top_logprobs.ts";
import type { SignedStream } from "../protocols/stream_commitment.ts";

/**
 * What the edge and the client APIs need to know about a served model; the engine's
 * `ModelInfo` has these fields (and more).
 */
export interface ServedModelInfo {
  /**
   * The model's identity (`model_identity.ts`): a text model's names its `model.onnx`,
   * `config.json` and tokenizer files; a tensor model's is the CID of `model.onnx`.
   */
  readonly cid: string;
  /** Human-readable name (also accepted where a model is named in a request). */
  readonly name: string;
  /** Text generation or one-shot tensor model. */
  readonly kind: "text" | "tensor";
  /** Context window in tokens (text models). */
  readonly contextLength?: number;
  /** The execution provider sessions run on (`cpu`, `cuda`); unset until a model loads. */
  readonly executionProvider?: string;
  /**
   * Set when the provider asked for (`cuda`, `webgpu`) could not be used and the model runs on
   * CPU instead: the reason.
   */
  readonly executionProviderFallback?: string;
}

/**
 * A list of served models: what a port's `models()` reads from (a `ModelRegistry` is one), and
 * what the edge may be given to list something else.
 */
export interface ModelCatalog {
  /** Every served model. */
  list(): readonly ServedModelInfo[] | Promise<readonly ServedModelInfo[]>;
}

/** One generated token as a port delivers it (no logits: those stay next to the model). */
export interface StreamedToken {
  /** Output position t (0-based among generated tokens). */
  index: number;
  /** The token id. */
  tokenId: number;
  /** Newly complete text; "" while a UTF-8 character is incomplete, and for the EOS token. */
  text: string;
  /**
   * Natural log of the token's probability under the model (log-softmax of its logits row,
   * before temperature and cuts): the `logProb` of the token's fingerprint. Absent when the
   * port does not know it.
   */
  logprob?: number;
  /**
   * The most likely tokens at this position (most likely first, same log-probabilities as
   * `logprob`), when the job was submitted with {@link SubmitOptions.topLogprobs} > 0.
   */
  topLogprobs?: TopLogprob[];
  /** Set on the last token of the stream. */
  finishReason?: "stop" | "length";
}

/** Why a text job ended. */
export type FinishReason = "stop" | "length" | "cancelled" | "error";

/** Token counts of a finished text job. */
export interface JobUsage {
  /** Tokens in the prompt. */
  promptTokens: number;
  /** Tokens generated. */
  completionTokens: number;
}

/** Timings of a finished job, in milliseconds from its submission. */
export interface JobTimings {
  /** Time spent waiting for a slot. */
  queueMs: number;
  /** Submission to first token (`NaN` when no token came). */
  ttftMs: number;
  /** Submission to the end of the stream. */
  totalMs: number;
  /** Generated tokens per second, measured from the job's start (after the queue). */
  tokensPerS: number;
}

/** How a text job ended; `done` of an {@link InferenceHandle} resolves to this, never rejects. */
export interface JobSummary {
  /** The job id. */
  jobId: string;
  /** Why it ended. */
  finishReason: FinishReason;
  /** Token counts. */
  usage: JobUsage;
  /** Timings. */
  timings: JobTimings;
  /** The worker's signed receipt, when a prover ran and succeeded. */
  receipt?: unknown;
  /** The error that ended the job (`finishReason: "error"`) or the prover's failure. */
  error?: { code: string; message: string };
  /**
   * The key (hex) of the peer worker that ran the job, when a router forwarded it
   * (`NetworkInferencePort`); absent for a job run on this node. The edge's log names it.
   */
  worker?: string;
}

/** What a requester gets back for an accepted text job. */
export interface InferenceHandle {
  /** The job id (`jobId(job)`). */
  jobId: string;
  /** Information about the model that runs it. */
  model: ServedModelInfo;
  /** Tokens in the prompt. */
  promptTokens: number;
  /**
   * For a job resumed after a prefix (`SubmitOptions.resume`): the text the model that runs it
   * decodes the prefix's ids to, its stream decoder primed with them and not flushed (a
   * character split across the cut comes with the first token after it). Its receipt signs this
   * text followed by the text of `tokens`. Absent for a job from the start, and where the worker
   * did not say (one that predates it).
   */
  resumedText?: string;
  /**
   * The token stream. Cancelling it cancels the job.
   *
   * It is pull-driven: the model computes a token only when the stream is read (a remote
   * worker runs at most its credit window ahead), so a job nobody reads waits at its first
   * unread token, holding its slot, and does not end on its own, however short it is. Read it
   * to the end, or cancel it (or call {@link cancel}, or abort the submission's signal).
   */
  tokens: ReadableStream<StreamedToken>;
  /**
   * Resolves when the job has ended and its receipt (if any) is signed. Never rejects.
   *
   * A job ends when its last token is read, when it is cancelled ({@link cancel}, cancelling
   * `tokens`, the submission's signal: `finishReason: "cancelled"`), or when it fails
   * (`finishReason: "error"` with the `error` code). Since `tokens` is pull-driven, a job whose
   * tokens nobody reads does not end by itself, and `done` stays pending until it is read or
   * cancelled. Over a `RemoteInferencePort`, a closed connection ends the job whatever the
   * reader does: `done` resolves with `finishReason: "error"` and `error.code`
   * `connection_closed` (or why the connection closed, such as `peer_timeout`).
   */
  done: Promise<JobSummary>;
  /** Cancel the job whether queued or running (same as cancelling `tokens`); `done` resolves. */
  cancel(): void;
  /**
   * Over a `RemoteInferencePort`: the worker's signed commitment to the tokens read so far
   * (`protocols/stream_commitment.ts`), what a requester holds against a worker that streamed
   * tokens that are not the job's output. Absent for a local job, and over a connection without
   * a handshake (no key to check against).
   */
  signedStream?: SignedStream;
  /**
   * Over a `RemoteInferencePort`: the tokens of this run taken off the worker's connection so far
   * (a resumed prefix not counted). An event carries several, and `tokens` hands them out one by
   * one, so up to an event's tokens less one may wait in `tokens` unread; the worker counts them
   * read (a cancel's floor, a stream taken to its end: `serve_inference.ts`, `CancelSeen`), and a
   * forwarding node reads them at its client's cancel to check the receipt over them
   * (`network/failover.ts`). Absent for a local job, whose tokens are computed as they are read.
   */
  received?: () => number;
}

/** Counters and gauges of whatever runs the jobs (served on `/metrics`). */
export interface InferenceStats {
  /** Jobs that got a slot and started. */
  jobsStarted: number;
  /** Jobs that ended normally (stop or length, or a tensor job that returned). */
  jobsFinished: number;
  /** Jobs cancelled (queued or running). */
  jobsCancelled: number;
  /** Jobs that ended with an error. */
  jobsFailed: number;
  /** Jobs refused because the queue was full. */
  jobsRejected: number;
  /** Tokens generated over all jobs. */
  tokensGenerated: number;
  /** Jobs running now. */
  activeJobs: number;
  /** Jobs waiting for a slot now. */
  queuedJobs: number;
  /**
   * Jobs run side by side when every slot is taken, over the models served: each model's batch
   * seats (`GenerativeModel.batchCapacity`), or the InferenceActor's `concurrency` for one that
   * reports none, summed (the actor keeps a lane per model). What a node's hello advertises as
   * its `slots`. 0 from a port that runs no job itself (a remote or forwarding one).
   */
  slots: number;
}

/** All-zero {@link InferenceStats}: where every port's counters start. */
export function emptyInferenceStats(): InferenceStats {
  return {
    jobsStarted: 0,
    jobsFinished: 0,
    jobsCancelled: 0,
    jobsFailed: 0,
    jobsRejected: 0,
    tokensGenerated: 0,
    activeJobs: 0,
    queuedJobs: 0,
    slots: 0,
  };
}

/**
 * `job` checked against `textJobSchema` (strict: a field it does not know is refused, as the wire
 * refuses it), or an {@link InvalidGenerationParamsError} naming the first field that fails.
 * Every port checks a submission with it before anything else, so a bad job is refused with one
 * code whichever port takes it, and a local port never runs (and signs) a job the wire would
 * refuse.
 *
 * @param job The job as submitted.
 * @returns The checked job.
 */
export function checkTextJob(job: TextJob): TextJob {
  const checked = textJobSchema.safeParse(job);
  if (checked.success) return checked.data;
  const issue = checked.error.issues[0];
  const field = issue.path.length > 0 ? issue.path.map(String).join(".") : "job";
  throw new InvalidGenerationParamsError(`${field}: ${issue.message}`);
}

/** Options of {@link InferencePort.submit}: how the job is delivered, never what it is. */
export interface SubmitOptions {
  /** Aborting it cancels the job (queued or running). */
  signal?: AbortSignal;
  /**
   * Each token also carries this many of the most likely tokens at its position
   * ({@link StreamedToken.topLogprobs}), 0 to `MAX_TOP_LOGPROBS` (20). An output option, not
   * part of the job: its id, tokens and receipt are the same with any value. Default 0.
   */
  topLogprobs?: number;
  /**
   * Resume the job after these token ids, which the requester already has (delivered by a
   * worker that was lost): the stream starts at position `resume.length` and the receipt covers
   * the whole output (`inference/resumed_generation.ts`). Refused with `invalid_resume` or
   * `resume_mismatch` where it cannot be honoured exactly. Absent or empty: from the start.
   */
  resume?: readonly number[];
  /**
   * Called while the job waits for a slot, with its place in the model's queue (1: next), each
   * time the place changes, and with 0 when it leaves the queue for a slot; never for a job
   * that starts at once. A forwarding port passes on its worker's (the `queued` event of
   * `inference.submit`, repeated while unchanged), so it may be called with the same place
   * again. `QueuePosition` (`inference/queue_position.ts`) turns the calls into reports. Keep it cheap: it runs on the
   * port's own turn.
   */
  onQueued?: (position: number) => void;
  /**
   * Who asked (an API key's id, a client's address, {@link THIS_MACHINE_CLIENT}, a peer's key in
   * hex): a port that queues jobs serves waiting clients in turn and caps each remote one's share
   * of the queue (`actors/_fair_queue.ts`). Absent: the client `""`, one for every caller that
   * names none. A forwarding port does not send it on: its worker counts the forwarding node as
   * the client.
   */
  client?: string;
}

/**
 * {@link SubmitOptions.client} for requests that carry neither a key nor an address: the loopback
 * clients of this node's operator, who share one turn. Here, not at the edge, because the queue
 * reads it too: the operator's own clients are not held to a remote client's share.
 */
export const THIS_MACHINE_CLIENT = "this machine";

/**
 * Honour {@link SubmitOptions.signal} for a job whose end a port reads only when the client
 * pulls (a relayed stream): `cancel` runs once the signal aborts, at once if it has, whether or
 * not the client still reads, until `ended` settles (then the listener is removed). A client
 * that aborted and stopped reading otherwise waited for `done` for ever.
 */
export function cancelOnAbort(
  signal: AbortSignal | undefined,
  cancel: (reason: unknown) => void,
  ended: Promise<unknown>,
): void {
  if (signal === undefined) return;
  const abort = () => cancel(signal.reason);
  if (signal.aborted) return abort();
  signal.addEventListener("abort", abort, { once: true });
  ended.finally(() => signal.removeEventListener("abort", abort)).catch(() => {});
}

/** Submits text jobs somewhere and hands back their streams. */
export interface InferencePort {
  /**
   * Submit a text job. Rejects with a typed refusal before any token, with the same code on
   * every port: `invalid_generation_params` (an `InvalidGenerationParamsError`: the job fails
   * `textJobSchema` — a parameter out of range, a `requester` that is not 64 hex digits, ... —
   * or `topLogprobs` is out of range), `unknown_model`, `wrong_model_kind`, `empty_prompt`,
   * `context_length_exceeded`, `too_many_jobs`, `invalid_resume` / `resume_mismatch`; over a
   * connection also `connection_closed` (or `peer_timeout`) and the peer's own codes.
   */
  submit(job: TextJob, options?: SubmitOptions): Promise<InferenceHandle>;
  /** The models jobs may name. */
  models(): Promise<readonly ServedModelInfo[]>;
  /** Counters of the jobs this port has run or relayed. */
  stats(): Promise<InferenceStats>;
}
