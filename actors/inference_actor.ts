/**
 * The InferenceActor: the node's job queue for inference, and its protocol.
 *
 * It owns, per model, a concurrency limit and a bounded queue of waiting jobs, served round-robin
 * across the clients that submitted them (`_fair_queue.ts`): one client's many jobs do not make
 * another's single job wait behind them all, and one remote client may fill at most
 * {@link clientQueueLimit} of the queue's places (the operator's own are held to the total only).
 * A submission is
 * answered at once with a handle (the actor never holds its mailbox for the length of a job);
 * the job starts when its model has a free slot, each running text job in its own temporary
 * child actor (`JobRunner`, actors/inference_job.ts) that drives `TextModel.generate`. Stopping
 * that child, a `cancel` message, `handle.cancel()` or cancelling the requester's stream stops
 * the computation within one step.
 *
 * Messages carry plain data only (a job, a job id): cancellation is a `cancel` message, never a
 * signal inside a submission, so the same protocol works however the requester reaches the
 * actor. The reply to a submission holds the handle with the in-process token stream; callers
 * outside the process go through an `InferencePort` (`LocalInferencePort` wraps this actor).
 *
 * Submissions that find the queue full are answered with a typed {@link TooManyJobsError}
 * (HTTP 429 at the edge) instead of crashing the actor: a refused job is a normal outcome. So
 * is a model that cannot be loaded, whatever the error (a bad `config.json` is the operator's
 * input, not a bug of this actor): that job is refused, typed, and every other job goes on.
 *
 * Two private modules hold the rest: `_prepared_jobs.ts`, the checks a submission passes and the
 * queue entry it becomes (with the child runner of a text job), and `_submit_job.ts`, the
 * requester's side (`submitJob`, re-exported here).
 *
 * @module
 */
import type { Actor, ActorContext } from "./actor.ts";
import type { ActorRef } from "./actor_ref.ts";
import { DuplicateJobError, TooManyJobsError } from "./inference_errors.ts";
import type { JobOutcome, TextJobHandle } from "./inference_job.ts";
import type { GenerativeModel, ModelSource, OneShotModel, ProverHook } from "./inference_models.ts";
import { type JobEntry, JobPreparer, type PreparedJob } from "./_prepared_jobs.ts";
import {
  emptyInferenceStats,
  type InferenceStats,
  type ServedModelInfo,
  THIS_MACHINE_CLIENT,
} from "../inference/inference_port.ts";
import { type Job, jobId as computeJobId, type TensorData } from "../protocols/job.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { asModelLoadError, UnknownModelError } from "../inference/errors.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import { UnreadTokenBudget } from "./_unread_token_budget.ts";
import { FairQueue } from "./_fair_queue.ts";

// The result types live with the port; re-exported so existing importers of this module keep
// working. Each is defined once, in inference/inference_port.ts.
export type {
  FinishReason,
  InferenceStats,
  JobSummary,
  JobTimings,
  JobUsage,
  ServedModelInfo,
  StreamedToken,
} from "../inference/inference_port.ts";
export { DuplicateJobError, JobCancelledError, TooManyJobsError } from "./inference_errors.ts";
export type { JobOutcome, JobRunnerMessage, TextJobHandle } from "./inference_job.ts";
export type { GenerativeModel, ModelSource, OneShotModel, ProverHook } from "./inference_models.ts";
export { submitJob, type SubmitJobOptions } from "./_submit_job.ts";
export {
  DEFAULT_UNREAD_TOKEN_BYTES,
  SLOW_READER_CANCEL_GRACE_MS,
  SLOW_READER_GRACE_MS,
  SlowReaderError,
  UnreadTokenBudget,
  type UnreadTokenHolder,
} from "./_unread_token_budget.ts";

// ---------------------------------------------------------------------------------------------
// Handles and replies
// ---------------------------------------------------------------------------------------------

