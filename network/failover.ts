/**
 * Failover of a forwarded job: when the worker streaming it is lost mid-stream, the job resumes
 * on another worker from the last token the client got, and the client's stream goes on as if
 * nothing happened — no token twice, none missing.
 *
 * ```
 * client ◀── tokens 0…k−1 ── router ◀── worker A   (connection lost after k tokens)
 *                            router ── submit { job, resume: ids 0…k−1 } ──▶ worker B
 * client ◀── tokens k…n−1 ── router ◀── worker B   (start { resumedFrom: k }, tokens from k)
 * ```
 *
 * B replays the prefix (checks each token is what the job's seeded sampling rule gives and
 * commits to it) and continues from position k; the continuation is what A would have sent,
 * because draw t depends only on `(seed, t)` (`inference/resumed_generation.ts`). B's receipt
 * is an ordinary one over all n tokens and the whole text, so the router checks it as any
 * receipt, and the job still has exactly one receipt: A signed none (its job was cut).
 *
 * A signed ids only (`stream_commitment.ts`): the text it sent beside them is its word. B's start
 * says the text its model decodes the prefix's ids to (`resumedText`), and its receipt is checked
 * over that text, not the text relayed. Where they differ and B's receipt checks out, the client,
 * whose text is not its tokens' by B's word, is told `delivered_tokens_diverged` instead of being
 * handed a receipt over other text (review s81 failover F1), and B's receipt goes the normal way
 * with its validator asked to challenge it whatever the coin: B made up the text and signed it
 * as well as not, so A is kept off the model only once that challenge finds B's receipt valid
 * (review s81 vfotext F2; who pays in each case: {@link RelayedOutput.disputed}). Only the word
 * of the worker that finishes counts, checked against its own receipt: a taker that signs
 * nothing (lost, hedged away) leaves no word behind (F1). A taker that does not say the text (a
 * worker from before `resumedText`) and whose receipt fails over the text alone is not blamed for
 * it ({@link RelayedOutput.unsaid}, F3).
 *
 * Only the loss of the worker fails over: its connection failed (`connection_closed`,
 * `peer_timeout`, or any other way a `Connection` closes under a stream), or it went silent with
 * its connection alive and the job was cancelled there (`worker_stalled`, the remote port's stall
 * or first-token timeout: a job kept queued by a busy worker moves on too), or its stream broke the
 * protocol ({@link WORKER_FAULT_CODES}), or it failed the job for any other reason of its own (its
 * model died, it cancelled the job): every error a worker ends a job it started with but that
 * its requester stopped reading ({@link STARTED_JOB_ERROR_CODES}). An error about the job itself
 * ({@link JOB_ERROR_CODES}) every worker would give before its `start`: after it, it is the
 * worker's own. A normal end, the client's cancel, and a requester that stopped reading end the
 * stream as they always did. When no other worker takes the job (none connected, or each
 * refuses), the stream ends with a message that says so, and a code of this side's: the loss's
 * own code where this side saw the loss itself ({@link isLossSeenHere}: its connection closed, its
 * timers ran out, its own check of the stream failed), else `worker_failed` with the worker's code
 * and message in the text only — a worker's error frame names any code it likes, and passed on it
 * told clients with good keys `invalid_api_key` (review s71, as review s52 found before the start).
 *
 * A job may spend {@link MAX_WORKERS_PER_JOB} workers: lost ones and ones that refused it for
 * a reason that cost something (a failing model, no start in time, a resume it could not
 * replay). A worker that turned it away as full (`CAPACITY_REFUSAL_CODES`) spent nothing — no
 * token, no prefill, one round trip — so it does not count, and the next worker that serves
 * the model is asked, up to {@link MAX_WORKERS_ASKED_PER_JOB} in all. The budget is one for the
 * whole job: the workers that refused it before its first worker started it count. Those that
 * refused it at a cost, and those the job lost, are never asked to resume it. Those that only
 * turned it away as full (at its start or at a takeover), or only had it queued (a hedge took it
 * over), are asked *last*: a takeover asks every worker not tried yet first, and only when none
 * is left asks them, each once per search; one that refuses as full again ends that try, not the
 * job, and is not asked again for it. Never asking them ended jobs "no other connected worker
 * serves the model" while one that had merely been full was there (review s71); asking them
 * first would hammer a full worker with every job's takeovers.
 *
 * A worker that holds the job without its first token (queued, "place 1", or silent while it
 * streams other jobs) for {@link DEFAULT_QUEUE_HOLD_MS} while the client waits is not waited on
 * alone: another worker is asked to take the job over beside it (a *hedge*). The first of the
 * two to send a token keeps the job, and the other is cancelled; a hedge that queues the job
 * too, refuses it, or fails is cancelled and the job keeps its place, and another is asked
 * after the next hold. So a job leaves a queue only for a worker that runs it at once, and a
 * worker that claims a place it never gives up holds the client for the hold, not for the
 * remote port's first-token timeout (10 min). A hedge spends none of the job's tries; the
 * worker it replaced is asked last for a while, as one full against its word.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { InferenceStreamError, WorkerStalledError } from "../inference/remote_errors.ts";
import { ConnectionClosedError } from "../protocols/protocol_errors.ts";
import { HeldCancelError, heldOf } from "../protocols/held_cancel.ts";
import { refusedPrefixPosition } from "../inference/resumed_generation.ts";
import { toHex } from "../protocols/hash.ts";
import {
  type SignedStream,
  type StreamClaim,
  streamEvidence,
} from "../protocols/stream_commitment.ts";
import {
  cancelOnAbort,
  type InferenceHandle,
  type JobSummary,
  type StreamedToken,
} from "../inference/inference_port.ts";
import {
  CAPACITY_REFUSAL_CODES,
  codeOf,
  isCapacityRefusal,
  isJobError,
  isStartedJobError,
  isWorkerFault,
  isWorkerLost,
  isWorkerRefusal,
  JOB_ERROR_CODES,
  RESUME_REFUSALS,
  STARTED_JOB_ERROR_CODES,
  WORKER_FAULT_CODES,
  WORKER_LOST_CODES,
  WORKER_REFUSAL_CODES,
} from "./_failure_codes.ts";

// Whose failure an error is, by its code (`_failure_codes.ts`): exported here, as before.
export {
  CAPACITY_REFUSAL_CODES,
  isCapacityRefusal,
  isJobError,
  isStartedJobError,
  isWorkerFault,
  isWorkerLost,
  isWorkerRefusal,
  JOB_ERROR_CODES,
  STARTED_JOB_ERROR_CODES,
  WORKER_FAULT_CODES,
  WORKER_LOST_CODES,
  WORKER_REFUSAL_CODES,
};

/**
 * Most workers one job is tried on, the first included. Each resume costs the client a
 * prefill's wait; a job that lost three workers in a row is better ended with a clear error
 * than chased across a failing network.
 */
export const MAX_WORKERS_PER_JOB = 4;

/**
 * Most workers one job is asked, those that turned it away as full included: four times
 * {@link MAX_WORKERS_PER_JOB}. A full worker's refusal is one round trip, so the bound keeps a
 * job's search to 16 of them (milliseconds on a LAN, a second or two across continents) rather
 * than one per connected peer, and a crowd of fresh keys that claim room and refuse every job
 * (each is asked last once it refused: `busy_refusals.ts`) needs 16 not yet refused to turn
 * one job away.
 */
export const MAX_WORKERS_ASKED_PER_JOB = 4 * MAX_WORKERS_PER_JOB;

/**
 * A forwarded job lost its worker and could not resume on another. Its code is this side's: the
 * loss's own where this side saw it ({@link isLossSeenHere}: `connection_closed`, `peer_timeout`,
 * `worker_stalled`, `inference_stream_invalid`, what the edge maps to 502/504), else
 * {@link WORKER_FAILED}; its message says how far the job got, what the worker said, and why no
 * other worker took it.
 */
