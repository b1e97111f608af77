/**
 * The rule for a job that ran to its end but whose tokens did not all reach its reader: the read
 * of the job's tokens failed with a typed error while the job's summary says `stop` or `length`.
 * That is a finished job whose unread tokens the node dropped because its reader read too slowly
 * (`slow_reader`: the unread-token budget evicts a finished job's backlog and keeps its receipt,
 * `actors/inference_job.ts` `evict`). The summary alone cannot tell it from a whole answer, so
 * whatever relays a job's tokens asks this before it sends a normal end: the edges (SSE, one JSON
 * body, WebSocket: `server/_undelivered_tokens.ts`) and a worker's peer stream to a router
 * (`serve_inference.ts`), whose normal end after fewer tokens than the job made the router took
 * for a broken worker (review s77 vclient, F2).
 *
 * @module
 */
import type { JobSummary } from "./inference_port.ts";
import { VeriflowError } from "../protocols/errors.ts";

/**
 * The error to end a job's stream with instead of its normal end, or undefined when there is
 * none: `readError` (what reading the job's tokens failed with, undefined when the read ended
 * cleanly) when it is typed and `summary` says the job ran to its end. Its code is the read's
 * (`slow_reader`), and its message adds how many of the job's tokens were passed on
 * (`delivered`) and that the receipt covers them all.
 *
 * @example
 * ```ts
 * import { undeliveredTokensError } from "./undelivered_tokens.ts";
 * import { VeriflowError } from "../protocols/errors.ts";
 * const summary = {
 *   jobId: "j", finishReason: "length" as const, usage: { promptTokens: 1, completionTokens: 9 },
 *   timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
 * };
 * undeliveredTokensError(new VeriflowError("slow_reader", "evicted"), summary, 2)?.code; // "slow_reader"
 * ```
 */
export function undeliveredTokensError(
  readError: unknown,
  summary: JobSummary,
  delivered: number,
): VeriflowError | undefined {
  if (summary.finishReason !== "stop" && summary.finishReason !== "length") return undefined;
  if (!(readError instanceof VeriflowError)) return undefined;
  const made = summary.usage.completionTokens;
  return new VeriflowError(
    readError.code,
    `${readError.message}. The job had finished: ${delivered} of its ${made} tokens reached ` +
      `this answer; its receipt, if it has one, covers all ${made}, so it does not match the ` +
      "text received",
  );
}
