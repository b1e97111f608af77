/**
 * ProverActor: packs the fingerprints of token streams while they flow, signs receipts, and
 * keeps the proof data to serve validators on challenge.
 *
 * Each chunk arrives with its position's fingerprint already computed next to the logits (in the
 * model worker in worker mode) and no logits row, so what waits in a prover's queue is bounded by
 * the job's tokens, not tokens × vocabulary: per position a token id and a fingerprint (4 bytes
 * once quantized) plus the chunk's text.
 *
 * `prove` returns a handle at once (the mailbox is not held for the length of a job); the
 * proving runs beside generation and, when it ends, the actor stores the proof data by tells to
 * itself, so its state is only ever touched inside `receive`. With `dir` set (a node), each job
 * and its proof data are written durably to a {@link ProofStore} before the receipt leaves, and
 * kept for as long as a challenge can come ({@link DEFAULT_PROOF_RETENTION_MS}: the challenge
 * window, the proof deadline and a margin), then deleted by a periodic sweep: nothing a
 * challenge may ask for lives only in memory, so a burst or a restart never loses one, and the
 * directory does not grow with history. Without `dir` (tests, embedding) proof data is kept in
 * memory only, bounded by `maxProofs` (oldest evicted first).
 *
 * A proof store the file system refuses (a full disk, a read-only mount) is the machine's
 * condition, not the actor's bug: the job whose proof data could not be kept ends without a
 * receipt, its receipt promise rejecting with the store's typed {@link ProofStoreError}
 * (`proof_store_failed`, naming the directory and the OS's reason), so its client still gets its
 * text and is told why it has no receipt. The actor keeps running — crashing on every job would
 * only exhaust its supervisor and stop the node — and reports the fault in its stats
 * (`storeFaults`, which `/healthz` shows through {@link proofStoreConditions}) and in one log
 * line when writes start failing and one when they succeed again.
 *
 * The record keeps the signed receipt, and the actor answers what it knows of a job by its id
 * ({@link JobTraceMessage}): a worker killed after signing, before the receipt's `end` event went
 * out, still hands the receipt to the job's requester after a restart, and one with no trace of a
 * job (not being proven, no record) says so, so the requester stops asking for a receipt that
 * will never come (review s79 crash F2, F4; `inference/serve_inference.ts`).
 *
 * Wire it into the InferenceActor with {@link proverHook}.
 *
 * @module
 */
import type { Actor, ActorContext } from "./actor.ts";
import type { ValidatorMessage } from "./validator_actor.ts";
import type { ActorRef } from "./actor_ref.ts";
import type { Identity } from "../protocols/identity.ts";
import { type ServedProof, signServedProof } from "../proof/served_proof.ts";
import type { TextJob } from "../protocols/job.ts";
import { type Receipt, receiptId } from "../protocols/receipt.ts";
import type { TokenChunk } from "../inference/text_model.ts";
import type { ProofData } from "../proof/commitment.ts";
import {
  cutProvedJob,
  type ProvedJob,
  proveJob,
  ProverStreamError,
  type ResumedChunks,
} from "../proof/prover.ts";
import { DEFAULT_PROOF_BUCKET_MS, ProofStore, ProofStoreError } from "../proof/proof_store.ts";
import { MIN_PROOF_RETENTION_MS } from "../proof/challenge_timing.ts";
import { HEALTH_ASK_TIMEOUT_MS, unansweredCondition } from "./_unanswered_condition.ts";
import { PendingAsks } from "./pending_asks.ts";
import type { ActorSystem } from "./actor_system.ts";
import { type JobTrace, UNSENT_RECEIPT_KEEP_MS } from "../inference/serve_inference.ts";
import { toHex } from "../protocols/hash.ts";
import { VeriflowError } from "../protocols/errors.ts";

/** Start proving a job from the prover's branch of its token stream. */
export interface ProveMessage {
  /** Message tag. */
  type: "prove";
  /** The job. */
  job: TextJob;
  /** Its id (as the InferenceActor computed it). */
  jobId: string;
  /** The prover's branch; chunks carry their fingerprint (no logits row). */
  chunks: ReadableStream<TokenChunk>;
  /** The bytes of the job's `input`, if it names one: kept in the proof data. */
  input?: Uint8Array;
  /**
   * Positions of the output replayed from another worker's prefix (a resumed job): never cut a
   * receipt over ({@link CutReceiptMessage}). Default 0.
   */
  resumedFrom?: number;
}

