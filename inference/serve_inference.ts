/**
 * The inference port over the wire, the worker's side: {@link serveInference} answers a peer's
 * submissions (`RemoteInferencePort`, `remote_port.ts`) from a local port.
 *
 * Each job goes back as one flow-controlled stream of events: a `start` event, `token` events
 * (several tokens in one `tokens` event for a requester that asked: those ready together, and
 * with `gatherMs` those that came within it of the last event), and an `end` event with the
 * summary and the signed receipt. The local model computes a token only when the stream is
 * pulled, so a slow requester slows its own job here; a requester that stops reading for
 * `readerStallMs` loses its job, and one peer runs at most `maxJobs` jobs at once, over all its
 * connections ({@link ServeInferenceOptions}). A job whose stream is cancelled under it (its
 * connection closed after the last token, before the `end` went out) keeps its receipt for the
 * requester, which asks for it on a later connection with `inference.get_receipt`
 * ({@link UnsentReceipts}). A worker restarted since (its memory lost with its process) answers
 * from its prover's durable record of the job (`trace`, {@link JobTrace}): the signed receipt,
 * to the job's requester within the same window; or `unknown_job` when it has no trace of the
 * job at all, so the requester stops asking (review s79 crash F2, F4). A job admitted over any of
 * the node's connections and not ended ({@link PeerJobShares.admitted}: queued too, before its
 * prover has it) is "not yet", never unknown (review s79 vcrash F3).
 *
 * @module
 */
import type { Connection } from "../protocols/connection.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { HeldCancelError, heldOf } from "../protocols/held_cancel.ts";
import { StreamCancelledError } from "../protocols/protocol_errors.ts";
import { undeliveredTokensError } from "./undelivered_tokens.ts";
import type { Receipt } from "../protocols/receipt.ts";
import { toHex } from "../protocols/hash.ts";
import { jobId } from "../protocols/job.ts";
import {
  type InferenceEvent,
  type KeptReceiptBody,
  ListModelsMessage,
  QUEUED_EVENT_REPEAT_MS,
  ReceiptRequestMessage,
  type StartEvent,
  SubmitMessage,
  type TokenEvent,
  type TokensEvent,
  UNKNOWN_JOB,
  type WireJobSummary,
} from "../protocols/inference_messages.ts";
import { StreamSigner } from "../protocols/stream_commitment.ts";
import { ReadAhead } from "./_token_read_ahead.ts";
import { QueuePosition, readOrQueued } from "./queue_position.ts";
import type {
  InferenceHandle,
  InferencePort,
  JobSummary,
  StreamedToken,
} from "./inference_port.ts";
import { CANCELLED } from "./remote_errors.ts";
import { submitWindow } from "./remote_port.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";

/** Options of {@link serveInference}. */
export interface ServeInferenceOptions {
  /** Called with each job this connection submitted, as it starts (for logs and metrics). */
  onJob?: (jobId: string) => void;
  /**
   * Jobs one peer may run at once (default {@link DEFAULT_MAX_JOBS_PER_PEER}); more are
   * refused with `too_many_jobs`, so one peer cannot take every slot of the model. Counted over
   * every connection of the peer when `shares` and `peer` are given, else per connection.
   */
  maxJobs?: number;
  /**
   * The peer's key (hex) the connection's handshake authenticated, and the counts shared by all
   * connections of the node: a peer key may hold several connections (`connection_limits.ts`),
   * and must not get a share on each.
   */
  peer?: string;
  /** See {@link peer}. */
  shares?: PeerJobShares;
  /**
   * A job whose requester takes no event for this long (grants no credit: it stopped reading)
   * is cancelled, freeing its slot (default {@link DEFAULT_READER_STALL_MS}).
   */
  readerStallMs?: number;
  /**
   * How often an unchanged `queued` event is sent again to a requester that asked for them
   * (default `QUEUED_EVENT_REPEAT_MS`).
   */
  queuedRepeatMs?: number;
  /** Clock of the `queued` repeats (default the real one; tests pass a fake clock). */
  timers?: ConnectionTimers;
  /**
   * The node's receipts whose `end` event a connection lost, kept for their requester's
   * `inference.get_receipt` on a later connection (one per node, with `peer`; absent: none kept);
   * delivered ones too, for a requester that forgot the job (review s78 vfinal, F1).
   */
  unsent?: UnsentReceipts;
  /**
   * The worker's log: one line per job this connection's peer ran here, when it ends (absent:
   * none). A worker otherwise shows its peers' jobs only as counts in its heartbeat.
   */
  log?: (line: string) => void;
  /**
   * What the node's prover knows of a job ({@link JobTrace}; `proverJobTrace`,
   * `actors/prover_actor.ts`): asked when `unsent` keeps no receipt of it for the requester (the
   * worker restarted since). Absent: `unsent` alone, and never an `unknown_job`.
   */
  trace?: (jobId: string) => Promise<JobTrace>;
  /**
   * Signs the `cancelled` receipt over the first `tokens` positions of a finished job, from its
   * kept proof data (`proverCut`, `actors/prover_actor.ts`): asked when a requester's
   * `inference.get_receipt` says its client held fewer tokens (`held`) than the finished receipt
   * covers, and only for a job whose stream that requester cancelled here, never below the
   * tokens of the events it gave credit back for (`CancelSeen`); rejects when it signs
   * none. Absent: the finished receipt is answered, as before.
   */
  cut?: (jobId: string, tokens: number) => Promise<Receipt>;
  /** Unix ms, against which a traced receipt's window is kept (default `Date.now`). */
  now?: () => number;
}

