/**
 * Receipts: what a worker signs at the end of a job.
 *
 * A receipt binds the job (its id, model CID, a hash of its input and its parameters) to what
 * came out (a hash of the output, the number of tokens) and to the commitment root over the
 * per-position fingerprints that a validator can later open. It carries hashes only, never
 * the prompt or the output, so it can be stored and gossiped without leaking a private job.
 *
 * The signature covers the canonical CBOR of every field except `sig`, prefixed with a domain
 * string so a receipt signature can never be replayed as a verdict, ledger entry or envelope.
 * The requester can check a receipt alone with {@link verifyReceipt}: signature, that it is for
 * *its* job, and that it matches the output it received.
 *
 * @module
 */
import { z } from "zod";
import { bytesEqual } from "./bytes_equal.ts";
import { encodeCanonical } from "./cbor.ts";
import { fromHex, hmacSha256, sha256Hex, toHex } from "./hash.ts";
import { type Identity, verifySignature } from "./identity.ts";
import {
  GENERATION_LIMITS,
  type GenerationParams,
  generationParamsSchema,
  type Job,
  jobId,
} from "./job.ts";
import type { TensorData } from "./job.ts";
import { VeriflowError } from "./errors.ts";
import { hasOnlyWellFormedStrings, wellFormed } from "./well_formed.ts";
import { describeSchemaIssues } from "./schema_issues.ts";

/** Version of the receipt format. */
export const RECEIPT_VERSION = 1;
const RECEIPT_DOMAIN = "veriflow/receipt/v1";
/** Domain of the receipt id (v2: timings left out). */
const RECEIPT_ID_DOMAIN = "veriflow/receipt-id/v2";
const HEX64 = /^[0-9a-f]{64}$/;

/** The commitment a text receipt signs (see `proof/commitment.ts`). */
export interface ReceiptCommitment {
  /** Fingerprint scheme (`vf-fp1`); `none` for tensor jobs, which are re-executed whole. */
  scheme: string;
  /** Hex commitment root. */
  root: string;
  /** Positions per Merkle leaf. */
  chunkSize: number;
  /** Bytes per packed token id. */
  tokenBytes: number;
}

/** Wall-clock facts the worker reports (informational; not checked). */
export interface ReceiptTimings {
  /** Unix ms when the job started. */
  startedAt: number;
  /** ms from start to the first token (0 for tensor jobs). */
  firstTokenMs: number;
  /** ms from start to the end. */
  totalMs: number;
}

/**
 * How a job ended, when not where the model's own stopping rule ends it: `cancelled`, its
 * requester cancelled after holding `tokenCount` tokens (`tokenCount ≥ 1`; a cancel before any
 * token ends in no receipt). The receipt then covers positions `0 … tokenCount−1` only, and a
 * validator checks those as usual but does not ask the output to end where generation would.
 * Absent on every other receipt, which signs the same bytes it did before the field existed.
 */
export type ReceiptEnd = "cancelled";

/** A signed receipt. */
export interface Receipt {
  /** Format version. */
  v: number;
  /** Job kind. */
  kind: "text" | "tensor";
  /** Hex job id. */
  jobId: string;
  /** Model CID. */
  model: string;
  /** Hex commitment to the input, keyed by the job's nonce ({@link inputHashOf}). */
  inputHash: string;
  /** Generation parameters (text jobs), null for tensor jobs. */
  params: GenerationParams | null;
  /** Hex SHA-256 of the output ({@link textOutputHash} / {@link tensorOutputHash}). */
  outputHash: string;
  /** Commitment to tokens and fingerprints. */
  commitment: ReceiptCommitment;
  /** Number of output tokens (0 for tensor jobs). */
  tokenCount: number;
  /**
   * How the job ended early ({@link ReceiptEnd}); absent: where the model's stopping rule ends
   * it. Optional and absent unless set, so older receipts keep their bytes, ids and signatures;
   * a node from before the field drops it when it parses the receipt, and the signature then
   * fails there: such a node records, pays and relays no cancelled receipt (and convicts no one).
   */
  end?: ReceiptEnd;
  /**
   * Prompt tokens the model prefilled (text jobs): the job's prompt text (an input's text before
   * it, `protocols/job_input.ts`) as the model's tokenizer encodes it. Signed so the prefill is
   * paid (`proof/_ledger_amounts.ts`) and checked: a validator that re-runs the job re-tokenizes
   * the prompt, and a count that differs is fraud (`proof/prompt_token_check.ts`). Optional and
   * absent unless set, so older receipts keep their bytes, ids and signatures and earn as they
   * did; a node from before the field drops it when it parses the receipt, and the signature then
   * fails there (`bad_signature`): such a node records, pays and relays no receipt that carries
   * it, and convicts no one on it, as for {@link Receipt.end}.
   */
  promptTokens?: number;
  /** The worker's ed25519 public key. */
  worker: Uint8Array;
  /** Timings. */
  timings: ReceiptTimings;
  /** ed25519 signature over {@link receiptSigningBytes}. */
  sig: Uint8Array;
}

