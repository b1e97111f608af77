/**
 * A job: the unit of inference work that receipts, challenges and the ledger talk about.
 *
 * The job id is the SHA-256 of the job's canonical CBOR, so requester, worker and validator
 * all derive the same id from the same job, and nobody can attach a receipt to a job it was
 * not computed for. A job that names its requester (`requester`, the key that signs its
 * assignment to a worker) has an id that any ledger can tie to that key without the job itself
 * ({@link boundJobId}): a copier that re-signs the worker's receipt cannot show an assignment of
 * the job to itself, because only the named requester can sign one.
 *
 * @module
 */
import { z } from "zod";
import { encodeCanonical } from "./cbor.ts";
import { sha256Hex } from "./hash.ts";
import { wellFormed } from "./well_formed.ts";
import { isJobInputCid } from "./job_input.ts";
import { DEFAULT_MAX_TOKENS, MAX_JOB_TOKENS } from "./job_token_bounds.ts";

/**
 * Decoding parameters of a text job. `temperature: 0` (or any temperature below
 * {@link MIN_SAMPLING_TEMPERATURE}) means greedy (argmax).
 */
export interface GenerationParams {
  /** Maximum number of new tokens. */
  maxTokens: number;
  /** Softmax temperature; 0 (below {@link MIN_SAMPLING_TEMPERATURE}) selects greedy decoding. */
  temperature: number;
  /** Keep only the k most likely tokens before sampling; 0 disables. */
  topK: number;
  /** Keep the smallest set of tokens whose probability reaches p; 1 disables. */
  topP: number;
  /** Seed of the counter-based RNG: the draw for output token t depends only on (seed, t). */
  seed: number;
  /** Generation stops after the output ends with any of these strings. */
  stop: string[];
}

/**
 * The smallest temperature that samples: below it (0 included) a job decodes greedily, in the
 * sampler (`inference/sampler.ts`) and in the validator's sampling check
 * (`proof/sampling_check.ts`) alike, through {@link isGreedyTemperature}. The job keeps the
 * temperature it was signed with; only the rule reads it this way.
 *
 * Why: the race scores `l/T` overflow float64 to ±∞ for a denormal T (5e-324 passes the job
 * schema), and ∞ − ∞ is NaN, so the check could not compare the scores the sampler picked from.
 * Why 1e-6: the race can only pick an id whose logit is within 41·T of the largest (the span of
 * its Gumbel noise), so below 1e-6 it picks within 4.1e-5 nats of the largest, a fifth of the
 * smallest 2ε any calibration gives (ε ≥ 1e-4): the greedy check accepts whatever the race could
 * have picked, and the race check (allowance 2ε/T ≥ 200) accepts the argmax, so a worker and a
 * validator on either side of this rule agree. At and above it, every score of a finite float32
 * logit is finite.
 */
export const MIN_SAMPLING_TEMPERATURE = 1e-6;

/**
 * True when `temperature` selects greedy decoding: below {@link MIN_SAMPLING_TEMPERATURE}.
 *
 * @example
 * ```ts
 * import { isGreedyTemperature } from "./job.ts";
 * isGreedyTemperature(0); // true
 * isGreedyTemperature(5e-324); // true
 * isGreedyTemperature(0.7); // false
 * ```
 */
export function isGreedyTemperature(temperature: number): boolean {
  return temperature < MIN_SAMPLING_TEMPERATURE;
}

/** Defaults for {@link GenerationParams}: greedy, 64 tokens. */
export const DEFAULT_GENERATION_PARAMS: Readonly<GenerationParams> = Object.freeze({
  maxTokens: DEFAULT_MAX_TOKENS,
  temperature: 0,
  topK: 0,
  topP: 1,
  seed: 0,
  stop: [],
});

/**
 * The numeric precision a text job pays for: the worker may run the model at this precision or
 * a finer one. `fp32` (the default when a job names none) allows only the noise of fp32
 * execution (thread counts, fused kernels, logits returned in fp16); `fp16` and `bf16` also
 * allow weights rounded to that format. Validators compare fingerprints against the noise
 * calibrated for the declared precision (`proof/calibration.ts`), so a worker that runs a
 * cheaper precision than the job pays for is caught.
 */
