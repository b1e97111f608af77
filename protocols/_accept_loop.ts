/**
 * The accept loop of a listener (TCP, Unix): every connection to `onConn`, until the listener
 * is closed. An `accept()` that fails for another reason — out of file descriptors (EMFILE), a
 * connection reset before it was accepted — is waited out and retried, not taken for the
 * listener's end: the loop used to stop for good at the first such error while the socket
 * stayed bound, so peers went on connecting into a backlog nobody served (a review showed it
 * at stop 33 under `ulimit -n 128`).
 *
 * A run of failures is logged as a run, not line by line: its first error, a reminder every
 * {@link REMIND_EVERY} failures while it lasts, and the first accept that works again.
 *
 * @module
 */

/** First wait after a failed accept, ms; it doubles up to {@link MAX_RETRY_MS}. */
const FIRST_RETRY_MS = 50;
/** Longest wait between retries of a failing accept, ms. */
const MAX_RETRY_MS = 1_000;
/** While accepts keep failing, one more log line per this many failures (about a minute). */
export const REMIND_EVERY = 60;

/** Options of {@link acceptEach}. */
export interface AcceptOptions {
  /** Hears how failed accepts go (see the module doc), as log lines. */
  log?: (line: string) => void;
  /** Wait `ms` between retries (tests pass one that does not sleep). */
  wait?: (ms: number) => Promise<void>;
}

/**
 * Accept from `listener` until it is closed; each connection goes to `onConn`.
 *
 * @param listener The listener.
 * @param onConn Takes each accepted connection.
 * @param closed Whether the owner closed the listener (its accept then fails for that reason).
 * @param options Log of failed accepts, the wait between retries.
 */
export async function acceptEach<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  onConn: (conn: C) => void,
  closed: () => boolean,
  options: AcceptOptions = {},
): Promise<void> {
  const { log = () => {}, wait = (ms) => new Promise((resolve) => setTimeout(resolve, ms)) } =
    options;
  let waitMs = FIRST_RETRY_MS;
  let failures = 0;
  for (;;) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (closed() || error instanceof Deno.errors.BadResource) return;
      failures++;
      const reason = error instanceof Error ? error.message : String(error);
      if (failures === 1) log(`accept failed (${reason}); retrying`);
      else if (failures % REMIND_EVERY === 0) {
        log(`accept still failing after ${failures} tries (${reason})`);
      }
      await wait(waitMs);
      waitMs = Math.min(MAX_RETRY_MS, waitMs * 2);
      if (closed()) return;
      continue;
    }
    if (failures > 0) log(`accepting again after ${failures} failed accept(s)`);
    failures = 0;
    waitMs = FIRST_RETRY_MS;
    onConn(conn);
  }
}