/** A receipt before signing. */
export type UnsignedReceipt = Omit<Receipt, "sig">;

const bytes = (len?: number) =>
  z.instanceof(Uint8Array).refine((b) => len === undefined || b.length === len, {
    message: `expected ${len} bytes`,
  });

/** Zod schema of a receipt on the wire. */
export const ReceiptSchema: z.ZodType<Receipt> = z.object({
  v: z.literal(RECEIPT_VERSION),
  kind: z.enum(["text", "tensor"]),
  jobId: z.string().regex(HEX64),
  // Free text is well-formed Unicode, so that the signing bytes exist (`well_formed.ts`).
  model: wellFormed(z.string().min(1).max(GENERATION_LIMITS.maxModelChars)),
  inputHash: z.string().regex(HEX64),
  // The same bounds a job is accepted under: a receipt for a job no node would run is malformed.
  params: generationParamsSchema.nullable(),
  outputHash: z.string().regex(HEX64),
  commitment: z.object({
    scheme: wellFormed(z.string().max(32)),
    root: z.string().regex(HEX64),
    chunkSize: z.number().int().min(1).max(255),
    tokenBytes: z.number().int().min(0).max(4),
  }),
  tokenCount: z.number().int().nonnegative(),
  end: z.literal("cancelled").optional(),
  promptTokens: z.number().int().nonnegative().optional(),
  worker: bytes(32),
  timings: z.object({
    startedAt: z.number().nonnegative(),
    firstTokenMs: z.number().nonnegative(),
    totalMs: z.number().nonnegative(),
  }),
  sig: bytes(64),
}).refine((r) => r.end !== "cancelled" || r.tokenCount >= 1, {
  // A requester that cancelled before any token holds nothing to pay for.
  message: "a cancelled receipt covers at least one token",
  path: ["tokenCount"],
}).refine((r) => r.promptTokens === undefined || r.kind === "text", {
  // A one-shot (tensor) job has no prompt: a count on its receipt would be paid for nothing.
  message: "only a text receipt counts prompt tokens",
  path: ["promptTokens"],
}) as unknown as z.ZodType<Receipt>;

/** A value that is not a well-formed receipt. */
export class MalformedReceiptError extends VeriflowError {
  /**
   * Create the error.
   * @param message Human-readable explanation.
   */
  constructor(message: string) {
    super("malformed_receipt", message);
  }
}

/** Parse and validate an untrusted value as a receipt (throws {@link MalformedReceiptError}). */
export function parseReceipt(value: unknown): Receipt {
  const r = ReceiptSchema.safeParse(fromJsonForm(value));
  if (!r.success) throw new MalformedReceiptError(describeSchemaIssues(r.error));
  return r.data;
}

/**
 * The client APIs deliver receipts as JSON, with `worker` and `sig` as lower-case hex; accept
 * that form wherever a receipt is parsed, so a requester can check what it was handed as is.
 */
function fromJsonForm(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  const r = value as Record<string, unknown>;
  const hexBytes = (v: unknown) => {
    if (typeof v !== "string") return v;
    try {
      return fromHex(v);
    } catch {
      return v;
    }
  };
  if (typeof r.worker !== "string" && typeof r.sig !== "string") return value;
  return { ...r, worker: hexBytes(r.worker), sig: hexBytes(r.sig) };
}