/**
 * Sign the `cancelled` receipt over the first `tokens` positions of finished job `jobId`, whose
 * requester's client cancelled after holding them while the job's last tokens were still on
 * their way (`inference.get_receipt` with `held`, `serve_inference.ts`; `docs/PROTOCOL.md`,
 * "Through a forwarding node"), from the proof data kept for it ({@link MAX_CUTTABLE_JOBS}, for
 * {@link CUTTABLE_KEEP_MS}): its proof is stored under its own receipt id, the finished one's
 * kept, so a challenge of either is answered. One per job: asked again, whatever the count, it
 * answers the one it signed (two cancelled receipts of one job are equivocation). Answers a
 * {@link ProveHandle}, whose receipt rejects with {@link CutRefusedError} when none is signed.
 */
export interface CutReceiptMessage {
  /** Message tag. */
  type: "cut";
  /** Hex job id. */
  jobId: string;
  /** Output positions the requester's client held. */
  tokens: number;
}

/**
 * No cancelled receipt over a finished job's prefix ({@link CutReceiptMessage}): its proof data
 * is not kept here (never finished here for another node, past its keep-time or bound, a restart
 * since), the count is no prefix of this worker's own (not below the finished receipt's, or
 * within a resumed job's replayed prefix), or its proof data could not be stored.
 */
export class CutRefusedError extends VeriflowError {
  /**
   * Create the error.
   * @param message Why.
   */
  constructor(message: string) {
    super("receipt_not_cut", message);
  }
}

/** Most finished jobs whose proof data and text ends are kept to cut a cancelled receipt from. */
export const MAX_CUTTABLE_JOBS = 256;
/**
 * How long they are kept: as long as their receipts are kept for `inference.get_receipt`
 * (`UNSENT_RECEIPT_KEEP_MS`, the challenge window), within which a requester asks right after
 * its client's cancel.
 */
export const CUTTABLE_KEEP_MS: number = UNSENT_RECEIPT_KEEP_MS;

/**
 * Fetch the proof data of a receipt (a validator's challenge), signed by this worker as served.
 * Answers `ServedProof | undefined`.
 */
export interface GetProofMessage {
  /** Message tag. */
  type: "get_proof";
  /** Receipt id (hex). */
  receiptId: string;
}

/** Internal: a finished proof to store. */
export interface ProvedMessage {
  /** Message tag. */
  type: "proved";
  /** The finished job's proof and receipt. */
  proved: ProvedJob;
  /** The job itself (handed to the validator with the receipt). */
  job: TextJob;
  /** The proving run it ends ({@link ProveFailedMessage.run}). */
  run: number;
  /** {@link ProveMessage.resumedFrom}. */
  resumedFrom?: number;
}

/** Internal: a proof that failed. */
export interface ProveFailedMessage {
  /** Message tag. */
  type: "prove_failed";
  /** Job id. */
  jobId: string;
  /**
   * The proving run it ends, unique in the process: a run of an incarnation before a restart
   * ends in the new one, which never counted it among its active jobs.
   */
  run: number;
}

/** Internal (timer): delete proof data no challenge can ask for any more. */
export interface SweepProofsMessage {
  /** Message tag. */
  type: "sweep";
}

/**
 * What this worker knows of job `jobId` (a requester's `inference.get_receipt` that found no
 * receipt in memory: the worker restarted). Answers {@link JobTrace}: `signed` with the receipt
 * its record keeps; `unknown` when the job is not being proven and the store, sure of what it
 * holds, has no record of it (never admitted here, or its process killed before signing);
 * `unsure` otherwise (being proven, a record from before receipts were kept, no store).
 */
export interface JobTraceMessage {
  /** Message tag. */
  type: "job_trace";
  /** Hex job id. */
  jobId: string;
}

/** Counters. Answers {@link ProverStats}. */
export interface GetProverStatsMessage {
  /** Message tag. */
  type: "stats";
}

