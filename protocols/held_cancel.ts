/**
 * A requester's cancel of a stream that says how much of it the requester's own consumer holds
 * (the `cancel` message's optional `held`, `messages.ts`). The unit is the stream's protocol's:
 * for an inference job, the output positions `0 … held−1` its client was handed. A forwarding
 * node cancels a worker's job with it so the worker signs its cancelled receipt over what the
 * client got, not over what it sent (`docs/PROTOCOL.md`, "Who pays, by how a job ends"): tokens
 * in the credit window, sent and never read, are no one's to pay for.
 *
 * On the requester's side, cancelling a stream from `Connection.stream` with a
 * {@link HeldCancelError} puts its count in the `cancel`; on the serving side the handler's
 * stream is cancelled with a {@link HeldCancelError} carrying the peer's count. A peer from before
 * the field drops it (a body's unknown fields are stripped by its schema), so to it this is the
 * plain cancel it always was.
 *
 * @example
 * ```ts
 * import { HeldCancelError, heldOf } from "./held_cancel.ts";
 *
 * console.log(heldOf(new HeldCancelError(5, "the client cancelled"))); // 5
 * console.log(heldOf(new Error("other"))); // undefined
 * ```
 *
 * @module
 */
import { type ProtocolErrorOptions, StreamCancelledError } from "./protocol_errors.ts";

/** A stream cancel that names how many of its items the requester's consumer holds. */
export class HeldCancelError extends StreamCancelledError {
  /** Items (in the stream's protocol's unit) the requester's consumer holds. */
  readonly held: number;

  /**
   * Creates the error.
   * @param held Items the requester's consumer holds: a non-negative safe integer.
   * @param message Why.
   * @param options Cause.
   */
  constructor(held: number, message: string, options?: ProtocolErrorOptions) {
    super(message, options);
    if (!Number.isSafeInteger(held) || held < 0) {
      throw new RangeError(`held must be a non-negative integer, got ${held}`);
    }
    this.held = held;
  }
}

/**
 * The count a cancel `reason` carries: its {@link HeldCancelError.held}, else undefined. Only
 * that class is read, so a reason some other code passed (a client's own object) never sets it.
 */
export function heldOf(reason: unknown): number | undefined {
  return reason instanceof HeldCancelError ? reason.held : undefined;
}
