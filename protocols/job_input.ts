/**
 * A text job's input by CID: a stored public file the model reads before the job's prompt, so a
 * job about stored data names the data instead of carrying it, and a router can send the job to
 * a node that already holds it (`network/worker_choice.ts`, rule 4: locality).
 *
 * The input is one raw block: a public file of at most {@link MAX_JOB_INPUT_BYTES} (the chunk
 * size, so its UnixFS id is its raw leaf's CID, `bafkrei…`). Its CID is the SHA-256 of its bytes,
 * so whoever holds the bytes checks them against the job without trusting who sent them: the
 * worker that reads them from storage, the validator that gets them with the worker's proof data,
 * and every node that checks a fraud proof carrying them. The job (and its id) commits to the
 * CID; the model's input is the file's UTF-8 text followed by the prompt ({@link jobPromptText}).
 *
 * @module
 */
import { cidDigest, matchesCid } from "./cid.ts";
import { VeriflowError } from "./errors.ts";
import { jobBytes, MAX_NETWORK_JOB_BYTES, type TextJob } from "./job.ts";

import { MAX_JOB_INPUT_BYTES } from "./prompt_token_bound.ts";
// Defined beside the prompt-token bound, which the client loads without this file's imports.
export { MAX_JOB_INPUT_BYTES };

/**
 * Most bytes `job`'s input may have: {@link MAX_JOB_INPUT_BYTES}, and no more than leaves the job
 * and its input within `MAX_NETWORK_JOB_BYTES` together, since every fraud proof about the job
 * carries both beside its openings in one frame to the other ledgers. Negative for a job that
 * leaves no room. The worker refuses an input past it (`inference/local_port.ts`), and
 * {@link jobPromptText} too, so a validator does not re-run a cheat's receipt for such a job into
 * a fraud proof no frame carries: the proof data is not what an honest worker serves.
 *
 * @example
 * ```ts
 * import { jobInputRoom, MAX_JOB_INPUT_BYTES } from "./job_input.ts";
 * import { DEFAULT_GENERATION_PARAMS, type TextJob } from "./job.ts";
 * const job: TextJob = {
 *   kind: "text", model: "m", prompt: "Summary:", params: { ...DEFAULT_GENERATION_PARAMS },
 *   nonce: "1", input: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
 * };
 * jobInputRoom(job) === MAX_JOB_INPUT_BYTES; // true: a short job leaves a whole chunk
 * ```
 */
export function jobInputRoom(job: TextJob): number {
  return Math.min(MAX_JOB_INPUT_BYTES, MAX_NETWORK_JOB_BYTES - jobBytes(job));
}

/**
 * How a node reads a job's input: the verified bytes of a stored block. `local` keeps the read to
 * this node's own store (no storage peer asked): what a validator's intake reads, inside its
 * mailbox, to count a receipt's prompt exactly (`actors/_receipt_intake.ts`).
 */
export type JobInputReader = (
  cid: string,
  signal?: AbortSignal,
  options?: { local?: boolean },
) => Promise<Uint8Array>;

/** A job's input is unusable: not given, not the named block, not text, or too large. */
export class JobInputError extends VeriflowError {
  /**
   * Create the error.
   * @param code `input_required`, `input_mismatch`, `input_not_text`, `input_too_large` or
   *   `input_unavailable`.
   * @param message Human-readable explanation.
   */
  constructor(code: string, message: string) {
    super(code, message);
  }
}

/**
 * True when `cid` can name a job's input: a CIDv1 of the raw codec over SHA-256, lower-case
 * base32 (a public file of one chunk). Never throws.
 *
 * @example
 * ```ts
 * import { isJobInputCid } from "./job_input.ts";
 * import { cidOf } from "./cid.ts";
 * isJobInputCid(cidOf(new TextEncoder().encode("a stored text"))); // true
 * isJobInputCid("not a cid"); // false
 * ```
 */
export function isJobInputCid(cid: unknown): boolean {
  if (typeof cid !== "string") return false;
  try {
    cidDigest(cid);
  } catch {
    return false;
  }
  return cid.startsWith(RAW_CID_PREFIX);
}

/** Every raw-codec SHA-256 CIDv1 in base32 starts so (`b`, v1, raw 0x55, sha2-256). */
const RAW_CID_PREFIX = "bafkrei";

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * The text the model reads for `job`: its input's text (when it names one) followed by its
 * prompt. `input` must be the bytes of `job.input`: they are checked against the CID, decoded
 * as UTF-8 (strictly: a strict decode never yields a lone surrogate, so the text is
 * well-formed, as every string of a job is). Without an input, the prompt.
 *
 * @throws {JobInputError} `input_required` (the job names an input and none was given),
 *   `input_too_large` (past {@link jobInputRoom}), `input_mismatch` (the bytes are not the named
 *   block), `input_not_text`.
 * @example
 * ```ts
 * import { jobPromptText } from "./job_input.ts";
 * import { cidOf } from "./cid.ts";
 * import { DEFAULT_GENERATION_PARAMS, type TextJob } from "./job.ts";
 * const bytes = new TextEncoder().encode("Notes: the river rose.\n");
 * const job: TextJob = {
 *   kind: "text", model: "m", prompt: "Summary:", params: { ...DEFAULT_GENERATION_PARAMS },
 *   nonce: "1", input: cidOf(bytes),
 * };
 * jobPromptText(job, bytes); // "Notes: the river rose.\nSummary:"
 * ```
 */
export function jobPromptText(job: TextJob, input?: Uint8Array): string {
  if (job.input === undefined) return job.prompt;
  if (input === undefined) {
    throw new JobInputError(
      "input_required",
      `job names input ${job.input}; its bytes are missing`,
    );
  }
  // The cheap bound first: the room needs the job's canonical CBOR.
  const room = input.length > MAX_JOB_INPUT_BYTES ? MAX_JOB_INPUT_BYTES : jobInputRoom(job);
  if (input.length > room) {
    throw new JobInputError(
      "input_too_large",
      `input ${job.input} is ${input.length} bytes; this job may read at most ${room} (one chunk, and with the job one frame)`,
    );
  }
  if (!matchesCid(job.input, input)) {
    throw new JobInputError("input_mismatch", `the bytes given are not input ${job.input}`);
  }
  let text: string;
  try {
    text = decoder.decode(input);
  } catch {
    throw new JobInputError("input_not_text", `input ${job.input} is not UTF-8 text`);
  }
  return text + job.prompt;
}
