/**
 * The accept loop of a listener (TCP, Unix): every connection to `onConn`, until the listener
 * is closed. An `accept()` that fails for another reason — out of file descriptors (EMFILE), a
 * connection reset before it was accepted — is waited out and retried, not taken for the
 * listener's end: the loop used to stop for good at the first such error while the socket
 * stayed bound, so peers went on connecting into a backlog nobody served (a review showed it
 * at stop 33 under `ulimit -n 128`).
 *
 * @module
 */

/** First wait after a failed accept, ms; it doubles up to {@link MAX_RETRY_MS}. */
const FIRST_RETRY_MS = 50;
/** Longest wait between retries of a failing accept, ms. */
const MAX_RETRY_MS = 1_000;

/**
 * Accept from `listener` until it is closed; each connection goes to `onConn`.
 *
 * @param listener The listener.
 * @param onConn Takes each accepted connection.
 * @param closed Whether the owner closed the listener (its accept then fails for that reason).
 * @param onError Hears each failed accept that is retried.
 */
export async function acceptEach<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  onConn: (conn: C) => void,
  closed: () => boolean,
  onError: (error: unknown) => void = () => {},
): Promise<void> {
  let waitMs = FIRST_RETRY_MS;
  for (;;) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (closed() || error instanceof Deno.errors.BadResource) return;
      onError(error);
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      waitMs = Math.min(MAX_RETRY_MS, waitMs * 2);
      if (closed()) return;
      continue;
    }
    waitMs = FIRST_RETRY_MS;
    onConn(conn);
  }
}
