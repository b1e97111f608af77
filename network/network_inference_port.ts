/**
 * The inference port of a node that forwards its clients' jobs to peers: each job goes to a
 * connected peer that serves inference and runs the job's model (the least busy such peer),
 * over a {@link RemoteInferencePort}. The node's HTTP and WebSocket edge cannot tell it from a
 * local port; tokens stream back with the connection's flow control end to end. A worker lost
 * mid-stream is replaced by another that resumes from the last token delivered (`failover.ts`).
 * A worker that refused a job as full (or kept one without a token, or dropped it with its
 * connection) is asked last for a while (`busy_refusals.ts`): its hello's claim of room is not
 * believed until then. One that took a job over and refused tokens another worker then
 * reproduced is asked last to take jobs over, for a while of the same kind. A job whose every
 * token reached the client and whose worker's `end` event (its receipt) was lost with the
 * connection is remembered, and the receipt asked for later (`_lost_ends.ts`). A receipt that
 * checks out goes to the node's validator with this node's signed assignment; the client's retry
 * of that job (same nonce) is then refused `duplicate_job`, across a restart when the port keeps
 * a file, as is one sent while the job still runs (`_assigned_jobs.ts`).
 *
 * @module
 */
import type { ActorRef } from "../actors/actor_ref.ts";
import type { ActorSystem } from "../actors/actor_system.ts";
import type { Connection } from "../protocols/connection.ts";
import { INFERENCE_PROTOCOL, ReceiptRequestMessage } from "../protocols/inference_messages.ts";
import { jobBytes, jobId, MAX_NETWORK_JOB_BYTES, type TextJob } from "../protocols/job.ts";
import { VeriflowError } from "../protocols/errors.ts";
import {
  checkTextJob,
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type JobSummary,
  type ServedModelInfo,
  type SubmitOptions,
} from "../inference/inference_port.ts";
import { type Receipt, verifyReceipt } from "../protocols/receipt.ts";
import { type JobAssignment, signAssignment } from "../protocols/assignment.ts";
import type { Identity } from "../protocols/identity.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import { decodeCbor, encodeCbor } from "../protocols/cbor.ts";
import { streamEvidence } from "../protocols/stream_commitment.ts";
import type { ValidatorMessage } from "../actors/validator_actor.ts";
import type { ReceiptHandled } from "../actors/validator_messages.ts";
import {
  DEFAULT_STALL_TIMEOUT_MS,
  DEFAULT_START_TIMEOUT_MS,
  maxPromptTokens,
  RemoteInferencePort,
  type RemoteInferencePortOptions,
} from "../inference/remote_port.ts";
import { CANCELLED, WorkerStalledError, WorkerTooSlowError } from "../inference/remote_errors.ts";
import { ConnectionClosedError, RemoteError } from "../protocols/protocol_errors.ts";
import { PeerStoppedError } from "../protocols/peer_goodbye.ts";
import type { NetworkMessage } from "./network_actor.ts";
import { REFUSED_MODEL_COOLDOWN_MS } from "./network_actor.ts";
import { BusyRefusals } from "./busy_refusals.ts";
import { type WorkerRecord, workerRecordOf } from "./worker_record.ts";
import { validatorInboxOf } from "./peer_services.ts";
import { LostEnds } from "./_lost_ends.ts";
import { AssignedJobs, type AssignedJobsStats } from "./_assigned_jobs.ts";
import { ASSIGNED_JOBS_FILE } from "./_assigned_job_file.ts";
import {
  type PromptTokenCounter,
  type PromptTokenSeen,
  promptTokensRefusal,
} from "./_prompt_token_claim.ts";
import { jobStakeLock } from "./_job_stake_lock.ts";
import type { LedgerTerms } from "../proof/_ledger_amounts.ts";
import {
  DEFAULT_QUEUE_HOLD_MS,
  FAILOVER_CAUSES,
  type FailoverCause,
  HEDGE_OUTCOMES,
  type HedgeOutcome,
  type HedgeRequest,
  isCapacityRefusal,
  isJobError,
  isWorkerFault,
  isWorkerLost,
  isWorkerRefusal,
  MAX_WORKERS_ASKED_PER_JOB,
  MAX_WORKERS_PER_JOB,
  type RelayedOutput,
  type ResumeOutcome,
  type TextDispute,
  withFailover,
  WORKER_FAILED,
  WORKER_FAULT_CODES,
  WORKER_LOST_CODES,
  type WorkerAttempt,
} from "./failover.ts";

/**
 * A worker's refusals (or failures of a job it started) that say it does not run a model it
 * listed: it does not have it, cannot load it, its model's process died, or it unloaded it.
 */
const MODEL_REFUSAL_CODES: ReadonlySet<string> = new Set([
  "unknown_model",
  "model_load_failed",
  "model_worker_failed",
  "model_disposed",
]);

/**
 * Whether `error`, a worker's refusal of a job, is a failure of its own though its code is none
 * this side knows as a refusal (`isWorkerRefusal`) nor as one about the job (`isJobError`): a
 * code it made up (its error frame, a {@link RemoteError}, names no typed refusal), or that the
 * job was cancelled, which nobody here asked. The next worker is asked, and this one is kept off
 * the model as one that fails it: ended the client's job instead, one worker picked first ended
 * every job with any code it liked (`invalid_api_key` told clients with good keys that theirs
 * were not).
 */
function isOwnFailure(error: unknown): boolean {
  return error instanceof RemoteError ||
    (error instanceof VeriflowError && OWN_FAILURE_CODES.has(error.code));
}

/**
 * Typed codes that are a worker's own failure when it refuses a job (`isOwnFailure`): the job
 * was cancelled, which nobody here asked, or it is a duplicate (`duplicate_job`). A job reaches a
 * worker only once this node's own memory (`_assigned_jobs.ts`) says it is neither assigned nor
 * running nor owed here, so a worker's `duplicate_job` is that worker's state: passed to the
 * client, one worker that answered it to every job failed each one it was picked for, and the
 * honest worker behind it was never asked (review s78 vassign, F1). Unless the worker's receipt
 * for the job checks out: then the job ran there and this node forgot it (`#ranBefore`).
 */
const OWN_FAILURE_CODES: ReadonlySet<string> = new Set([CANCELLED, "duplicate_job"]);

/**
 * Seconds a client is told to wait before it retries a job refused `no_worker` while the node is
 * still connecting to its peers ({@link NoWorkerError.retryAfterS}): a static peer's first redial
 * comes after 250 ms, and its handshake and model listing take a few round trips on a LAN, so a
 * worker that is coming is most often there a second later; one second is also the least a
 * `Retry-After` can say. A peer that stays away costs the client one more refusal per second.
 */
export const NO_WORKER_RETRY_AFTER_S = 1;

/**
 * No connected peer serves inference for the job's model. While the node is still connecting
 * to its peers (the NetworkActor's `connecting`: a configured peer not connected yet, a new
 * peer's models not listed yet, a swarm just joined), or while each connected worker that lists
 * the model is only kept off it for a while after a failure, it says when to retry
 * ({@link retryAfterS}): the edge sends that as `Retry-After` with the 503 and as the WebSocket
 * error's `retry_after_s`. Without it, no worker is expected to come by itself.
 */
export class NoWorkerError extends VeriflowError {
  /**
   * Seconds after which the job may find a worker: {@link NO_WORKER_RETRY_AFTER_S} while the
   * node is still connecting to its peers, the seconds until the first worker kept off the model
   * may take it again (rounded up, at least 1), the smaller when both hold; absent otherwise.
   */
  readonly retryAfterS?: number;

  /**
   * Create the error.
   * @param model The model the job named (`any`: no worker at all).
   * @param listed A connected peer lists the model, but none may be given the job now (each was
   *   kept off the model after a failure, or is convicted): the message says so, so an operator
   *   who sees the peer connected does not look for a network fault.
   * @param connecting The node is still connecting to its peers: the error carries
   *   {@link retryAfterS} and its message says a worker may connect shortly.
   * @param keptOffMs How long (ms) until the first connected worker kept off the model after a
   *   failure may take it again (not a convicted one: it never will): the error carries it as
   *   {@link retryAfterS}, in whole seconds rounded up.
   */
  constructor(model: string, listed = false, connecting = false, keptOffMs?: number) {
    const why = model === "any"
      ? "no connected peer runs a model: jobs cannot be forwarded yet"
      : listed
      ? `connected peers serve model ${model}, but none may take a job for it now: each was ` +
        `kept off the model for a while after a failure (a refusal, a stall, a bad receipt) ` +
        `or is convicted; try again shortly`
      : `no connected peer serves inference for model ${model}`;
    super(
      "no_worker",
      connecting ? `${why} (this node is still connecting to its peers: retry shortly)` : why,
    );
    const hints: number[] = [];
    if (connecting) hints.push(NO_WORKER_RETRY_AFTER_S);
    if (keptOffMs !== undefined && keptOffMs > 0) {
      hints.push(Math.max(1, Math.ceil(keptOffMs / 1000)));
    }
    if (hints.length > 0) this.retryAfterS = Math.min(...hints);
  }
}

/**
 * Options of a {@link NetworkInferencePort}'s worker ports and of its jobs' failover, and where
 * its validator runs.
 */