/** What a requester gets back for an accepted one-shot tensor job. */
export interface TensorJobHandle {
  /** Kind of the job. */
  kind: "tensor";
  /** The job id. */
  jobId: string;
  /** Information about the model that runs it. */
  model: ServedModelInfo;
  /** The output tensors; rejects with the model's error or {@link JobCancelledError}. */
  outputs: Promise<Record<string, TensorData>>;
  /** Cancel the job if it has not started yet (a running one-shot pass is not interruptible). */
  cancel(): void;
}

/** Answer to a {@link SubmitJob}: the job was accepted, or refused with a typed error. */
export type SubmitReply =
  | { accepted: true; handle: TextJobHandle | TensorJobHandle }
  | { accepted: false; error: VeriflowError };

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/** Submit a job; answered with a {@link SubmitReply}. */
export interface SubmitJob {
  /** Message tag. */
  type: "submit";
  /** The job. */
  job: Job;
  /**
   * Text jobs: each token also lists this many of the most likely tokens at its position, 0 to
   * `MAX_TOP_LOGPROBS`. How the job's output is delivered, not part of the job (its id, tokens
   * and receipt do not change). Default 0.
   */
  topLogprobs?: number;
  /**
   * Text jobs: resume after these token ids, which the requester already has from a worker it
   * lost (`inference/resumed_generation.ts`): the tokens are checked against this node's model
   * and committed to, and the stream starts at position `resume.length`. The job (its id, its
   * receipt) is the same as without it. Refused with `invalid_resume` by a model that cannot
   * resume or for a prefix that cannot be the job's. Absent or empty: from the start.
   */
  resume?: readonly number[];
  /**
   * Text jobs that name an `input` (`protocols/job_input.ts`): its bytes, read by the submitter
   * from storage; checked here against the CID, the model reads their text before the prompt,
   * and the prover keeps them with the job's proof data for its validators. Refused with a
   * `JobInputError` when missing or not the named block.
   */
  input?: Uint8Array;
  /**
   * Called while the job waits for a slot, with its place in the model's queue (1: next), each
   * time it changes, and with 0 when it leaves the queue for a slot (`SubmitOptions.onQueued`).
   * The place is the job's turn in the round-robin over clients (see {@link client}): a job of
   * another client queued later may come ahead of it, and the place then grows.
   * It runs inside the actor's turn: keep it cheap, never throw.
   */
  onQueued?: (position: number) => void;
  /**
   * Who asked, for the queue's turns: waiting jobs are served round-robin across clients,
   * first-in first-out within one, and one remote client holds at most {@link clientQueueLimit}
   * of a model's queue. The edge passes its client's key id, address or `this machine`; a job
   * served for a peer, the peer's key (hex). Absent: the client `""` (every caller that names none
   * is one client). `this machine` and `""` are the operator's own clients: held to the queue's
   * total, not to a share of it.
   */
  client?: string;
}

/** Ask for the actor's {@link InferenceStats}. */
export interface GetInferenceStats {
  /** Message tag. */
  type: "stats";
  /**
   * The models whose slots `slots` sums: the ones the node serves and has loaded
   * (`LocalInferencePort` passes its catalog's loaded ones). A model no job has named yet is
   * looked up in the source to learn its seats (a model loaded at the node's start: a map read);
   * one the source does not give counts none. Name no model that is not loaded: a source that
   * loads lazily would load it here, on every stats ask (review s78 F2).
   * Absent: the models jobs have named so far.
   */
  models?: readonly string[];
}

/** Cancel a queued or running job by id; answered with `true` when such a job existed. */
export interface CancelJob {
  /** Message tag. */
  type: "cancel";
  /** The job id. */
  jobId: string;
}

/** Internal: a job's runner has finished; frees its slot. */
export interface JobEnded {
  /** Message tag. */
  type: "job_ended";
  /** The job id. */
  jobId: string;
  /** How it ended. */
  outcome: JobOutcome;
  /** Tokens it produced. */
  tokens: number;
  /**
   * Whether its prover signs a receipt for it (finished, or cancelled by a peer's requester after a
   * token, `inference_job.ts`): such a job is not taken again; one that signed nothing (a lost
   * connection, the node's own client's cancel) may be retried. Absent: when it finished.
   */
  signed?: boolean;
}