export type JobPrecision = "fp32" | "fp16" | "bf16";

/**
 * Every {@link JobPrecision}, finest first: the order in which a validator whose calibration
 * profile lacks a job's class stands in the nearest coarser class it has ({@link coarserPrecisions}).
 */
export const JOB_PRECISIONS: readonly JobPrecision[] = Object.freeze(["fp32", "fp16", "bf16"]);

/**
 * The classes coarser than `precision`, nearest first (fp16 → bf16; none after bf16): their
 * honest noise is at least as large, so a check under one of them is looser, never tighter.
 *
 * @example
 * ```ts
 * import { coarserPrecisions } from "./job.ts";
 * coarserPrecisions("fp16"); // ["bf16"]
 * ```
 */
export function coarserPrecisions(precision: JobPrecision): JobPrecision[] {
  return JOB_PRECISIONS.slice(JOB_PRECISIONS.indexOf(precision) + 1);
}

/** A text-generation job. */
export interface TextJob {
  /** Discriminant. */
  kind: "text";
  /** The model's id (`inference/model_identity.ts`). */
  model: string;
  /** The prompt, as text. */
  prompt: string;
  /** Decoding parameters. */
  params: GenerationParams;
  /** Requester-chosen nonce so identical requests are distinct jobs. */
  nonce: string;
  /**
   * The precision the job pays for; absent means `fp32`. Absent, it is not encoded, so the id
   * of a job without it is what it always was.
   */
  precision?: JobPrecision;
  /**
   * CID of a stored public file of one chunk (a raw block, `bafkrei…`) whose UTF-8 text the
   * model reads before `prompt` (`protocols/job_input.ts`); absent, the prompt alone. The job
   * carries the CID, not the text: the worker reads it from storage (a router prefers a holder),
   * and checks it against the CID, as validators do. Absent, it is not encoded.
   */
  input?: string;
  /**
   * Hex ed25519 key of the node that requests the job and signs its assignment to a worker
   * (`protocols/assignment.ts`); absent for work a node does for its own clients, which earns
   * nothing. It changes how the id is derived ({@link jobId}).
   */
  requester?: string;
}

/** The bounds a text job must stay within; the values are {@link GENERATION_LIMITS}. */
export interface GenerationLimits {
  /** Largest `params.maxTokens` (the smallest is 1). */
  readonly maxTokens: number;
  /**
   * Largest `params.temperature` (the smallest is 0; below {@link MIN_SAMPLING_TEMPERATURE} is
   * greedy).
   */
  readonly maxTemperature: number;
  /** Largest `params.topK` (0 disables the cut). */
  readonly maxTopK: number;
  /** Smallest `params.seed` (an integer). */
  readonly minSeed: number;
  /** Largest `params.seed`. */
  readonly maxSeed: number;
  /** Most entries of `params.stop`. */
  readonly maxStopSequences: number;
  /** Longest entry of `params.stop`, in UTF-16 code units (each is at least 1). */
  readonly maxStopChars: number;
  /** Longest `prompt`, in UTF-16 code units. */
  readonly maxPromptChars: number;
  /** Longest `model` (a CID; at the edge, a CID or a name). */
  readonly maxModelChars: number;
  /** Longest `nonce`. */
  readonly maxNonceChars: number;
}

/**
 * The bounds of a text job, in one place: the HTTP and WebSocket edge, the wire schemas, the
 * InferenceActor, the sampler and the receipt check all take theirs from here, so a job one of
 * them accepts is never refused by another.
 */