/**
 * What a worker's prover knows of a job, from its durable record (`actors/prover_actor.ts`,
 * `job_trace`): `signed`, the receipt it signed for the job named `requester` (hex key; absent:
 * the job names none), proven at `provedAt` (unix ms); `unknown`, sure it has no trace of the job
 * (not being proven, no record: never admitted here, or killed before signing); `unsure`,
 * anything else (being proven, a record without a receipt, no durable store).
 */
export type JobTrace =
  | { kind: "signed"; receipt: Receipt; requester?: string; provedAt: number }
  | { kind: "unknown" }
  | { kind: "unsure" };

/**
 * Default jobs per peer connection: a relay multiplexes its clients' jobs over one
 * connection, so this is generous, but a single peer still cannot hold a model's whole queue.
 */
export const DEFAULT_MAX_JOBS_PER_PEER = 32;
/**
 * Default reader stall before a job is cancelled: a minute without reading one token is a
 * requester that has gone, not one that is slow.
 */
export const DEFAULT_READER_STALL_MS = 60_000;

/** Most receipts {@link UnsentReceipts} keeps on a node: a few hundred bytes each. */
export const MAX_UNSENT_RECEIPTS = 256;
/** Most of them for one requester key, so one requester cannot push out the others'. */
export const MAX_UNSENT_RECEIPTS_PER_PEER = 32;
/**
 * How long one is kept: the challenge window. Its ledgers recorded it (the worker's own
 * announcement, unassigned) about when it was signed, and an assignment that comes after the
 * window closed there pays nothing.
 */
export const UNSENT_RECEIPT_KEEP_MS: number = DEFAULT_ECONOMICS.challengeWindowMs;

/**
 * Receipts of jobs whose `end` event this worker could not send (the requester's connection
 * closed after the last token, before the end): kept for the requester that submitted the job,
 * which asks for one with `inference.get_receipt` on a later connection and, if it matches what
 * its client got, signs the assignment that pays it (`docs/PROTOCOL.md`, "Failover"). Before,
 * the honest worker that delivered every token was paid in no ledger. Bounded: at most
 * {@link MAX_UNSENT_RECEIPTS} ({@link MAX_UNSENT_RECEIPTS_PER_PEER} per requester), each for
 * {@link UNSENT_RECEIPT_KEEP_MS}; past that the oldest of the requester's own goes, or, the store
 * full, the oldest of the requester that holds the most (a requester with few keeps them against
 * keys that drop their jobs' ends: only 256 keys with one each push out another's one), and its
 * worker is paid nowhere, as before (the worker's memory is what it pays).
 *
 * Receipts whose `end` did go out are kept too (`delivered`), for a router that forgot the job
 * (review s78 vfinal, F1), within the same bounds, but they go first and never push out one that
 * is still owed: a router is one requester key for all its clients' jobs, and 32 jobs it got whole
 * after a lost end pushed out the receipt it was about to ask for (stop 78 left open).
 */
export class UnsentReceipts {
  /** By job id, oldest first. */
  readonly #kept = new Map<
    string,
    { peer: string; receipt: Receipt; at: number; delivered: boolean }
  >();
  readonly #now: () => number;