/** The bytes a receipt's signature covers. */
export function receiptSigningBytes(receipt: UnsignedReceipt | Receipt): Uint8Array {
  const { sig: _sig, ...unsigned } = receipt as Receipt;
  return encodeCanonical({ domain: RECEIPT_DOMAIN, receipt: unsigned });
}

/**
 * The receipt id: hex SHA-256 of what the receipt claims about the work — everything it signs
 * except its timings (and the signature). Timings are the worker's own report, not the work:
 * the same computation re-signed with other timings is the same receipt (one id, one coin, one
 * payment), while any other difference (tokens, fingerprints, output, worker) is another one.
 */
export function receiptId(receipt: UnsignedReceipt | Receipt): string {
  const { sig: _sig, timings: _timings, ...work } = receipt as Receipt;
  return sha256Hex(encodeCanonical({ domain: RECEIPT_ID_DOMAIN, receipt: work }));
}

/**
 * Sign a receipt with the worker's identity (its `worker` field is set to the identity's key).
 *
 * @example
 * ```ts
 * import { Identity } from "./identity.ts";
 * import { signReceipt } from "./receipt.ts";
 * // const receipt = signReceipt({ ...unsigned }, Identity.generate());
 * ```
 */
export function signReceipt(
  unsigned: Omit<UnsignedReceipt, "worker">,
  identity: Identity,
): Receipt {
  const body: UnsignedReceipt = { ...unsigned, worker: identity.publicKey };
  return { ...body, sig: identity.sign(receiptSigningBytes(body)) };
}

const encoder = new TextEncoder();

/** Domain of the input commitment (v2: keyed by the job's nonce). */
const INPUT_DOMAIN = encoder.encode("veriflow/input/v2:");

/**
 * The receipt's commitment to a job's input: HMAC-SHA256 keyed by the job's nonce over the
 * prompt's UTF-8 bytes (or the canonical CBOR of tensors). Keyed so that only parties holding
 * the job can check it: a plain hash of a short prompt is recovered from a dictionary in
 * milliseconds (an audit recovered "What is the capital of France?" from a real receipt), and
 * a receipt travels to every validator. The nonce is random unless the requester chose one, so
 * a requester that picks a guessable nonce gives this up.
 */
export function inputHashOf(job: Job): string {
  const input = job.kind === "text" ? encoder.encode(job.prompt) : encodeCanonical(job.inputs);
  const message = new Uint8Array(INPUT_DOMAIN.length + input.length);
  message.set(INPUT_DOMAIN, 0);
  message.set(input, INPUT_DOMAIN.length);
  return toHex(hmacSha256(encoder.encode(job.nonce), message));
}

/** Hex SHA-256 of a text output's UTF-8 bytes. */
export function textOutputHash(output: string): string {
  return sha256Hex(encoder.encode(output));
}

/** Hex SHA-256 of tensor outputs' canonical CBOR. */
export function tensorOutputHash(outputs: Record<string, TensorData>): string {
  return sha256Hex(encodeCanonical(outputs));
}

/** Why a receipt failed {@link verifyReceipt}. */
export type ReceiptFailure =
  | "malformed"
  | "wrong_worker"
  | "bad_signature"
  | "job_mismatch"
  | "model_mismatch"
  | "input_mismatch"
  | "params_mismatch"
  | "output_mismatch"
  | "token_count";

/** Result of {@link verifyReceipt}. */
export type ReceiptCheck =
  | { ok: true; receiptId: string }
  | { ok: false; reason: ReceiptFailure; message: string };

/** What the caller knows to check a receipt against. */
export interface VerifyReceiptOptions {
  /** The job the receipt should be for. */
  job?: Job;
  /** The text output (string) or tensor outputs the requester received. */
  output?: string | Record<string, TensorData>;
  /** Accept only receipts signed by this worker key (another's: `wrong_worker`). */
  worker?: Uint8Array;
}