/** Every message the ProverActor accepts. */
export type ProverMessage =
  | ProveMessage
  | GetProofMessage
  | ProvedMessage
  | ProveFailedMessage
  | SweepProofsMessage
  | JobTraceMessage
  | CutReceiptMessage
  | GetProverStatsMessage;

/** What `prove` answers: the receipt arrives when the stream ends. */
export interface ProveHandle {
  /** Resolves with the signed receipt; rejects when the stream errors (for example cancelled). */
  receipt: Promise<Receipt>;
}

/** Something the proof store cannot do now (see the module doc). */
export interface ProofStoreFault {
  /**
   * What fails: `write`, keeping new proof data (jobs end without receipts), or `delete`,
   * forgetting proof data past its retention (the directory grows).
   */
  operation: "write" | "delete";
  /** The error's code: `proof_store_failed`. */
  code: string;
  /** The latest failure: the directory, the OS's reason and what to check. */
  message: string;
  /** Unix ms of the first failure since the operation last succeeded. */
  since: number;
}

/** ProverActor counters. */
export interface ProverStats {
  /** Jobs being proven now. */
  active: number;
  /** Receipts signed. */
  proven: number;
  /** Streams that failed (cancelled jobs among them). */
  failed: number;
  /** Proofs held: on disk with a `dir` (within the retention), else in memory. */
  stored: number;
  /** Proofs deleted once no challenge could ask for them. */
  swept: number;
  /** Jobs that ended without a receipt because their proof data could not be stored. */
  unstored: number;
  /** What the proof store cannot do now; empty while it is healthy. */
  storeFaults: ProofStoreFault[];
}

/** Options of {@link ProverActor}. */
export interface ProverActorOptions {
  /** The worker identity that signs receipts. */
  identity: Identity;
  /**
   * Directory to keep jobs and proof data in, durably, for `proofRetentionMs`; default none
   * (memory only, bounded by `maxProofs`: not for a node).
   */
  dir?: string;
  /**
   * Without `dir` only: proofs kept in memory, oldest evicted first; default 4096 (~1.5 MB at
   * 64 tokens each).
   */
  maxProofs?: number;
  /**
   * How long after proving a job its proof data is kept for challenges (with `dir`); default
   * {@link DEFAULT_PROOF_RETENTION_MS}.
   */
  proofRetentionMs?: number;
  /** How often proof data past its retention is deleted, ms; default 60 s; 0: never. */
  sweepEveryMs?: number;
  /** Clock in unix ms; default `Date.now`. Injected by tests. */
  now?: () => number;
  /**
   * Registry name of the node's ValidatorActor: each signed receipt goes there with its job
   * (origin `local`), to be recorded and announced to other nodes' validators, and the receipt
   * is released only once the validator has answered (the ledger is what refuses the same job
   * after a restart). Absent: none.
   */
  validator?: string;
  /**
   * Where the actor says that the proof store started failing (an `error:` line) and that it
   * works again; nowhere by default. Once per change, never per job.
   */
  log?: (line: string) => void;
}

/** Default bound of proofs held in memory (without a directory). */
export const DEFAULT_MAX_PROOFS = 4096;

/**
 * How long proof data is kept by default: the least that covers every challenge a recorded
 * receipt can get (`MIN_PROOF_RETENTION_MS`, `proof/challenge_timing.ts`): 21 minutes.
 */
export const DEFAULT_PROOF_RETENTION_MS: number = MIN_PROOF_RETENTION_MS;

/** Proving runs started in this process: each run's id, unique across a prover's restarts. */
let proveRuns = 0;
/**
 * The job of each proving run of this process not yet stored or failed, by run id: kept across a
 * prover's restarts (a run of an incarnation before one ends in the new one), so no incarnation
 * says it has no trace of a job still being proven.
 */
const provingJobs = new Map<number, string>();

