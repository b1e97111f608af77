/**
 * The prover: turns the prover's branch of a token stream into proof data and a signed
 * receipt, without holding more than the fingerprints (4 bytes per token) and token ids.
 *
 * The fingerprint of each position is computed next to the logits, where the token is sampled
 * (`TextModel.generate`, in the model worker in worker mode), and arrives on the chunk with the
 * token; the prover only quantizes and packs it. So neither the prover nor the queue in front of
 * it ever holds a logits row: both are O(tokens), not O(tokens × vocabulary), and the prover's
 * per-token work is O(1). A chunk that carries a logits row but no fingerprint (a scripted
 * stand-in for a model) is fingerprinted here, with the same function.
 *
 * @module
 */
import { jobId as jobIdOf, type TextJob } from "../protocols/job.ts";
import type { Identity } from "../protocols/identity.ts";
import {
  inputHashOf,
  type Receipt,
  type ReceiptEnd,
  signReceipt,
  textOutputHash,
} from "../protocols/receipt.ts";
import { VeriflowError } from "../protocols/errors.ts";
import type { TokenChunk } from "../inference/text_model.ts";
import {
  type Fingerprint,
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
  /**
   * Positions per Merkle leaf; default {@link DEFAULT_COMMITMENT_CHUNK_SIZE}. Ledgers do not
   * record a receipt below `MIN_COMMITMENT_CHUNK_SIZE` (4): smaller sizes are for tests.
   */
  chunkSize?: number;
  /** Clock in unix ms; default `Date.now`. */
  now?: () => number;
  /** Stop reading (and fail) when aborted. */
  signal?: AbortSignal;
  /** The bytes of the job's `input`, kept in the proof data for its validators. */
  input?: Uint8Array;
  /**
   * How the job ended, asked once the chunks have ended: a {@link CancelledEnd} when its
   * requester cancelled it, undefined when the model's stopping rule ended it. Asked, not handed
   * over at the start, because the end is known only when it comes. Default: the chunks' own
   * {@link EndingChunks.cancelledEnd} when they have one, else the model's end.
   */
  end?: () => CancelledEnd | undefined;
  /**
   * Prompt tokens the model prefilled for the job, signed as the receipt's `promptTokens` (what
   * the prefill is paid by, and what validators re-count). Default: the chunks' own
   * {@link PromptCountedChunks.promptTokens} when they have one, else none (the receipt then
   * signs no count and earns its output alone, as receipts from before the field do).
   */
  promptTokens?: number;
}

/**
 * A token stream that says how many prompt tokens its model prefilled: the prover's branch of
 * an InferenceActor job (`actors/inference_job.ts`) is one, so any prover hook that hands the
 * branch on to {@link proveJob} signs the count, as for {@link EndingChunks}.
 */
export interface PromptCountedChunks {
  /** The prompt's tokens as the model encoded and read them. */
  readonly promptTokens: number;
}

/**
 * A token stream that can tell, once it has closed, whether its requester cancelled the job: the
 * prover's branch of an InferenceActor job (`actors/inference_job.ts`) is one. {@link proveJob}
 * asks it, so a prover hook that hands its branch on to `proveJob` signs a cancel's receipt
 * (`end: "cancelled"`) without having to know of cancels: a hook that dropped such an end would
 * sign k tokens as a whole output, which validators convict as `truncated`.
 */
export interface EndingChunks {
  /** The requester's cancel, asked once the chunks have ended; undefined: the model ended them. */
  readonly cancelledEnd: () => CancelledEnd | undefined;
}

/**
 * A job its requester cancelled after holding `tokens` output positions (`0 … tokens−1`): the
 * receipt covers those and signs `end: "cancelled"`. Positions the prover read beyond them (a
 * step that ran while the cancel came, tokens read ahead of a slow reader) were never delivered
 * and are left out: a ledger that gets the receipt with the requester's assignment credits the
 * worker for what was delivered (no ledger debits the requester: the record only names it).
 */
export interface CancelledEnd {
  /** Why the job ended early. */
  reason: ReceiptEnd;
  /** Output positions the requester holds; at least 1 (a cancel before any token has no receipt). */
  tokens: number;
}

