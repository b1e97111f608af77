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
 * itself, so its state is only ever touched inside `receive`. Proof data is kept in memory
 * (bounded, oldest evicted first) and, when `dir` is set, written atomically to disk as CBOR
 * (`<dir>/<receiptId>.cbor`), so a challenge that arrives after a restart can still be
 * answered until the challenge window has passed.
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
import { decodeCbor, encodeCbor } from "../protocols/cbor.ts";
import type { TokenChunk } from "../inference/text_model.ts";
import type { ProofData } from "../proof/commitment.ts";
import { type ProvedJob, proveJob } from "../proof/prover.ts";

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
}

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
}

/** Internal: a proof that failed. */
export interface ProveFailedMessage {
  /** Message tag. */
  type: "prove_failed";
  /** Job id. */
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
  | GetProverStatsMessage;

/** What `prove` answers: the receipt arrives when the stream ends. */
export interface ProveHandle {
  /** Resolves with the signed receipt; rejects when the stream errors (for example cancelled). */
  receipt: Promise<Receipt>;
}

/** ProverActor counters. */
export interface ProverStats {
  /** Jobs being proven now. */
  active: number;
  /** Receipts signed. */
  proven: number;
  /** Streams that failed (cancelled jobs among them). */
  failed: number;
  /** Proofs held in memory. */
  stored: number;
}

/** Options of {@link ProverActor}. */
export interface ProverActorOptions {
  /** The worker identity that signs receipts. */
  identity: Identity;
  /** Directory to persist proof data into; default none (memory only). */
  dir?: string;
  /** Proofs kept in memory, oldest evicted first; default 4096 (~1.5 MB at 64 tokens each). */
  maxProofs?: number;
  /**
   * Registry name of the node's ValidatorActor: each signed receipt goes there with its job
   * (origin `local`), to be recorded and announced to other nodes' validators. Absent: none.
   */
  validator?: string;
}

/** Default bound of proofs held in memory. */
export const DEFAULT_MAX_PROOFS = 4096;

/** The prover actor. */
export class ProverActor implements Actor<ProverMessage> {
  readonly #identity: Identity;
  readonly #dir?: string;
  readonly #maxProofs: number;
  readonly #validator?: string;
  readonly #proofs = new Map<string, ProofData>();
  #active = 0;
  #proven = 0;
  #failed = 0;

  /**
   * Create the actor (the factory of its ChildSpec calls this).
   * @param options Identity and storage.
   */
  constructor(options: ProverActorOptions) {
    this.#identity = options.identity;
    this.#dir = options.dir;
    this.#maxProofs = options.maxProofs ?? DEFAULT_MAX_PROOFS;
    this.#validator = options.validator;
  }

  /** Handle one message (see {@link ProverMessage}). */
  async receive(
    message: ProverMessage,
    ctx: ActorContext<ProverMessage>,
  ): Promise<ProveHandle | ServedProof | ProverStats | undefined> {
    switch (message.type) {
      case "prove":
        return this.#prove(message, ctx);
      case "proved": {
        this.#active--;
        this.#proven++;
        const id = receiptId(message.proved.receipt);
        this.#remember(id, message.proved.proof);
        if (this.#dir) await persist(this.#dir, id, message.proved.proof);
        if (this.#validator !== undefined) {
          // Stored first, so a validator's challenge can never outrun the proof it asks for.
          ctx.system.lookup<ValidatorMessage>(this.#validator)?.tell({
            type: "receipt",
            receipt: message.proved.receipt,
            job: message.job,
            origin: "local",
            announce: true,
          }).catch(() => {});
        }
        return undefined;
      }
      case "prove_failed":
        this.#active--;
        this.#failed++;
        return undefined;
      case "get_proof": {
        const proof = this.#proofs.get(message.receiptId) ??
          (this.#dir ? await load(this.#dir, message.receiptId) : undefined);
        // Signed as served: what this worker hands a challenger is evidence against it.
        return proof && signServedProof(message.receiptId, proof, this.#identity);
      }
      case "stats":
        return {
          active: this.#active,
          proven: this.#proven,
          failed: this.#failed,
          stored: this.#proofs.size,
        };
    }
  }

  #prove(message: ProveMessage, ctx: ActorContext<ProverMessage>): ProveHandle {
    this.#active++;
    const run = proveJob(message.job, message.chunks, this.#identity, { signal: ctx.signal });
    const receipt = run.then(async (proved) => {
      // Store before the receipt is released, so a challenge can never outrun its proof.
      await ctx.self.ask({ type: "proved", proved, job: message.job });
      return proved.receipt;
    }, async (error) => {
      await ctx.self.tell({ type: "prove_failed", jobId: message.jobId }).catch(() => {});
      throw error;
    });
    // The handle's owner may drop it; never leave an unhandled rejection behind.
    receipt.catch(() => {});
    return { receipt };
  }

  #remember(id: string, proof: ProofData): void {
    this.#proofs.set(id, proof);
    while (this.#proofs.size > this.#maxProofs) {
      this.#proofs.delete(this.#proofs.keys().next().value!);
    }
  }
}

async function persist(dir: string, id: string, proof: ProofData): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${dir}/.${id}.${crypto.randomUUID()}.tmp`;
  await Deno.writeFile(tmp, encodeCbor(proof));
  // Write-then-rename: a crash never leaves a half-written proof under its final name.
  await Deno.rename(tmp, `${dir}/${id}.cbor`);
}

async function load(dir: string, id: string): Promise<ProofData | undefined> {
  if (!/^[0-9a-f]{64}$/.test(id)) return undefined;
  try {
    const p = decodeCbor(await Deno.readFile(`${dir}/${id}.cbor`)) as ProofData;
    return {
      ...p,
      tokens: new Uint8Array(p.tokens),
      fingerprints: new Uint8Array(p.fingerprints),
    };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
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
): (job: TextJob, jobId: string, chunks: ReadableStream<TokenChunk>) => Promise<Receipt> {
  return async (job, jobId, chunks) => {
    const handle = await ref.ask<ProveHandle>({ type: "prove", job, jobId, chunks });
    return await handle.receipt;
  };
}
