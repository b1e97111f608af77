/**
 * What an answer says when its job ran to its end but its tokens did not all reach it: the read
 * of the job's tokens failed with a typed error while the job's summary says `stop` or `length`.
 * That is a finished job whose unread tokens the node dropped because its reader read too slowly
 * (`slow_reader`: the unread-token budget evicts a finished job's backlog and keeps its receipt,
 * `actors/inference_job.ts` `evict`). The summary alone cannot tell it from a whole answer, so
 * every edge (SSE, one JSON body, WebSocket) asks this before it sends its normal end: a client
 * given a normal end after part of the text cannot tell that tokens are missing, and a receipt
 * that commits to all of them would look like the worker's fault (review s77 sse, F1).
 *
 * @module
 */
import type { JobSummary } from "../inference/inference_port.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { jobFailureForClient } from "./http_errors.ts";

/**
 * The failure to end an answer with instead of its normal end, or undefined when there is none:
 * `readError` (what reading the job's tokens failed with, undefined when the read ended cleanly)
 * when it is typed and `summary` says the job ran to its end. Its message adds how many of the
 * job's tokens reached the answer (`delivered`) and that the receipt covers them all. An internal
 * failure's text is withheld as for any job failure (`jobFailureForClient`).
 */
export function undeliveredTokensFailure(
  readError: unknown,
  summary: JobSummary,
  delivered: number,
): VeriflowError | undefined {
  if (summary.finishReason !== "stop" && summary.finishReason !== "length") return undefined;
  if (!(readError instanceof VeriflowError)) return undefined;
  const made = summary.usage.completionTokens;
  return jobFailureForClient(
    readError.code,
    `${readError.message}. The job had finished: ${delivered} of its ${made} tokens reached ` +
      `this answer; its receipt, if it has one, covers all ${made}, so it does not match the ` +
      "text received",
  );
}