  /**
   * An empty store.
   * @param now Clock in ms (default `Date.now`).
   */
  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /**
   * Keep `receipt`, signed for a job `peer` (hex key) submitted.
   * @param delivered Its `end` event went out: kept only where no receipt still owed would go
   *   for it, and the first to go (see the class doc). Kept once as owed, it stays owed.
   */
  keep(peer: string, receipt: Receipt, delivered = false): void {
    this.#sweep();
    const before = this.#kept.get(receipt.jobId);
    delivered &&= before?.delivered ?? true;
    this.#kept.delete(receipt.jobId);
    const ofPeer = [...this.#kept].filter(([, k]) => k.peer === peer);
    if (ofPeer.length >= MAX_UNSENT_RECEIPTS_PER_PEER) {
      const go = ofPeer.find(([, k]) => k.delivered) ?? (delivered ? undefined : ofPeer[0]);
      if (go === undefined) return; // every one of its receipts is owed: the delivered one yields
      this.#kept.delete(go[0]);
    }
    if (this.#kept.size >= MAX_UNSENT_RECEIPTS) {
      const go = this.#toGo(true) ?? (delivered ? undefined : this.#toGo(false));
      if (go === undefined) return;
      this.#kept.delete(go);
    }
    this.#kept.set(receipt.jobId, { peer, receipt, at: this.#now(), delivered });
  }

  /**
   * The job id whose receipt goes when the store is full: the oldest of the requester that holds
   * the most (of those, the one whose oldest is oldest), among the delivered ones when
   * `delivered` (undefined when none is). Before review s60 the oldest of all went, and 8 keys
   * that each drop 32 jobs' ends pushed out every other requester's receipts, the one an honest
   * router was about to ask for among them.
   */
  #toGo(delivered: boolean): string | undefined {
    const byPeer = new Map<string, string[]>();
    for (const [id, kept] of this.#kept) { // oldest first: so is each requester's list
      if (delivered && !kept.delivered) continue;
      byPeer.set(kept.peer, [...byPeer.get(kept.peer) ?? [], id]);
    }
    let most: string[] = [];
    for (const ids of byPeer.values()) if (ids.length > most.length) most = ids;
    return most[0];
  }

  /** The receipt of job `jobId` if `peer` submitted it; undefined when none is kept. */
  get(peer: string, jobId: string): Receipt | undefined {
    this.#sweep();
    const kept = this.#kept.get(jobId);
    return kept?.peer === peer ? kept.receipt : undefined;
  }

  /** How many are kept. */
  get size(): number {
    return this.#kept.size;
  }

  #sweep(): void {
    const before = this.#now() - UNSENT_RECEIPT_KEEP_MS;
    for (const [id, kept] of this.#kept) {
      if (kept.at >= before) break; // oldest first
      this.#kept.delete(id);
    }
  }
}

/** Checks per stall period: a stalled reader is noticed within 1 + 1/4 of the stall time. */
const STALL_CHECKS = 4;

/** Refusal of a job beyond a peer's share. */
class PeerJobLimitError extends VeriflowError {
  constructor(limit: number) {
    super("too_many_jobs", `this peer already runs ${limit} jobs`);
  }
}

/**
 * Jobs each peer key runs here, over all its connections (one per node), and the ids of the jobs
 * admitted here that have not ended: a job queued behind busy slots is not yet the prover's, whose
 * trace would call it unknown, and its requester asking on another connection was told
 * `unknown_job` for a job this worker then ran and signed (review s79 vcrash F3).
 */
export class PeerJobShares {
  readonly #running = new Map<string, number>();
  /** Admitted job ids, each with how many submissions of it are open (a retry may overlap). */
  readonly #admitted = new Map<string, number>();

  /** Take one of `peer`'s `limit` places; false when it holds them all. */
  take(peer: string, limit: number): boolean {
    const running = this.#running.get(peer) ?? 0;
    if (running >= limit) return false;
    this.#running.set(peer, running + 1);
    return true;
  }