/**
 * Internal: a model's seats may have changed (`GenerativeModel.onCapacityChange`: a model worker
 * back from a restart); queued jobs take the seats it now has.
 */
export interface SeatsChanged {
  /** Message tag. */
  type: "seats_changed";
  /** The model's CID. */
  model: string;
}

/** Messages the InferenceActor accepts. */
export type InferenceMessage = SubmitJob | GetInferenceStats | CancelJob | JobEnded | SeatsChanged;

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/** Options of {@link InferenceActor}. */
export interface InferenceActorOptions {
  /** Where models are found by CID. */
  models: ModelSource;
  /**
   * Jobs computed at once per model that does not report its batch seats. A model that does
   * (`GenerativeModel.batchCapacity`) runs exactly as many as it seats, more or fewer: jobs in
   * one batch share each step instead of splitting the compute, and a job started beyond the
   * seats would have its prompt read and its first token sent, then stand still mid-stream for
   * another job's whole generation (a seat stays with the sequence holding it); it waits in the
   * queue instead, told its place. Default 4; the node config overrides it.
   */
  concurrency?: number;
  /**
   * Jobs allowed to wait per model beyond the running ones, over all clients; more are refused
   * with {@link TooManyJobsError}, as are a remote client's beyond {@link clientQueueLimit} of
   * them. Default 64, enough to absorb a burst without letting the queue's latency grow unbounded.
   * The node config allows at most `MAX_QUEUE_LIMIT` (`_fair_queue.ts`): every change to the queue
   * retells each waiting job its place, so a longer one costs the actor's turns more.
   */
  queueLimit?: number;
  /** The prover hook, called once per text job with the prover's branch of the stream. */
  prover?: ProverHook;
  /**
   * Whether this worker has already signed a receipt for a job id (durably: the node asks its
   * ledger). With a prover, a job id is run once: a second run could yield a receipt that
   * differs in its last bits, and two different receipts for one job are equivocation, which
   * is slashed. Jobs finished since this actor started are remembered without asking.
   */
  receiptSigned?: (jobId: string) => Promise<boolean> | boolean;
  /**
   * Where the job counters are kept ({@link InferenceCounters}); default a fresh set. The node
   * hands every incarnation of the actor the same one, built outside the child spec's factory, so
   * a restart by the supervisor keeps the totals `/metrics`, the dashboard and `status` show
   * (review s71). The gauges (jobs running, queued) are each incarnation's own.
   */
  counters?: InferenceCounters;
  /** Clock in milliseconds; default `performance.now`. Injected by tests. */
  now?: () => number;
  /**
   * Where the bytes of tokens waiting in memory for readers that stopped reading while other jobs
   * waited for a seat are counted, over all jobs (`actors/_unread_token_budget.ts`). Default a
   * budget of `DEFAULT_UNREAD_TOKEN_BYTES` (64 MiB); one of 0 keeps every job waiting for its
   * reader.
   */
  unreadBudget?: UnreadTokenBudget;
  /** Timers of the slow-reader graces; default the system's. Injected by tests. */
  slowReaderTimers?: ConnectionTimers;
}

/**
 * The counters of {@link InferenceStats}: totals since the process started, which outlive the
 * actor's restarts when kept outside it ({@link InferenceActorOptions.counters}).
 */
export type InferenceCounters = Omit<InferenceStats, "activeJobs" | "queuedJobs" | "slots">;

/**
 * What the actor's `stats` adds to {@link InferenceStats}: its budget of unread token bytes
 * (`actors/_unread_token_budget.ts`), for `/metrics` and the heartbeat.
 */
