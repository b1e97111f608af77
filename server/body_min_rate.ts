/**
 * A minimum rate for a request body being read (`readBodyText`): a body that has sent more than
 * {@link BODY_RATE_FREE_BYTES} and then, on average since, brings less than
 * {@link BODY_RATE_MIN_BYTES} per {@link BODY_RATE_WINDOW_MS} window, beyond a grace for pauses
 * ({@link BODY_RATE_GRACE_WINDOWS}), is cut (408 `request_body_too_slow`), rather than holding its
 * bytes of the node's body budget until `http.requestBodyTimeoutMs` (review s74 openai, F1: 32
 * bodies stalled one byte short of their end held the whole budget for the 60 s of that deadline).
 *
 * nginx's `client_body_timeout` (default 60 s) is a limit on the time "between two successive
 * read operations, not for the transmission of the whole request body": one byte per 59 s passes
 * it. A minimum rate per window does not: trickling counts as stalling.
 *
 * @module
 */
import { EdgeError } from "./http_errors.ts";
import type { DrainTimers } from "./serve.ts";

/**
 * The window the rate is measured over: longer than a few TCP retransmissions back to back (their
 * timeouts double from 1 s), so a lossy link that pauses is not taken for a stalled client, and
 * short enough that a stalled body lets its share of the budget go within three or four windows
 * (its grace, {@link BODY_RATE_GRACE_WINDOWS}, and the window its bytes came in), not at
 * `http.requestBodyTimeoutMs`.
 */
export const BODY_RATE_WINDOW_MS = 10_000;

/**
 * Fewest bytes a window must bring once the rate applies: 1.6 KiB/s, slower than any link that
 * still carries a chat (a GPRS phone sends about 5 KB/s). The largest body
 * (`http.maxRequestBytes`, 1 MiB by default) sent at this rate would still take 640 s, past the
 * whole-body deadline: this only cuts bodies that (nearly) stopped.
 */
export const BODY_RATE_MIN_BYTES = 16 * 1024;

/**
 * Bytes a body may send before the rate applies: an ordinary chat or completion body is a few
 * KiB and arrives in one piece, and a slow body that holds less than this holds little of the
 * budget (32 of them, 2 MiB); the whole-body deadline still ends it.
 */
export const BODY_RATE_FREE_BYTES = 64 * 1024;

/**
 * Windows of the minimum rate a body may fall behind by before it is cut: the grace for pauses.
 * A body that kept up starts each window with at most this credit, so a pause of up to 20 s (a
 * mobile link's 15 s stall, or TCP retransmissions backing off 1+2+4+8 s) is never cut, while a
 * body that stopped or trickles spends it within two or three windows (review verify4, F2: one
 * empty 10 s window cut an honest 100 KiB/s client after a 10 s pause). Capped, not banked: a
 * body that sent its bytes fast and then stalls must not hold them until the whole-body deadline.
 */
export const BODY_RATE_GRACE_WINDOWS = 2;

/** A request body that arrived slower than the minimum rate (HTTP 408 `request_body_too_slow`). */
export class RequestBodyTooSlowError extends EdgeError {
  /** Create it. */
  constructor() {
    super(
      "request_body_too_slow",
      `the request body arrived slower than ${
        BODY_RATE_MIN_BYTES / 1024 / (BODY_RATE_WINDOW_MS / 1000)
      } ` +
        `KiB/s after its first ${BODY_RATE_FREE_BYTES / 1024} KiB (pauses of up to ` +
        `${BODY_RATE_GRACE_WINDOWS * BODY_RATE_WINDOW_MS / 1000} s allowed), so the node stopped ` +
        "reading it: the link stalled or is too slow; send the request again",
    );
  }
}

/** What {@link minRateBody} answers. */
export interface RateWatchedBody {
  /** `body`, read through the watch. */
  body: ReadableStream<Uint8Array>;
  /** Stop watching (the body was read whole, or failed): clears the window's timer. */
  stop: () => void;
}

/**
 * `body`, watched for the minimum rate once it is past {@link BODY_RATE_FREE_BYTES}: from then
 * on the body holds a credit, at first {@link BODY_RATE_GRACE_WINDOWS} windows of
 * {@link BODY_RATE_MIN_BYTES}; at the end of each {@link BODY_RATE_WINDOW_MS} window (on `timers`)
 * it gains the bytes that came since the last (those past the free bytes) and loses one window's
 * minimum, and never holds more than it began with. So it is the average since the free bytes
 * that is judged, with the grace for pauses. Below zero the body is too slow: `tooSlow` is called
 * with a {@link RequestBodyTooSlowError} (the caller aborts its read). Pulls nothing ahead.
 */
export function minRateBody(
  body: ReadableStream<Uint8Array>,
  timers: DrainTimers,
  tooSlow: (error: RequestBodyTooSlowError) => void,
): RateWatchedBody {
  const reader = body.getReader();
  const maxCredit = BODY_RATE_MIN_BYTES * BODY_RATE_GRACE_WINDOWS;
  let total = 0;
  let credit = maxCredit;
  let inWindow = 0; // bytes past the free bytes since the last window's end
  let timer: unknown;
  const stop = () => {
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = undefined;
  };
  const windowEnds = () => {
    timer = undefined;
    if (total > BODY_RATE_FREE_BYTES) {
      credit = Math.min(maxCredit, credit + inWindow - BODY_RATE_MIN_BYTES);
      if (credit < 0) return tooSlow(new RequestBodyTooSlowError());
    }
    inWindow = 0;
    timer = timers.setTimeout(windowEnds, BODY_RATE_WINDOW_MS);
  };
  timer = timers.setTimeout(windowEnds, BODY_RATE_WINDOW_MS);
  const watched = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await reader.read().catch((error) => {
        stop();
        throw error;
      });
      if (next.done) {
        stop();
        return controller.close();
      }
      const before = total;
      total += next.value.byteLength;
      inWindow += Math.max(0, total - Math.max(before, BODY_RATE_FREE_BYTES));
      controller.enqueue(next.value);
    },
    cancel(reason) {
      stop();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { body: watched, stop };
}