/**
 * Check what a requester can check without a model: shape, signature, that the receipt is for
 * `job` (id, model, input hash, params) and that `output` hashes to the signed output hash.
 * Never throws.
 *
 * Without `job` it checks only that the receipt's worker signed `output` for some job: pass the
 * job you asked for to bind it to your prompt and params (`docs/API.md` shows how to rebuild
 * it). Neither shows that the model produced the output: validators re-run sampled receipts
 * (`validateReceipt`, `proof/validation.ts`).
 *
 * @example
 * ```ts
 * import { verifyReceipt } from "./receipt.ts";
 * verifyReceipt({}).ok; // false (malformed)
 * ```
 */
export function verifyReceipt(value: unknown, options: VerifyReceiptOptions = {}): ReceiptCheck {
  const fail = (reason: ReceiptFailure, message: string): ReceiptCheck => ({
    ok: false,
    reason,
    message,
  });
  const parsed = ReceiptSchema.safeParse(fromJsonForm(value));
  if (!parsed.success) return fail("malformed", describeSchemaIssues(parsed.error));
  const receipt = parsed.data;
  if (!verifySignature(receipt.worker, receiptSigningBytes(receipt), receipt.sig)) {
    return fail("bad_signature", "receipt signature does not verify");
  }
  // After the signature: a receipt that is `wrong_worker` was signed by the worker it names.
  if (options.worker && !bytesEqual(options.worker, receipt.worker)) {
    return fail(
      "wrong_worker",
      `receipt is signed by worker ${toHex(receipt.worker)}, not the expected ${
        toHex(options.worker)
      }`,
    );
  }
  const { job, output } = options;
  if (job) {
    // A string with a lone surrogate has no canonical CBOR, so such a job has no id: no receipt
    // is for it (and the checks below would throw).
    if (!hasOnlyWellFormedStrings(job)) {
      return fail("job_mismatch", "the job holds a string that is not well-formed Unicode");
    }
    if (jobId(job) !== receipt.jobId) return fail("job_mismatch", "receipt is for another job");
    if (job.kind !== receipt.kind) return fail("job_mismatch", "receipt kind differs from job");
    if (job.model !== receipt.model) return fail("model_mismatch", "receipt names another model");
    if (inputHashOf(job) !== receipt.inputHash) {
      return fail("input_mismatch", "receipt input hash differs from the job's input");
    }
    if (job.kind === "text") {
      if (encodeKey(job.params) !== encodeKey(receipt.params)) {
        return fail("params_mismatch", "receipt params differ from the job's");
      }
      if (receipt.tokenCount > job.params.maxTokens) {
        return fail("token_count", "receipt claims more tokens than maxTokens");
      }
    }
  }
  if (output !== undefined) {
    if (typeof output !== "string" && !hasOnlyWellFormedStrings(output)) {
      return fail("output_mismatch", "an output name is not well-formed Unicode");
    }
    const h = typeof output === "string" ? textOutputHash(output) : tensorOutputHash(output);
    if (h !== receipt.outputHash) return fail("output_mismatch", "output does not match receipt");
  }
  return { ok: true, receiptId: receiptId(receipt) };
}

function encodeKey(v: unknown): string {
  return sha256Hex(encodeCanonical(v));
}

/** Ways a correctly signed receipt can contradict the job it names. */
const CONTRADICTIONS = new Set([
  "job_mismatch",
  "model_mismatch",
  "input_mismatch",
  "params_mismatch",
  "token_count",
]);

/**
 * Why the worker's own signed receipt contradicts `job` — another model, input or parameters,
 * more tokens than the job allows — though it names that job's id; null when it does not (or
 * is not the worker's signed statement about this job at all). Needs no model: what makes a
 * fraud proof of kind `receipt`.
 */
export function receiptContradiction(receipt: unknown, job: Job): string | null {
  try {
    const named = receipt !== null && typeof receipt === "object"
      ? (receipt as { jobId?: unknown }).jobId
      : undefined;
    if (jobId(job) !== named) return null;
  } catch {
    return null; // not a job at all
  }
  // One check, signature first: a malformed or unsigned receipt fails as such (no
  // contradiction), and every reason in CONTRADICTIONS comes only after its signature verified.
  // (A first `verifyReceipt` without the job used to verify the same signature once more.)
  const check = verifyReceipt(receipt, { job });
  return !check.ok && CONTRADICTIONS.has(check.reason) ? check.reason : null;
}
