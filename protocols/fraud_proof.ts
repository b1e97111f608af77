/**
 * Fraud proofs: the smallest evidence that a worker's signed work is wrong, checkable by any
 * node (see `proof/fraud_check.ts`).
 *
 * A proof carries the worker's own signed receipt, the job (so the checker can rebuild the
 * prompt and the sampling rule and see that the receipt is for it), the chunk openings
 * `0..c` of the commitment (token ids of every chunk up to the last cited position — the prefix
 * the checker must run — and fingerprints only of the chunks that hold cited positions, Merkle
 * paths for all), and the cited positions with the values the validator recomputed. The
 * checker recomputes those positions itself; the validator's numbers are there to read, not to
 * trust. The validator signs the proof, so a proof that does not check is attributable (a
 * false accusation costs the validator).
 *
 * Kinds:
 * - `fingerprint`: cited fingerprints differ from the recomputed ones beyond tolerance;
 * - `sampling`: a cited token is not what the job's sampling rule gives (within tolerance);
 * - `termination`: the output stops early (no EOS, no stop string, room left) or runs on past
 *   an EOS / stop string — checkable from the tokens alone: every chunk for an early stop, the
 *   chunks up to the stop for a run-on (the receipt signs how many tokens follow);
 * - `output`: the committed tokens do not decode to the output the receipt signs;
 * - `tensor`: a one-shot job's outputs differ from re-execution beyond tolerance.
 * - `receipt`: the worker's signed receipt names this job (its id) but contradicts it: another
 *   model, input hash or parameters, or more tokens than `maxTokens` allows. Checked from the
 *   job and the receipt alone.
 * - `commitment`: the proof data the worker served on challenge, signed by the worker
 *   (`served`), does not open the commitment in its own receipt. Checked without a model.
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "./cbor.ts";
import { sha256Hex } from "./hash.ts";
import { type Identity, verifySignature } from "./identity.ts";
import type { Job, TensorData } from "./job.ts";
import { type Receipt, ReceiptSchema } from "./receipt.ts";
import { VeriflowError } from "./errors.ts";
import { describeSchemaIssues } from "./schema_issues.ts";
import { hasOnlyWellFormedStrings, ILL_FORMED_STRING_MESSAGE } from "./well_formed.ts";
import { type ServedProof, ServedProofSchema } from "../proof/served_proof.ts";
import { holdsAtMostValues } from "./value_count.ts";

/** Version of the fraud-proof format. */
export const FRAUD_PROOF_VERSION = 1;
/**
 * Version 2: the same fields, for a `fingerprint` proof that cites a set only today's test
 * tries: a suffix, or a prefix or suffix of the even or odd positions (`isTestedSet` in
 * `proof/fingerprint.ts`, review s74). A version-1 checker confirms single positions and
 * prefixes only and would refute such a proof as a false accusation; a version it does not
 * parse is malformed to it, which charges and decides nothing. Every other proof stays version 1.
 */
export const FRAUD_PROOF_VERSION_WIDE_SETS = 2;
const FRAUD_DOMAIN = "veriflow/fraud-proof/v1";

/** What a fraud proof claims. */
export type FraudKind =
  | "fingerprint"
  | "sampling"
  | "termination"
  | "output"
  | "tensor"
  | "receipt"
  | "commitment";

/** One opened chunk of the commitment (same shape as `proof/commitment.ts` `ChunkOpening`). */
export interface FraudChunk {
  /** Chunk index. */
  index: number;
  /** Packed token ids. */
  tokens: Uint8Array;
  /** Packed fingerprints (chunks holding cited positions). */
  fingerprints?: Uint8Array;
  /** Hash of the fingerprints (other chunks). */
  fingerprintsHash?: Uint8Array;
  /** Merkle path. */
  path: Uint8Array[];
}

/** A cited position with the validator's recomputed values (informational). */
export interface CitedPosition {
  /** Output position. */
  position: number;
  /** Recomputed log-probability of the token. */
  logProb?: number;
  /** Recomputed projection. */
  projection?: number;
  /** Lower end of the accepted draw interval (sampled) or the logit gap (greedy). */
  lo?: number;
  /** Upper end of the accepted draw interval (sampled) or the allowed gap (greedy). */
  hi?: number;
}

/** A signed fraud proof. */
export interface FraudProof {
  /** Format version. */
  v: number;
  /** What is claimed. */
  kind: FraudKind;
  /** The job (full: the checker needs the prompt and params). */
  job: Job;
  /** The worker's signed receipt. */
  receipt: Receipt;
  /** Opened chunks `0..c`, in order. */
  chunks: FraudChunk[];
  /** Cited positions (ascending). */
  cited: CitedPosition[];
  /** Tensor jobs: the outputs the worker delivered (they hash to the receipt's output hash). */
  tensorOutputs?: Record<string, TensorData>;
  /** Kind `commitment`: the proof data as the worker served and signed it. */
  served?: ServedProof;
  /**
   * A text job that names an `input` (`protocols/job_input.ts`): its bytes, as the worker served
   * them with its proof data. Every checker re-runs the job on them after checking them against
   * the CID, so none needs the file; the job and they fit one frame together (`MAX_JOB_INPUT_BYTES`).
   */
  input?: Uint8Array;
  /** Unix ms of issue. */
  issuedAt: number;
  /** The validator's public key. */
  validator: Uint8Array;
  /** The validator's signature over {@link fraudProofSigningBytes}. */
  sig: Uint8Array;
}