export interface UnreadTokenStats {
  /** Bytes of tokens waiting in memory for readers that stopped reading, now. */
  unreadTokenBytes: number;
  /**
   * Jobs whose unread tokens were dropped to make room for another job's, since this actor
   * (re)started (the budget is the incarnation's, unless given in the options).
   */
  unreadTokenEvictions: number;
}

/** Every counter at 0: the counters of a node whose actor has run no job yet. */
export function emptyInferenceCounters(): InferenceCounters {
  const { activeJobs: _active, queuedJobs: _queued, slots: _slots, ...counters } =
    emptyInferenceStats();
  return counters;
}

/** Job ids finished here remembered in memory (the durable check is `receiptSigned`). */
const REMEMBERED_FINISHED_JOBS = 65_536;

/** Default jobs per model computed at once. */
export const DEFAULT_CONCURRENCY = 4;
/** Default jobs per model allowed to wait. */
export const DEFAULT_QUEUE_LIMIT = 64;

/**
 * The share of a model's queue one client may fill. Round-robin serving keeps a client's many
 * jobs from delaying another's, but not from taking every place: a client that filled the queue
 * would have every other client refused with 429 until its jobs drained. Half leaves the other
 * clients at least as many places as the busiest one holds.
 */
const CLIENT_QUEUE_SHARE = 0.5;

/**
 * The most jobs one client may have waiting for one model, for a queue of `queueLimit` places:
 * {@link CLIENT_QUEUE_SHARE} of them, at least 1 (a queue of one place is anyone's).
 *
 * @param queueLimit The model's queue limit (`InferenceActorOptions.queueLimit`).
 * @returns The per-client cap.
 */
export function clientQueueLimit(queueLimit: number): number {
  return Math.max(1, Math.floor(queueLimit * CLIENT_QUEUE_SHARE));
}

/**
 * The clients {@link clientQueueLimit} does not bind, only the queue's total: the node operator's
 * own. The cap protects other clients from one client; these are the operator's, not another's:
 * `this machine` (every loopback client of a keyless node; a default node serves loopback only,
 * so it was its only client and the cap refused it at half its queue, review s73) and `""` (callers
 * in the node's process that name no client: a library user of `mod.ts`, the dashboard's
 * prompt). Remote clients (an API key, a keyless address, a peer) stay capped.
 */
const OPERATOR_CLIENTS: ReadonlySet<string> = new Set(["", THIS_MACHINE_CLIENT]);

// ---------------------------------------------------------------------------------------------
// The actor
// ---------------------------------------------------------------------------------------------

/** Per-model slots and queue. */
interface ModelLane {
  running: number;
  /** The waiting jobs, served round-robin across clients (`_fair_queue.ts`). */
  queue: FairQueue<JobEntry>;
  /**
   * The place each queued job was last told: a job is told again only when its turn moves (a
   * job ahead of it left, was served, or another client's job came in ahead).
   */
  told: Map<JobEntry, number>;
  /**
   * Jobs run at once: the model's batch seats, or the actor's concurrency for a model that does
   * not report them (see {@link InferenceActorOptions.concurrency}). Read
   * whenever a slot may be taken, not once: a model's capacity shrinks when one of its workers
   * is given up on (`TextModel.batchCapacity`), and a slot that frees then must not go to a
   * queued job that would only wait inside the model for a seat.
   */
  slots: () => number;
  /** The model whose seat changes this lane hears, and how to stop hearing them. */
  watching?: { model: object; stop: () => void };
  /** Whether live jobs wait in {@link queue}, as last told to the running ones. */
  contended: boolean;
}

/**
 * Queues, starts and tracks inference jobs. Spawn it under the node supervisor:
 *
 * @example
 * ```ts ignore
 * const inference = await system.spawn({
 *   name: "node/inference",
 *   factory: () => new InferenceActor({ models: registry, concurrency: 4, queueLimit: 64 }),
 * });
 * const handle = await submitJob(inference, job);
 * for await (const chunk of handle.tokens) console.log(chunk.text);
 * console.log(await handle.done);
 * ```
 */