export class WorkerLostError extends VeriflowError {
  /**
   * Create it.
   * @param code The lost worker's failure code.
   * @param message What happened.
   * @param cause The lost worker's failure.
   */
  constructor(code: string, message: string, cause: unknown) {
    super(code, message, { cause });
  }
}

/**
 * A forwarded job lost its worker after tokens that are not the job's output: each worker that
 * took it over refused them (`resume_mismatch`), and none streamed on from them. The client
 * has been streamed text that is not the model's from {@link position} on; its stream ends with
 * this error rather than as if the rest were lost in the network. The lost worker signed each
 * event it streamed (`protocols/stream_commitment.ts`): its signed head goes to the router's
 * validator as a stream claim ({@link FailoverOptions.diverged}), which a replay of the
 * refused position confirms or refutes (`docs/PROOF.md`, "A lost worker's wrong tokens").
 */
export class DeliveredTokensDivergedError extends VeriflowError {
  /**
   * Create it.
   * @param message What happened, naming the worker and the position.
   * @param position The first delivered position a takeover worker said is wrong (NaN: none
   * said which).
   * @param worker The lost worker's key (hex).
   * @param cause The refusal that said where.
   */
  constructor(
    message: string,
    readonly position: number,
    readonly worker: string,
    cause: unknown,
  ) {
    super("delivered_tokens_diverged", message, { cause });
  }
}

/**
 * Default of `queueHoldMs`: how long the client waits on a worker for the job's first token
 * before another worker is asked to take the job over beside it. An honest worker that runs the
 * job at once sends its first token one prefill after its `start` (milliseconds to a few
 * seconds); thirty seconds (the start timeout) is far past that, and far short of the 10
 * minutes (`DEFAULT_FIRST_TOKEN_TIMEOUT_MS`) the remote port lets a busy worker keep a job
 * queued. Asking costs one round trip per hold, and the job keeps its place unless the other
 * worker runs it at once.
 */
export const DEFAULT_QUEUE_HOLD_MS = 30_000;

/** Hex characters of a worker key in messages. */
const KEY_CHARS = 16;

/**
 * The code a forwarded job ends with when its worker failed it with an error of its own (an error
 * frame, an `end` that says `error`) and no other worker took it over: the router's, an upstream
 * failure (502 at the edge). The worker's code goes in the message only: it chose it, and passed
 * on it was the client's code (`invalid_api_key` → 401, `rate_limited` → 429, review s71).
 */
export const WORKER_FAILED = "worker_failed";

/**
 * Whether `error`, which ended a worker's run of a job, is a loss this side saw itself: its own
 * connection to the worker closed or timed out (`ConnectionClosedError`, `peer_timeout` and
 * `too_many_refusals` included), its own timers ran out on the worker (`WorkerStalledError`), or
 * its own check of the stream failed (`InferenceStreamError`). Its code is then this side's word,
 * and the client may be told it. Anything else came from the worker (an error frame, typed or not:
 * `RemoteError`, `typedRefusal`), whatever code it names — a worker's `connection_closed` with its
 * connection up included — and is the worker's own failure, as review s52 decided for a refusal
 * with a code of its choice before the start (`isOwnFailure`, `network_inference_port.ts`).
 */
export function isLossSeenHere(error: unknown): boolean {
  return error instanceof ConnectionClosedError || error instanceof WorkerStalledError ||
    error instanceof InferenceStreamError;
}

/** Why a job left its worker mid-job for another (`veriflow_inference_failovers_total`). */
export type FailoverCause =
  /** Its connection closed or timed out under the job. */
  | "lost"
  /** It sent nothing (or too little) of the job in time: this side's timers cancelled it. */
  | "stalled"
  /** Its stream broke the inference protocol (`WORKER_FAULT_CODES`). */
  | "broken"
  /** It took the job over and refused the delivered tokens (`resume_mismatch`, …). */
  | "refused_prefix"
  /** It failed the job with an error of its own (its error frame: its model died, …). */
  | "failed";

/** Every {@link FailoverCause}, for counters that show each at 0 before it happens. */
export const FAILOVER_CAUSES: readonly FailoverCause[] = [
  "lost",
  "stalled",
  "broken",
  "refused_prefix",
  "failed",
];

/** How a hedge ended (the router's `veriflow_inference_hedges_total`). */
export type HedgeOutcome =
  /** The hedge sent a token first and took the job over. */
  | "took_over"
  /** The job stayed on its worker: it answered first, or the hedge queued, refused or failed. */
  | "kept"
  /** No other worker was there to ask. */
  | "no_worker";

/** Every {@link HedgeOutcome}, for counters that show each at 0 before it happens. */
export const HEDGE_OUTCOMES: readonly HedgeOutcome[] = ["took_over", "kept", "no_worker"];

/**
 * The {@link FailoverCause} of `error`, which ended a worker's run (`refusedResume`: a takeover's
 * refusal of the delivered tokens).
 */
function failoverCause(error: unknown, refusedResume: boolean): FailoverCause {
  if (refusedResume) return "refused_prefix";
  if (isWorkerFault(error)) return "broken";
  if (error instanceof WorkerStalledError) return "stalled";
  if (error instanceof ConnectionClosedError) return "lost";
  return "failed";
}