/** What {@link proveJob} produces: the receipt for everyone, the proof data for challenges. */
export interface ProvedJob {
  /** The signed receipt. */
  receipt: Receipt;
  /** The proof data the worker keeps and serves on challenge. */
  proof: ProofData;
  /** The output text (concatenation of the chunks' text). */
  output: string;
  /**
   * The output text's length after each position (`output.slice(0, outputEnds[k − 1])` is the
   * first k tokens' text): what {@link cutProvedJob} signs a prefix of the job by.
   */
  outputEnds?: readonly number[];
}

/**
 * A token stream that says how many of its first positions are a prefix another worker delivered
 * (a job taken over after them, `resume`): the prover's branch of an InferenceActor job is one. A
 * receipt over those positions alone is no work of this worker's, so {@link cutProvedJob} is never
 * asked for one (`actors/prover_actor.ts`).
 */
export interface ResumedChunks {
  /** Positions replayed from the resumed prefix (0: the job ran from its start). */
  readonly resumedFrom: number;
}

/**
 * What the prover reads of a chunk: a {@link TokenChunk} as `TextModel.generate` produces it
 * (`fingerprint` and `vocabSize` set), or one that carries its `logits` row instead (the
 * fingerprint is then computed here and the vocabulary size is the row's length).
 */
export type ProverChunk =
  & Pick<TokenChunk, "index" | "tokenId" | "text">
  & Partial<Pick<TokenChunk, "fingerprint" | "vocabSize" | "logits">>;

/**
 * The token stream broke its contract (positions out of order, neither a fingerprint nor
 * logits, another vocabulary size, a token outside the vocabulary).
 */
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
 * Consume a job's token chunks (each with its fingerprint), pack the fingerprints and tokens
 * into proof data, commit to them and sign a receipt.
 *
 * @example
 * ```ts ignore
 * const { receipt, proof } = await proveJob(job, proverBranch, workerIdentity);
 * ```
 */
export async function proveJob(
  job: TextJob,
  chunks: ReadableStream<ProverChunk> | AsyncIterable<ProverChunk>,
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
  /** The output's length after each position, to cut it at a cancel ({@link CancelledEnd}). */
  const outputEnds: number[] = [];
  for await (const chunk of chunks) {
    options.signal?.throwIfAborted();
    if (chunk.index !== tokens.length) {
      throw new ProverStreamError(`expected position ${tokens.length}, got ${chunk.index}`);
    }
    const chunkVocab = vocabSizeOf(chunk);
    if (tokens.length === 0) {
      vocabSize = chunkVocab;
      firstTokenAt = now();
    } else if (chunkVocab !== vocabSize) {
      throw new ProverStreamError(
        `position ${chunk.index} has a vocabulary of ${chunkVocab}, not ${vocabSize}`,
      );
    }
    if (!Number.isSafeInteger(chunk.tokenId) || chunk.tokenId < 0 || chunk.tokenId >= vocabSize) {
      throw new ProverStreamError(
        `position ${chunk.index}: token ${chunk.tokenId} outside the vocabulary of ${vocabSize}`,
      );
    }
    if ((tokens.length + 1) * FINGERPRINT_BYTES > fingerprints.length) {
      const grown = new Uint8Array(fingerprints.length * 2);
      grown.set(fingerprints);
      fingerprints = grown;
    }
    writeFingerprint(fingerprints, tokens.length, fingerprintOfChunk(chunk, vocabSize));
    tokens.push(chunk.tokenId);
    output += chunk.text;
    outputEnds.push(output.length);
  }
  const endOf = options.end ?? (chunks as Partial<EndingChunks>).cancelledEnd;
  const cancelled = typeof endOf === "function" ? endOf() : undefined;
  if (cancelled !== undefined) {
    if (!Number.isSafeInteger(cancelled.tokens) || cancelled.tokens < 1) {
      throw new ProverStreamError(`a cancel after ${cancelled.tokens} tokens has no receipt`);
    }
    if (cancelled.tokens > tokens.length) {
      throw new ProverStreamError(
        `the job was cancelled after ${cancelled.tokens} tokens, but only ${tokens.length} came`,
      );
    }
    tokens.length = cancelled.tokens;
    output = output.slice(0, outputEnds[cancelled.tokens - 1]);
    outputEnds.length = cancelled.tokens;
  }
  const promptTokens = options.promptTokens ??
    (chunks as Partial<PromptCountedChunks>).promptTokens;
  if (promptTokens !== undefined && (!Number.isSafeInteger(promptTokens) || promptTokens < 0)) {
    throw new ProverStreamError(`a prompt of ${promptTokens} tokens is no count to sign`);
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
  if (job.input !== undefined && options.input !== undefined) proof.input = options.input;
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
    // Only on a cancel: every other receipt signs the bytes it did before the field existed.
    ...(cancelled === undefined ? {} : { end: cancelled.reason }),
    // Only when counted: a receipt without it signs the bytes it did before the field existed.
    ...(promptTokens === undefined ? {} : { promptTokens }),
    timings: {
      startedAt,
      firstTokenMs: Math.max(0, firstTokenAt - startedAt),
      totalMs: Math.max(0, end - startedAt),
    },
  }, identity);
  return { receipt, proof, output, outputEnds };
}