  /** Give back one place {@link take} gave `peer`. */
  release(peer: string): void {
    const running = (this.#running.get(peer) ?? 0) - 1;
    if (running > 0) this.#running.set(peer, running);
    else this.#running.delete(peer);
  }

  /** Jobs `peer` runs here now. */
  running(peer: string): number {
    return this.#running.get(peer) ?? 0;
  }

  /**
   * Count job `jobId` as admitted here, queued or running, until the returned function is called
   * (its submission refused, or the job ended); calling it again does nothing.
   */
  admit(jobId: string): () => void {
    this.#admitted.set(jobId, (this.#admitted.get(jobId) ?? 0) + 1);
    let open = true;
    return () => {
      if (!open) return;
      open = false;
      const left = (this.#admitted.get(jobId) ?? 0) - 1;
      if (left > 0) this.#admitted.set(jobId, left);
      else this.#admitted.delete(jobId);
    };
  }

  /** Whether a submission of job `jobId` was admitted here and has not ended. */
  admitted(jobId: string): boolean {
    return this.#admitted.has(jobId);
  }
}

/**
 * Answer the peer's `inference.submit` and `inference.list_models` requests from `port`.
 * Register it right after the connection is opened.
 */
export function serveInference(
  connection: Connection,
  port: InferencePort,
  options: ServeInferenceOptions = {},
): void {
  const maxJobs = options.maxJobs ?? DEFAULT_MAX_JOBS_PER_PEER;
  const stallMs = options.readerStallMs ?? DEFAULT_READER_STALL_MS;
  // Without the peer's key, this connection is the peer.
  const shares = options.shares ?? new PeerJobShares();
  const peer = options.shares !== undefined && options.peer !== undefined ? options.peer : "";
  let taken = 0;
  const release = () => {
    if (taken === 0) return;
    taken--;
    shares.release(peer);
  };
  connection.handle(ListModelsMessage, async () => ({ models: [...await port.models()] }));
  // The requester's key, not `peer` (empty without shared counts): a kept receipt goes only to
  // the key that submitted its job.
  const requester = connection.peerKey === undefined ? undefined : toHex(connection.peerKey);
  const unsent = options.unsent;
  /**
   * This connection's jobs that have not ended, by id: a job cancelled under its stream is still
   * being signed when its requester asks for the receipt (a forwarding node asks right after its
   * client's cancel), so the ask waits for its end. At most `maxJobs` per peer.
   */
  const ending = new Map<string, Promise<unknown>>();
  /**
   * This connection's jobs whose stream the requester cancelled, by id (oldest dropped past
   * {@link MAX_CANCELS_SEEN}): only these may be cut, and never below their floor (review s81
   * vcancel F1, F2). A job whose stream ran to its end, or ended by a lost connection, has none.
   */
  const cancels = new Map<string, CancelSeen>();
  const sawCancel = (id: string, seen: CancelSeen) => {
    cancels.delete(id);
    cancels.set(id, seen);
    if (cancels.size > MAX_CANCELS_SEEN) cancels.delete(cancels.keys().next().value!);
  };
  connection.handle(ReceiptRequestMessage, async (body) => {
    // The end's reactions run in the order they were added: the stream's cancel added the keep
    // (`onUnsent`) before the job ended, so the receipt is kept by the time this one resumes.
    await ending.get(body.jobId);
    if (requester === undefined) return { receipt: null };
    const receipt = unsent?.get(requester, body.jobId);
    if (receipt !== undefined) return await cutFor({ receipt }, requester, body.held);
    // Admitted and not ended (queued, or its receipt being signed): "not yet", never unknown.
    if (shares.admitted(body.jobId)) return { receipt: null };
    const trace = await options.trace?.(body.jobId).catch(() => undefined);
    return await cutFor(
      tracedReceipt(trace, requester, options.now ?? Date.now),
      requester,
      body.held,
    );
  });
  /**
   * `kept`, or, when it is a finished job's receipt over more than the `held` positions its
   * requester's client held at its cancel (the job had ended here, its last tokens still on their
   * way), the `cancelled` receipt over those, or over the positions it read where that is more
   * (`CancelSeen`), signed from its proof data (`options.cut`), which replaces it in `unsent`:
   * every ledger takes the two as one claim, paid once at that count (`docs/PROTOCOL.md`,
   * "Through a forwarding node"; review s80 bill F1, s81 vcancel F2). Where none is signed
   * (no `cut`, its data gone, a resumed job's prefix: logged), the finished one, which the
   * requester drops as a worker from before `held` sees it answered.
   */
  async function cutFor(
    kept: KeptReceiptBody,
    requester: string,
    held: number | undefined,
  ): Promise<KeptReceiptBody> {
    const finished = kept.receipt;
    if (held === undefined || finished === null || finished.end !== undefined) return kept;
    // Only a job whose stream this requester cancelled here (a router's ask after a stream that
    // ran to its end, read whole, cut a paid job to 1 token: review s81 vcancel F1), and never
    // below the positions of the events it gave credit back for, nor below its cancel's own
    // count: a requester cannot name fewer than it demonstrably read (F2).
    const seen = cancels.get(finished.jobId);
    if (seen === undefined) return kept;
    const tokens = Math.max(held, seen.held ?? 0, seen.floor);
    if (tokens >= finished.tokenCount || options.cut === undefined) return kept;
    try {
      const receipt = await options.cut(finished.jobId, tokens);
      unsent?.keep(requester, receipt);
      return { receipt };
    } catch (error) {
      options.log?.(
        `job ${finished.jobId.slice(0, JOB_LOG_CHARS)}: no receipt over ${tokens} tokens (its ` +
          `client held ${held}): ${error instanceof Error ? error.message : String(error)}`,
      );
      return kept;
    }
  }
  connection.handle(SubmitMessage, async (body, ctx) => {
    const { job, topLogprobs, resume, tokensPerEvent, gatherMs } = body;
    if (!shares.take(peer, maxJobs)) throw new PeerJobLimitError(maxJobs);
    taken++;
    // Before the submission, which may wait for a queue place: known from here (F3).
    const forget = shares.admit(jobId(job));
    // Only to a requester that asked: one that predates `queued` events fails on one.
    const queue = body.queued
      ? new QueuePosition({
        repeatMs: options.queuedRepeatMs ?? QUEUED_EVENT_REPEAT_MS,
        timers: options.timers,
      })
      : undefined;
    // The exchange's abort reaches the job first through its event stream's cancel once that
    // stream exists (with the requester's count of what its client holds, `held_cancel.ts`), and
    // only then through the submission's signal; while the submission is pending, through the
    // signal alone. Handed the exchange's signal itself, the job was cancelled by its abort before
    // the stream's cancel came, without the count, and its receipt signed over what was sent, not
    // what was read.
    const submission = new AbortController();
    let events: ReadableStream<InferenceEvent> | undefined = undefined;
    const abortSubmission = () => {
      const reason = ctx.signal.reason;
      if (events === undefined) {
        submission.abort(reason);
        return;
      }
      // Not pumped yet: cancelled here. Pumped (locked: this rejects), the pump's own abort
      // listener, added after this one, cancels it in this same dispatch.
      events.cancel(reason).catch(() => {});
      queueMicrotask(() => submission.abort(reason));
    };
    if (ctx.signal.aborted) abortSubmission();
    else ctx.signal.addEventListener("abort", abortSubmission, { once: true });
    let handle: InferenceHandle;
    try {
      // A refusal (too_many_jobs, unknown_model, ...) rejects here and goes back as the
      // connection's `error` with its code, before any event.
      handle = await port.submit(job, {
        signal: submission.signal,
        topLogprobs,
        resume,
        onQueued: queue?.update,
        // The worker's queue serves waiting clients in turn: this peer is one, by its key.
        client: requester,
      });
    } catch (error) {
      release();
      forget();
      queue?.close();
      throw error;
    }
    const ended = handle.done.then(() => {}, () => {});
    // After `done`: the prover's record (or none, the job unsigned) is its trace from then on.
    ended.then(forget);
    ending.set(handle.jobId, ended);
    ended.then(() => {
      if (ending.get(handle.jobId) === ended) ending.delete(handle.jobId);
    });
    options.onJob?.(handle.jobId);
    const log = options.log;
    if (log !== undefined) handle.done.then((summary) => log(servedLine(summary, requester)));
    const identity = connection.identity;
    events = jobEvents(handle, {
      resumedFrom: resume?.length ?? 0,
      // Signs the job's output as it streams it, the prefix it took over included: the
      // requester refuses a token it has no signature for (`stream_commitment.ts`).
      signer: identity === undefined
        ? undefined
        : new StreamSigner(identity, handle.jobId, resume ?? []),
      stallMs,
      tokensPerEvent: tokensPerEvent ?? 1,
      gatherMs: gatherMs ?? 0,
      timers: options.timers,
      queue,
      onFinished: release,
      // A job this node itself would have to assign (it names this node, or no requester) earns
      // nothing from a cancelled receipt, and one signed would refuse every retry of the job here
      // (review s77 F3): its requester's cancel reaches it as a plain one, which signs nothing.
      assignable: job.requester !== undefined &&
        (identity === undefined || job.requester !== toHex(identity.publicKey)),
      onUnsent: unsent === undefined || requester === undefined
        ? undefined
        : (receipt, delivered) => unsent.keep(requester, receipt, delivered),
      credited: ctx.credited,
      onCancelled: (seen) => sawCancel(handle.jobId, seen),
    });
    return events;
  });
}

/**
 * The answer to `requester`'s `inference.get_receipt` from `trace`, under the keep rules of
 * {@link UnsentReceipts}: the receipt only to the key the job names as its requester (the one
 * that signs its assignment: a forwarding node names itself), and only within
 * {@link UNSENT_RECEIPT_KEEP_MS} of its signing. The store's count bounds are not applied: the
 * receipt is in the proof record, kept on disk anyway for its retention, and costs no memory.
 * `unknown_job` only when the prover is sure it has no trace of the job; a job it is unsure of
 * (or has for another key) is "not yet": the requester asks again.
 */
function tracedReceipt(
  trace: JobTrace | undefined,
  requester: string,
  now: () => number,
): KeptReceiptBody {
  if (trace?.kind === "unknown") return { receipt: null, reason: UNKNOWN_JOB };
  if (trace?.kind !== "signed" || trace.requester !== requester) return { receipt: null };
  if (now() - trace.provedAt > UNSENT_RECEIPT_KEEP_MS) return { receipt: null };
  return { receipt: trace.receipt };
}

/** Characters of a job id in a log line: as many as the edge's lines show (`inference_gateway.ts`). */
const JOB_LOG_CHARS = 12;
/** Characters of a peer key in a log line: as many as the network's `peer up` lines show. */
const KEY_LOG_CHARS = 16;

/**
 * The worker's one line for a job a peer ran here, in the shape of the edge's end lines:
 * `job <id> served for peer <key>: <finish> after N tokens in T ms, receipt signed`.
 */
function servedLine(summary: JobSummary, requester: string | undefined): string {
  const n = summary.usage.completionTokens;
  const tokens = `${n} ${n === 1 ? "token" : "tokens"} in ${
    Math.round(summary.timings.totalMs)
  } ms`;
  const error = summary.error;
  const receipt = summary.receipt !== undefined
    ? "receipt signed"
    : `without a receipt${error === undefined ? "" : `: ${error.code}: ${error.message}`}`;
  return `job ${summary.jobId.slice(0, JOB_LOG_CHARS)} served for peer ${
    requester?.slice(0, KEY_LOG_CHARS) ?? "(no key)"
  }: ${summary.finishReason} after ${tokens}, ${receipt}`;
}

/** How {@link jobEvents} streams one job. */
interface JobEventsOptions {
  /** Position of the first token (the resumed prefix's length). */
  resumedFrom: number;
  /** Signs each token event (undefined: a connection without a handshake has no key). */
  signer?: StreamSigner;
  /** Reader stall before the job is cancelled, ms (0: never). */
  stallMs: number;
  /** Most tokens in one event. */
  tokensPerEvent: number;
  /** Gather the tokens that come within this long of the last event (`_token_read_ahead.ts`). */
  gatherMs: number;
  /** Clock of the gathering (default the real one). */
  timers?: ConnectionTimers;
  /** The job's place in the queue, reported until its first token; absent: not reported. */
  queue?: QueuePosition;
  /** Called once when the stream is done with the job. */
  onFinished: () => void;
  /**
   * Whether another node may assign the job (it names a requester other than this node): only
   * then is the requester's cancel handed to the job as it came, where a peer's explicit one
   * signs a cancelled receipt (`actors/inference_job.ts`).
   */
  assignable: boolean;
  /**
   * Called with the job's receipt when the stream was cancelled (its `end` maybe unsent), when a
   * finished job's unread tokens were evicted, and, `delivered`, as its `end` goes out.
   */
  onUnsent?: (receipt: Receipt, delivered?: boolean) => void;
  /** Events of the stream its requester gave credit back for (`HandlerContext.credited`). */
  credited?: () => number;
  /** Called when the requester cancelled the stream (not a lost connection or a stall). */
  onCancelled?: (seen: CancelSeen) => void;
}

/**
 * What a worker saw of its requester's cancel of one job's stream: the count its cancel named
 * (`held`), and `floor`, the output positions it demonstrably read: the resumed prefix and the
 * tokens of every event it gave credit back for, and of every event but the last
 * {@link uncreditedEvents} sent. A reader grants credit again only for events it took
 * (`Connection.openStream`), so a requester that names fewer positions than `floor` names fewer
 * than it read. Past `floor` it can leave at most those events unnamed, the tokens an honest
 * requester's window holds in flight (fewer than `MAX_TOKENS_IN_FLIGHT` + `tokensPerEvent`):
 * events sent ahead that it never credited, the same a cancel while they were in flight declines.
 */
interface CancelSeen {
  /** The positions the requester's cancel said its consumer holds, when it said. */
  held?: number;
  /** The positions in the events it gave credit back for, the resumed prefix included. */
  floor: number;
}

/** Cancels a connection remembers for `inference.get_receipt` (the oldest dropped past it). */
const MAX_CANCELS_SEEN = 1024;

/**
 * The most events an honest requester that asked `tokensPerEvent` leaves sent and not credited
 * back: the window it opens the job's stream with (`submitWindow`, `remote_port.ts`), about
 * `MAX_TOKENS_IN_FLIGHT` tokens' worth of events of that size. Every event sent before the last
 * this many was credited by an honest requester, so counting them as read never raises its floor.
 * A requester that opened a larger window (the connection takes one up to `MAX_CREDIT_GRANT`)
 * gains nothing by it: a fixed count of events (16 before) let one that asked 16 tokens per event
 * read a 256-token job whole and name 1 (review s82 vdrain, F1).
 * @param tokensPerEvent The most tokens in one event the requester asked for.
 * @returns The events, counted from the last sent.
 */
function uncreditedEvents(tokensPerEvent: number): number {
  return submitWindow(tokensPerEvent);
}

/** A local job's handle as the stream of events the requester reads. */
function jobEvents(
  handle: InferenceHandle,
  {
    resumedFrom,
    signer,
    stallMs,
    tokensPerEvent,
    gatherMs,
    timers,
    queue,
    onFinished,
    assignable,
    onUnsent,
    credited,
    onCancelled,
  }: JobEventsOptions,
): ReadableStream<InferenceEvent> {
  const reader = handle.tokens.getReader();
  // Up to `tokensPerEvent` tokens in one event when they are ready together, or came within
  // `gatherMs` of the last event (requesters that asked); one read per pull otherwise, so the
  // worker computes only what is pulled.
  const ahead = tokensPerEvent > 1
    ? new ReadAhead(reader, tokensPerEvent, { gatherMs, timers })
    : undefined;
  let started = false;
  let ended = false;
  let finished = false;
  // One check timer per job, not one per token: `waitingSince` is when the stream last
  // delivered an event and was not pulled again (NaN while a pull is in progress). A stream
  // never pulled waits from its creation: a requester that grants no credit at all has
  // stalled too, and would otherwise hold its slot forever.
  let waitingSince = performance.now();
  let check: ReturnType<typeof setInterval> | undefined;
  const finish = () => {
    clearInterval(check);
    queue?.close();
    if (finished) return;
    finished = true;
    onFinished();
  };
  handle.done.then(finish);
  let controllerRef: ReadableStreamDefaultController<InferenceEvent> | undefined;
  /** The read of the next ready tokens, in progress across a `queued` report. */
  let pending: Promise<StreamedToken[]> | undefined;
  /** What the read of the job's tokens failed with (a finished job's evicted backlog). */
  let readError: unknown;
  /** Tokens sent on the stream: how many of a finished job's reached its requester's side. */
  let sentTokens = 0;
  /** Tokens sent in the stream's events, in order, up to each (its start and `queued`: 0). */
  const tokensUpTo: number[] = [];
  /**
   * The positions in the events the requester gave credit back for (`CancelSeen.floor`), and at
   * least in all but the last {@link uncreditedEvents} sent: a requester that opened a
   * larger window than an honest one (up to `MAX_CREDIT_GRANT`) and never gave credit back
   * would otherwise read the whole job at a floor of 0.
   */
  const uncredited = uncreditedEvents(tokensPerEvent);
  const creditedPositions = (): number => {
    const events = Math.min(
      tokensUpTo.length,
      Math.max(credited?.() ?? 0, tokensUpTo.length - uncredited),
    );
    return resumedFrom + (events > 0 ? tokensUpTo[events - 1] : 0);
  };
  const sent = (controller: ReadableStreamDefaultController<InferenceEvent>, e: InferenceEvent) => {
    tokensUpTo.push(sentTokens);
    controller.enqueue(e);
  };
  async function readReady(): Promise<StreamedToken[]> {
    if (ahead !== undefined) return await ahead.take();
    try {
      const result = await reader.read();
      return result.done ? [] : [result.value];
    } catch (error) {
      // The job failed or was cancelled here: the summary says which, then the stream ends.
      readError = error;
      return [];
    }
  }

  if (stallMs > 0) {
    check = setInterval(() => {
      if (!(performance.now() - waitingSince >= stallMs)) return;
      // The requester stopped reading (no credit for stallMs): free the slot.
      clearInterval(check);
      reader.cancel().catch(() => {});
      handle.cancel();
      try {
        controllerRef?.error(new VeriflowError("reader_stalled", "the requester stopped reading"));
      } catch {
        // already closed
      }
    }, Math.max(1, stallMs / STALL_CHECKS));
  }
  return new ReadableStream<InferenceEvent>({
    start: (controller) => {
      controllerRef = controller;
    },
    pull: async (controller) => {
      waitingSince = NaN;
      try {
        await step(controller);
      } finally {
        waitingSince = performance.now();
      }
    },
    cancel: (reason) => {
      // The requester's own cancel (not a lost connection, a stall or a credit timeout): the
      // job may be cut for it, never below what it read (`CancelSeen`).
      let told = reason;
      if (reason instanceof StreamCancelledError) {
        const floor = creditedPositions();
        const held = heldOf(reason);
        onCancelled?.(held === undefined ? { floor } : { held, floor });
        // A job still running signs its cancelled receipt over the count: held to the floor.
        if (held !== undefined && held < floor) {
          told = new HeldCancelError(floor, reason.message, { cause: reason });
        }
      }
      // A closed connection's reason (`ConnectionClosedError`) signs nothing: only the peer's
      // explicit cancel of an assignable job does (`actors/inference_job.ts`).
      reader.cancel(assignable ? told : undefined).catch(() => {});
      handle.cancel();
      finish();
      // Cancelled under the stream (its connection closed, the requester's cancel): a job that
      // had finished still gets its receipt, whose `end` event may never have gone out. Kept,
      // for the requester to ask for later (`UnsentReceipts`), and so does one its requester
      // cancelled after tokens (a receipt over them, `end: "cancelled"`); one cancelled before
      // any, or by a lost connection, has none.
      handle.done.then((summary) => {
        // The local port's own prover signed it: a `Receipt`.
        if (summary.receipt !== undefined) onUnsent?.(summary.receipt as Receipt);
      });
    },
  }, { highWaterMark: 0 });

  async function step(controller: ReadableStreamDefaultController<InferenceEvent>) {
    if (!started) {
      started = true;
      const { cid, name, kind, contextLength, executionProvider } = handle.model;
      const model: StartEvent["model"] = { cid, name, kind };
      if (contextLength !== undefined) model.contextLength = contextLength;
      if (executionProvider !== undefined) model.executionProvider = executionProvider;
      const start: StartEvent = {
        kind: "start",
        jobId: handle.jobId,
        model,
        promptTokens: handle.promptTokens,
      };
      // Only when resuming, so a start from the beginning is what it always was on the wire.
      if (resumedFrom > 0) start.resumedFrom = resumedFrom;
      // And the prefix's text as its receipt signs it: the router checks what it relayed by it.
      if (resumedFrom > 0 && handle.resumedText !== undefined) {
        start.resumedText = handle.resumedText;
      }
      sent(controller, start);
      return;
    }
    if (ended) {
      controller.close();
      return;
    }
    // Until the first token, whichever comes first: the token, or a place in the queue to
    // report (the read goes on behind the report, for the next pull).
    pending ??= readReady();
    let ready: StreamedToken[];
    if (queue !== undefined) {
      const next = await readOrQueued(pending, queue);
      if ("position" in next) {
        sent(controller, { kind: "queued", position: next.position });
        return;
      }
      queue.close();
      queue = undefined;
      ready = next.read;
    } else ready = await pending;
    pending = undefined;
    if (ready.length === 0) {
      ended = true;
      const summary = await handle.done;
      // A finished job whose unread tokens were evicted (`slow_reader`) ends with that error,
      // as at the edges, not with an end after fewer tokens than it made, which the router
      // takes for a broken worker and runs again elsewhere (review s77 vclient, F2).
      const undelivered = undeliveredTokensError(readError ?? ahead?.error, summary, sentTokens);
      if (undelivered !== undefined) {
        // Its receipt never goes out in an `end`: kept for `inference.get_receipt`, where the
        // router of the client that read too slowly asks for it, to pay the job (stop 78).
        if (summary.receipt !== undefined) onUnsent?.(summary.receipt as Receipt);
        controller.error(undelivered);
        return;
      }
      if (summary.finishReason === "cancelled" || summary.finishReason === "error") {
        controller.error(
          new VeriflowError(
            summary.error?.code ?? CANCELLED,
            summary.error?.message ?? "the job was cancelled by the worker",
          ),
        );
        return;
      }
      // Kept though its `end` goes out: a router that forgot the job (its memory of assigned
      // jobs lost) asks for it when this node refuses the client's retry `duplicate_job`, and
      // assigns it rather than have the job run again elsewhere (review s78 vfinal, F1).
      if (summary.receipt !== undefined) onUnsent?.(summary.receipt as Receipt, true);
      sent(controller, { kind: "end", summary: wireSummary(summary) });
      return;
    }
    const events = ready.map(wireToken);
    sentTokens += ready.length;
    tokensUpTo.push(sentTokens);
    const final = ready[ready.length - 1].finishReason !== undefined;
    const sig = signer?.sign(ready.map((token) => token.tokenId), final);
    const event: TokenEvent | TokensEvent = events.length === 1
      ? events[0]
      : { kind: "tokens", tokens: events.map(withoutKind) };
    if (sig !== undefined) event.sig = sig;
    controller.enqueue(event);
  }
}

/** One streamed token as its `token` event. */
function wireToken(token: StreamedToken): TokenEvent {
  const { index, tokenId, text, logprob, topLogprobs, finishReason } = token;
  const event: TokenEvent = { kind: "token", index, tokenId, text };
  if (logprob !== undefined) event.logprob = logprob;
  if (topLogprobs !== undefined) {
    event.top = topLogprobs.map((top) => ({
      tokenId: top.tokenId,
      text: top.text,
      logprob: top.logprob,
    }));
  }
  if (finishReason !== undefined) event.finishReason = finishReason;
  return event;
}

function withoutKind(event: TokenEvent): Omit<TokenEvent, "kind"> {
  const { kind: _kind, ...rest } = event;
  return rest;
}

/** The summary as it goes on the wire: only the fields the schema knows. */
function wireSummary(summary: JobSummary): WireJobSummary {
  const out: WireJobSummary = {
    jobId: summary.jobId,
    finishReason: summary.finishReason,
    usage: summary.usage,
    timings: summary.timings,
  };
  if (summary.receipt !== undefined) {
    out.receipt = summary.receipt as Receipt;
  }
  if (summary.error !== undefined) out.error = summary.error;
  return out;
}
