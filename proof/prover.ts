/**
 * The prover: turns the prover's branch of a token stream into proof data and a signed
 * receipt, without holding more than the fingerprints (4 bytes per token) and token ids.
 *
 * Each chunk's logits are reduced to a fingerprint as soon as it arrives and then dropped, so
 * the prover's memory is O(tokens), not O(tokens × vocabulary), and it keeps pace with
 * generation (one O(V) pass per token, negligible beside a forward step).
 *
 * @module
 */
import { jobId as jobIdOf, type TextJob } from "../protocols/job.ts";
import type { Identity } from "../protocols/identity.ts";
import { inputHashOf, type Receipt, signReceipt, textOutputHash } from "../protocols/receipt.ts";
import { VeriflowError } from "../protocols/errors.ts";
import type { TokenChunk } from "../inference/text_model.ts";
import {
  FINGERPRINT_BYTES,
  FINGERPRINT_SCHEME,
  fingerprintOf,
  writeFingerprint,
} from "./fingerprint.ts";
import {
  commitmentRoot,
  DEFAULT_COMMITMENT_CHUNK_SIZE,
  packTokens,
  type ProofData,
  tokenBytesFor,
} from "./commitment.ts";

/** Options of {@link proveJob}. */
export interface ProveOptions {
  /** Positions per Merkle leaf; default {@link DEFAULT_COMMITMENT_CHUNK_SIZE}. */
  chunkSize?: number;
  /** Clock in unix ms; default `Date.now`. */
  now?: () => number;
  /** Stop reading (and fail) when aborted. */
  signal?: AbortSignal;
}

/** What {@link proveJob} produces: the receipt for everyone, the proof data for challenges. */
export interface ProvedJob {
  /** The signed receipt. */
  receipt: Receipt;
  /** The proof data the worker keeps and serves on challenge. */
  proof: ProofData;
  /** The output text (concatenation of the chunks' text). */
  output: string;
}

/** The token stream broke its contract (positions out of order, logits missing). */
export class ProverStreamError extends VeriflowError {
  /**
   * Create the error.
   * @param message Human-readable explanation.
   */
  constructor(message: string) {
    super("prover_stream_invalid", message);
  }
}

/** Initial capacity of the growable fingerprint buffer, in positions. */
const INITIAL_POSITIONS = 64;

/**
 * Consume a job's token chunks (with logits), fingerprint every position and sign a receipt.
 *
 * @example
 * ```ts ignore
 * const { receipt, proof } = await proveJob(job, proverBranch, workerIdentity);
 * ```
 */
export async function proveJob(
  job: TextJob,
  chunks: ReadableStream<TokenChunk> | AsyncIterable<TokenChunk>,
  identity: Identity,
  options: ProveOptions = {},
): Promise<ProvedJob> {
  const now = options.now ?? Date.now;
  const startedAt = now();
  let firstTokenAt = startedAt;
  const tokens: number[] = [];
  let fingerprints = new Uint8Array(INITIAL_POSITIONS * FINGERPRINT_BYTES);
  let vocabSize = 0;
  let output = "";
  for await (const chunk of chunks) {
    options.signal?.throwIfAborted();
    if (chunk.index !== tokens.length) {
      throw new ProverStreamError(`expected position ${tokens.length}, got ${chunk.index}`);
    }
    if (!(chunk.logits instanceof Float32Array) || chunk.logits.length === 0) {
      throw new ProverStreamError(`position ${chunk.index} carries no logits`);
    }
    if (tokens.length === 0) {
      vocabSize = chunk.logits.length;
      firstTokenAt = now();
    } else if (chunk.logits.length !== vocabSize) {
      throw new ProverStreamError(`position ${chunk.index} has a logits row of another size`);
    }
    if ((tokens.length + 1) * FINGERPRINT_BYTES > fingerprints.length) {
      const grown = new Uint8Array(fingerprints.length * 2);
      grown.set(fingerprints);
      fingerprints = grown;
    }
    writeFingerprint(fingerprints, tokens.length, fingerprintOf(chunk.logits, chunk.tokenId));
    tokens.push(chunk.tokenId);
    output += chunk.text;
  }
  const end = now();
  const chunkSize = options.chunkSize ?? DEFAULT_COMMITMENT_CHUNK_SIZE;
  const proof: ProofData = {
    scheme: FINGERPRINT_SCHEME,
    chunkSize,
    tokenBytes: tokenBytesFor(vocabSize),
    tokens: packTokens(tokens, tokenBytesFor(vocabSize)),
    fingerprints: fingerprints.slice(0, tokens.length * FINGERPRINT_BYTES),
  };
  const receipt = signReceipt({
    v: 1,
    kind: "text",
    jobId: jobIdOf(job),
    model: job.model,
    inputHash: inputHashOf(job),
    params: job.params,
    outputHash: textOutputHash(output),
    commitment: {
      scheme: FINGERPRINT_SCHEME,
      root: commitmentRoot(proof),
      chunkSize,
      tokenBytes: proof.tokenBytes,
    },
    tokenCount: tokens.length,
    timings: {
      startedAt,
      firstTokenMs: Math.max(0, firstTokenAt - startedAt),
      totalMs: Math.max(0, end - startedAt),
    },
  }, identity);
  return { receipt, proof, output };
}