export interface ForwardingOptions extends RemoteInferencePortOptions {
  /**
   * How long a client waits on a worker for its job's first token before another worker is
   * asked to take the job over beside it (default {@link DEFAULT_QUEUE_HOLD_MS}; `failover.ts`).
   */
  queueHoldMs?: number;
  /**
   * The actor system the port's validator runs in. Given, each checked receipt reaches the
   * validator through the node's `ValidatorInbox` (`_validator_inbox.ts`), held while it is down
   * (stopped, restarting) and handed to its next incarnation after a crash. Absent, it is told
   * to the validator's ref once, and lost if that finds no validator or it crashes with the
   * receipt queued: the assignment is then in no ledger, and the honest worker paid in none.
   * Given, too, the port writes what its workers did (jobs run to their end, jobs failed) into
   * the node's record of its workers (`worker_record.ts`), which its network actor (spawned in the
   * same system) reads to choose workers: track record before claimed load. Absent, no record is
   * kept, and workers are ranked by their ledger standing and their claims alone.
   */
  system?: ActorSystem;
  /**
   * The folder the port keeps its lost ends in (`<dataDir>/lost-ends`, {@link LOST_ENDS_DIR}:
   * jobs whose worker's `end` event, its receipt, was lost with the connection after the last
   * token), read back when the port starts, so that a restart still asks for those receipts.
   * Absent: memory only, and a restart forgets them (their honest workers are paid nowhere).
   */
  lostEndsDir?: string;
  /**
   * The file the port keeps the jobs it assigned in (`<dataDir>/assigned-jobs.log`,
   * {@link ASSIGNED_JOBS_FILE}), read back when the port starts, so that a restart still refuses a
   * client's retry of one as `duplicate_job` (`_assigned_jobs.ts`). Absent: memory only, and
   * after a restart such a retry runs on a second worker, and neither is paid.
   */
  assignedJobsFile?: string;
  /**
   * Told a line for each torn or damaged stretch of {@link assignedJobsFile} skipped as the port
   * starts (a receipt handoff or an assigned job id kept there is lost). Absent: only counted
   * (`droppedRecords`).
   */
  log?: (line: string) => void;
  /**
   * This node's own count of a job's prompt tokens (its tokenizer for the job's model), to which
   * a worker's receipt must sign the same `promptTokens` (`_prompt_token_claim.ts`). Absent, or
   * undefined for a job: no count is refused here; the validators re-count every receipt.
   */
  countPromptTokens?: PromptTokenCounter;
  /**
   * The terms this node's ledger prices and locks receipts by (default
   * `DEFAULT_LEDGER_TERMS`, those the node opens its ledger with): the router ranks a worker as
   * backed for a job only when its free stake there covers the job's worst-case lock
   * (`_job_stake_lock.ts`, `worker_choice.ts` rule 3).
   */
  ledgerTerms?: LedgerTerms;
}

export { LOST_ENDS_DIR } from "./_lost_end_files.ts";
export { ASSIGNED_JOBS_FILE };

// The lost-end store's bounds and timings, importable from here as before the move.
export {
  LOST_END_DIAL_AFTER_ASKS,
  LOST_END_DIAL_MS,
  LOST_END_FIRST_ASK_MS,
  LOST_END_KEEP_MS,
  LOST_END_MAX_ASK_MS,
  MAX_LOST_END_BYTES,
  MAX_LOST_END_DIALS,
  MAX_LOST_ENDS,
  MAX_LOST_ENDS_PER_WORKER,
} from "./_lost_ends.ts";

/** How long a lookup in the network actor may take (it answers from memory). */
const LOOKUP_TIMEOUT_MS = 5_000;

/**
 * How long a client's `done` waits, after its cancel, for the worker's receipt over the tokens
 * it got: the worker signs as the cancel comes (one commitment over at most `maxTokens`
 * positions, milliseconds), so a worker silent this long has none to give; past it the job ends
 * unpaid rather than holding the client's end.
 */
export const CANCELLED_RECEIPT_TIMEOUT_MS = 5_000;

/**
 * How long a worker that refused a job `duplicate_job` and then left the request for its receipt
 * unanswered for {@link CANCELLED_RECEIPT_TIMEOUT_MS} is not asked for one again: its next
 * `duplicate_job` is its failure at once. At first as long as it is kept off the model for it
 * (`REFUSED_MODEL_COOLDOWN_MS`), so the job it is next picked for after that waits on it no more;
 * doubled each time it is silent again after, up to {@link MAX_UNANSWERED_RECEIPT_MS}. Asked
 * again each time, such a worker held one job the whole wait each minute, per key (stop 78 left
 * open). An honest worker answers from memory in one round trip, so this costs one only when a
 * link stalls just then, and it is asked again after the while.
 */
const UNANSWERED_RECEIPT_FIRST_MS = REFUSED_MODEL_COOLDOWN_MS;
/**
 * The longest such while: the assigned-jobs keep window (`_assigned_jobs.ts`, 22.5 min) at most,
 * rounded down to whole doublings of the first (16 min): past it, a `duplicate_job` is about a job
 * whose first receipt no ledger holds open any more, and an honest worker's answer then saves
 * nobody's pay.
 */
const MAX_UNANSWERED_RECEIPT_MS = 16 * UNANSWERED_RECEIPT_FIRST_MS;

/**
 * A forwarding node's counters ({@link NetworkInferencePort.stats}). The job counters of
 * {@link InferenceStats} count each client's job once, across every worker it ran on (a job that
 * failed over twice and finished is 1 started and 1 finished); what the workers were asked is
 * counted apart.
 */
export interface ForwardingStats extends InferenceStats {
  /**
   * Runs of client jobs on workers that started them: the first worker, each takeover and each
   * hedge (`/metrics`: `veriflow_inference_worker_attempts_total`).
   */
  workerAttempts: number;
  /**
   * Times a job left its worker mid-job for another, by why (`failover.ts`'s `FailoverCause`),
   * whether or not another took it (`veriflow_inference_failovers_total{cause}`).
   */
  failovers: Record<FailoverCause, number>;
  /**
   * Hedges asked beside a worker that held a job without its first token, by how each ended
   * (`veriflow_inference_hedges_total{outcome}`).
   */
  hedges: Record<HedgeOutcome, number>;
  /**
   * What went wrong with its memory of the jobs it assigned (`_assigned_jobs.ts`): loads and
   * appends of its file that failed, records dropped at load, ids forgotten inside the keep
   * window (`veriflow_router_assigned_jobs_faults_total{kind}`). Each may let a client's retry
   * run twice and void a worker's pay; this is how an operator learns it (the damaged stretches
   * skipped at load also go to {@link ForwardingOptions.log}).
   */
  assignedJobs: AssignedJobsStats;
}

/** Each of `keys` at 0. */
function zeros<K extends string>(keys: readonly K[]): Record<K, number> {
  return Object.fromEntries(keys.map((key) => [key, 0])) as Record<K, number>;
}