/** The prover actor. */
export class ProverActor implements Actor<ProverMessage> {
  readonly #identity: Identity;
  readonly #store?: ProofStore;
  readonly #maxProofs: number;
  readonly #validator?: string;
  readonly #now: () => number;
  readonly #sweepEveryMs: number;
  readonly #log: (line: string) => void;
  /** What the store cannot do now, by operation (set on a failure, cleared on a success). */
  readonly #faults = new Map<ProofStoreFault["operation"], ProofStoreFault>();
  /** Without a store only: the proofs, in memory. */
  readonly #proofs = new Map<string, ProofData>();
  /**
   * Finished jobs another node requested, by job id, oldest first: what a cancelled receipt over a
   * prefix is cut from ({@link CutReceiptMessage}), and the one cut, once it is.
   */
  readonly #cuttable = new Map<
    string,
    { proved: ProvedJob; job: TextJob; at: number; resumedFrom: number; cut?: Receipt }
  >();
  /** Proving runs this incarnation started that have not ended: the `active` gauge. */
  readonly #active = new Set<number>();
  #proven = 0;
  #failed = 0;
  #stored = 0;
  #swept = 0;
  #unstored = 0;

  /**
   * Create the actor (the factory of its ChildSpec calls this).
   * @param options Identity and storage.
   */
  constructor(options: ProverActorOptions) {
    this.#identity = options.identity;
    this.#now = options.now ?? Date.now;
    this.#store = options.dir === undefined ? undefined : new ProofStore(options.dir, {
      retentionMs: options.proofRetentionMs ?? DEFAULT_PROOF_RETENTION_MS,
      now: this.#now,
    });
    this.#maxProofs = options.maxProofs ?? DEFAULT_MAX_PROOFS;
    this.#validator = options.validator;
    this.#sweepEveryMs = options.sweepEveryMs ?? DEFAULT_PROOF_BUCKET_MS;
    this.#log = options.log ?? (() => {});
  }

  /** Forgets what has expired since the last run, and starts the sweep timer. */
  async preStart(ctx: ActorContext<ProverMessage>): Promise<void> {
    if (this.#store === undefined) return;
    await this.#sweep();
    // Read back by job id: what this worker signed before a restart (see the module doc).
    this.#stored = await this.#store.index();
    if (this.#sweepEveryMs > 0) {
      const timer = setInterval(() => {
        ctx.self.tell({ type: "sweep" }).catch(() => {});
      }, this.#sweepEveryMs);
      ctx.signal.addEventListener("abort", () => clearInterval(timer), { once: true });
    }
  }

  /** Handle one message (see {@link ProverMessage}). */
  async receive(
    message: ProverMessage,
    ctx: ActorContext<ProverMessage>,
  ): Promise<ProveHandle | ServedProof | ProverStats | ProofStoreError | JobTrace | undefined> {
    switch (message.type) {
      case "prove":
        return this.#prove(message, ctx);
      case "proved": {
        // Answers the store's error when the proof data could not be kept (see the module doc).
        this.#active.delete(message.run);
        const id = receiptId(message.proved.receipt);
        const { proof } = message.proved;
        const failure = await this.#keep(id, proof, message.job, message.proved.receipt);
        if (failure !== undefined) {
          this.#failed++;
          this.#unstored++;
          return failure;
        }
        this.#keepCuttable(message.proved, message.job, message.resumedFrom ?? 0);
        this.#proven++;
        return undefined;
      }
      case "cut":
        return this.#cut(message, ctx);
      case "prove_failed":
        this.#active.delete(message.run);
        this.#failed++;
        return undefined;
      case "get_proof": {
        const proof = this.#store === undefined
          ? this.#proofs.get(message.receiptId)
          : (await this.#store.get(message.receiptId))?.proof;
        // Signed as served: what this worker hands a challenger is evidence against it.
        return proof && signServedProof(message.receiptId, proof, this.#identity);
      }
      case "sweep":
        await this.#sweep();
        return undefined;
      case "job_trace":
        return await this.#jobTrace(message.jobId);
      case "stats":
        return {
          active: this.#active.size,
          proven: this.#proven,
          failed: this.#failed,
          stored: this.#store === undefined ? this.#proofs.size : this.#stored,
          swept: this.#swept,
          unstored: this.#unstored,
          storeFaults: [...this.#faults.values()],
        };
    }
  }

  #prove(message: ProveMessage, ctx: ActorContext<ProverMessage>): ProveHandle {
    const id = ++proveRuns;
    this.#active.add(id);
    provingJobs.set(id, message.jobId);
    const run = proveJob(message.job, message.chunks, this.#identity, {
      signal: ctx.signal,
      input: message.input,
      now: this.#now, // the receipt's signed times and the retention on one clock
    });
    const receipt = run.then(async (proved) => {
      // Store before the receipt is released, so a challenge can never outrun its proof.
      const failure = await ctx.self.ask<ProofStoreError | undefined>({
        type: "proved",
        proved,
        job: message.job,
        run: id,
        resumedFrom: message.resumedFrom,
      });
      if (failure !== undefined) throw failure;
      await this.#record(proved.receipt, message.job, ctx);
      return proved.receipt;
    }, async (error) => {
      await ctx.self.tell({ type: "prove_failed", jobId: message.jobId, run: id }).catch(() => {});
      throw error;
    });
    // Stored (or failed) by then: the job's trace is its record (or none).
    receipt.finally(() => provingJobs.delete(id)).catch(() => {});
    // The handle's owner may drop it; never leave an unhandled rejection behind.
    receipt.catch(() => {});
    return { receipt };
  }

  /**
   * Keep `proof` for challenges of receipt `id` (durably with a store, before the receipt is
   * released: a crash cannot lose what a challenge asks); the store's error when it cannot.
   */
  async #keep(
    id: string,
    proof: ProofData,
    job: TextJob,
    receipt: Receipt,
  ): Promise<ProofStoreError | undefined> {
    if (this.#store === undefined) {
      this.#remember(id, proof);
      return undefined;
    }
    try {
      await this.#store.put({ receiptId: id, provedAt: this.#now(), job, proof, receipt });
    } catch (error) {
      if (!(error instanceof ProofStoreError)) throw error;
      this.#fault("write", error);
      return error;
    }
    this.#stored++;
    this.#recovered("write");
    return undefined;
  }

  /**
   * Keep a finished job's proof data and text ends to cut a cancelled receipt from
   * ({@link CutReceiptMessage}): only for a job another node requested (one this node assigns
   * itself, or none, earns nothing from a cancelled receipt), within {@link MAX_CUTTABLE_JOBS}
   * and {@link CUTTABLE_KEEP_MS}, oldest out first.
   */
  #keepCuttable(proved: ProvedJob, job: TextJob, resumedFrom: number): void {
    const requester = job.requester;
    if (proved.receipt.end !== undefined || proved.outputEnds === undefined) return;
    if (requester === undefined || requester === toHex(this.#identity.publicKey)) return;
    this.#sweepCuttable();
    const id = proved.receipt.jobId;
    this.#cuttable.delete(id);
    this.#cuttable.set(id, { proved, job, at: this.#now(), resumedFrom });
    while (this.#cuttable.size > MAX_CUTTABLE_JOBS) {
      this.#cuttable.delete(this.#cuttable.keys().next().value!);
    }
  }

  #sweepCuttable(): void {
    const before = this.#now() - CUTTABLE_KEEP_MS;
    for (const [id, kept] of this.#cuttable) {
      if (kept.at >= before) break; // oldest first
      this.#cuttable.delete(id);
    }
  }

  /** {@link CutReceiptMessage}: signed and stored here, recorded outside the mailbox. */
  async #cut(message: CutReceiptMessage, ctx: ActorContext<ProverMessage>): Promise<ProveHandle> {
    const refused = (why: string): ProveHandle => {
      const receipt = Promise.reject(new CutRefusedError(why));
      receipt.catch(() => {}); // the handle's owner may drop it
      return { receipt };
    };
    this.#sweepCuttable();
    const kept = this.#cuttable.get(message.jobId);
    if (kept === undefined) {
      return refused(`no finished job ${message.jobId} is kept here to cut a receipt from`);
    }
    if (kept.cut !== undefined) return { receipt: Promise.resolve(kept.cut) };
    if (message.tokens <= kept.resumedFrom) {
      return refused(
        `the job's first ${kept.resumedFrom} positions are another worker's prefix, resumed here: ` +
          `no receipt over ${message.tokens} of them is this worker's`,
      );
    }
    let cut: ProvedJob;
    try {
      cut = cutProvedJob(kept.proved, message.tokens, this.#identity);
    } catch (error) {
      if (!(error instanceof ProverStreamError)) throw error;
      return refused(error.message);
    }
    // The finished one's proof stays: a challenge of either receipt is answered.
    const failure = await this.#keep(receiptId(cut.receipt), cut.proof, kept.job, cut.receipt);
    if (failure !== undefined) return refused(failure.message);
    kept.cut = cut.receipt;
    this.#proven++;
    const receipt = this.#record(cut.receipt, kept.job, ctx).then(() => cut.receipt);
    receipt.catch(() => {});
    return { receipt };
  }

  /** What this worker knows of job `jobId` ({@link JobTraceMessage}). */
  async #jobTrace(jobId: string): Promise<JobTrace> {
    if (this.#store === undefined) return { kind: "unsure" }; // memory only: a restart forgot
    const found = await this.#store.findJob(jobId).catch(() => undefined);
    if (typeof found === "object" && found.receipt !== undefined) {
      const { receipt, job, provedAt } = found;
      return { kind: "signed", receipt, requester: job?.requester, provedAt };
    }
    const proving = [...provingJobs.values()].includes(jobId);
    return found === "none" && !proving ? { kind: "unknown" } : { kind: "unsure" };
  }

  /**
   * Hand a stored receipt to the node's validator and wait until it is recorded (outside the
   * mailbox: the validator's ledger write holds no other job's proof). Stored first, so a
   * challenge can never outrun the proof it asks for; recorded before release, so a `kill -9`
   * right after cannot let the restarted node accept the job again and sign a second, different
   * receipt for it, which every validator slashes as equivocation (a review found it at stop 47).
   * A validator that refuses or does not answer (restarting) holds nothing back.
   */
  async #record(receipt: Receipt, job: TextJob, ctx: ActorContext<ProverMessage>): Promise<void> {
    if (this.#validator === undefined) return;
    await ctx.system.lookup<ValidatorMessage>(this.#validator)
      ?.ask({ type: "receipt", receipt, job, origin: "local", announce: true })
      .catch(() => {});
  }

  /** Delete what has expired; a refused removal is a fault, not a crash. */
  async #sweep(): Promise<void> {
    if (this.#store === undefined) return;
    let removed: number;
    try {
      removed = await this.#store.sweep();
    } catch (error) {
      if (!(error instanceof ProofStoreError)) throw error;
      this.#fault("delete", error);
      return;
    }
    this.#recovered("delete");
    this.#swept += removed;
    this.#stored = Math.max(0, this.#stored - removed);
  }

  /** Record that `operation` failed; log it when it worked until now. */
  #fault(operation: ProofStoreFault["operation"], error: ProofStoreError): void {
    const known = this.#faults.get(operation);
    this.#faults.set(operation, {
      operation,
      code: error.code,
      message: error.message,
      since: known?.since ?? this.#now(),
    });
    if (known !== undefined) return;
    this.#log(
      operation === "write"
        ? `error: prover: ${error.message} (jobs end without a receipt until a write succeeds)`
        : `error: prover: ${error.message} (proof data past its retention is kept until then)`,
    );
  }

  /** Record that `operation` succeeded; log it when it was failing. */
  #recovered(operation: ProofStoreFault["operation"]): void {
    if (!this.#faults.delete(operation)) return;
    const dir = this.#store?.dir;
    this.#log(
      operation === "write"
        ? `prover: proof data is written to ${dir} again; jobs get receipts`
        : `prover: proof data past its retention is deleted from ${dir} again`,
    );
  }

  #remember(id: string, proof: ProofData): void {
    this.#proofs.set(id, proof);
    while (this.#proofs.size > this.#maxProofs) {
      this.#proofs.delete(this.#proofs.keys().next().value!);
    }
  }
}

