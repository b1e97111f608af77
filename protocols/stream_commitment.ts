/**
 * The signed running commitment of a job's token stream (`docs/PROOF.md`, "A lost worker's wrong
 * tokens"): each `token` or `tokens` event a worker sends carries `sig`, its ed25519 signature
 * over `("vf-stream-1", jobId, n, h_n)`, where `n` is the number of the job's tokens streamed so
 * far (the event's last position + 1) and `h_n = H(h_{n−1} ‖ u32be tokenId_{n−1})`,
 * `h_0 = H(utf8 jobId)`. A worker that took the job over signs the chain over the prefix it was
 * handed as well, so every signature covers the job's output from position 0.
 *
 * The requester checks each event's signature before it relays a token ({@link StreamVerifier}),
 * and keeps only the latest `(n, sig)`: with the `n` token ids it delivered, that is the worker's
 * signed word for every token the client got — the evidence of a {@link StreamClaim} when the
 * worker drops and every worker that takes the job over refuses those tokens.
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "./cbor.ts";
import { sha256 } from "./hash.ts";
import { type Identity, SIGNATURE_BYTES, verifySignature } from "./identity.ts";
import { GENERATION_LIMITS, type TextJob, textJobSchema } from "./job.ts";
import { MAX_JOB_INPUT_BYTES } from "./job_input.ts";

/** Domain separation of stream signatures. */
export const STREAM_DOMAIN = "vf-stream-1";

const encoder = new TextEncoder();

/** `h_0` of job `jobId`'s chain. */
export function streamChainStart(jobId: string): Uint8Array {
  return sha256(encoder.encode(jobId));
}

/** `h_{n+1}` from `h_n` and the token at position `n`. */
export function streamChainStep(h: Uint8Array, tokenId: number): Uint8Array {
  const bytes = new Uint8Array(h.length + 4);
  bytes.set(h);
  new DataView(bytes.buffer).setUint32(h.length, tokenId);
  return sha256(bytes);
}

/** `h_n` over `tokenIds` (positions 0 to n − 1) of job `jobId`. */
export function streamChainOver(jobId: string, tokenIds: readonly number[]): Uint8Array {
  let h = streamChainStart(jobId);
  for (const id of tokenIds) h = streamChainStep(h, id);
  return h;
}

/**
 * The bytes a stream signature covers; `final` for the event whose last token ends the job (its
 * finish reason), so a worker that cuts a job short by marking an honest token as its last signs
 * that it did (the checker applies the job's ending rule to a final head).
 */
export function streamSigningBytes(
  jobId: string,
  n: number,
  h: Uint8Array,
  final = false,
): Uint8Array {
  return encodeCanonical(
    final
      ? { domain: STREAM_DOMAIN, jobId, n, h, end: true }
      : { domain: STREAM_DOMAIN, jobId, n, h },
  );
}

/** The worker's side: the chain of one job, advanced and signed event by event. */
export class StreamSigner {
  readonly #identity: Identity;
  readonly #jobId: string;
  #h: Uint8Array;
  #n = 0;

  /** For job `jobId`, resumed after `prefix` (the token ids handed over; empty: from the start). */
  constructor(identity: Identity, jobId: string, prefix: readonly number[] = []) {
    this.#identity = identity;
    this.#jobId = jobId;
    this.#h = streamChainOver(jobId, prefix);
    this.#n = prefix.length;
  }

  /**
   * Advance over the event's `tokenIds` and sign the chain's new head; `final` when the last of
   * them ends the job.
   */
  sign(tokenIds: readonly number[], final = false): Uint8Array {
    for (const id of tokenIds) this.#h = streamChainStep(this.#h, id);
    this.#n += tokenIds.length;
    return this.#identity.sign(streamSigningBytes(this.#jobId, this.#n, this.#h, final));
  }
}

/** The latest signed head of a stream: `n` tokens, and the worker's signature over them. */
export interface SignedHead {
  /** Tokens the head covers: positions 0 to n − 1. */
  n: number;
  /** The worker's signature over `(jobId, n, h_n)` ({@link streamSigningBytes}). */
  sig: Uint8Array;
  /** Whether the worker signed that its last token ends the job. */
  final?: boolean;
}

/** What a requester holds of a worker's signed stream: the latest head and what it covers. */
export interface SignedStream {
  /** The latest signed head (undefined before the first signed event). */
  readonly head: SignedHead | undefined;
  /** The token ids the head covers, from position 0 (the prefix included). */
  readonly tokenIds: readonly number[];
}

/**
 * The requester's side: checks each event's signature against the chain over the tokens
 * delivered so far, and keeps the latest signed head and the token ids it covers.
 */
export class StreamVerifier implements SignedStream {
  readonly #worker: Uint8Array;
  readonly #jobId: string;
  readonly #tokenIds: number[];
  #h: Uint8Array;
  #head: SignedHead | undefined;