export class InferenceActor implements Actor<InferenceMessage> {
  #models: ModelSource;
  #concurrency: number;
  #queueLimit: number;
  #prover?: ProverHook;
  #now: () => number;
  #lanes = new Map<string, ModelLane>();
  #jobs = new Map<string, JobEntry>();
  /** Ids of text jobs that finished here with a prover (so with a signed receipt). */
  #finished = new Set<string>();
  #receiptSigned?: (jobId: string) => Promise<boolean> | boolean;
  /** Totals, kept across restarts by whoever gave them ({@link InferenceActorOptions.counters}). */
  #counters: InferenceCounters;
  /** Jobs running now: this incarnation's (a restart cancels every job it held). */
  #activeJobs = 0;
  #preparer: JobPreparer;
  /** Where the jobs' unread tokens are counted: read for {@link InferenceStats}. */
  #unreadBudget: UnreadTokenBudget;

  /**
   * Create it (the system calls this through the child spec's factory).
   *
   * @param options See {@link InferenceActorOptions}.
   */
  constructor(options: InferenceActorOptions) {
    this.#models = options.models;
    this.#concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.#queueLimit = options.queueLimit ?? DEFAULT_QUEUE_LIMIT;
    this.#prover = options.prover;
    this.#receiptSigned = options.receiptSigned;
    this.#now = options.now ?? (() => performance.now());
    this.#counters = options.counters ?? emptyInferenceCounters();
    if (!(this.#concurrency >= 1)) throw new RangeError("concurrency must be at least 1");
    if (!(this.#queueLimit >= 0)) throw new RangeError("queueLimit must not be negative");
    this.#unreadBudget = options.unreadBudget ?? new UnreadTokenBudget();
    this.#preparer = new JobPreparer({
      prover: this.#prover,
      now: this.#now,
      selfRef: () => this.#selfRef,
      unreadBudget: this.#unreadBudget,
      timers: options.slowReaderTimers,
    });
  }

  /** Handle one message; see {@link InferenceMessage}. */
  receive(
    message: InferenceMessage,
    ctx: ActorContext<InferenceMessage>,
  ): Promise<SubmitReply> | Promise<void> | Promise<InferenceStats> | InferenceStats | boolean {
    switch (message.type) {
      case "submit":
        return this.#submit(message, ctx);
      case "stats":
        return message.models === undefined ? this.#statsNow() : this.#servedStats(message.models);
      case "cancel": {
        const entry = this.#jobs.get(message.jobId);
        entry?.cancel();
        return entry !== undefined;
      }
      case "job_ended":
        return this.#ended(message, ctx);
      case "seats_changed": {
        const lane = this.#lanes.get(message.model);
        return lane === undefined ? Promise.resolve() : this.#fill(lane, ctx);
      }
    }
  }

  /**
   * Cancel every job when the actor stops, so no computation outlives it. Each is counted
   * cancelled here: its `job_ended` reaches the next incarnation (or none), which does not know
   * the job, and kept counters ({@link InferenceActorOptions.counters}) would otherwise show it
   * started and never ended.
   */
  postStop(): void {
    for (const lane of this.#lanes.values()) lane.watching?.stop();
    for (const entry of [...this.#jobs.values()]) {
      entry.cancel();
      this.#counters.jobsCancelled++;
    }
  }

  async #submit(message: SubmitJob, ctx: ActorContext<InferenceMessage>): Promise<SubmitReply> {
    const { job } = message;
    const submittedAt = this.#now();
    let id: string;
    try {
      id = computeJobId(job);
    } catch (error) {
      // A job with no canonical bytes (a string that is not well-formed Unicode: tensor jobs
      // have no schema edge before this) has no id: refused, typed, like any bad job.
      if (error instanceof VeriflowError) return { accepted: false, error };
      throw error;
    }
    if (this.#jobs.has(id)) return { accepted: false, error: new DuplicateJobError(id) };
    if (job.kind === "text" && this.#prover !== undefined) {
      // A ledger that cannot answer now (restarting) is not a reason to refuse or to crash.
      const signed = this.#finished.has(id) ||
        await Promise.resolve(this.#receiptSigned?.(id)).catch(() => false);
      if (signed) return { accepted: false, error: new DuplicateJobError(id, "finished") };
    }
    // Models are loaded lazily by the source; awaiting here is the only wait in the actor and
    // is bounded by a model load (sessions are cached after the first).
    let model: GenerativeModel | OneShotModel | undefined;
    try {
      model = await this.#models.get(job.model);
    } catch (error) {
      // An unknown or unloadable model refuses this job; it does not crash the actor. Any error
      // at all: a model's files are the operator's input, not this actor's code, so even an
      // untyped failure there must not take down the jobs running on every other model.
      return {
        accepted: false,
        error: asModelLoadError(`model ${job.model} cannot be loaded`, error),
      };
    }
    if (model === undefined) return { accepted: false, error: new UnknownModelError(job.model) };
    const lane = this.#seated(job.model, model);
    const client = message.client ?? "";
    const refusal = this.#queueRefusal(lane, client, model.info.name);
    if (refusal !== undefined) {
      this.#counters.jobsRejected++;
      return { accepted: false, error: refusal };
    }
    let prepared: PreparedJob;
    try {
      prepared = job.kind === "text"
        ? this.#preparer.prepareText(
          job,
          id,
          model,
          submittedAt,
          message.topLogprobs ?? 0,
          message.resume,
          message.input,
        )
        : this.#preparer.prepareTensor(job, id, model);
    } catch (error) {
      if (error instanceof VeriflowError) return { accepted: false, error };
      throw error;
    }
    const { entry, handle } = prepared;
    entry.onQueued = message.onQueued;
    this.#jobs.set(id, entry);
    if (lane.running < lane.slots()) {
      lane.queue.served(client);
      await this.#startEntry(entry, lane, ctx);
    } else {
      lane.queue.push(client, entry);
      retell(lane);
      this.#contention(lane);
    }
    return { accepted: true, handle };
  }

  /**
   * Why a job of `client` for `lane` cannot wait, if it would have to: the queue is full, or
   * `client`, unless it is the operator's ({@link OPERATOR_CLIENTS}), already fills its share of
   * it ({@link clientQueueLimit}). A queued job that has
   * already ended (cancelled, its `job_ended` still in the mailbox behind this submission) holds
   * no place: only live ones count.
   */
  #queueRefusal(lane: ModelLane, client: string, name: string): TooManyJobsError | undefined {
    if (lane.running < lane.slots()) return undefined;
    const waiting = lane.queue.liveCount;
    if (waiting >= this.#queueLimit) {
      return new TooManyJobsError(
        `model ${name} has ${lane.running} running and ${waiting} queued jobs`,
      );
    }
    if (OPERATOR_CLIENTS.has(client)) return undefined;
    const own = lane.queue.liveCountOf(client);
    const cap = clientQueueLimit(this.#queueLimit);
    if (own >= cap) {
      return new TooManyJobsError(
        `model ${name} already has ${own} queued jobs of this client, the most one client may ` +
          `queue (per-client cap ${cap} of the queue's ${this.#queueLimit} places)`,
      );
    }
    return undefined;
  }

  // The actor's own ref, captured on the first message so runners can report back.
  #selfRef?: ActorRef<InferenceMessage>;

  /** @internal Called by the system before the first message. */
  preStart(ctx: ActorContext<InferenceMessage>): void {
    this.#selfRef = ctx.self;
  }

  async #startEntry(
    entry: JobEntry,
    lane: ModelLane,
    ctx: ActorContext<InferenceMessage>,
  ): Promise<void> {
    entry.state = "running";
    lane.running++;
    this.#activeJobs++;
    this.#counters.jobsStarted++;
    await entry.start(ctx);
    if (lane.contended) entry.contended?.(true);
  }

  /** Drop a queued job that ended (cancelled) and tell the others their new turns. */
  #dropQueued(entry: JobEntry, lane: ModelLane): void {
    lane.told.delete(entry);
    if (lane.queue.remove(entry)) retell(lane);
  }

  async #ended(message: JobEnded, ctx: ActorContext<InferenceMessage>): Promise<void> {
    const entry = this.#jobs.get(message.jobId);
    if (!entry) return;
    this.#jobs.delete(message.jobId);
    if ((message.signed ?? message.outcome === "finished") && this.#prover !== undefined) {
      this.#finished.add(message.jobId);
      if (this.#finished.size > REMEMBERED_FINISHED_JOBS) {
        this.#finished.delete(this.#finished.values().next().value!);
      }
    }
    this.#counters.tokensGenerated += message.tokens;
    if (message.outcome === "finished") this.#counters.jobsFinished++;
    else if (message.outcome === "cancelled") this.#counters.jobsCancelled++;
    else this.#counters.jobsFailed++;
    const lane = this.#lane(entry.modelCid);
    if (entry.state !== "running") { // cancelled while queued: it never held a slot
      this.#dropQueued(entry, lane);
      this.#contention(lane);
      return;
    }
    lane.running--;
    this.#activeJobs--;
    await this.#fill(lane, ctx);
    this.#dropRetiredLanes();
  }

  /**
   * Drop the lanes of models the source no longer serves (see `ModelSource.list`) that no job
   * holds: each kept its queue, its seats and a capacity listener on a model that is gone, one
   * more per training round for the node's life. A job of such a model still running or queued
   * keeps its lane until it ends; one submitted later is refused by the source.
   */
  #dropRetiredLanes(): void {
    const listed = this.#models.list?.();
    if (listed === undefined) return;
    const served = new Set(listed.map((m) => m.cid));
    for (const [cid, lane] of this.#lanes) {
      if (served.has(cid) || lane.running > 0) continue;
      if (this.#jobs.values().some((entry) => entry.modelCid === cid)) continue;
      lane.watching?.stop();
      this.#lanes.delete(cid);
    }
  }

  /**
   * Start queued jobs while the model has a free seat. A queued job that has ended (cancelled in
   * the same turn, a client that went away) keeps its place until its own `job_ended` drops it:
   * a slot goes to the next live one in the clients' turn (`_fair_queue.ts`), unless the model
   * now seats fewer than run (see `ModelLane.slots`).
   */
  async #fill(lane: ModelLane, ctx: ActorContext<InferenceMessage>): Promise<void> {
    while (lane.running < lane.slots()) {
      const next = lane.queue.takeNext();
      if (!next) break;
      lane.told.delete(next);
      tellPosition(next, 0);
      // The others move up in the turn it leaves in: nobody hears of one without the other.
      retell(lane);
      await this.#startEntry(next, lane, ctx);
    }
    this.#contention(lane);
  }