/** A fraud proof before signing. */
export type UnsignedFraudProof = Omit<FraudProof, "sig" | "validator">;

const bytes = z.instanceof(Uint8Array);
const tensorSchema = z.object({ type: z.string(), dims: z.array(z.number().int()), data: bytes });

/**
 * Most values a fraud proof's job may hold (map entries and array items, at any depth), counted
 * before its schema reads any. The job is kept loosely (a later version's fields pass: the checker
 * re-derives the job's id from all of them), and unbounded a proof whose job held ~100,000 extra
 * fields was read, encoded and hashed whole before its id came out wrong, each time a peer sent
 * it (review s52). A text job, the only kind that crosses between nodes, holds about twenty; a
 * tensor job, its inputs and their dims.
 */
export const MAX_FRAUD_PROOF_JOB_VALUES = 4096;

/** Zod schema of a fraud proof on the wire (the job is checked loosely; the checker re-derives its id). */
export const FraudProofSchema: z.ZodType<FraudProof> = z.object({
  v: z.union([z.literal(FRAUD_PROOF_VERSION), z.literal(FRAUD_PROOF_VERSION_WIDE_SETS)]),
  kind: z.enum([
    "fingerprint",
    "sampling",
    "termination",
    "output",
    "tensor",
    "receipt",
    "commitment",
  ]),
  job: z.unknown()
    .refine(
      (job) => holdsAtMostValues(job, MAX_FRAUD_PROOF_JOB_VALUES),
      `a fraud proof's job holds at most ${MAX_FRAUD_PROOF_JOB_VALUES} values`,
    )
    .pipe(
      z.object({ kind: z.enum(["text", "tensor"]), model: z.string(), nonce: z.string() })
        .passthrough(),
    ),
  receipt: ReceiptSchema,
  chunks: z.array(z.object({
    index: z.number().int().nonnegative(),
    tokens: bytes,
    fingerprints: bytes.optional(),
    fingerprintsHash: bytes.optional(),
    path: z.array(bytes).max(40),
  })).max(1 << 16),
  cited: z.array(z.object({
    position: z.number().int().nonnegative(),
    logProb: z.number().optional(),
    projection: z.number().optional(),
    lo: z.number().optional(),
    hi: z.number().optional(),
  })).max(4096),
  tensorOutputs: z.record(z.string(), tensorSchema).optional(),
  served: ServedProofSchema.optional(),
  input: bytes.optional(),
  issuedAt: z.number().nonnegative(),
  validator: bytes.refine((b) => b.length === 32),
  sig: bytes.refine((b) => b.length === 64),
}).refine(
  // The job and the served proof pass loosely, and signing bytes only exist for well-formed
  // Unicode (`well_formed.ts`): check every string once, the job's prompt and stops included.
  hasOnlyWellFormedStrings,
  ILL_FORMED_STRING_MESSAGE,
) as unknown as z.ZodType<FraudProof>;

/** A value that is not a well-formed fraud proof. */
export class MalformedFraudProofError extends VeriflowError {
  /**
   * Create the error.
   * @param message Human-readable explanation.
   */
  constructor(message: string) {
    super("malformed_fraud_proof", message);
  }
}

/** The bytes a fraud proof's signature covers. */
export function fraudProofSigningBytes(proof: Omit<FraudProof, "sig">): Uint8Array {
  const { sig: _sig, ...unsigned } = proof as FraudProof;
  return encodeCanonical({ domain: FRAUD_DOMAIN, proof: unsigned });
}

/** Hex hash of a fraud proof (of its signing bytes): how verdicts and the ledger name it. */
export function fraudProofHash(proof: Omit<FraudProof, "sig">): string {
  return sha256Hex(fraudProofSigningBytes(proof));
}

/** Sign a fraud proof as the validator `identity`. */
export function signFraudProof(unsigned: UnsignedFraudProof, identity: Identity): FraudProof {
  const body = { ...unsigned, validator: identity.publicKey };
  return { ...body, sig: identity.sign(fraudProofSigningBytes(body)) };
}

/** Parse an untrusted value as a fraud proof (throws {@link MalformedFraudProofError}). */
export function parseFraudProof(value: unknown): FraudProof {
  const r = FraudProofSchema.safeParse(value);
  if (!r.success) throw new MalformedFraudProofError(describeSchemaIssues(r.error));
  return r.data;
}

/** True when the proof is well-formed and signed by its validator. Never throws. */
export function verifyFraudProofSignature(value: unknown): boolean {
  const r = FraudProofSchema.safeParse(value);
  if (!r.success) return false;
  return verifySignature(r.data.validator, fraudProofSigningBytes(r.data), r.data.sig);
}

/** Serialized size of a fraud proof in bytes (canonical CBOR). */
export function fraudProofSize(proof: FraudProof): number {
  return encodeCanonical(proof).length;
}