  /** For job `jobId` streamed by `worker` (its public key), resumed after `prefix`. */
  constructor(worker: Uint8Array, jobId: string, prefix: readonly number[] = []) {
    this.#worker = worker;
    this.#jobId = jobId;
    this.#tokenIds = [...prefix];
    this.#h = streamChainOver(jobId, prefix);
  }

  /**
   * Whether `sig` signs the chain advanced over `tokenIds` (the event's tokens, in order; `final`
   * when the last of them ends the job). Only a valid one advances the chain and becomes the
   * latest head; an invalid one changes nothing.
   */
  accept(tokenIds: readonly number[], sig: Uint8Array | undefined, final = false): boolean {
    if (sig?.length !== SIGNATURE_BYTES) return false;
    let h = this.#h;
    for (const id of tokenIds) h = streamChainStep(h, id);
    const n = this.#tokenIds.length + tokenIds.length;
    const bytes = streamSigningBytes(this.#jobId, n, h, final);
    if (!verifySignature(this.#worker, bytes, sig)) return false;
    this.#h = h;
    this.#tokenIds.push(...tokenIds);
    this.#head = final ? { n, sig, final } : { n, sig };
    return true;
  }

  /** The latest signed head (undefined before the first signed event). */
  get head(): SignedHead | undefined {
    return this.#head;
  }

  /** The token ids the latest head covers, from position 0 (the prefix included). */
  get tokenIds(): readonly number[] {
    return this.#tokenIds;
  }
}

/**
 * A requester's claim against a worker that streamed tokens and dropped: its signed head over
 * `tokenIds` and the position `at` where the workers that took the job over refused them. The
 * position only says where to look; a checker replays the job's prompt and `tokenIds[0…at)`
 * and applies the job's sampling rule at `at` (`proof/stream_check.ts`).
 */
export interface StreamClaim {
  /** The job, whose hash is the stream's `jobId`. */
  job: TextJob;
  /** The worker's public key. */
  worker: Uint8Array;
  /** Every token id the head covers, from position 0. */
  tokenIds: number[];
  /** The worker's signature over `(jobId, tokenIds.length, h)`. */
  sig: Uint8Array;
  /** The position the takeover workers refused (`resume_mismatch`). */
  at: number;
  /** The worker signed that the last of `tokenIds` ends the job ({@link SignedHead.final}). */
  final?: true;
  /**
   * A job that names a stored input (`protocols/job_input.ts`): its bytes, which the checker
   * checks against the job's CID before it replays the job on them (a claim without them is
   * inconclusive wherever the input cannot be read). None for a job without an input.
   */
  input?: Uint8Array;
}

/**
 * The evidence of a {@link StreamClaim} against `worker` from its signed `stream` (the caller adds
 * the job): its latest head and the token ids it covers, with `at` (default the head's last
 * position; one past the head is taken as that too); undefined when the worker signed nothing.
 */
export function streamEvidence(
  worker: Uint8Array,
  stream: SignedStream | undefined,
  at = Infinity,
): Omit<StreamClaim, "job"> | undefined {
  const head = stream?.head;
  if (head === undefined) return undefined;
  const evidence: Omit<StreamClaim, "job"> = {
    worker,
    tokenIds: stream!.tokenIds.slice(0, head.n),
    sig: head.sig,
    at: at < head.n ? at : head.n - 1,
  };
  if (head.final) evidence.final = true;
  return evidence;
}

/** A {@link StreamClaim} as zod checks it (the shape only; {@link verifyStreamClaim} the rest). */
export const StreamClaimSchema: z.ZodType<StreamClaim> = z.object({
  job: textJobSchema,
  worker: z.instanceof(Uint8Array).refine((k) => k.length === 32, "a 32-byte key"),
  tokenIds: z.array(z.number().int().nonnegative().max(0xffff_ffff)).min(1)
    .max(GENERATION_LIMITS.maxTokens),
  sig: z.instanceof(Uint8Array).refine((s) => s.length === SIGNATURE_BYTES, "a 64-byte signature"),
  at: z.number().int().nonnegative(),
  final: z.literal(true).optional(),
  input: z.instanceof(Uint8Array).refine(
    (b) => b.length <= MAX_JOB_INPUT_BYTES,
    `at most ${MAX_JOB_INPUT_BYTES} bytes`,
  ).optional(),
}) as unknown as z.ZodType<StreamClaim>;

/**
 * Whether `claim`'s signature is its worker's over its tokens of its job, and its position lies
 * among them: what anyone can check without the model.
 */
export function verifyStreamClaim(claim: StreamClaim, jobId: string): boolean {
  if (claim.at >= claim.tokenIds.length) return false;
  const h = streamChainOver(jobId, claim.tokenIds);
  return verifySignature(
    claim.worker,
    streamSigningBytes(jobId, claim.tokenIds.length, h, claim.final === true),
    claim.sig,
  );
}