  /**
   * Tell the lane's running jobs when live jobs start or stop waiting for its seats: while they
   * wait, a running job whose reader has stopped reading runs on into memory instead of holding
   * its seat (`TextJobRun.setContended`), so one slow reader slows only its own jobs.
   */
  #contention(lane: ModelLane): void {
    const waiting = lane.queue.liveCount > 0;
    if (waiting === lane.contended) return;
    lane.contended = waiting;
    for (const entry of this.#jobs.values()) {
      if (entry.state === "running" && this.#lanes.get(entry.modelCid) === lane) {
        entry.contended?.(waiting);
      }
    }
  }

  /**
   * The lane of model `cid`, seated by `model` (see {@link ModelLane.slots}), and told when its
   * seats change: a model worker back from a restart brings its seats back, and the jobs queued
   * meanwhile must take them then, not when a running job next ends.
   */
  #seated(cid: string, model: GenerativeModel | OneShotModel): ModelLane {
    const lane = this.#lane(cid);
    lane.slots = () => seatsOf(model) ?? this.#concurrency;
    if (lane.watching?.model !== model && "onCapacityChange" in model && model.onCapacityChange) {
      lane.watching?.stop();
      const stop = model.onCapacityChange(() => {
        // From the model's supervision, outside this actor's turn: the lane changes in `receive`.
        this.#selfRef?.tell({ type: "seats_changed", model: cid }).catch(() => {});
      });
      lane.watching = { model, stop };
    }
    return lane;
  }

  /**
   * The counters, and the queue depth counted now: a queued job that has ended (cancelled, its
   * `job_ended` still in the mailbox) waits for nothing, so a router reading the load does not
   * see this worker busier than it is.
   */
  #statsNow(models?: readonly string[]): InferenceStats & UnreadTokenStats {
    this.#dropRetiredLanes();
    let queuedJobs = 0;
    for (const lane of this.#lanes.values()) queuedJobs += lane.queue.liveCount;
    // The slots are the lanes' own (a model's seats, read now: they shrink with a lost worker),
    // so a router reading the hello sees the jobs that start at once here, not the concurrency.
    const counted = models === undefined
      ? [...this.#lanes.values()]
      : [...new Set(models)].flatMap((cid) => this.#lanes.get(cid) ?? []);
    let slots = 0;
    for (const lane of counted) slots += lane.slots();
    return {
      ...this.#counters,
      activeJobs: this.#activeJobs,
      queuedJobs,
      slots,
      unreadTokenBytes: this.#unreadBudget.used,
      unreadTokenEvictions: this.#unreadBudget.evictions,
    };
  }

  /**
   * {@link #statsNow} over `models`, each with a lane seated as a submission seats it: a model no
   * job has named yet is looked up first (see {@link GetInferenceStats.models}).
   */
  async #servedStats(models: readonly string[]): Promise<InferenceStats> {
    for (const cid of new Set(models)) {
      if (this.#lanes.has(cid)) continue;
      // A model that cannot be found or loaded refuses its jobs (see `#submit`); here it only
      // counts no slot. A source that loads lazily loads it now, as a submission would.
      let model: GenerativeModel | OneShotModel | undefined;
      try {
        model = await this.#models.get(cid);
      } catch {
        continue;
      }
      if (model === undefined) continue;
      this.#seated(cid, model);
    }
    return this.#statsNow(models);
  }

  #lane(cid: string): ModelLane {
    let lane = this.#lanes.get(cid);
    if (!lane) {
      lane = {
        running: 0,
        queue: new FairQueue<JobEntry>((entry) => !entry.ended()),
        told: new Map(),
        slots: () => this.#concurrency,
        contended: false,
      };
      this.#lanes.set(cid, lane);
    }
    return lane;
  }
}

/** Tell a job's submitter its place in the queue (0: it left it); a throwing callback is ignored. */
function tellPosition(entry: JobEntry, position: number): void {
  try {
    entry.onQueued?.(position);
  } catch {
    // The submitter's bug; the queue goes on.
  }
}

/**
 * Tell each live queued job whose turn moved its new place in the serving order (1: next). An
 * ended job still in the queue is nobody's wait: the order counts only live ones.
 */
function retell(lane: ModelLane): void {
  for (const [index, entry] of lane.queue.order().entries()) {
    const place = index + 1;
    if (lane.told.get(entry) === place) continue;
    lane.told.set(entry, place);
    tellPosition(entry, place);
  }
}

/**
 * The jobs `model` runs at once, if it says: its batch seats (`batchCapacity`; a worker given up
 * on takes its seats with it), at least one so the lane never stops; undefined for a model that
 * does not report them.
 */
function seatsOf(model: object): number | undefined {
  const seats = "batchCapacity" in model ? model.batchCapacity : undefined;
  return typeof seats === "number" ? Math.max(1, seats) : undefined;
}