/**
 * The receipt over the first `tokens` positions of a finished job, `end: "cancelled"`, with its
 * proof data: what {@link proveJob} would have signed had the requester cancelled after holding
 * them (the same tokens, fingerprints, chunk size and prompt count, the output text cut at the
 * `tokens`-th position's end), signed from the finished job's own proof. For a requester that
 * cancelled after the worker had finished the job, its last tokens still on their way
 * (`inference.get_receipt` with `held`, `docs/PROTOCOL.md`, "Through a forwarding node"): every
 * ledger takes the two receipts as one claim, paid once at `tokens`. Throws
 * {@link ProverStreamError} for a count that is no prefix (below 1, or not below the finished
 * one's), a receipt that is itself cancelled, or proof data without the text ends.
 *
 * @example
 * ```ts ignore
 * const finished = await proveJob(job, proverBranch, workerIdentity);
 * const { receipt } = cutProvedJob(finished, 7, workerIdentity); // end: "cancelled", 7 tokens
 * ```
 */
export function cutProvedJob(proved: ProvedJob, tokens: number, identity: Identity): ProvedJob {
  const { receipt, proof, output, outputEnds } = proved;
  if (receipt.end !== undefined) throw new ProverStreamError("the receipt is no finished job's");
  if (!Number.isSafeInteger(tokens) || tokens < 1 || tokens >= receipt.tokenCount) {
    throw new ProverStreamError(
      `${tokens} tokens are no prefix of a job of ${receipt.tokenCount} to sign`,
    );
  }
  if (outputEnds === undefined || outputEnds.length !== receipt.tokenCount) {
    throw new ProverStreamError("the job's text ends were not kept: no prefix can be signed");
  }
  const cut: ProofData = {
    ...proof,
    tokens: proof.tokens.slice(0, tokens * proof.tokenBytes),
    fingerprints: proof.fingerprints.slice(0, tokens * FINGERPRINT_BYTES),
  };
  const text = output.slice(0, outputEnds[tokens - 1]);
  const { sig: _sig, worker: _worker, ...signed } = receipt;
  const cancelled = signReceipt({
    ...signed,
    outputHash: textOutputHash(text),
    commitment: { ...receipt.commitment, root: commitmentRoot(cut) },
    tokenCount: tokens,
    end: "cancelled",
  }, identity);
  return { receipt: cancelled, proof: cut, output: text, outputEnds: outputEnds.slice(0, tokens) };
}

/** The chunk's `vocabSize`, else the length of its logits row. */
function vocabSizeOf(chunk: ProverChunk): number {
  const size = chunk.vocabSize ?? chunk.logits?.length;
  if (size === undefined || !Number.isSafeInteger(size) || size <= 0) {
    throw new ProverStreamError(
      `position ${chunk.index} declares no vocabulary size (neither vocabSize nor logits)`,
    );
  }
  return size;
}

/** The chunk's own fingerprint, else the one of its logits row. */
function fingerprintOfChunk(chunk: ProverChunk, vocabSize: number): Fingerprint {
  const fp = chunk.fingerprint;
  if (fp !== undefined) {
    if (typeof fp?.logProb !== "number" || typeof fp.projection !== "number") {
      throw new ProverStreamError(`position ${chunk.index} carries a malformed fingerprint`);
    }
    return fp;
  }
  if (!(chunk.logits instanceof Float32Array)) {
    throw new ProverStreamError(`position ${chunk.index} carries neither a fingerprint nor logits`);
  }
  if (chunk.logits.length !== vocabSize) {
    throw new ProverStreamError(`position ${chunk.index} has a logits row of another size`);
  }
  return fingerprintOf(chunk.logits, chunk.tokenId);
}