/** Forwards jobs to peers chosen by the {@link NetworkMessage} actor. */
export class NetworkInferencePort implements InferencePort {
  /**
   * The last submission's run (see `submit`): each submission of a job, a client's retry of it
   * too, looks up its workers as a run of its own, with a greater number than every earlier one
   * in this process (every port's), so that the routing tells a late lookup of a cancelled run
   * from its retry's own (review s80 vlate F1). It never leaves the process.
   */
  static #runs = 0;
  readonly #network: ActorRef<NetworkMessage>;
  readonly #validator?: ActorRef<ValidatorMessage>;
  readonly #requester?: Identity;
  /** One remote port per connection, so each connection's jobs are counted once. */
  readonly #ports = new WeakMap<Connection, RemoteInferencePort>();
  /** The remote ports of the connections open now. */
  readonly #all = new Set<RemoteInferencePort>();
  /**
   * Ports whose connection closed while jobs of theirs had not ended yet: counted as they end,
   * then folded into {@link #retired} (see {@link stats}).
   */
  readonly #closing = new Set<RemoteInferencePort>();
  /** The counters of ports whose connection closed and whose jobs had all ended. */
  readonly #retired: InferenceStats = emptyInferenceStats();
  readonly #remote: ForwardingOptions;
  readonly #busy: BusyRefusals;
  /** What its workers did, for the network actor's choice (`worker_record.ts`); see `system`. */
  readonly #record?: WorkerRecord;
  /** Goodbyes noted in the record already: each fails every job on its connection. */
  readonly #goodbyes = new WeakSet<PeerStoppedError>();
  /**
   * Workers that took a job over and refused the delivered tokens (`resume_mismatch`,
   * `invalid_resume`) that a later worker then reproduced: asked last to take a job over (not
   * to start one) for a while, so that one such worker, honest with an odd machine or claiming
   * room it never gives, does not spend a try of every failover. Its whiles are those of
   * `busy_refusals.ts`; a job it resumes and runs to its end forgets them.
   */
  readonly #unresumable: BusyRefusals;
  /**
   * Workers that refused a job `duplicate_job` and left the request for its receipt unanswered:
   * not asked for one again for a while ({@link UNANSWERED_RECEIPT_FIRST_MS}).
   */
  readonly #unanswered = new BusyRefusals({
    firstMs: UNANSWERED_RECEIPT_FIRST_MS,
    maxMs: MAX_UNANSWERED_RECEIPT_MS,
  });
  /** Jobs whose worker's end event was lost after the last token (`_lost_ends.ts`). */
  readonly #lostEnds: LostEnds;
  /** Jobs whose receipt went to the validator with this node's assignment (`_assigned_jobs.ts`). */
  readonly #assigned: AssignedJobs;
  /**
   * The clients' jobs, each counted once whatever workers it ran on (the job counters and gauges
   * of {@link stats}); the remote ports count each worker's run.
   */
  readonly #jobs: InferenceStats = emptyInferenceStats();
  readonly #failovers = zeros(FAILOVER_CAUSES);
  readonly #hedges = zeros(HEDGE_OUTCOMES);

  /**
   * Create the port.
   * @param network The node's NetworkActor.
   * @param validator The node's ValidatorActor, which gets every receipt that checks out
   *   (through the node's validator inbox when `remote.system` is given: {@link ForwardingOptions}).
   * @param requester This node's identity: it signs each forwarded job's assignment to the
   *   worker it picked (`protocols/assignment.ts`), which is what lets the worker's receipt be
   *   credited in any ledger. Absent: no assignment, and the work earns nothing.
   * @param remote Options of each worker's {@link RemoteInferencePort} (its start timeout:
   *   a worker silent past it is passed over for the next), and the queue hold of each job.
   * @param busy The workers that lately refused a job as full, asked last (tests pass one with
   *   a fake clock).
   * @param unresumable The workers that lately refused tokens another worker reproduced, asked
   *   last to take a job over (tests pass one with a fake clock).
   */
  constructor(
    network: ActorRef<NetworkMessage>,
    validator?: ActorRef<ValidatorMessage>,
    requester?: Identity,
    remote: ForwardingOptions = {},
    busy: BusyRefusals = new BusyRefusals(),
    unresumable: BusyRefusals = new BusyRefusals(),
  ) {
    this.#network = network;
    this.#busy = busy;
    this.#unresumable = unresumable;
    this.#remote = remote;
    this.#record = remote.system === undefined ? undefined : workerRecordOf(remote.system);
    this.#validator = validator;
    this.#requester = requester;
    // A job whose receipt is owed is refused as long as its lost end is kept, and no longer
    // (review s78 vassign, F6: marked assigned, it was refused for good as "assigned").
    this.#assigned = new AssignedJobs({
      file: remote.assignedJobsFile,
      owed: (id) => this.#lostEnds.has(id),
      // A receipt assigned before a crash that the validator had not taken: handed over now.
      recover: (id, handoff) => this.#recovered(id, handoff),
      log: remote.log,
    });
    this.#lostEnds = new LostEnds({
      network,
      timers: remote.timers,
      lookupTimeoutMs: LOOKUP_TIMEOUT_MS,
      dir: remote.lostEndsDir,
      // What `settle` remembered of the lost worker's own start (its count and the window it
      // stated, review s79 vlate F5); a lost end kept on disk before that has only the count, in
      // the summary kept.
      checked: (summary, job, worker, relayed, assignment, seen) =>
        this.#checked(
          summary,
          job,
          worker,
          relayed,
          assignment,
          seen ?? { started: summary.usage.promptTokens },
        ),
    });
  }

  /**
   * The best worker for `job` (its model; a holder of its input, if it names one) not in
   * `exclude` by the network actor's choice (`worker_choice.ts`), among those that did not lately refuse a job as full when there is one
   * (their hellos' claim of room is contradicted by their own answer), and, to take a job over
   * (`resuming`), that did not lately refuse tokens another worker reproduced, when there is
   * one; else among all, unless `fresh` (a hedge: `failover.ts`), which asks none of them.
   * `stakeLock`: the most stake the job's receipt can lock, which a backed worker covers.
   * `run`: the submission that asks (see {@link #lookup}).
   */
  async #port(
    job: TextJob,
    run: number,
    exclude: readonly Uint8Array[],
    stakeLock: Promise<number>,
    resuming = false,
    fresh = false,
  ): Promise<RemoteInferencePort | undefined> {
    const lock = await stakeLock;
    const tried = exclude.map(toHex);
    const last = resuming
      ? [...this.#busy.askedLast(), ...this.#unresumable.askedLast()]
      : this.#busy.askedLast();
    const full = [...new Set(last)].filter((key) => !tried.includes(key));
    const connection = full.length === 0
      ? await this.#lookup(job, run, tried, lock, fresh)
      : await this.#lookup(job, run, [...tried, ...full], lock, fresh) ??
        (fresh ? undefined : await this.#lookup(job, run, tried, lock, false));
    if (connection === undefined) return undefined;
    let port = this.#ports.get(connection);
    if (port === undefined) {
      port = new RemoteInferencePort(connection, this.#remote);
      this.#ports.set(connection, port);
      this.#all.add(port);
      connection.closed.then(() => this.#retire(port!));
    }
    return port;
  }

  /**
   * The network actor's choice of worker for `job`, none of `exclude` (hex keys), backed by
   * stake for `lock`, the most its receipt can lock (with this node's own prompt count, else a
   * bound: the model's window as its workers list it, where they list one, review s79 vmoney F5;
   * read once per job in `submit`). `hedge`: a hedge's lookup, beside the worker that holds
   * the job (both hold its lock until the race's loser is released: `failover.ts` `released`).
   * `run`: the submission that asks (`submit`): a lookup of a run that ended here (review s80
   * vadm2 F1), or that the client's retry of the job superseded (vlate F1), holds nothing.
   */
  async #lookup(
    job: TextJob,
    run: number,
    exclude: string[],
    lock: number,
    hedge = false,
  ): Promise<Connection | undefined> {
    // With the job's id, its lock is held against the worker picked until `#stakeReleased`: a
    // burst of jobs does not all go to a worker whose stake backs one (`worker_choice.ts`).
    return await this.#network.ask<Connection | undefined>(
      {
        type: "worker",
        model: job.model,
        exclude,
        input: job.input,
        lock,
        job: jobId(job),
        run,
        ...(hedge ? { hedge } : {}),
      },
      { timeoutMs: LOOKUP_TIMEOUT_MS },
    );
  }

  /**
   * Forward `job` to a peer that runs its model: the best one, or the next when it refuses for
   * a reason of its own (full, its model failing; `isWorkerRefusal`). Rejects with
   * {@link NoWorkerError} if none serves the model, else with the last refusal.
   * If that worker is lost mid-stream, the job resumes on another from the last token the
   * client got (`failover.ts`); the client sees one unbroken stream, or, when no other worker
   * takes it, an error that says so (`failover.ts`: the loss's code when this side saw it, else
   * `worker_failed`).
   * The receipt of the worker that finished is checked here before the client gets it — signed
   * by the peer the job last went to, for this job, over the whole text relayed — and then
   * handed, with this node's signed assignment of the job to that worker, to this node's
   * validator (which records it, may challenge it, and announces both to other validators). A
   * receipt that fails is withheld, and `done` says why.
   * @throws {AssignedJobError} (`duplicate_job`) for a job whose receipt this node already
   *   assigned (`_assigned_jobs.ts`), before a restart too when the port keeps them in a file
   *   ({@link ForwardingOptions.assignedJobsFile}): run again, neither worker would be paid.
   * @throws {RunningJobError} (`duplicate_job`) for a job still running for an earlier
   *   submission: both runs would end assigned.
   * @throws {OwedReceiptError} (`duplicate_job`) for a job whose every token its client got and
   *   whose worker's receipt this node still asks for (`_lost_ends.ts`), while it asks.
   */
  async submit(job: TextJob, options?: SubmitOptions): Promise<InferenceHandle> {
    // Checked as every port checks a job (`checkTextJob`): before it is hashed, measured or sent.
    job = checkTextJob(job);
    // The job names this node as its requester, so only this node can assign it (a copier of
    // the worker's receipt cannot sign an assignment of it to itself; `assignment.ts`).
    if (this.#requester) job = { ...job, requester: toHex(this.#requester.publicKey) };
    const bytes = jobBytes(job);
    if (bytes > MAX_NETWORK_JOB_BYTES) {
      // Refused here, not by the worker: its fraud proofs could not reach the other ledgers.
      throw new VeriflowError(
        "prompt_too_long",
        `the job takes ${bytes} bytes, over the ${MAX_NETWORK_JOB_BYTES} a job forwarded to ` +
          `another node may take (its fraud proofs must fit one frame); shorten the prompt`,
      );
    }
    // A retry (same nonce) of a job whose receipt this node assigned, across a restart too, or of
    // one still running for its first submission: run again, its second assignment would be
    // refused `double_assignment` and void the first's pay (review s77). Read back before the
    // check, and checked and held as running with no await between, so two submissions of one
    // job cannot both pass.
    await Promise.all([this.#assigned.loaded, this.#lostEnds.loaded]);
    const id = jobId(job);
    const leaveRunning = this.#assigned.start(id);
    // This submission's run: its lookups, its releases and its end name it (`#runs`).
    const run = ++NetworkInferencePort.#runs;
    // This node's count of the prompt, read once per job (an exact count encodes the whole
    // prompt): it prices the stake a worker must back at every lookup of the job's (`#port`).
    // Where there is none, the model's listed window, asked beside the start (its answer comes
    // from memory), bounds the lock, and the receipt's prompt count of a worker that stated no
    // window is held to it.
    const count = this.#remote.countPromptTokens?.(job);
    const listing = count === undefined
      ? this.#listedWindow(job.model)
      : Promise.resolve(undefined);
    const lock = listing.then((window) =>
      jobStakeLock(job, count, this.#remote.ledgerTerms, window)
    );
    const started = this.#start(job, run, options, listing, lock);
    const { first, before } = await started.catch((error: unknown) => {
      leaveRunning();
      this.#stakeReleased(id, run);
      // Every worker asked was full: the client's job was refused for want of room, as a local
      // port's full queue refuses it.
      if (isCapacityRefusal(error)) this.#jobs.jobsRejected++;
      throw error;
    });
    const listed = await listing;
    this.#jobs.jobsStarted++;
    this.#jobs.activeJobs++;
    /**
     * The client's summary once the receipt of its cancel, or of its evicted finished job, is
     * asked for (set by `settle`).
     */
    let cancelledEnd: Promise<JobSummary> | undefined;
    /** The receipt's assignment on disk (set by `#checked`): `done` waits for it. */
    let durable: Promise<void> | undefined;
    const handle = withFailover({
      first,
      before,
      signal: options?.signal,
      prefix: options?.resume,
      maxTokens: job.params.maxTokens,
      resume: (exclude, prefix, hedge) =>
        this.#resume(job, run, options, exclude, prefix, listing, lock, hedge),
      queueHoldMs: this.#remote.queueHoldMs ?? DEFAULT_QUEUE_HOLD_MS,
      timers: this.#remote.timers,
      // The assignment is signed once the job is done, off the first token's path (an ed25519
      // signature in JS is about a millisecond): it only travels with the receipt.
      settle: (summary, attempt, relayed) => {
        // Only a job it ran to its end forgives its refusals: a `start` alone is no job taken (a
        // worker that claims room, starts each job and goes silent would be forgiven each time).
        const assignment = this.#requester && signAssignment(
          { job, worker: attempt.worker, issuedAt: attempt.assignedAt },
          this.#requester,
        );
        // Every token delivered and the worker's connection lost before its end event: the
        // receipt is asked for later, on another connection (nothing was left to resume).
        const endLost = summary.receipt === undefined && relayed.lastToken !== undefined &&
          WORKER_LOST_CODES.has(summary.error?.code ?? "");
        if (endLost && assignment) {
          // Owed while it is kept (a retry meanwhile is refused: it would be assigned too, and
          // neither paid), and written as assigned only when its receipt is (`#checked`).
          // With its own start's count, the one its receipt must sign (`#checked`), and the
          // window it stated: the late receipt is checked as this end's would be.
          const own = { ...summary.usage, promptTokens: attempt.handle.promptTokens };
          this.#lostEnds.remember(
            job,
            attempt.worker,
            relayed,
            { ...summary, usage: own },
            assignment,
            this.#seen(attempt, listed),
          );
        }
        // Its prompt count held to its own start's (after a failover, the resumer's: the first
        // worker's word is not its), and to the window it stated (the model's listed window where
        // it stated none), where this node cannot count it.
        // A taker that did not say the prefix's text, whose receipt fails over that text alone:
        // withheld, and not held to it (`RelayedOutput.unsaid`, review s81 vfotext F3).
        let excused = false as boolean;
        const told = this.#checked(
          summary,
          job,
          attempt.worker,
          relayed,
          assignment,
          this.#seen(attempt, listed),
          (written) => durable = written,
          () => excused = true,
        );
        // Every token delivered and the worker's stream broken where its end was due (another
        // event, no end in time: `_remote_job.ts`): the client has its whole answer, and no
        // receipt pays for it. Kept off the model as any worker whose stream broke the protocol.
        const brokeAtEnd = summary.receipt === undefined &&
          WORKER_FAULT_CODES.has(summary.error?.code ?? "");
        if (brokeAtEnd) this.#avoid(attempt.worker, job.model);
        // Nor one whose receipt was withheld: what the client got is not what it signed.
        const withheld = summary.receipt !== undefined && told.receipt === undefined;
        const blamed = withheld && !excused;
        // No takeover replays the tokens of a job whose last token came: where no receipt that
        // checks out came with them (its end lost, its stream broken where its end was due, its
        // receipt withheld), the worker's signed stream is checked instead, every token of it
        // (an honest one is refuted, at the cost of one forward pass; one whose last token was
        // made up to end the job is convicted, and its receipt, if one comes, is not paid).
        if (endLost || brokeAtEnd || blamed) this.#claimStream(job, attempt);
        // Lost where its end was due: asked last for a while, as a worker lost mid-stream is
        // (it may dial back in with its receipt): a worker that drops after every last token
        // costs its router a replay each time, and must not be asked first again.
        if (endLost) this.#busy.refused(toHex(attempt.worker));
        // A lost end is no job run to its end yet: its receipt has not come (`_lost_ends.ts`).
        const finished = !withheld && !brokeAtEnd && !endLost &&
          (summary.finishReason === "stop" || summary.finishReason === "length");
        if (finished) this.#busy.took(toHex(attempt.worker));
        // Its track record (`worker_record.ts`): a job run to its end for it, one it failed
        // where its end was due against it.
        if (finished) this.#record?.completed(toHex(attempt.worker));
        if (brokeAtEnd || blamed) this.#record?.failed(toHex(attempt.worker));
        else if (endLost) this.#failedOrLeft(attempt.worker, summary.error);
        // Only a job it took over after tokens were delivered, and ran to its end, shows it
        // reproduces a prefix (a first start, or a takeover before any token, replays nothing).
        if (finished && relayed.resumedAt > 0) this.#unresumable.took(toHex(attempt.worker));
        // The worker that ended the job (the last one, after a failover): the edge's log names it.
        const ended = { ...told, worker: toHex(attempt.worker) };
        // The client cancelled after tokens of this worker's (or this side read some: the
        // worker's floor, `RelayedOutput.read`): its receipt over them, signed as the cancel came,
        // is asked for and handed on as a finished job's would be.
        if (summary.finishReason === "cancelled" && summary.receipt === undefined) {
          if (Math.max(relayed.tokens, relayed.read?.tokens ?? 0) > relayed.resumedAt) {
            const seen = this.#seen(attempt, listed);
            cancelledEnd = this.#cancelledReceipt(ended, job, attempt, relayed, assignment, seen);
          }
        }
        // The client read too slowly, and the worker evicted the unread tokens of a job it had
        // finished (`slow_reader`): its receipt over the whole job is asked for, the slow
        // client's to pay (`#evictedReceipt`).
        if (summary.error?.code === "slow_reader" && summary.receipt === undefined) {
          const seen = this.#seen(attempt, listed);
          cancelledEnd = this.#evictedReceipt(
            ended,
            job,
            attempt.worker,
            relayed,
            assignment,
            seen,
          );
        }
        return ended;
      },
      lost: (worker, error) => {
        // A worker that went silent on a running job (its connection alive) would cost the
        // next job the same wait: kept off the model like one that refuses it. One that never
        // sent this job's first token may only have kept it queued, behind this connection's
        // other jobs (`busy`) or behind jobs from elsewhere this side cannot see (another
        // router's, its own clients'): the job moves on, and the worker, full in fact whatever
        // its hello claims, is asked last for a while like one that refused the job as full
        // (else a worker that claims room, starts each job and says nothing wins every job,
        // each held for the stall timeout). So is one whose connection was lost (it may dial
        // back in under its key), unless it was cut off for the frames it sent this side
        // refused (`too_many_refusals`, a `WORKER_FAULT_CODES` code: its own doing). So is one that streamed the job below the delivery floor
        // (`WorkerTooSlowError`): each of its tokens came within the stall timeout, and an honest
        // worker on a slow or crowded machine does that too, so it is not kept off the model;
        // the next jobs go to faster workers first. One that broke the protocol, or failed the
        // job for a reason of its own (its model died, ...), would fail the next job too: kept
        // off the model. Each mild case is one this side saw itself (its own connection closed,
        // its own timers ran out): a worker's error frame after its `start` is its own failure
        // whatever code it names — `connection_closed` or `peer_timeout` with its connection up,
        // or `too_many_jobs` / `busy` for a job it accepted — else a broken or cheating worker
        // would pick the code that costs it least.
        // One that kept the job without a token cost it the queue hold at least (a hedge took it
        // over then; else the stall timeout moved it, later): asked last for at least that long.
        const queued = error instanceof WorkerStalledError && (error.busy || error.tokens === 0);
        const slow = error instanceof WorkerTooSlowError;
        const closed = error instanceof ConnectionClosedError && !isWorkerFault(error);
        if (queued) this.#busy.refused(toHex(worker), this.#heldMs());
        else if (slow || closed) this.#busy.refused(toHex(worker));
        else this.#avoid(worker, job.model);
        // Against its track record and its address group's (`worker_record.ts`): keys are free,
        // and fresh keys from the host that dropped or stalled this job inherit what it did. Not
        // a slow worker (an honest one on a crowded machine is slow), nor one that said it was
        // busy with other jobs (its hello lagged).
        const busyElsewhere = error instanceof WorkerStalledError && error.busy;
        // A goodbye (a clean stop: a restart for an upgrade) is none, within its allowance.
        if (!slow && !busyElsewhere) this.#failedOrLeft(worker, error);
      },
      unreproduced: (worker) => this.#unresumable.refused(toHex(worker)),
      // The lost worker's signed word for the tokens the takeovers refused: the validator
      // replays the position and convicts it, or the claim convicts nobody.
      diverged: (evidence) =>
        this.#toValidator(evidence.worker, {
          type: "stream_claim",
          claim: { job, ...evidence },
        }),
      failedOver: (cause) => this.#failovers[cause]++,
      hedged: (outcome) => this.#hedges[outcome]++,
      // A hedge's race lost: the loser's hold on its stake goes (review s80 vadm F4).
      released: (worker) =>
        this.#network.tell({ type: "worker_job_released", job: id, worker: toHex(worker), run })
          .catch(() => {}),
    });
    handle.done.then((summary) => this.#ended(summary));
    // `settle` ran before `done` resolved: a cancel's receipt, when asked for, comes with it.
    // Nor before its receipt's assignment is on disk, with the receipt: a router killed right after
    // its client got `done` hands it to its validator at its restart (review s79 crash, F1).
    const done = handle.done.then(async (summary) => {
      const told = await (cancelledEnd ?? summary);
      await durable;
      return told;
    });
    // Running until then: its receipt, if any, is assigned (`#checked`) before `done` resolves.
    done.then(leaveRunning, leaveRunning);
    // Its receipt handed to the validator by then (the ledger's lock counts it), or none.
    done.finally(() => this.#stakeReleased(id, run)).catch(() => {});
    return { ...handle, done };
  }

  /**
   * Run `run` of job `id` ended here: its lock no longer holds its worker's stake in the
   * routing, and a lookup of it still on its way holds nothing.
   */
  #stakeReleased(id: string, run: number): void {
    this.#network.tell({ type: "worker_job_ended", job: id, run }).catch(() => {});
  }

  /**
   * `summary` of a job its client cancelled after `relayed.tokens` tokens, with the worker's
   * receipt over them when it has one (`inference.get_receipt` on the worker's connection, which
   * waits there for the job's end): the cancel told the worker how many the client got
   * (`held_cancel.ts`), and it signs `end: "cancelled"` over exactly those. One that checks out
   * goes to the validator with the assignment (the requester charged and the worker paid for
   * them) and to the client ({@link #checked}). None (a worker from before cancelled receipts, a
   * cancel before a token of its own, no connection, no answer within
   * {@link CANCELLED_RECEIPT_TIMEOUT_MS}): the summary as it was, nobody charged or paid. A
   * receipt over more tokens than the client got and no more than this side's reader took
   * (`RelayedOutput.read`: the worker's floor, the events this side gave credit back for) is
   * checked over the text read and assigned, and the client, told its own count, is not handed
   * it. One over more than were read is what a worker signs that read no count in the
   * cancel (from before the count), and one without `end` is the finished receipt of a worker that
   * had finished the job as the cancel came and cannot sign over the `held` count it is asked
   * with (from before it, its proof data gone, a resumed job's prefix): neither is the client's,
   * neither is the worker's fault; dropped, unpaid. A worker that can signs its cancelled receipt
   * over the count instead, assigned as any (review s80 bill F1). Unless this side took the
   * worker's stream to its end (`ReadPast.last`): the worker saw no cancel, and its finished
   * receipt over every token read is owed, checked as a finished job's and assigned, the client
   * told its own count (stop 81 left open).
   */
  async #cancelledReceipt(
    summary: JobSummary,
    job: TextJob,
    { worker }: WorkerAttempt,
    relayed: RelayedOutput,
    assignment: JobAssignment | undefined,
    seen: PromptTokenSeen,
  ): Promise<JobSummary> {
    // With the count: a worker that had finished the job as the cancel came signs its cancelled
    // receipt over those from the finished job's proof data (review s80 bill F1).
    // A client that holds none names no count (`held` is at least 1): a finished job is not cut.
    const held = relayed.tokens > 0 ? relayed.tokens : undefined;
    const receipt = await this.#askReceipt(worker, summary.jobId, undefined, held);
    const read = relayed.read;
    // A finished receipt, where this side took the worker's stream to its end (its last event
    // read at the cancel, `ReadPast.last`): the worker saw no cancel, and a stream read whole is
    // not cut (review s81 vcancel F1), so all of it is owed, checked as a finished job's over the
    // text read (stop 81 left open: dropped, the worker paid nothing for what the client got).
    const drained = receipt !== undefined && receipt.end === undefined &&
      read?.last !== undefined && receipt.tokenCount === read.tokens;
    if (receipt === undefined || (receipt.end !== "cancelled" && !drained)) return summary;
    // Past the client's count, up to the tokens this side's reader took: the worker's floor, the
    // events this side gave credit back for (review s81 vcancel F2), checked over the text read
    // to there. Past those: dropped, as before.
    const past = receipt.tokenCount - relayed.tokens;
    if (past > 0 && (read === undefined || receipt.tokenCount > read.tokens)) return summary;
    const over: RelayedOutput = past > 0
      ? {
        ...relayed,
        tokens: receipt.tokenCount,
        output: read!.output?.slice(0, read!.ends[past - 1]),
      }
      : relayed;
    let durable: Promise<void> | undefined;
    const checked = this.#checked(
      drained ? { ...summary, finishReason: read!.last!, receipt } : { ...summary, receipt },
      job,
      worker,
      over,
      assignment,
      seen,
      (written) => durable = written,
    );
    // The client's job ended cancelled, whatever the receipt paid ends with.
    const told = drained ? { ...checked, finishReason: summary.finishReason } : checked;
    // Told once its assignment is on disk, as a finished job's (`submit`'s `done`).
    await durable;
    if (past <= 0 || told.receipt === undefined) return told;
    // Paid, and this node, which read those tokens, is charged for them: its client is told and
    // charged its own count (`usage`), and not handed a receipt over text it never got.
    const { receipt: _notTheClients, ...rest } = told;
    return rest;
  }

  /**
   * `summary` of a job whose worker finished it and then evicted its unread tokens because this
   * side's client read too slowly (`slow_reader`, believed only when this side had left them
   * unread: `_remote_job.ts`), once the worker's receipt over the whole job, which it keeps for
   * `inference.get_receipt` (`serve_inference.ts`), is asked for and handed to the validator with
   * the assignment: the slow client pays, and the honest worker is paid for what it computed
   * (stop 78: the receipt never left the worker, and it was paid nothing). It is checked for its
   * signer, its job, a finished job's end (no `end` field) and more tokens than were relayed, not
   * against the text, of which the client got only part: the validators' challenges check the
   * rest. It is not given to the client (against the text it got it fails `output_mismatch`).
   * None, or one that fails: nobody is paid, as before.
   */
  async #evictedReceipt(
    summary: JobSummary,
    job: TextJob,
    worker: Uint8Array,
    relayed: RelayedOutput,
    assignment: JobAssignment | undefined,
    seen: PromptTokenSeen,
  ): Promise<JobSummary> {
    const receipt = await this.#askReceipt(worker, summary.jobId);
    if (receipt === undefined || receipt.end !== undefined) return summary;
    if (receipt.tokenCount <= relayed.tokens || !verifyReceipt(receipt, { job, worker }).ok) {
      return summary;
    }
    // Its prompt count is paid too: held to its start's, this node's count and the window as a
    // finished job's (`#checked`; review s79 vmoney F4: it was held to no window).
    if (promptTokensRefusal(receipt, job, this.#remote.countPromptTokens, seen)) return summary;
    await this.#assign(worker, receipt, job, assignment);
    return summary;
  }

  /**
   * `receipt` of `worker` for `job` written as assigned (before any ledger holds it, as
   * {@link #checked} does: the client's retry is then refused), then handed to the validator with
   * `assignment`.
   */
  async #assign(
    worker: Uint8Array,
    receipt: Receipt,
    job: TextJob,
    assignment: JobAssignment | undefined,
  ): Promise<void> {
    const id = jobId(job);
    let taken: (() => void) | undefined;
    if (assignment !== undefined && this.#validator !== undefined) {
      const cancelledAt = receipt.end === "cancelled" ? receipt.tokenCount : undefined;
      // With what the validator is handed, as `#checked` keeps it: handed over at a restart.
      const handoff = encodeCbor({ receipt, job, assignment, origin: toHex(worker) });
      await this.#assigned.assigned(id, cancelledAt, handoff);
      taken = () => this.#assigned.handed(id);
    }
    this.#toValidator(worker, {
      type: "receipt",
      receipt,
      job,
      assignment,
      origin: toHex(worker),
      announce: true,
    }, taken);
  }

  /**
   * The client's `duplicate_job` for `job`, which `worker` refused as a duplicate, when the
   * worker's receipt for it checks out (signed by it, for this job, a finished or cancelled
   * job's end, a prompt count this node accepts): the job ran on it before, so the receipt is
   * assigned (written as assigned, then handed to the validator with the assignment, as
   * {@link #checked} does) and the worker is not blamed. Undefined with no such receipt: the
   * refusal is the worker's own failure (`OWN_FAILURE_CODES`). While its answer is awaited the
   * worker is asked last, so the jobs sent meanwhile go to another worker first; one that left
   * the request unanswered is not asked again for a while ({@link #unanswered}), and is asked last
   * as long as it held the job: each job it was picked for waited
   * {@link CANCELLED_RECEIPT_TIMEOUT_MS} on it (stop 78 left open).
   */
  async #ranBefore(
    job: TextJob,
    worker: Uint8Array,
    assignedAt: number,
  ): Promise<VeriflowError | undefined> {
    const id = jobId(job);
    const key = toHex(worker);
    if (this.#unanswered.isAskedLast(key)) return undefined;
    this.#busy.refused(key);
    const receipt = await this.#askReceipt(worker, id, () => {
      this.#unanswered.refused(key);
      this.#busy.refused(key, CANCELLED_RECEIPT_TIMEOUT_MS);
    });
    if (receipt === undefined || !verifyReceipt(receipt, { job, worker }).ok) return undefined;
    if (receipt.end !== undefined && receipt.end !== "cancelled") return undefined;
    // No start was seen: its count is held to the model's window as its workers list it, else
    // to the prompt's bytes (review s79 vmoney F4: it was held to nothing here).
    const known = await this.#listedWindow(job.model);
    if (promptTokensRefusal(receipt, job, this.#remote.countPromptTokens, { known })) {
      return undefined;
    }
    const assignment = this.#requester &&
      signAssignment({ job, worker, issuedAt: assignedAt }, this.#requester);
    await this.#assign(worker, receipt, job, assignment);
    // It ran the job to its end (or its client's cancel): not asked last for answering truly.
    this.#busy.took(key);
    return new VeriflowError(
      "duplicate_job",
      `job ${id} already ran on worker ${toHex(worker)} and its receipt is assigned; its text ` +
        `is not kept here: send it with a new nonce`,
    );
  }

  /**
   * `worker`'s receipt for job `id`, asked for on its connection (`inference.get_receipt`, which
   * waits there for the job's end); undefined with no connection, no answer within
   * {@link CANCELLED_RECEIPT_TIMEOUT_MS}, or none kept; `silent` is called when the connection was
   * open and the worker did not answer in time. `held`: the positions the job's client held when
   * it cancelled, for a cancelled receipt over them (`GetReceiptBody.held`).
   */
  async #askReceipt(
    worker: Uint8Array,
    id: string,
    silent?: () => void,
    held?: number,
  ): Promise<Receipt | undefined> {
    const connection = await this.#network.ask<Connection | undefined>(
      { type: "connection_to", key: worker, protocol: INFERENCE_PROTOCOL.name },
      { timeoutMs: LOOKUP_TIMEOUT_MS },
    ).catch(() => undefined);
    if (connection === undefined || connection.isClosed) return undefined;
    const body = held === undefined ? { jobId: id } : { jobId: id, held };
    const answer = await connection.request(ReceiptRequestMessage, body, {
      timeoutMs: CANCELLED_RECEIPT_TIMEOUT_MS,
    }).catch((error: unknown) => {
      if (error instanceof VeriflowError && error.code === "request_timeout") silent?.();
      return undefined;
    });
    return answer?.receipt ?? undefined;
  }

  /**
   * `worker` lost a job of this node's with `error`: against its track record
   * (`worker_record.ts`), unless its goodbye closed the connection (`PeerStoppedError`): then
   * one goodbye is noted however many jobs it cut (they all fail with the one error), and it
   * counts only past the record's allowance of goodbyes (review s76 vroute F3: an honest worker
   * that restarted with two jobs in flight was counted a dropper twice, and got no job again).
   * Its connection lost with no goodbye (not cut for what it sent): a loss the record judges by
   * what the worker does next (`WorkerRecord.lost`: each job a crash cut is forgiven by a job it
   * finishes after it came back; review s76 routegaps R1, s77 vroute2 F1), keyed by the close's
   * error as a goodbye is, so every job of one crash gets one verdict (s77 vroute2 F3).
   */
  #failedOrLeft(worker: Uint8Array, error: unknown): void {
    const key = toHex(worker);
    if (error instanceof PeerStoppedError) {
      if (this.#goodbyes.has(error)) return;
      this.#goodbyes.add(error);
      this.#record?.left(key);
    } else if (error instanceof ConnectionClosedError && !isWorkerFault(error)) {
      // The error is the close's own (every job on the connection fails with it): one verdict.
      this.#record?.lost(key, error);
    } else this.#record?.failed(key);
  }

  /** A client's job ended: counted once, by how, with the tokens its client got. */
  #ended(summary: JobSummary): void {
    this.#jobs.activeJobs--;
    this.#jobs.tokensGenerated += summary.usage.completionTokens;
    if (summary.finishReason === "cancelled") this.#jobs.jobsCancelled++;
    else if (summary.finishReason === "error") this.#jobs.jobsFailed++;
    else this.#jobs.jobsFinished++;
  }

  /**
   * The job's first worker: the best one, or, when it refuses for a reason of its own (full,
   * its model gone or failing, its connection lost before the job started, no `start` within
   * the start timeout), the next best. Refusals that cost the job something end the search
   * after {@link MAX_WORKERS_PER_JOB}; one that it is full costs one round trip and does not
   * count, so the job goes on to the next worker that serves the model, up to
   * {@link MAX_WORKERS_ASKED_PER_JOB} asked in all. A refusal about the job itself (bad
   * parameters, a prompt too long for the model) would be every worker's: it costs nothing of
   * the job either, and goes to the client when no other worker starts the job (one that does
   * shows it untrue, and its workers are kept off the model). A refusal with a code that is
   * neither is the worker's own failure (`isOwnFailure`).
   * @throws {NoWorkerError} when no worker serves the model; else the last worker's refusal.
   */
  async #start(
    job: TextJob,
    run: number,
    options: SubmitOptions | undefined,
    listing: Promise<number | undefined>,
    lock: Promise<number>,
  ): Promise<
    { first: WorkerAttempt; before: { workers: Uint8Array[]; spent: number; full: Uint8Array[] } }
  > {
    const refusedBy: Uint8Array[] = [];
    /** Those of them that only turned it away as full: a takeover asks them last, not never. */
    const full: Uint8Array[] = [];
    let spent = 0;
    let refusal: unknown;
    /** Workers that called the job itself bad before its start (see below). */
    const calledBad: Uint8Array[] = [];
    while (spent < MAX_WORKERS_PER_JOB && refusedBy.length < MAX_WORKERS_ASKED_PER_JOB) {
      // After a refusal, a lookup that fails ends the search with that refusal.
      const port = await this.#port(job, run, refusedBy, lock).catch((error) => {
        if (refusedBy.length === 0) throw error;
        return undefined;
      });
      if (port === undefined) break;
      const worker = port.connection.peerKey!;
      const assignedAt = Date.now();
      try {
        const handle = this.#held(await port.submit(job, options), job, await listing);
        // An error about the job is every worker's: those that gave this one, which a worker
        // serving the same model has now started, said what was not true of it.
        for (const liar of calledBad) this.#avoid(liar, job.model);
        // Those that refused it count against the job's one budget (`failover.ts`).
        const workers = refusedBy.filter((w) => !full.includes(w));
        return { first: { worker, handle, assignedAt }, before: { workers, spent, full } };
      } catch (error) {
        // A worker's word that the job itself is bad is believed only when no other worker
        // starts it: believed at once, one worker, picked first for the room its hellos claim,
        // turned every client's job away with the code of its choice and stayed first. Like a
        // refusal as full it cost the worker no prefill, so it spends none of the job's tries.
        // A worker's `duplicate_job` with its receipt for the job: the job ran, and this node
        // forgot it (`_assigned_jobs.ts`: past its keep window, a lost file, no data dir). Run
        // again elsewhere, its second assignment voided the first receipt, and neither was paid
        // (review s78 vfinal, F1). Without a receipt that checks out it is the worker's failure.
        if (error instanceof VeriflowError && error.code === "duplicate_job") {
          const ran = await this.#ranBefore(job, worker, assignedAt);
          if (ran !== undefined) throw ran;
        }
        const claimedBad = isJobError(error);
        if (!isWorkerRefusal(error) && !claimedBad && !isOwnFailure(error)) throw error;
        refusedBy.push(worker);
        if (claimedBad) calledBad.push(worker);
        else if (!isCapacityRefusal(error)) spent++;
        else full.push(worker);
        refusal = error;
        this.#noteRefusal(worker, job.model, error);
      }
    }
    if (refusedBy.length === 0) {
      const [listed, { connecting, keptOffMs }] = await Promise.all([
        this.#listed(job.model),
        this.#connecting(job.model),
      ]);
      throw new NoWorkerError(job.model, listed, connecting, keptOffMs);
    }
    // The last refusal with a code the worker made up is its own failure, not the client's
    // answer: passed on, `invalid_api_key` told a client with a good key that its key was bad
    // (review s71; a refusal mid-job is ended so by `failover.ts`).
    if (isOwnFailure(refusal)) {
      throw new VeriflowError(
        WORKER_FAILED,
        `every worker asked refused the job before its start; the last with its own error ` +
          `${(refusal as VeriflowError).code}: ${(refusal as Error).message}`,
        { cause: refusal },
      );
    }
    throw refusal;
  }

  /**
   * A worker that refuses a model it listed (`MODEL_REFUSAL_CODES`), or whose stream broke the
   * protocol (`WORKER_FAULT_CODES`), is not picked for it for a while (`worker_refused_model`):
   * otherwise a peer listing a model it refuses, or answering garbage, takes a try of every job
   * for that model. One that refuses as full (`CAPACITY_REFUSAL_CODES`), does not start the
   * job within the start timeout (`request_timeout`), or whose connection was lost under the job,
   * is asked last for a while (`busy_refusals.ts`): otherwise a peer whose hello claims room it
   * does not give (or an honest one that filled up) ranks first for every job, a silent one
   * costs each the wait, and one that drops each job it takes and dials back in under its key
   * spends a try of each (four such keys: every try, while an honest worker had room).
   */
  #noteRefusal(worker: Uint8Array, model: string, error: unknown): void {
    // No start within the start timeout: it costs the next job that whole wait again unless the
    // worker is asked last too (an honest worker, queued or not, starts a job at once), for at
    // least that long (asked again after one hello interval, it cost the next job the same).
    const silent = error instanceof VeriflowError && error.code === "request_timeout";
    if (silent) {
      this.#busy.refused(toHex(worker), this.#remote.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS);
    } else if (isCapacityRefusal(error) || isWorkerLost(error)) this.#busy.refused(toHex(worker));
    const modelRefusal = error instanceof VeriflowError && MODEL_REFUSAL_CODES.has(error.code);
    if (modelRefusal || isWorkerFault(error) || isOwnFailure(error)) this.#avoid(worker, model);
    // Against its record and its address group's, but not a refusal as full: an honest worker
    // whose hello lagged does that, and it cost the job one round trip. Its connection lost (a
    // goodbye, a crash) as for a job under way (`#failedOrLeft`).
    if (isWorkerLost(error)) this.#failedOrLeft(worker, error);
    else if (silent || modelRefusal || isWorkerFault(error) || isOwnFailure(error)) {
      this.#record?.failed(toHex(worker));
    }
  }

  /**
   * The least a job kept without its first token waited on its worker before it moved on: the
   * queue hold (a hedge took it over), or the stall timeout when that comes first.
   */
  #heldMs(): number {
    return Math.min(
      this.#remote.queueHoldMs ?? DEFAULT_QUEUE_HOLD_MS,
      this.#remote.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
    );
  }

  /** Keep `worker` off `model` for a while (the network actor's `worker_refused_model`). */
  #avoid(worker: Uint8Array, model: string): void {
    this.#network.tell({ type: "worker_refused_model", key: toHex(worker), model }).catch(
      () => {},
    );
  }

  /**
   * Start `job` again on a worker not in `exclude`, from after `prefix`. A `hedge` (the job's
   * worker holds it without a token: `failover.ts`) asks only a worker not asked last, and its
   * places go to the hedge, not the client: one that queues the job is full against its word,
   * and is asked last for a while like one that refused it as full.
   */
  async #resume(
    job: TextJob,
    run: number,
    options: SubmitOptions | undefined,
    exclude: readonly Uint8Array[],
    prefix: readonly number[],
    listing: Promise<number | undefined>,
    lock: Promise<number>,
    hedge?: HedgeRequest,
  ): Promise<ResumeOutcome> {
    let port: RemoteInferencePort | undefined;
    try {
      port = await this.#port(job, run, exclude, lock, prefix.length > 0, hedge !== undefined);
    } catch {
      return { kind: "none" }; // the network actor did not answer: nobody to hand the job to
    }
    if (port === undefined) return { kind: "none" };
    const worker = port.connection.peerKey!;
    const assignedAt = Date.now();
    const submitted: SubmitOptions = { ...options, resume: [...prefix] };
    if (hedge !== undefined) {
      submitted.onQueued = (position) => {
        if (position > 0) this.#busy.refused(toHex(worker));
        hedge.onQueued(position);
      };
    }
    try {
      const handle = this.#held(await port.submit(job, submitted), job, await listing);
      return { kind: "started", attempt: { worker, handle, assignedAt } };
    } catch (error) {
      this.#noteRefusal(worker, job.model, error);
      return { kind: "refused", worker, error };
    }
  }

  /**
   * The client's summary with the worker's receipt if it checks out: for a job that finished
   * (`stop`, `length`), or one signed `end: "cancelled"` for a job this side's client cancelled
   * (a prover signs nothing else), signed by `worker`, for `job`, over the
   * text relayed and over exactly the tokens relayed (a receipt for more or fewer would pay, or
   * blame, the worker for tokens the client never got). One that fails is withheld
   * (`receipt_rejected`, and why, unless the job failed with an error of its own), never
   * reaches the validator, and the worker, faulty, is kept off the model for a while as one
   * that refuses it. `seen`: the worker's own start's prompt count, which its receipt must sign,
   * and the windows that bound it where this node cannot count it (`_prompt_token_claim.ts`).
   */
  #checked(
    summary: JobSummary,
    job: TextJob,
    worker: Uint8Array,
    relayed: RelayedOutput,
    assignment: JobAssignment | undefined,
    seen: PromptTokenSeen,
    onDurable?: (written: Promise<void>) => void,
    onExcused?: () => void,
  ): JobSummary {
    if (summary.receipt === undefined) return summary;
    const complete = summary.finishReason === "stop" || summary.finishReason === "length";
    const check = verifyReceipt(summary.receipt, { job, worker, output: relayed.output });
    // Verified: it has the receipt's shape.
    const claimed = check.ok ? (summary.receipt as Receipt).tokenCount : NaN;
    // A receipt signed `end: "cancelled"` holds only for a job this side's client cancelled: a
    // job settles here `cancelled` only by the client's cancel (a worker's own early end is its
    // failure, `failover.ts`). A worker that ends a job early and calls it a cancel is paid nothing.
    const saysCancelled = (summary.receipt as { end?: unknown } | null)?.end === "cancelled";
    const clientCancelled = summary.finishReason === "cancelled";
    // A prover signs only a stream that finished or that its requester cancelled: a receipt with
    // a job that ended otherwise is none an honest worker sends, and its output was never checked.
    const failure = saysCancelled && !clientCancelled
      ? `it says the job was cancelled, and the client did not cancel it (it ended ` +
        `${summary.finishReason})`
      : !complete && !saysCancelled
      ? `it came with a job that ended ${summary.finishReason}, and only a finished job has one`
      : !check.ok
      ? check.message
      : claimed !== relayed.tokens
      ? `it claims ${claimed} tokens, and ${relayed.tokens} were relayed to the client`
      : promptTokensRefusal(summary.receipt as Receipt, job, this.#remote.countPromptTokens, seen);
    if (failure !== undefined) {
      // Text before a resume came from a lost worker that signed none of it: a receipt that
      // fails only over the text (the resumer signs the text it decodes from the same ids) may
      // be that worker's doing, not this one's, so this one is not blamed for it.
      // It is asked last to take a job over for a while instead (as one that refused a prefix
      // another worker reproduced): a resumer that alters the text it streams and signs other
      // text is not asked first again, and an honest one after a lying lost worker loses little.
      const unattributable = relayed.resumedAt > 0 && !check.ok &&
        check.reason === "output_mismatch";
      // One that did not say the prefix's text (`relayed.unsaid`: a worker from before
      // `resumedText`) cannot be told apart from an honest one after a relayer's lie: not asked
      // last either, nor claimed against (`onExcused`, review s81 vfotext F3).
      if (unattributable && relayed.unsaid === true) onExcused?.();
      else if (unattributable) this.#unresumable.refused(toHex(worker));
      else this.#avoid(worker, job.model);
      const { receipt: _withheld, ...rest } = summary;
      return {
        ...rest,
        // A job that failed keeps the worker's own error: it says what the client lost.
        error: rest.error ??
          { code: "receipt_rejected", message: `the worker's receipt: ${failure}` },
      };
    }
    const message: ValidatorMessage = {
      type: "receipt",
      receipt: summary.receipt,
      job,
      assignment,
      origin: toHex(worker),
      announce: true,
      // Its worker's word blames the worker that relayed the prefix: checked for sure.
      ...(relayed.disputed === undefined ? {} : { challenge: true }),
    };
    const disputed = relayed.disputed;
    const answered = disputed &&
      ((answer: unknown) => this.#disputeAnswered(answer, job, disputed));
    if (assignment !== undefined && this.#validator !== undefined) {
      const receipt = summary.receipt as Receipt;
      const id = jobId(job);
      // On disk before any ledger can hold the assignment: a crash between the two never leaves
      // a job assigned that a restarted port forgot (and would forward a retry of). With what the
      // validator is handed, until it took it: read back at a restart, it is handed over then.
      const handoff = encodeCbor({
        receipt: summary.receipt,
        job,
        assignment,
        origin: toHex(worker),
      });
      const written = this.#assigned.assigned(
        id,
        saysCancelled ? receipt.tokenCount : undefined,
        handoff,
      );
      written.then(() =>
        this.#toValidator(worker, message, () => this.#assigned.handed(id), answered)
      );
      onDurable?.(written);
    } else this.#toValidator(worker, message, undefined, answered);
    return summary;
  }

  /**
   * The validator's answer to a receipt handed on with `disputed` (`RelayedOutput.disputed`),
   * challenged whatever the coin: once the challenge finds it `valid`, the ids decode to the
   * text its worker signed, so the worker that relayed other text for them broke the protocol:
   * kept off the model, and against its track record (it is paid nothing: it signed no receipt).
   * Any other verdict (`fraud`: the taker made the text up, and is slashed; undecided), or no
   * challenge (a validator without the model, one that is down), holds nobody to the taker's
   * word (review s81 vfotext F2).
   */
  #disputeAnswered(answer: unknown, job: TextJob, disputed: TextDispute): void {
    const result = (answer as ReceiptHandled | undefined)?.result;
    result?.then((checked) => {
      if (checked.verdict.outcome !== "valid") return;
      this.#avoid(disputed.relayer, job.model);
      this.#record?.failed(toHex(disputed.relayer));
    }, () => {});
  }

  /** Hand the node's validator a claim against `attempt`'s whole signed stream of `job`. */
  #claimStream(job: TextJob, attempt: WorkerAttempt): void {
    const evidence = streamEvidence(attempt.worker, attempt.handle.signedStream);
    if (evidence === undefined) return;
    this.#toValidator(attempt.worker, { type: "stream_claim", claim: { job, ...evidence } });
  }

  /**
   * Hand `message`, a checked receipt of `worker`'s with this node's assignment, to the node's
   * validator: through its inbox (`ValidatorInbox.deliver`, in the share of this node's own
   * messages) when the port knows the validator's system, else by a `tell` (see
   * {@link ForwardingOptions.system}). The assignment exists nowhere else: lost here, the
   * requester's ledger never records the receipt as assigned, no other ledger hears of it (this
   * node's announcement is how it reaches them), the honest worker is paid in none, and this node
   * refuses every relay request for the receipt (review s60).
   */
  #toValidator(
    worker: Uint8Array,
    message: ValidatorMessage,
    taken?: () => void,
    answered?: (answer: unknown) => void,
  ): void {
    const validator = this.#validator;
    if (validator === undefined) return;
    const system = this.#remote.system;
    // Only the inbox's handover to a running validator resolves once its `receive` took the
    // message; a `tell`, or the inbox holding it for a validator that is down, holds it in memory,
    // so its kept handoff is not marked taken then (read back at a restart, it is handed again).
    const running = system?.lookup(validator.name) !== undefined;
    // `answered` wants the validator's answer: asked, not told, where there is no inbox.
    const handed: Promise<unknown> = system === undefined
      ? answered === undefined ? validator.tell(message) : validator.ask(message)
      : validatorInboxOf<ValidatorMessage>(system, validator.name)
        .deliver(toHex(worker), message, { own: true });
    if (answered !== undefined) handed.then(answered, () => {});
    if (running && taken !== undefined) handed.then(taken, () => {});
    // A full mailbox or a timeout (the inbox holds neither): nothing more to do here.
    handed.catch(() => {});
  }

  /**
   * A receipt this node assigned before it stopped, read back with its assignment
   * (`_assigned_jobs.ts`) before its validator had taken it: handed to the validator now (the
   * ledger takes a receipt once, so one it had taken after all costs nothing). Unreadable bytes
   * (a record whose check passed, so not damage: a format this node cannot read) are left alone.
   */
  #recovered(id: string, handoff: Uint8Array): void {
    let kept: { receipt: unknown; job: TextJob; assignment?: JobAssignment; origin: string };
    try {
      kept = decodeCbor(handoff) as typeof kept;
      if (typeof kept?.origin !== "string") return;
    } catch {
      return;
    }
    const { receipt, job, assignment, origin } = kept;
    const message: ValidatorMessage = {
      type: "receipt",
      receipt,
      job,
      assignment,
      origin,
      announce: true,
    };
    this.#toValidator(fromHex(origin), message, () => this.#assigned.handed(id));
  }

  /**
   * `handle` with its start's prompt count held to the model's `listed` window where its worker
   * stated none (its worker's port held it to the window the worker stated and to the prompt's
   * bytes as NFKC can grow them, `remote_port.ts`; a listing does not cut a stated window, review
   * s79 vlate F1): what the client is told, and what the worker's receipt must sign (`#checked`).
   * A worker that stated a window of 10^9 had its count of 100,000 told to the client (review s79
   * vmoney F3).
   */
  #held(handle: InferenceHandle, job: TextJob, listed: number | undefined): InferenceHandle {
    if (listed === undefined) return handle;
    const most = maxPromptTokens(job, handle.model.contextLength, listed);
    if (handle.promptTokens <= most) return handle;
    // Its `done` too: a job that never fails over tells the client its worker's summary's usage.
    const done = handle.done.then((summary) => ({
      ...summary,
      usage: { ...summary.usage, promptTokens: most },
    }));
    return { ...handle, promptTokens: most, done };
  }

  /**
   * What `attempt`'s worker said of `job`'s prompt in its own `start` (its count, held to its
   * stated window: what its client is told; its window), with the model's `listed` window, which
   * bounds the count only where the worker stated none (`maxPromptTokens`).
   */
  #seen(attempt: WorkerAttempt, listed: number | undefined): PromptTokenSeen {
    return {
      started: attempt.handle.promptTokens,
      stated: attempt.handle.model.contextLength,
      known: listed,
    };
  }

  /**
   * `model`'s window as its connected workers list it (`worker_models`: one listing per model,
   * named by the keys with the most standing, `model_listing.ts`); undefined where none lists
   * one, or the network actor does not answer. The workers' word too, but given before the job,
   * and capped (`MAX_STATED_CONTEXT_TOKENS`).
   */
  async #listedWindow(model: string): Promise<number | undefined> {
    const models = await this.#network.ask<ServedModelInfo[]>({ type: "worker_models" }, {
      timeoutMs: LOOKUP_TIMEOUT_MS,
    }).catch(() => []);
    return models.find((m) => m.cid === model)?.contextLength;
  }

  /** Whether a connected worker lists `model` (though none was picked for it). */
  async #listed(model: string): Promise<boolean> {
    const models = await this.#network.ask<ServedModelInfo[]>({ type: "worker_models" }, {
      timeoutMs: LOOKUP_TIMEOUT_MS,
    }).catch(() => []);
    return models.some((m) => m.cid === model);
  }

  /**
   * Whether the node is still connecting to its peers, and (with `model`) how long until the
   * first worker kept off that model may take it again (the network actor's `connecting`): a
   * `no_worker` then says when to retry. An actor that does not answer in time: no hint.
   */
  #connecting(model?: string): Promise<{ connecting: boolean; keptOffMs?: number }> {
    return this.#network.ask<{ connecting: boolean; keptOffMs?: number }>(
      { type: "connecting", model },
      { timeoutMs: LOOKUP_TIMEOUT_MS },
    ).then(
      (answer) => ({
        connecting: answer?.connecting === true,
        keptOffMs: typeof answer?.keptOffMs === "number" ? answer.keptOffMs : undefined,
      }),
      () => ({ connecting: false }),
    );
  }

  /**
   * Every model some connected worker runs (as each listed on connect: no round trip per
   * request). Rejects with {@link NoWorkerError} when no worker is connected, so a client is
   * told why (503) rather than that its model is unknown, and when to retry while the node is
   * still connecting to its peers.
   */
  async models(): Promise<readonly ServedModelInfo[]> {
    const models = await this.#network.ask<ServedModelInfo[]>({ type: "worker_models" }, {
      timeoutMs: LOOKUP_TIMEOUT_MS,
    });
    if (models.length === 0) {
      throw new NoWorkerError("any", false, (await this.#connecting()).connecting);
    }
    return models;
  }

  /**
   * Write nothing more to the node's data directory: resolves once the assigned jobs' file
   * (`_assigned_jobs.ts`) and the lost ends' folder (`_lost_ends.ts`) were read back and every
   * write to them asked before has landed; assignments and lost ends after are kept in memory
   * only. The node calls it as it stops, after its actors (the jobs they end assign their
   * receipts first) and before it releases its data directory: a write nobody waited for landed
   * after the node stopped, and a removal of the directory failed "Directory not empty" (s78).
   * Idempotent; never rejects.
   */
  async close(): Promise<void> {
    await Promise.all([this.#assigned.close(), this.#lostEnds.close()]);
  }

  /**
   * The clients' jobs, each counted once across the workers it ran on (review s71: summed over
   * the workers' runs, one job that failed over twice and finished read as 3 started, 2 failed),
   * the tokens their clients got, and what they cost on the workers: their runs, their failovers
   * by cause and their hedges by outcome ({@link ForwardingStats}). The counters never go down
   * (`/metrics` exports them as counters). The workers' runs are summed over every connection used
   * so far: summed over the open ones only, they fell back when a worker's connection closed. A
   * closed connection's port is kept until its jobs have ended (they end at once, as failed or
   * cancelled), then only its counters are.
   */
  async stats(): Promise<ForwardingStats> {
    // Who is where read at once, before any await: a connection that closes while this call
    // awaits moves its port from the open ones to the closing ones (and may be folded by another
    // call), and read from each set in turn it was counted twice, or not at all (review s56).
    const total = { ...this.#retired };
    const open = [...this.#all];
    const closing = [...this.#closing];
    const add = (s: InferenceStats) => {
      for (const key of Object.keys(total) as (keyof InferenceStats)[]) total[key] += s[key];
    };
    for (const port of open) add(await port.stats());
    for (const port of closing) {
      const s = await port.stats();
      add(s);
      this.#fold(port, s);
    }
    return {
      ...this.#jobs,
      // The workers' gauges: what they hold queued now, and no slot of this node's own.
      queuedJobs: total.queuedJobs,
      slots: total.slots,
      workerAttempts: total.jobsStarted,
      failovers: { ...this.#failovers },
      hedges: { ...this.#hedges },
      assignedJobs: this.#assigned.stats(),
    };
  }

  /**
   * `port`'s connection closed: its counters are kept, folded into {@link #retired} once its jobs
   * have ended — at once when they have (they end as the connection closes), else by a later
   * {@link stats}. Folded only there, a router whose stats nobody read (no heartbeat, no scrape)
   * kept every worker connection it ever used (review s56).
   */
  async #retire(port: RemoteInferencePort): Promise<void> {
    this.#all.delete(port);
    this.#closing.add(port);
    this.#fold(port, await port.stats());
  }

  /** Fold closing `port` (its stats `s`) into the retired counters if its jobs have all ended. */
  #fold(port: RemoteInferencePort, s: InferenceStats): void {
    // Once: a concurrent call may have folded it while this one awaited.
    if (s.activeJobs !== 0 || s.queuedJobs !== 0 || !this.#closing.delete(port)) return;
    for (const key of Object.keys(this.#retired) as (keyof InferenceStats)[]) {
      this.#retired[key] += s[key];
    }
  }
}
