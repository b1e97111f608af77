/**
 * A minimum rate for a request body being read (`readBodyText`): a body that has sent more than
 * {@link BODY_RATE_FREE_BYTES} and then brings less than {@link BODY_RATE_MIN_BYTES} in a
 * {@link BODY_RATE_WINDOW_MS} window is cut (408 `request_timeout`), rather than holding its bytes
 * of the node's body budget until `http.requestBodyTimeoutMs` (review s74 openai, F1: 32 bodies
 * stalled one byte short of their end held the whole budget for the 60 s of that deadline).
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
 * short enough that a stalled body lets its share of the budget go within two windows (the window
 * its bytes came in still counts them), not at `http.requestBodyTimeoutMs`.
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

/** A request body that arrived slower than the minimum rate (HTTP 408, as a body past its deadline). */
export class RequestBodyTooSlowError extends EdgeError {
  /** Create it. */
  constructor() {
    super(
      "request_timeout",
      `the request body arrived slower than ${BODY_RATE_MIN_BYTES} bytes per ` +
        `${BODY_RATE_WINDOW_MS} ms after its first ${BODY_RATE_FREE_BYTES} bytes; send it at ` +
        "once (a stalled body holds bytes other requests need)",
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
 * `body`, watched for the minimum rate: at the end of each {@link BODY_RATE_WINDOW_MS} window
 * (on `timers`), a body past {@link BODY_RATE_FREE_BYTES} that brought less than
 * {@link BODY_RATE_MIN_BYTES} in it is too slow, and `tooSlow` is called with a
 * {@link RequestBodyTooSlowError} (the caller aborts its read). Pulls nothing ahead.
 */
export function minRateBody(
  body: ReadableStream<Uint8Array>,
  timers: DrainTimers,
  tooSlow: (error: RequestBodyTooSlowError) => void,
): RateWatchedBody {
  const reader = body.getReader();
  let total = 0;
  let inWindow = 0;
  let timer: unknown;
  const stop = () => {
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = undefined;
  };
  const windowEnds = () => {
    timer = undefined;
    if (total > BODY_RATE_FREE_BYTES && inWindow < BODY_RATE_MIN_BYTES) {
      return tooSlow(new RequestBodyTooSlowError());
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
      total += next.value.byteLength;
      inWindow += next.value.byteLength;
      controller.enqueue(next.value);
    },
    cancel(reason) {
      stop();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { body: watched, stop };
}