export const GENERATION_LIMITS: GenerationLimits = Object.freeze({
  /** Most new tokens per job: {@link MAX_JOB_TOKENS}, where the client reads it too. */
  maxTokens: MAX_JOB_TOKENS,
  /** OpenAI's range, which clients expect; beyond it the output is noise anyway. */
  maxTemperature: 2,
  /**
   * Largest top-k. Vocabularies stay under 2^18 (262,144 ids); a larger k only means "keep all",
   * so the bound is generous rather than tight, and keeps the value a small integer.
   */
  maxTopK: 1 << 20,
  /**
   * The counter RNG takes any safe integer (written as int64), so a job's seed is one. OpenAI
   * clients send any int64; the HTTP edge accepts that range and maps values beyond it to a safe
   * integer (`jobSeedOf` in `server/request_schemas.ts`), so these bounds are the job's, not the
   * request's.
   */
  minSeed: Number.MIN_SAFE_INTEGER,
  /** See `minSeed`. */
  maxSeed: Number.MAX_SAFE_INTEGER,
  /** Most stop sequences (OpenAI allows 4); each is checked after every token. */
  maxStopSequences: 4,
  /** Longest stop sequence in characters: the stop check keeps that much tail text per job. */
  maxStopChars: 64,
  /** Longest prompt in characters, checked before tokenizing; the context limit is checked after. */
  maxPromptChars: 1 << 20,
  /** Longest model CID (or name, at the edge): a CIDv1 of a SHA-256 is 59 characters. */
  maxModelChars: 128,
  /** Longest job nonce: a UUID is 36 characters; room for any requester's own scheme. */
  maxNonceChars: 128,
});

/**
 * Zod schema of {@link GenerationParams} within {@link GENERATION_LIMITS}. Parse once where
 * parameters enter (the edge, the wire, the InferenceActor); the sampler re-checks its subset
 * with the same limits on every draw without zod. Strict, as {@link textJobSchema}: a field it
 * does not know is refused, naming it, not dropped.
 */
export const generationParamsSchema: z.ZodType<GenerationParams> = z.object({
  maxTokens: z.number().int().min(1).max(GENERATION_LIMITS.maxTokens),
  temperature: z.number().min(0).max(GENERATION_LIMITS.maxTemperature),
  topK: z.number().int().min(0).max(GENERATION_LIMITS.maxTopK),
  topP: z.number().gt(0).max(1),
  seed: z.number().int().min(GENERATION_LIMITS.minSeed).max(GENERATION_LIMITS.maxSeed),
  // An empty stop sequence would end every job at its first token: refused, not honoured.
  // A stop string with a lone surrogate would change when the job crosses the wire (and the
  // job id with it): refused, as every string of a job is (`well_formed.ts`).
  stop: z.array(wellFormed(z.string().min(1).max(GENERATION_LIMITS.maxStopChars)))
    .max(GENERATION_LIMITS.maxStopSequences),
}).strict();

/**
 * Zod schema of a {@link TextJob} within {@link GENERATION_LIMITS}. Strict: a field it does not
 * know (in the job or its `params`) is refused, naming it, not dropped. The job id hashes every
 * field, so a job with one dropped is another job: a worker of an older version that dropped a
 * newer requester's field ran a job nobody asked for and signed a receipt for its id, which the
 * requester then refused (review s81 wire, F2). Refused, the requester asks another worker
 * (`job_version_mismatch`, `inference/remote_port.ts`).
 */
export const textJobSchema: z.ZodType<TextJob> = z.object({
  kind: z.literal("text"),
  model: wellFormed(z.string().min(1).max(GENERATION_LIMITS.maxModelChars)),
  prompt: wellFormed(z.string().max(GENERATION_LIMITS.maxPromptChars)),
  params: generationParamsSchema,
  nonce: wellFormed(z.string().max(GENERATION_LIMITS.maxNonceChars)),
  precision: z.enum(["fp32", "fp16", "bf16"]).optional(),
  input: z.string().max(GENERATION_LIMITS.maxModelChars).refine(isJobInputCid, {
    message: "must be the CID of a stored public file of one chunk (raw, bafkrei…)",
  }).optional(),
  requester: z.string().regex(/^[0-9a-f]{64}$/).optional(),
}).strict();

/** A tensor in a one-shot job, raw little-endian bytes. */
export interface TensorData {
  /** ONNX element type name (`float32`, `int64`, ...). */
  type: string;
  /** Shape. */
  dims: number[];
  /** Raw little-endian element bytes. */
  data: Uint8Array;
}

