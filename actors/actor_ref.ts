/**
 * {@link ActorRef}: the only handle other code has on an actor. It is stable across restarts
 * (messages sent after a crash go to the next incarnation) and safe to share.
 *
 * @module
 */

/** Options of a single {@link ActorRef.ask}. */
export interface AskOptions {
  /**
   * Reject with `AskTimeoutError` after this many milliseconds. Default: the system's
   * `askTimeoutMs` (30 s unless configured); `Infinity` disables the timer.
   */
  timeoutMs?: number;
  /** Reject with `AskAbortedError` when aborted. */
  signal?: AbortSignal;
}

/** A typed address of an actor accepting messages of type `M`. */
export interface ActorRef<M> {
  /** The actor's registered name. */
  readonly name: string;
  /**
   * Enqueues a message without waiting for it to be handled. Resolves once the mailbox has
   * accepted it: immediately when there is space, later under backpressure. Rejects with
   * `MailboxFullError` (overflow `fail`, or `MAX_WAITING_SENDERS` senders already waiting) or
   * `ActorStoppedError` (actor gone), so await it.
   */
  tell(message: M): Promise<void>;
  /**
   * Sends a message and resolves with what the actor's `receive` returns for it. Rejects with
   * `ActorCrashedError` if the actor crashes before answering, `AskTimeoutError`,
   * `AskAbortedError`, `ActorStoppedError` or `MailboxFullError`. A timed-out or aborted ask
   * is not withdrawn: the actor still handles the message, and the answer is discarded.
   */
  ask<R = unknown>(message: M, options?: AskOptions): Promise<R>;
}