/**
 * The InferenceActor's `prover` hook backed by a ProverActor: hands the stream over and
 * resolves with the receipt.
 *
 * @example
 * ```ts ignore
 * const prover = await system.spawn({ name: "node/prover", factory: () => new ProverActor({ identity }) });
 * new InferenceActor({ ..., prover: proverHook(prover) });
 * ```
 */
export function proverHook(
  ref: ActorRef<ProverMessage>,
): (
  job: TextJob,
  jobId: string,
  chunks: ReadableStream<TokenChunk>,
  input?: Uint8Array,
) => Promise<Receipt> {
  return async (job, jobId, chunks, input) => {
    // An InferenceActor's branch says how much of it is a resumed prefix (`ResumedChunks`).
    const resumedFrom = (chunks as Partial<ResumedChunks>).resumedFrom;
    const handle = await ref.ask<ProveHandle>({
      type: "prove",
      job,
      jobId,
      chunks,
      input,
      resumedFrom,
    });
    return await handle.receipt;
  };
}

/**
 * The node's ProverActor, registered as `name` in `system`, signing the `cancelled` receipt over
 * the first `tokens` positions of a finished job ({@link CutReceiptMessage}), for
 * `serveInference`'s `cut`: undefined without a prover; rejects when it signs none (not there,
 * no answer, {@link CutRefusedError}).
 *
 * @example
 * ```ts ignore
 * serveInference(connection, port, { cut: proverCut(system, "node/prover") });
 * ```
 */