/** A one-shot job: named input tensors in, output tensors out. */
export interface TensorJob {
  /** Discriminant. */
  kind: "tensor";
  /** The model's id (`inference/model_identity.ts`). */
  model: string;
  /** Named inputs. */
  inputs: Record<string, TensorData>;
  /** Requester-chosen nonce. */
  nonce: string;
  /** Hex key of the requester that signs the job's assignment, as in {@link TextJob}. */
  requester?: string;
}

/** Any job. */
export type Job = TextJob | TensorJob;

/**
 * Zod schema of a {@link TensorData}: its shape only (whether the bytes fit the type and dims is
 * the model's check). The type name is well-formed Unicode, as every string a job hashes.
 */
export const tensorDataSchema: z.ZodType<TensorData> = z.object({
  type: wellFormed(z.string().min(1)),
  dims: z.array(z.number().int().nonnegative()),
  data: z.instanceof(Uint8Array),
}) as unknown as z.ZodType<TensorData>;

/**
 * Zod schema of a {@link TensorJob}, for a tensor job built from outside input: input names,
 * model and nonce are well-formed Unicode (a lone surrogate has no canonical CBOR, so no
 * {@link jobId}); model and nonce within {@link GENERATION_LIMITS}, as a text job's.
 */
export const tensorJobSchema: z.ZodType<TensorJob> = z.object({
  kind: z.literal("tensor"),
  model: wellFormed(z.string().min(1).max(GENERATION_LIMITS.maxModelChars)),
  inputs: z.record(wellFormed(z.string()), tensorDataSchema),
  nonce: wellFormed(z.string().max(GENERATION_LIMITS.maxNonceChars)),
  requester: z.string().regex(/^[0-9a-f]{64}$/).optional(),
}) as unknown as z.ZodType<TensorJob>;

/**
 * Largest job, as canonical CBOR bytes, that crosses between nodes (`inference.submit`,
 * `validation.receipt`). A fraud proof carries the job beside its commitment openings (at most
 * about 0.45 MB: `MIN_COMMITMENT_CHUNK_SIZE` in `proof/commitment.ts`), and it must fit one
 * 1 MiB frame to reach the other ledgers: a worker that cheated on a bigger job would be
 * convicted only in its accuser's ledger and paid in the rest. 448 KiB of job leaves ~0.14 MB to
 * spare, and is about 110,000 tokens of English prompt, far past any context the node builds.
 */
export const MAX_NETWORK_JOB_BYTES = 448 * 1024;

/** Bytes of `job`'s canonical CBOR: what {@link MAX_NETWORK_JOB_BYTES} bounds. */
export function jobBytes(job: Job): number {
  return encodeCanonical(job).length;
}

const BOUND_JOB_DOMAIN = "veriflow/bound-job/v1";

/**
 * The job id: lower-case hex SHA-256 of the job's canonical CBOR; for a job that names its
 * `requester`, {@link boundJobId} of that key and the rest of the job ({@link jobBodyHash}).
 *
 * @example
 * ```ts
 * import { boundJobId, DEFAULT_GENERATION_PARAMS, jobBodyHash, jobId, type TextJob } from "./job.ts";
 * const job: TextJob = {
 *   kind: "text", model: "m", prompt: "hi", params: { ...DEFAULT_GENERATION_PARAMS }, nonce: "1",
 *   requester: "ab".repeat(32),
 * };
 * jobId(job) === boundJobId("ab".repeat(32), jobBodyHash(job)); // true
 * ```
 */
export function jobId(job: Job): string {
  if (job.requester === undefined) return sha256Hex(encodeCanonical(job));
  return boundJobId(job.requester, jobBodyHash(job));
}

/** Hex SHA-256 of the job's canonical CBOR without its `requester`: the rest of a bound job. */
export function jobBodyHash(job: Job): string {
  const { requester: _requester, ...body } = job;
  return sha256Hex(encodeCanonical(body));
}

/**
 * The id of a job that names `requester` (hex key) and whose other fields hash to `body`
 * ({@link jobBodyHash}). Whoever holds the id, the key and the body hash checks that the job
 * names that requester, without seeing the job (its prompt may be private); no other key gives
 * the same id.
 */
export function boundJobId(requester: string, body: string): string {
  return sha256Hex(encodeCanonical({ domain: BOUND_JOB_DOMAIN, requester, body }));
}