/** `list` with each key once (a worker full in this search is also one to ask last). */
function distinct(list: readonly Uint8Array[]): Uint8Array[] {
  const seen = new Set<string>();
  return list.filter((worker) => {
    const key = toHex(worker);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** Whether `list` holds the key `worker` (keys come as fresh arrays: compared by value). */
function holds(list: readonly Uint8Array[], worker: Uint8Array): boolean {
  const key = toHex(worker);
  return list.some((w) => toHex(w) === key);
}

/** One worker's run of the job. */
export interface WorkerAttempt {
  /** The worker's key (its connection's proven peer key). */
  worker: Uint8Array;
  /** Its handle; its token stream starts at the position the attempt resumed from. */
  handle: InferenceHandle;
  /** Unix ms when the router gave it the job (the assignment's `issuedAt`). */
  assignedAt: number;
}

/**
 * A takeover asked beside a worker that holds the job without its first token
 * ({@link FailoverOptions.queueHoldMs}): the router asks only a worker it has no reason to
 * think full, and passes each place the worker reports for the job here (not to the client).
 */
export interface HedgeRequest {
  /** The hedge worker's `queued` places (0: it left its queue). */
  onQueued(position: number): void;
}

/** What asking for another worker gave. */
export type ResumeOutcome =
  /** A worker took the job and confirmed the resume. */
  | { kind: "started"; attempt: WorkerAttempt }
  /** A worker refused it (busy, cannot resume, …): try another. */
  | { kind: "refused"; worker: Uint8Array; error: unknown }
  /** No connected worker left that serves the model. */
  | { kind: "none" };

/** What the client of a job got, across every worker. */
export interface RelayedOutput {
  /**
   * The whole text, or undefined when the client resumed after a prefix whose text it holds. After
   * a takeover whose start said the prefix's text (`InferenceHandle.resumedText`), that text
   * stands for the prefix's: the text its receipt signs, whatever the lost worker relayed.
   */
  output: string | undefined;
  /** Tokens it has: positions `0 … n−1`, its own prefix included. */
  tokens: number;
  /**
   * Where the worker that finished took the job over (0: it ran it all). Text before it came
   * from workers this job lost, which signed none of it.
   */
  resumedAt: number;
  /**
   * The finish reason of the last token the client got (undefined: no token ended the job):
   * set while the job ended otherwise, when every token was delivered and the worker's `end`
   * event (its receipt) was lost with its connection.
   */
  lastToken?: "stop" | "length";
  /**
   * Set where the worker that finished took the job over saying the prefix's ids decode to other
   * text than was relayed for them (`output` holds its text): its word, not yet checked. A taker
   * that makes the text up and signs it checks out against `output` as well as an honest one,
   * so its receipt goes the normal way (assigned to it, the requester charged) and its validator
   * is asked to challenge it whatever the coin: `valid` (the ids decode to its text) and it is
   * paid, and the relayer, which sent other text than its ids, is kept off the model (paid
   * nothing: it signed no receipt); `fraud` and the taker is slashed and unpaid, the relayer not
   * blamed; undecided, nobody is paid or blamed. The client is told `delivered_tokens_diverged`
   * either way, without the receipt (it is not over the client's text).
   */
  disputed?: TextDispute;
  /**
   * The worker that finished took the job over after tokens relayed here without saying their
   * text (a worker from before `resumedText`): `output` holds the text relayed, which its receipt
   * may not sign through no fault of its own (the relayer may have lied). A receipt withheld for
   * its text alone is then neither claimed against nor asked last for.
   */
  unsaid?: boolean;
  /**
   * Set where the client cancelled holding fewer tokens (`tokens`) than this side's reader took
   * from the workers: the tokens an edge held back as a possible stop's start, those still in the
   * relay, those a client that names its own count left unnamed. The worker signs its `cancelled`
   * receipt over no fewer than the events this side gave credit back for, which it read
   * (`CancelSeen`, `serve_inference.ts`; review s81 vcancel F2), so a receipt over a count in
   * `tokens + 1 … read.tokens` is checked over the text read to there and paid; the client is
   * told and charged its own count, and is not handed that receipt.
   */
  read?: ReadPast;
}

/** The tokens this side read past those its client holds ({@link RelayedOutput.read}). */
export interface ReadPast {
  /** Tokens read: positions `0 … tokens−1`, the client's own prefix included. */
  tokens: number;
  /**
   * The text a receipt over all of them signs, or undefined where `RelayedOutput.output` is (the
   * client resumed after a prefix whose text it holds).
   */
  output: string | undefined;
  /** The length of the text a receipt over `RelayedOutput.tokens + 1 + i` tokens signs, by `i`. */
  ends: number[];
  /**
   * The finish reason of the last token read, where it ended the job: the worker's stream was
   * taken to its end, which it counts read whole, so its finished receipt over `tokens` is owed.
   */
  last?: "stop" | "length";
}

/** A takeover's word that the text relayed for its prefix is not the ids' ({@link RelayedOutput}). */
export interface TextDispute {
  /** The first position whose relayed text differs from the taker's. */
  position: number;
  /** The worker that relayed that position (one the job lost). */
  relayer: Uint8Array;
}

/** Options of {@link withFailover}. */
export interface FailoverOptions {
  /** The job's first worker, already streaming. */
  first: WorkerAttempt;
  /**
   * Token ids the client had before this handle (it asked to resume after them itself): the
   * first worker streams from `prefix.length`, and a failover resumes after them too.
   */
  prefix?: readonly number[];
  /**
   * Start the job on a worker whose key is not in `exclude`, resuming after `prefix` (the
   * token ids the client has). Never rejects: a refusal is an outcome.
   */
  resume(
    exclude: readonly Uint8Array[],
    prefix: readonly number[],
    hedge?: HedgeRequest,
  ): Promise<ResumeOutcome>;
  /**
   * The job's summary from the worker that ended it, and what the client got: the whole text
   * (undefined when it resumed after a `prefix` whose text it holds) and how many tokens,
   * positions `0 … n−1` with the prefix's: check the receipt and return what the client is
   * told.
   */
  settle(summary: JobSummary, attempt: WorkerAttempt, relayed: RelayedOutput): JobSummary;
  /**
   * Called when the job ends with no worker to finish it after lost workers delivered tokens,
   * once for each of them that signed tokens the takeovers refused (`delivered_tokens_diverged`),
   * or for each that signed any when none was refused or no takeover judged them: its signed head
   * and a position, the evidence of a {@link StreamClaim} (the caller adds the job). The
   * takeovers' word is not the evidence: a checker replays every signed token
   * (`proof/stream_check.ts`).
   */
  diverged?(claim: Omit<StreamClaim, "job">): void;
  /** Called with each worker the job lost (for the router's bookkeeping), before resuming. */
  lost?(worker: Uint8Array, error: unknown): void;
  /**
   * Called each time the job leaves its worker mid-job and looks for another, with why (the
   * router's counters): once per failover, whether or not a worker takes the job over.
   */
  failedOver?(cause: FailoverCause): void;
  /** Called as each hedge ends, with how (the router's counters). */
  hedged?(outcome: HedgeOutcome): void;
  /**
   * Called with each worker a hedge's race left without the job while the job goes on: the
   * hedge that lost it (answered after the current worker, refused, queued, failed or unfit),
   * or the worker the hedge took it from (the router drops that worker's hold on its stake);
   * and with a worker a failover asked that answered after the client's cancel (cancelled as it
   * starts).
   */
  released?(worker: Uint8Array): void;
  /**
   * Called with each worker that took the job over and refused the delivered tokens before its
   * first token (`resume_mismatch`, `invalid_resume`), once a later worker has reproduced them
   * (it streamed on from a prefix that holds them): the refusal was the refuser's, not the
   * prefix's, and it spent one of the job's tries for nothing. Never called while no worker took
   * the prefix: a prefix every worker refuses may be the lost worker's invention, and honest
   * refusers of it are not to be blamed.
   */
  unreproduced?(worker: Uint8Array, error: unknown): void;
  /**
   * Workers the job already went through before `first` took it (they refused it at its start),
   * and how many of them it spent: `workers` refused it at a cost or called it bad, and a resume
   * never asks them; `full` only turned it away as full, and a resume asks them last. All count
   * against the job's budget of asks, which is one for the whole job.
   */
  before?: { workers: readonly Uint8Array[]; spent: number; full?: readonly Uint8Array[] };
  /**
   * The job's `maxTokens`: a worker that takes the job over may name a context window smaller
   * than the first worker's when the prompt and `maxTokens` still fit it (unknown: it may not).
   */
  maxTokens?: number;
  /** Most workers the job may spend ({@link MAX_WORKERS_PER_JOB}): lost or refusing at a cost. */
  maxWorkers?: number;
  /** Most workers to ask, those full included ({@link MAX_WORKERS_ASKED_PER_JOB}). */
  maxAsked?: number;
  /** Clock in ms for the timings of a job that failed over (default `performance.now`). */
  now?: () => number;
  /**
   * How long the client waits on a worker for the job's first token from it before another is
   * asked to take the job over beside it (default {@link DEFAULT_QUEUE_HOLD_MS}; Infinity:
   * never). Counted only while the client reads.
   */
  queueHoldMs?: number;
  /** The clock of the queue hold (default the real one; tests pass a fake clock). */
  timers?: ConnectionTimers;
  /**
   * The client's signal (`SubmitOptions.signal`): aborting it cancels the job as the handle's
   * `cancel` does, between workers too, whether or not the client still reads its tokens.
   */
  signal?: AbortSignal;
}

/**
 * The client's handle of a forwarded job that fails over to another worker when its worker is
 * lost. Its tokens, `done` and `cancel` behave as the first worker's would have; `done` carries
 * the receipt of the worker that finished, checked by `settle`.
 */
export function withFailover(options: FailoverOptions): InferenceHandle {
  return new FailoverJob(options).handle();
}

/** The client's side of one forwarded job, across the workers it runs on. */
class FailoverJob {
  readonly #o: FailoverOptions;
  readonly #now: () => number;
  readonly #done = Promise.withResolvers<JobSummary>();
  readonly #startedAt: number;
  #attempt: WorkerAttempt;
  #reader: ReadableStreamDefaultReader<StreamedToken>;
  /** Token ids the client has, in order: the prefix a resume starts after. */
  readonly #delivered: number[];
  /** How many of them it had before this handle (its own resume's prefix). */
  readonly #given: number;
  #output = "";
  /** `#output`'s length after each token delivered here (the text of a client's first k). */
  #textEnds: number[] = [];
  /**
   * Positions the client holds, as its cancel said (`#cancel`): tokens delivered past them were
   * read by its edge and never passed on, and are not the client's to pay for.
   */
  #clientHolds?: number;
  /** Workers this job has lost or been refused by at a cost: never asked again. */
  readonly #excluded: Uint8Array[] = [];
  /**
   * Workers that only turned the job away as full or had it queued: asked only once no worker
   * outside this list and {@link #excluded} is left (see the module doc).
   */
  readonly #askLast: Uint8Array[] = [];
  /** Hex keys of every worker that turned the job away as full or had it queued. */
  readonly #full = new Set<string>();
  /** Asks of workers that did not keep the job, those asked last included (bound: `maxAsked`). */
  #asked = 0;
  /** How many of them it spent: all but those that refused it as full. */
  #spent = 0;
  #resumes = 0;
  /** Tokens the client had when the current worker resumed the job (see `#failOver`). */
  #resumedAt = 0;
  /** The worker lost last, and how: what the job ends with if nobody resumes it. */
  #lost?: { worker: Uint8Array; error: unknown };
  /**
   * Every worker the job lost, with its signed stream: what holds each to the tokens it
   * delivered (a takeover lost before its first token signed none, and must not hide the one
   * lost before it).
   */
  readonly #lostStreams: { worker: Uint8Array; stream?: SignedStream }[] = [];
  /** Workers that took the job over but could not resume it, with the last one's code. */
  #unresumed = { count: 0, code: "" };
  /**
   * The earliest position a takeover worker said the delivered tokens go wrong at
   * (`resume_mismatch`), and its refusal: why the job ends if nobody streams on from them.
   */
  #diverged?: { position: number; error: unknown };
  /**
   * Workers that took the job over naming a context window it does not fit in (it would end
   * early for its length): cancelled before their first token, with the last one's window.
   */
  #unfit = { count: 0, window: 0 };
  /**
   * Those of them no later worker has yet shown wrong, with their refusals: reported to
   * `unreproduced` at the first token of a worker that took the job over after them.
   */
  #unattributed: { worker: Uint8Array; error: unknown }[] = [];
  /**
   * The current worker's own text for the prefix it took over (`InferenceHandle.resumedText`),
   * and how much of `#output` was relayed for that prefix: its receipt signs its text, not the
   * text relayed (`#signedOutput`). Undefined: it ran the job from the start, the client's own
   * prefix is in it (its text is not here), or it did not say.
   */
  #signedPrefix?: { text: string; relayed: number };
  /**
   * The current worker took the job over after tokens relayed here without saying their text (a
   * worker from before `resumedText`): its receipt signs the text it decodes, which may not be the
   * text relayed through no fault of its own (`RelayedOutput.unsaid`).
   */
  #prefixUnsaid = false;
  /**
   * Which worker relayed which delivered positions: each worker's first position, in the order
   * they ran the job. A takeover's word that the text relayed for a position is not its id's
   * names the worker that relayed it (`#disputed`).
   */
  readonly #relayers: { from: number; worker: Uint8Array }[] = [];
  #firstTokenAt = NaN;
  /** The finish reason of the token that ended the job, once the client got it. */
  #lastToken?: "stop" | "length";
  /** The finish reason of the last token read at the cancel past the client's (`ReadPast.last`). */
  #lastRead?: "stop" | "length";
  /** A read of the current worker's tokens in progress (`#pull`). */
  #reading = false;
  /** The tokens read at the cancel, once in `#delivered` (`#takeReceived`). */
  #taken: Promise<void> = Promise.resolve();
  #cancelled = false;
  #ended = false;
  /** Between losing a worker and another taking over (or none). */
  #failingOver = false;
  /** Tokens the client had when the current worker took the job (its first token is this one). */
  #attemptFrom: number;
  /**
   * A worker asked to take the job over beside the current one, until one of them wins: its
   * reader, and the position it was asked to start from.
   */
  #hedging?: {
    attempt: WorkerAttempt;
    reader: ReadableStreamDefaultReader<StreamedToken>;
    from: number;
  };

  constructor(options: FailoverOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => performance.now());
    this.#startedAt = this.#now();
    this.#attempt = options.first;
    this.#excluded.push(...options.before?.workers ?? []);
    for (const worker of options.before?.full ?? []) this.#queueLast(worker);
    this.#asked = this.#excluded.length + this.#askLast.length;
    this.#spent = options.before?.spent ?? 0;
    this.#delivered = [...options.prefix ?? []];
    this.#given = this.#delivered.length;
    this.#attemptFrom = this.#given;
    this.#relayers.push({ from: this.#given, worker: options.first.worker });
    this.#reader = options.first.handle.tokens.getReader();
    // The workers' ports see the signal too, but a worker's end is read only when the client
    // pulls, and between workers there is none.
    cancelOnAbort(options.signal, (reason) => this.#cancel(reason), this.#done.promise);
  }

  handle(): InferenceHandle {
    const first = this.#o.first.handle;
    const tokens = new ReadableStream<StreamedToken>({
      pull: (controller) => this.#pull(controller),
      cancel: (reason) => this.#cancel(reason),
    }, { highWaterMark: 0 });
    return {
      jobId: first.jobId,
      model: first.model,
      promptTokens: first.promptTokens,
      // A job resumed after its client's prefix: the first worker's text for it, passed on (a
      // forwarding node's `start` says it to its own requester, review s81 vfotext F4).
      ...(this.#given > 0 && first.resumedText !== undefined
        ? { resumedText: first.resumedText }
        : {}),
      tokens,
      done: this.#done.promise,
      cancel: () => {
        tokens.cancel().catch(() => {});
        this.#cancel();
      },
    };
  }

  async #pull(controller: ReadableStreamDefaultController<StreamedToken>): Promise<void> {
    for (;;) {
      // What ended the current worker's stream: its error, or a token out of order (a broken
      // stream, the worker's fault: the job goes on without it).
      let failed = false;
      let failure: unknown;
      let token: StreamedToken | undefined;
      try {
        this.#reading = true;
        const result = await this.#read().finally(() => this.#reading = false);
        if (result.done) {
          // The worker's end came without a last token (or the job was cancelled here).
          controller.close();
          this.#settle();
          return;
        }
        token = result.value;
      } catch (error) {
        failed = true;
        failure = error;
      }
      if (token !== undefined && token.index !== this.#delivered.length) {
        failed = true;
        failure = new InferenceStreamError(
          `token ${token.index} where ${this.#delivered.length} was due`,
        );
        this.#attempt.handle.cancel();
        this.#reader.cancel(failure).catch(() => {});
      }
      if (failed) {
        const ending = this.#cancelled ? failure : await this.#failOver(failure);
        if (ending === undefined) continue; // another worker took over: read on from it
        controller.error(ending);
        // The worker's own end of the job for its slow requester (`STARTED_JOB_ERROR_CODES`)
        // settles with its summary, as a normal end does: `settle` then asks for the receipt of
        // a finished job whose unread tokens it evicted (stop 78; ended here, it never was).
        if (ending === failure && isStartedJobError(failure)) this.#settle();
        else this.#endWith(ending);
        return;
      }
      if (this.#delivered.length === this.#given) this.#firstTokenAt = this.#now();
      // A token from a worker that took the job over after ones that refused its prefix: it
      // reproduced what they would not.
      if (this.#unattributed.length > 0) this.#attributeRefusals();
      this.#delivered.push(token!.tokenId);
      this.#output += token!.text;
      this.#textEnds.push(this.#output.length);
      controller.enqueue(token!);
      if (token!.finishReason !== undefined) {
        this.#lastToken = token!.finishReason;
        controller.close();
        this.#settle();
      }
      return;
    }
  }

  /**
   * Resume on another worker after `error` ended the current one's stream. Resolves undefined
   * once one has taken over, else with the error the client's stream ends with.
   */
  async #failOver(error: unknown): Promise<unknown> {
    // A resuming worker reports a prefix it cannot reproduce (another machine's rounding at a
    // near-tie) only after its `start`, as an error before its first token: that is a refusal
    // to resume, like `busy`, and the next worker is asked. So is the first worker's, when the
    // job started after the client's own prefix (`prefix`): it took the job over as well.
    // Only a worker handed tokens to replay can refuse them: one that took the job over before
    // any was delivered (the first worker lost after its `start`) was asked for the job from its
    // beginning, and a `resume_mismatch` from it is a failure of its own, whatever it claims.
    const refusedResume = this.#attemptFrom > 0 &&
      this.#delivered.length === this.#attemptFrom && RESUME_REFUSALS.has(codeOf(error));
    // After its `start` a worker's failure is its own (its model died, it cancelled the job, it
    // sent what the protocol forbids, it called the job it started bad), unless it says the
    // requester stopped reading: another worker takes the job over. Else a worker that starts
    // each job and fails it at once, with whatever code, ends every client's job it is picked
    // for.
    // A failure that is not a worker's coded one (its errors arrive as coded frames) is this
    // side's own: no worker is to blame, and none would do better.
    const workers = isWorkerLost(error) || error instanceof VeriflowError;
    if (!refusedResume && (isStartedJobError(error) || !workers)) return error;
    if (refusedResume) {
      this.#unresumed = { count: this.#unresumed.count + 1, code: codeOf(error) };
      this.#unattributed.push({ worker: this.#attempt.worker, error });
      this.#noteDivergence(error);
    }
    this.#excluded.push(this.#attempt.worker);
    this.#asked++;
    this.#spent++;
    this.#o.failedOver?.(failoverCause(error, refusedResume));
    if (!refusedResume) {
      this.#lost = { worker: this.#attempt.worker, error };
      this.#lostStreams.push({
        worker: this.#attempt.worker,
        stream: this.#attempt.handle.signedStream,
      });
      this.#o.lost?.(this.#attempt.worker, error);
    }
    // No worker lost yet (the first one refused the client's prefix): the job ends, if nobody
    // takes it, with that refusal.
    const ending = this.#lost ?? { worker: this.#attempt.worker, error };
    const lost = ending.worker;
    error = ending.error;
    const maxWorkers = this.#o.maxWorkers ?? MAX_WORKERS_PER_JOB;
    const maxAsked = this.#o.maxAsked ?? MAX_WORKERS_ASKED_PER_JOB;
    this.#failingOver = true;
    try {
      return await this.#nextWorker(lost, error, maxWorkers, maxAsked);
    } finally {
      this.#failingOver = false;
    }
  }

  /** Ask for workers until one takes the job over (undefined), else the job's ending error. */
  async #nextWorker(
    lost: Uint8Array,
    error: unknown,
    maxWorkers: number,
    maxAsked: number,
  ): Promise<unknown> {
    let why: string | undefined;
    // Asked in this search (not asked again in it), and whether the workers asked last are asked
    // now: only once a lookup without them found nobody.
    const askedNow: Uint8Array[] = [];
    let last = false;
    while (this.#spent < maxWorkers && this.#asked < maxAsked) {
      const exclude = distinct(
        last
          ? [...this.#excluded, ...askedNow]
          : [...this.#excluded, ...this.#askLast, ...askedNow],
      );
      const from = this.#delivered.length;
      const outcome = await this.#o.resume(exclude, this.#delivered);
      if (this.#cancelled) {
        // Too late: the client cancelled while it was asked. Its worker runs nothing of the job
        // (cancelled as it starts), so its hold on its stake goes (review s80 vadm2 F1).
        this.#tooLate(outcome, from);
        return error;
      }
      if (outcome.kind === "none") {
        if (!last && this.#askLast.some((w) => !holds(askedNow, w))) {
          last = true;
          continue;
        }
        // Those that were full or had it queued, but not those it lost since (they were lost).
        const lost = new Set(this.#lostStreams.map(({ worker }) => toHex(worker)));
        const full = [...this.#full].filter((key) => !lost.has(key)).length;
        why = full === 0
          ? "no other connected worker serves the model"
          : `no other connected worker took it: the ${full} other worker(s) that serve the ` +
            `model were full or had it queued`;
        break;
      }
      const worker = outcome.kind === "started" ? outcome.attempt.worker : outcome.worker;
      const wasLast = holds(this.#askLast, worker);
      this.#unqueueLast(worker);
      if (outcome.kind === "refused") {
        // Refused before its start over a prefix token (`invalid_resume`: an id outside the
        // vocabulary, an end token): the delivered tokens are not the job's output there.
        if (this.#delivered.length > this.#given) this.#noteDivergence(outcome.error);
        this.#asked++;
        if (!isCapacityRefusal(outcome.error)) {
          this.#excluded.push(worker);
          this.#spent++;
        } else if (wasLast) {
          // Full again when asked last: not asked again for this job.
          this.#excluded.push(worker);
        } else {
          // Full: not asked again in this search; a later takeover may ask it, last.
          askedNow.push(worker);
          this.#queueLast(worker);
        }
        why = `the last one asked refused (${codeOf(outcome.error)})`;
        continue;
      }
      if (!this.#fits(outcome.attempt, from)) {
        this.#excluded.push(worker);
        this.#asked++;
        this.#spent++;
        why = undefined;
        continue;
      }
      this.#takeOver(outcome.attempt, outcome.attempt.handle.tokens.getReader());
      return undefined;
    }
    why ??= `${this.#asked} workers were tried`;
    const cause = error instanceof Error ? error.message : String(error);
    // Only tokens a worker delivered: a client's own prefix that no worker takes is refused with
    // the refusal's code, as a job submitted with a bad prefix is.
    if (this.#diverged !== undefined && this.#lost !== undefined) {
      this.#claimHeads(this.#diverged.position);
      return this.#divergedError(lost, cause, why);
    }
    // No worker took the tokens over to judge them (none left, or each refused as full): the
    // lost workers' signed streams are checked all the same, or a liar that is the model's only
    // worker (or whose colluders answer full) would never be.
    this.#claimHeads(NaN);
    // A worker that took the job over and then could not reproduce what was delivered is the
    // reason more often than a missing worker: say so.
    const { count, code } = this.#unresumed;
    if (count > 0) {
      why += `; ${count} worker(s) that took it over could not reproduce the delivered tokens ` +
        `(${code})`;
    }
    if (this.#unfit.count > 0) {
      const jobWindow = this.#jobWindow();
      why += `; ${this.#unfit.count} worker(s) that took it over name a context window too ` +
        `small to finish it (the last: a context window of ${this.#unfit.window} tokens; the ` +
        `job's first worker's: ${Number.isFinite(jobWindow) ? `${jobWindow} tokens` : "none"})`;
    }
    // A refusal of the client's own prefix (no worker lost) keeps its code, as at a job's start.
    const seen = this.#lost === undefined || isLossSeenHere(error);
    const said = seen ? cause : `its error ${codeOf(error)}: ${cause}`;
    return new WorkerLostError(
      seen ? codeOf(error) : WORKER_FAILED,
      `the worker ${toHex(lost).slice(0, KEY_CHARS)} was lost after ${this.#delivered.length} ` +
        `tokens (${said}), and the job could not resume: ${why}`,
      error,
    );
  }

  /** Note `worker`, full or keeping the job queued, as one to ask last. */
  #queueLast(worker: Uint8Array): void {
    this.#full.add(toHex(worker));
    if (!holds(this.#askLast, worker)) this.#askLast.push(worker);
  }

  /** `worker` was asked: it leaves the list of those asked last. */
  #unqueueLast(worker: Uint8Array): void {
    const key = toHex(worker);
    const at = this.#askLast.findIndex((w) => toHex(w) === key);
    if (at >= 0) this.#askLast.splice(at, 1);
  }

  /** The context window of the job's first worker, in tokens (Infinity: it named none). */
  #jobWindow(): number {
    return this.#o.first.handle.model.contextLength ?? Infinity;
  }

  /**
   * Whether `attempt`, a worker that took the job over, can finish it where the job's first
   * worker would have: a token may end the job for its length where the prompt and the output
   * fill the context window the worker's start names, so a smaller one than the first worker's
   * would cut the client's answer short and call it finished. Unless the prompt and `maxTokens`
   * fit it anyway, the worker (asked to start from `from`) is cancelled before its first token
   * (it spends one of the job's tries) and the next one is asked. It is not judged: which of the
   * two windows is the model's is not known here.
   */
  #fits(attempt: WorkerAttempt, from: number): boolean {
    const window = attempt.handle.model.contextLength ?? Infinity;
    const needed = attempt.handle.promptTokens + (this.#o.maxTokens ?? Infinity);
    if (window >= this.#jobWindow() || window >= needed) return true;
    this.#cancelUnheld(attempt, from);
    this.#unfit = { count: this.#unfit.count + 1, window };
    return false;
  }

  /**
   * A takeover's refusal of the delivered tokens (`resume_mismatch`, or `invalid_resume` over a
   * prefix token: an id outside the vocabulary, an end token, a stop already completed): the
   * earliest position any of them named.
   */
  #noteDivergence(error: unknown): void {
    const position = refusedPrefixPosition(error);
    if (position === undefined) return;
    const known = this.#diverged?.position ?? NaN;
    if (this.#diverged === undefined || position < known || Number.isNaN(known)) {
      this.#diverged = { position, error };
    }
  }

  /**
   * Hand `diverged` each lost worker's signed word for the tokens it delivered, when its signed
   * head covers `named`, the position the takeovers refused; every head, when they named none,
   * or one no head covers, or when no takeover judged the tokens at all (NaN). A worker that
   * signed the prefix it took over answers for it too (it claimed to reproduce it), and one lost
   * before its first token signed nothing. The checker judges every token a head covers, so the
   * position only says which heads to claim.
   */
  #claimHeads(named: number): void {
    const heads = this.#lostStreams.flatMap(({ worker, stream }) =>
      stream?.head === undefined ? [] : [streamEvidence(worker, stream, named)!]
    );
    // Only those whose head covers `named` (`at` is it), if any does.
    const covering = heads.filter((evidence) => evidence.at === named);
    for (const evidence of covering.length > 0 ? covering : heads) this.#o.diverged?.(evidence);
  }

  /**
   * The job's end when the workers that took it over refused the tokens the lost worker had
   * delivered and none streamed on from them: the client's text is not the model's from there.
   */
  #divergedError(lost: Uint8Array, cause: string, why: string): DeliveredTokensDivergedError {
    const { position, error } = this.#diverged!;
    const where = Number.isNaN(position) ? "" : ` from token ${position} on`;
    const said = error instanceof Error ? error.message : String(error);
    const key = toHex(lost);
    const { count } = this.#unresumed;
    // The refusers' word against the lost worker's: said as theirs, not as the router's finding.
    return new DeliveredTokensDivergedError(
      `the ${this.#delivered.length} tokens delivered are not the job's output${where}, by the ` +
        `word of the workers that took the job over: the worker ${key.slice(0, KEY_CHARS)} ` +
        `sent them and was lost (${cause}); ${count} worker(s) that took it over could not ` +
        `reproduce them (${codeOf(error)}: ${said}), and none streamed on from them (${why})`,
      position,
      key,
      error,
    );
  }

  /** `attempt` takes the job over from the tokens the client has. */
  #takeOver(attempt: WorkerAttempt, reader: ReadableStreamDefaultReader<StreamedToken>): void {
    this.#attempt = attempt;
    this.#reader = reader;
    this.#resumes++;
    this.#resumedAt = this.#delivered.length;
    this.#attemptFrom = this.#delivered.length;
    this.#relayers.push({ from: this.#delivered.length, worker: attempt.worker });
    // Each takeover's word is its own, and goes with it: only the receipt of the worker that
    // finishes answers for the text its start said (`#disputed`). A word kept past its taker let
    // a taker that signed nothing (lost, or hedged away) have the next one's receipt back it
    // (review s81 vfotext F1).
    this.#signedPrefix = undefined;
    const said = attempt.handle.resumedText;
    // Only the text of tokens relayed here is this side's to compare (`#given` is 0).
    const relayedHere = this.#given === 0 && this.#delivered.length > 0;
    this.#prefixUnsaid = relayedHere && said === undefined;
    if (said === undefined || !relayedHere) return;
    this.#signedPrefix = { text: said, relayed: this.#output.length };
  }

  /**
   * Where the worker that finished the job decodes the ids it took over to other text than was
   * relayed for them (`#signedPrefix`), by its start's word: the first position where the two
   * part, and the worker that relayed it (one the job lost). Undefined when they agree, or when
   * the client holds less than that prefix (its cancel came before it).
   */
  #disputed(): TextDispute | undefined {
    const prefix = this.#signedPrefix;
    if (prefix === undefined || this.#clientOutput().length < prefix.relayed) return undefined;
    const relayed = this.#output.slice(0, prefix.relayed);
    if (prefix.text === relayed) return undefined;
    let char = 0;
    while (char < prefix.text.length && prefix.text[char] === relayed[char]) char++;
    // Positions are indices of `#textEnds` (`#given` is 0); the prefix's last is `#resumedAt − 1`.
    const at = this.#textEnds.findIndex((end) => end > char);
    const position = at < 0 || at >= this.#resumedAt ? this.#resumedAt - 1 : at;
    const relayer = this.#relayers.findLast(({ from }) => from <= position)!.worker;
    return { position, relayer };
  }

  /**
   * `output`, text relayed here from the job's first token (the client's, by default), as the
   * worker that finished signs it: its own text for the prefix it took over (`#signedPrefix`) in
   * place of the text relayed for it.
   */
  #signedOutput(output = this.#clientOutput()): string {
    const prefix = this.#signedPrefix;
    if (prefix === undefined || output.length < prefix.relayed) return output;
    return prefix.text + output.slice(prefix.relayed);
  }

  /**
   * `told`, the client's summary, where the worker that finished decodes the delivered ids to
   * other text than the client got (`disputed`) and its receipt, over its own text, checked out
   * (`settle` handed it on, assigned: see {@link RelayedOutput.disputed} for who pays). The
   * receipt is not over the client's text, so the client is not handed it, and a job that
   * finished ends `delivered_tokens_diverged` instead, saying whose word that is. Nobody is blamed
   * here: the relayer is held to it only once a challenge of that receipt finds it valid (the
   * router's `settle`), for a taker that makes the text up and signs it checks out here too
   * (review s81 vfotext F2). A taker whose receipt did not check out (it signed other text than
   * its word) backed nothing: the summary is `settle`'s.
   */
  #toldDiverged(told: JobSummary, disputed: TextDispute | undefined): JobSummary {
    if (disputed === undefined || told.receipt === undefined) return told;
    const { receipt: _notTheClients, ...rest } = told;
    const error = {
      code: "delivered_tokens_diverged",
      message:
        `the text delivered from token ${disputed.position} on is not what the tokens' ids ` +
        `decode to, by the word of the worker ${toHex(this.#attempt.worker).slice(0, KEY_CHARS)} ` +
        `that took the job over and finished it, whose receipt signs its own text for them: the ` +
        `worker ${toHex(disputed.relayer).slice(0, KEY_CHARS)}, lost, sent the text relayed; ` +
        `that receipt is challenged before either is held to it`,
    };
    return told.finishReason === "cancelled"
      ? { ...rest, error }
      : { ...rest, finishReason: "error", error };
  }

  /**
   * The current worker's next token. Before its first, past each queue hold the client waits
   * through, another worker is asked to take the job over beside it ({@link #hedge}); the first
   * token of either is the client's.
   */
  async #read(): Promise<ReadableStreamReadResult<StreamedToken>> {
    const read = this.#reader.read();
    const holdMs = this.#o.queueHoldMs ?? DEFAULT_QUEUE_HOLD_MS;
    if (this.#delivered.length > this.#attemptFrom || !(holdMs < Infinity)) return read;
    const settled = read.then(() => true as const, () => true as const);
    for (;;) {
      if (!await this.#within(settled, holdMs) && !this.#cancelled) {
        const taken = await this.#hedge(settled);
        if (taken !== undefined) return taken;
        continue;
      }
      return read;
    }
  }

  /** Whether `settled` resolves within `ms` on the hold's clock. */
  async #within(settled: Promise<true>, ms: number): Promise<boolean> {
    const timers = this.#o.timers ?? SYSTEM_TIMERS;
    let timer: unknown;
    const held = new Promise<false>((resolve) => {
      timer = timers.setTimeout(() => resolve(false), ms);
    });
    try {
      return await Promise.race([settled, held]);
    } finally {
      timers.clearTimeout(timer);
    }
  }

  /**
   * Ask a worker the router has no reason to think full to take the job over beside the current
   * one, which has held it without a token for the hold. Resolves with the hedge's first token
   * when it comes before the current worker's (the hedge then has the job, the current worker's
   * run is cancelled and it is reported lost as one that kept the job queued); else undefined,
   * the hedge cancelled, and the job keeps its place on the current worker: when the current
   * worker's read settles first, when the hedge queues the job too, refuses it or fails, or when
   * no other worker is there.
   */
  async #hedge(
    current: Promise<true>,
  ): Promise<ReadableStreamReadResult<StreamedToken> | undefined> {
    const queued = Promise.withResolvers<"queued">();
    // Never one asked last: a hedge asks only a worker it has no reason to think full.
    const exclude = [...this.#excluded, ...this.#askLast, this.#attempt.worker];
    // Where the hedge starts: none of its tokens reach the client unless it wins.
    const from = this.#delivered.length;
    const asked = this.#o.resume(exclude, this.#delivered, {
      onQueued: (position) => {
        if (position > 0) queued.resolve("queued");
      },
    });
    const answer = await Promise.race([current.then(() => "current" as const), asked]);
    if (answer === "current" || answer.kind !== "started" || this.#cancelled) {
      // Too late (or cancelled): a hedge that starts after all is cancelled as it starts.
      asked.then((o) => this.#tooLate(o, from));
      if (!this.#cancelled) {
        this.#o.hedged?.(
          typeof answer !== "string" && answer.kind === "none" ? "no_worker" : "kept",
        );
      }
      return undefined;
    }
    const hedge = answer.attempt;
    if (!this.#fits(hedge, from)) {
      this.#o.released?.(hedge.worker);
      this.#excluded.push(hedge.worker); // asked, and it spent nothing of the job: no try spent
      this.#asked++;
      this.#o.hedged?.("kept");
      return undefined;
    }
    const reader = hedge.handle.tokens.getReader();
    this.#hedging = { attempt: hedge, reader, from };
    const first = reader.read().then(
      (result) => ({ result, error: undefined }),
      (error: unknown) => ({ result: undefined, error }),
    );
    try {
      const winner = await Promise.race([
        current.then(() => "current" as const),
        queued.promise,
        first,
      ]);
      if (
        typeof winner === "string" || this.#cancelled || winner.result === undefined ||
        winner.result.done
      ) {
        this.#cancelUnheld(hedge, from, reader);
        this.#o.released?.(hedge.worker);
        if (typeof winner !== "string" && winner.error !== undefined) {
          this.#hedgeFailed(hedge.worker, winner.error);
        }
        if (!this.#cancelled) this.#o.hedged?.("kept");
        return undefined;
      }
      // The hedge runs the job now, and the current worker still holds it: the hedge keeps it.
      const held = this.#attempt;
      this.#cancelUnheld(held, this.#attemptFrom, this.#reader);
      this.#o.released?.(held.worker);
      // It only had the job queued: it spent nothing of the job (no try spent), and a takeover
      // asks it last, not never.
      this.#queueLast(held.worker);
      this.#asked++;
      this.#o.hedged?.("took_over");
      const holdMs = this.#o.queueHoldMs ?? DEFAULT_QUEUE_HOLD_MS;
      this.#o.lost?.(
        held.worker,
        new WorkerStalledError(toHex(held.worker).slice(0, KEY_CHARS), holdMs, 0, true),
      );
      this.#takeOver(hedge, reader);
      return winner.result;
    } finally {
      this.#hedging = undefined;
    }
  }

  /**
   * A hedge that failed before its first token: a worker's own failure is reported lost, as any
   * worker's that failed a job it started (a refused prefix waits for a later worker to show
   * whose it was, and there is one only when tokens were delivered); that the requester stopped
   * reading is the current worker's to meet too.
   */
  #hedgeFailed(worker: Uint8Array, error: unknown): void {
    // It was handed the delivered tokens: with none, it had no prefix to refuse (`#failOver`).
    const refusedResume = this.#delivered.length > 0 && RESUME_REFUSALS.has(codeOf(error));
    if (refusedResume) {
      this.#unattributed.push({ worker, error });
      this.#noteDivergence(error);
    } else if (
      isWorkerLost(error) || (error instanceof VeriflowError && !isStartedJobError(error))
    ) {
      this.#o.lost?.(worker, error);
    }
  }

  /**
   * Cancel `attempt`, a worker asked to run the job from position `from` none of whose tokens
   * reached the client (a hedge race's loser, a takeover too late or unfit), through `reader`
   * when its tokens are being read. The cancel says the client holds `from` positions
   * (`held_cancel.ts`): the worker signs a `cancelled` receipt only over tokens of its own run
   * the client holds, so it signs nothing, and may take the job over later. A plain cancel made
   * it sign over the tokens it had sent (a loser whose first token was on its way), a receipt
   * nobody asked for or paid, and it refused the job as `duplicate_job` for good: the takeover
   * this side then asked of it (review s78).
   */
  #cancelUnheld(
    attempt: WorkerAttempt,
    from: number,
    reader?: ReadableStreamDefaultReader<StreamedToken>,
  ): void {
    const held = new HeldCancelError(from, "another worker runs the job");
    (reader ?? attempt.handle.tokens).cancel(held).catch(() => {});
    attempt.handle.cancel();
  }

  /**
   * `outcome` of asking for a worker from position `from` came too late (the client cancelled,
   * or the job stays where it runs): a worker that started it is cancelled
   * (`#cancelUnheld`), and a worker it names no longer holds the job's lock of its stake.
   */
  #tooLate(outcome: ResumeOutcome, from: number): void {
    if (outcome.kind === "started") this.#cancelUnheld(outcome.attempt, from);
    if (outcome.kind !== "none") {
      this.#o.released?.(outcome.kind === "started" ? outcome.attempt.worker : outcome.worker);
    }
  }

  /** The workers that refused a prefix the current worker took: theirs was the fault. */
  #attributeRefusals(): void {
    const refusals = this.#unattributed;
    this.#unattributed = [];
    this.#diverged = undefined; // a worker streams on from the tokens: they were the job's
    for (const { worker, error } of refusals) this.#o.unreproduced?.(worker, error);
  }

  #cancel(reason?: unknown): void {
    if (this.#cancelled || this.#ended) return;
    this.#cancelled = true;
    // The worker is told how many tokens the client got (`held_cancel.ts`): its cancelled
    // receipt covers those, not the ones still in the relay or the credit window. An edge that
    // read tokens it did not pass on (an SSE answer holding a possible stop's start, a one-body
    // answer not yet written) says what its client holds: never more than were handed it.
    const told = heldOf(reason);
    const delivered = this.#delivered.length;
    // The prefix it was given (`#given`) it held before this side's first token.
    this.#clientHolds = told === undefined
      ? delivered
      : Math.max(this.#given, Math.min(told, delivered));
    const held = new HeldCancelError(this.#clientHolds, "cancelled by the client", {
      cause: reason,
    });
    this.#takeReceived();
    this.#reader.cancel(held).catch(() => {});
    this.#attempt.handle.cancel();
    const hedging = this.#hedging;
    if (hedging !== undefined) this.#cancelUnheld(hedging.attempt, hedging.from, hedging.reader);
    // Between workers, the current attempt is the one lost: its summary is its failure, not
    // the client's cancel (a worker starting meanwhile is cancelled as it starts).
    if (this.#failingOver) this.#endWith(undefined);
    else this.#settle();
  }

  /**
   * At the client's cancel, the current worker's tokens its handle took off the connection that
   * were not read here (`InferenceHandle.received`: an event carries several, handed out one by
   * one), read now, before the cancel empties the stream: the worker counts them read (its
   * cancel's floor; a stream taken to its end, read whole: its finished receipt), so a receipt
   * over them is checked over their text and paid (`RelayedOutput.read`; stop 81 left open: it
   * was dropped, and the worker paid nothing for what the client got). They wait in the stream,
   * so each read takes one at once and none waits on the worker; with a read in progress
   * (`#pull`'s, whose token is not in `#delivered` yet) none is taken, as before.
   */
  #takeReceived(): void {
    const received = this.#attempt.handle.received?.();
    if (received === undefined || this.#reading) return;
    const waiting = received - (this.#delivered.length - this.#attemptFrom);
    const reads: Promise<ReadableStreamReadResult<StreamedToken> | undefined>[] = [];
    for (let i = 0; i < waiting; i++) reads.push(this.#reader.read().catch(() => undefined));
    this.#taken = Promise.all(reads).then((results) => {
      for (const result of results) {
        const token = result?.done === false ? result.value : undefined;
        if (token === undefined || token.index !== this.#delivered.length) return;
        this.#delivered.push(token.tokenId);
        this.#output += token.text;
        this.#textEnds.push(this.#output.length);
        if (token.finishReason !== undefined) this.#lastRead = token.finishReason;
      }
    });
  }

  /** Tokens the client holds: all delivered, or fewer where its cancel said so. */
  #clientTokens(): number {
    return this.#clientHolds ?? this.#delivered.length;
  }

  /**
   * The tokens delivered here past those the client holds, with the text a receipt over each
   * count signs (`RelayedOutput.read`); undefined where the client holds them all.
   */
  #readPast(): ReadPast | undefined {
    const holds = this.#clientTokens();
    const read = this.#delivered.length;
    if (holds >= read) return undefined;
    const prefix = this.#signedPrefix;
    // A count's text is the relayed text to its last token, the taker's text for its prefix.
    const signedEnd = (count: number) => {
      const end = count > this.#given ? this.#textEnds[count - this.#given - 1] : 0;
      return prefix === undefined || end < prefix.relayed
        ? end
        : end - prefix.relayed + prefix.text.length;
    };
    const ends: number[] = [];
    for (let count = holds + 1; count <= read; count++) ends.push(signedEnd(count));
    const output = this.#given === 0 ? this.#signedOutput(this.#output) : undefined;
    const last = this.#lastRead ?? this.#lastToken;
    return { tokens: read, output, ends, ...(last === undefined ? {} : { last }) };
  }

  /** The text of the tokens the client holds, of those delivered here (`#given` is 0). */
  #clientOutput(): string {
    const holds = this.#clientTokens() - this.#given;
    return holds >= this.#textEnds.length
      ? this.#output
      : this.#output.slice(0, holds > 0 ? this.#textEnds[holds - 1] : 0);
  }

  /** The job ended with the current worker: its summary, over every worker's tokens. */
  #settle(): void {
    if (this.#ended) return;
    this.#ended = true;
    const attempt = this.#attempt;
    // With the tokens read at the cancel (`#takeReceived`).
    Promise.all([attempt.handle.done, this.#taken]).then(([summary]) => {
      // The client is told the tokens it got, not the worker's own count of them.
      const whole = this.#resumes === 0
        ? {
          ...summary,
          usage: { ...summary.usage, completionTokens: this.#clientTokens() - this.#given },
        }
        : this.#acrossWorkers(summary);
      // The client cancelled, and the worker had finished anyway with tokens the client never
      // read (several per event wait in the relay, its end with them): the client's job ended
      // cancelled. The worker's receipt covers more than the client got, so it is neither the
      // client's nor checked against it, and the worker did nothing wrong: settled as the
      // client's cancel, which asks the worker for its `cancelled` receipt over the tokens the
      // client got (`inference.get_receipt` with `held`: it signs it from the finished job's
      // proof data), assigned in its place (review s80 bill F1: dropped here, nobody was paid).
      let settled = whole;
      if (this.#cancelled && summary.finishReason !== "cancelled") {
        const { receipt: _notTheClients, error: _none, ...rest } = whole;
        settled = { ...rest, finishReason: "cancelled" };
      }
      const disputed = this.#disputed();
      const relayed: RelayedOutput = {
        output: this.#given === 0 ? this.#signedOutput() : undefined,
        tokens: this.#clientTokens(),
        resumedAt: this.#resumes === 0 ? 0 : this.#resumedAt,
        lastToken: this.#lastToken,
        ...(disputed === undefined ? {} : { disputed }),
        ...(this.#prefixUnsaid ? { unsaid: true } : {}),
      };
      const read = this.#cancelled ? this.#readPast() : undefined;
      if (read !== undefined) relayed.read = read;
      this.#done.resolve(this.#toldDiverged(this.#o.settle(settled, attempt, relayed), disputed));
    });
  }

  /**
   * The job ended this side: in an error (a lost worker nobody replaced, a broken stream), or
   * cancelled by the client between workers (`error` undefined).
   */
  #endWith(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    const end = this.#now();
    const cancelled = error === undefined;
    this.#done.resolve({
      jobId: this.#o.first.handle.jobId,
      finishReason: cancelled ? "cancelled" : "error",
      usage: {
        // No receipt signs a count here (every worker was lost, or the client cancelled between
        // workers): the first worker's start's, as the handle's `promptTokens` says it (held to
        // the prompt's bound by the router), not the last lost one's (review s81 vfotext F5).
        promptTokens: this.#o.first.handle.promptTokens,
        completionTokens: this.#clientTokens() - this.#given,
      },
      timings: {
        queueMs: NaN,
        ttftMs: this.#firstTokenAt - this.#startedAt,
        totalMs: end - this.#startedAt,
        tokensPerS: NaN,
      },
      ...(cancelled ? {} : {
        error: {
          code: codeOf(error),
          message: error instanceof Error ? error.message : String(error),
        },
      }),
    });
  }

  /**
   * The last worker's summary made the client's: all the tokens it got, timed here (each
   * worker timed only its own part).
   */
  #acrossWorkers(summary: JobSummary): JobSummary {
    const end = this.#now();
    const seconds = (end - this.#firstTokenAt) / 1000;
    return {
      ...summary,
      usage: {
        // The count the receipt signs, and the ledger charges: the worker that finished's
        // (`summary`'s is its start's), not the first worker's, which a lost worker inflates.
        promptTokens: this.#attempt.handle.promptTokens,
        completionTokens: this.#clientTokens() - this.#given,
      },
      timings: {
        queueMs: NaN,
        ttftMs: this.#firstTokenAt - this.#startedAt,
        totalMs: end - this.#startedAt,
        tokensPerS: seconds > 0 ? (this.#clientTokens() - this.#given) / seconds : NaN,
      },
    };
  }
}
