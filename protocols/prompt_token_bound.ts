/**
 * The most prompt tokens a node may say a text job has, shared by the router (a worker's claim,
 * `inference/remote_port.ts`) and the streaming client (a node's `start`, `client/`), so both
 * hold a biller to one bound. In a file of its own, importing nothing, for the reason
 * `job_token_bounds.ts` gives: the client loads with `--allow-net` alone and must not load
 * `protocols/job.ts` (zod and cbor-x).
 *
 * @module
 */

/**
 * Largest input a job may name, in bytes: one chunk (`DEFAULT_CHUNK_SIZE`), so the input is a
 * single raw block anyone checks by its hash. With the job it must also fit
 * `MAX_NETWORK_JOB_BYTES` (a fraud proof carries both to every node in one frame). Here rather
 * than in `job_input.ts` (which re-exports it) so the client can bound a job with an input.
 */
export const MAX_JOB_INPUT_BYTES = 256 * 1024;

/**
 * The most prompt tokens a job whose prompt is `prompt` may have: one per UTF-8 byte of the
 * prompt, and one more (a tokenizer that prepends a word marker), plus `inputBytes` when the job
 * names an input (the model reads the input's text before the prompt; a negative room adds
 * nothing). Every token of a byte-level vocabulary (the built-in model's, GPT-2's) or of one with
 * byte fallback covers at least one byte of the text; only a tokenizer whose normalizer lengthens
 * the text could count more (NFKC counts the 3-byte "ﷺ" as 33 tokens). So it caps the usage a
 * client is told, and is no ground to refuse a worker's signed receipt: a router holds that to its
 * own tokenizer or the model's window, and validators re-count it (review s78 vprompt F4).
 *
 * @param prompt The job's prompt.
 * @param inputBytes The most bytes the job's input may have: 0 for a job without one.
 * @returns The bound, in tokens.
 *
 * @example
 * ```ts
 * import { promptTokenBound } from "./prompt_token_bound.ts";
 * promptTokenBound("hi", 0); // 3: two bytes, and one marker
 * ```
 */
export function promptTokenBound(prompt: string, inputBytes: number): number {
  return UTF8.encode(prompt).length + Math.max(0, inputBytes) + 1;
}

const UTF8 = new TextEncoder();