export function proverCut(
  system: ActorSystem,
  name: string | undefined,
): ((jobId: string, tokens: number) => Promise<Receipt>) | undefined {
  if (name === undefined) return undefined;
  return async (jobId, tokens) => {
    const prover = system.lookup<ProverMessage>(name);
    if (prover === undefined) throw new CutRefusedError("the prover is not running");
    const handle = await prover.ask<ProveHandle>({ type: "cut", jobId, tokens });
    return await handle.receipt;
  };
}

/**
 * What the node's ProverActor, registered as `name` in `system`, knows of a job
 * ({@link JobTraceMessage}), for `serveInference`'s `trace`: undefined without a prover; `unsure`
 * when it is not there or does not answer (restarting).
 */
export function proverJobTrace(
  system: ActorSystem,
  name: string | undefined,
): ((jobId: string) => Promise<JobTrace>) | undefined {
  if (name === undefined) return undefined;
  return async (jobId) => {
    const prover = system.lookup<ProverMessage>(name);
    const trace = await prover?.ask<JobTrace>({ type: "job_trace", jobId }).catch(() => undefined);
    return trace ?? { kind: "unsure" };
  };
}

/** A {@link ProofStoreFault} as a condition of the node (see `server/health_routes.ts`). */
export interface ProverCondition {
  /** `proof_store`; `prover` when the prover itself did not answer. */
  component: "proof_store" | "prover";
  /** Always `degraded`: the node serves, without receipts (write) or growing (delete). */
  status: "degraded";
  /** The error's code: `proof_store_failed`. */
  code: string;
  /** The latest failure: the directory, the OS's reason and what to check. */
  message: string;
  /** Unix ms of the first failure since the operation last succeeded. */
  since: number;
}

/**
 * The proof store's faults as conditions of the node, for `/healthz`: none while it is healthy
 * or the node runs no prover. A prover that does not answer within 2 s is one condition too.
 * `asks`, kept by the caller across checks, sends no new ask while the last is unanswered (health
 * probes come every second: `pending_asks.ts`, review verify4 F3).
 *
 * @example
 * ```ts ignore
 * const conditions = () => proofStoreConditions(system.lookup<ProverMessage>("node/prover"));
 * ```
 */
export async function proofStoreConditions(
  prover: ActorRef<ProverMessage> | undefined,
  asks: PendingAsks = new PendingAsks(),
): Promise<ProverCondition[]> {
  if (prover === undefined) return [];
  let stats: ProverStats;
  try {
    stats = await asks.ask<ProverMessage, ProverStats>(
      prover,
      "stats",
      { type: "stats" },
      HEALTH_ASK_TIMEOUT_MS,
    );
  } catch (error) {
    return [unansweredCondition("prover", "the prover", error, Date.now())];
  }
  return stats.storeFaults.map((fault) => ({
    component: "proof_store",
    status: "degraded",
    code: fault.code,
    message: fault.message,
    since: fault.since,
  }));
}
