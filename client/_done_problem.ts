/**
 * Whether a job's `done` agrees with what the client knows of the job: the tokens that came, the
 * job's token bound, its `start`, and whether the client asked for the cancel a `cancelled` done
 * answers. A program bills by `usage` (OpenAI's habit: `total_tokens`) and logs or looks up
 * receipts by `job_id`, so a `done` that contradicts any of these is a faulty or hostile server's
 * (reviews s74 and s77), never handed on. Not part of the public API.
 *
 * @module
 */
import type { WsDoneMessage } from "../server/stream_protocol.ts";

/** What the client knows of a running job when its `done` comes. */
export interface DoneExpectations {
  /** Tokens received. */
  received: number;
  /** The most tokens the node computes for the job, and what says so (for the message). */
  maxTokens: { most: number; what: string };
  /** The `job_id` of the job's `start`. */
  jobId: string | undefined;
  /** The prompt's tokens as the job's `start` counted them. */
  promptTokens: number | undefined;
  /** Whether the client sent `cancel` for the job (its caller's cancel, a break, …). */
  cancelSent: boolean;
}

/**
 * What is wrong with `done` for a job the client knows as `job` (a phrase naming fields and
 * counts, never the frame's own text), or undefined when nothing is.
 */
export function doneProblem(done: WsDoneMessage, job: DoneExpectations): string | undefined {
  if (done.job_id !== job.jobId) return "a done whose job_id is not its start's";
  const counted = done.usage.completion_tokens;
  const reason = done.finish_reason;
  // The node counts the tokens it sent: fewer arrived, and the answer was cut on its way. A
  // cancel the client sent may overtake tokens the node had already computed, which it then
  // counts and never sends: more is fine then, and only then (the node cancels a job on its own
  // only by closing the socket or with an `error`), and never past what it computes for the job.
  if (reason === "cancelled" && counted > job.maxTokens.most) {
    return `a cancelled done that counts ${counted} tokens, more than ${job.maxTokens.what}`;
  }
  const more = reason === "cancelled" && job.cancelSent;
  if (more ? counted < job.received : counted !== job.received) {
    const unasked = reason === "cancelled" && counted > job.received
      ? ", and no cancel was sent"
      : "";
    return `a done that counts ${counted} tokens after ${job.received} (finish_reason ` +
      `${reason}${unasked})`;
  }
  // The node sends its prompt's count in both `start` and `done`, and the total as their sum
  // (`wireUsage`): a done that contradicts its start bills what the caller was never told of.
  const { prompt_tokens: prompt, total_tokens: total } = done.usage;
  if (prompt !== job.promptTokens) {
    return `a done that counts ${prompt} prompt tokens after a start that counted ` +
      `${job.promptTokens}`;
  }
  if (total !== prompt + counted) {
    return `a done whose total_tokens ${total} is not its prompt_tokens ${prompt} plus its ` +
      `completion_tokens ${counted}`;
  }
  return undefined;
}
