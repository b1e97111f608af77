/**
 * What an answer says when its job ran to its end but its tokens did not all reach it: the rule
 * of `inference/undelivered_tokens.ts` (a finished job whose unread tokens were evicted,
 * `slow_reader`), shared with a worker's peer stream, as an edge's failure. Every edge (SSE, one
 * JSON body, WebSocket) asks this before it sends its normal end: a client given a normal end
 * after part of the text cannot tell that tokens are missing, and a receipt that commits to all
 * of them would look like the worker's fault (review s77 sse, F1).
 *
 * @module
 */
import type { JobSummary } from "../inference/inference_port.ts";
import type { VeriflowError } from "../protocols/errors.ts";
import { undeliveredTokensError } from "../inference/undelivered_tokens.ts";
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
  const failure = undeliveredTokensError(readError, summary, delivered);
  return failure && jobFailureForClient(failure.code, failure.message);
}
