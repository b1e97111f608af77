/**
 * A job: the unit of inference work that receipts, challenges and the ledger talk about.
 *
 * The job id is the SHA-256 of the job's canonical CBOR, so requester, worker and validator
 * all derive the same id from the same job, and nobody can attach a receipt to a job it was
 * not computed for.
 *
 * @module
 */
import { encodeCanonical } from "./cbor.ts";
import { sha256Hex } from "./hash.ts";

/** Decoding parameters of a text job. `temperature: 0` means greedy (argmax). */
export interface GenerationParams {
  /** Maximum number of new tokens. */
  maxTokens: number;
  /** Softmax temperature; 0 selects greedy decoding. */
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

/** Defaults for {@link GenerationParams}: greedy, 64 tokens. */
export const DEFAULT_GENERATION_PARAMS: Readonly<GenerationParams> = Object.freeze({
  maxTokens: 64,
  temperature: 0,
  topK: 0,
  topP: 1,
  seed: 0,
  stop: [],
});

/** A text-generation job. */
export interface TextJob {
  /** Discriminant. */
  kind: "text";
  /** CID of the model file. */
  model: string;
  /** The prompt, as text. */
  prompt: string;
  /** Decoding parameters. */
  params: GenerationParams;
  /** Requester-chosen nonce so identical requests are distinct jobs. */
  nonce: string;
}

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
  /** CID of the model file. */
  model: string;
  /** Named inputs. */
  inputs: Record<string, TensorData>;
  /** Requester-chosen nonce. */
  nonce: string;
}

/** Any job. */
export type Job = TextJob | TensorJob;

/** The job id: lower-case hex SHA-256 of the job's canonical CBOR. */
export function jobId(job: Job): string {
  return sha256Hex(encodeCanonical(job));
}
