/**
 * A minimum rate for a request body being read: a body that has sent more than its free bytes
 * ({@link BODY_RATE_FREE_BYTES} for a request read whole by `readBodyText`, none for an upload)
 * and then, on average since, brings less than {@link BODY_RATE_MIN_BYTES} per
 * {@link BODY_RATE_WINDOW_MS} window, beyond a grace for pauses ({@link BODY_RATE_GRACE_WINDOWS};
 * {@link UPLOAD_RATE_GRACE_WINDOWS} for an upload), is cut (408 `request_body_too_slow`), rather
 * than holding its bytes of the node's body budget until `http.requestBodyTimeoutMs` (review s74
 * openai, F1: 32 bodies stalled one byte short of their end held the whole budget for the 60 s of
 * that deadline), or, an upload, its upload slot for as long as it trickles (a byte every 59 s
 * passed the upload's silence deadline forever, and 32 such uploads refused every other).
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

/**
 * Windows of grace of an upload (`POST /v1/files`), which has no whole-body deadline behind its
 * rate: five, so an upload that kept up may pause for up to 50 s (a satellite link's outage, a
 * phone in a tunnel), nearly as long as the silence deadline (`http.requestBodyTimeoutMs`, 60 s)
 * it is also held to, while one that trickles is cut at the end of its sixth window, 60 s after
 * reading began: its credit, 5 × 16 KiB = 80 KiB, loses 16 KiB a window (less the few bytes it
 * sends) and is below zero after 6 × 10 s. So a trickler holds an upload slot no longer than a
 * silent client does. The rate itself is the same 1.6 KiB/s: a phone on 3G (50 KB/s) sends 30
 * times that, and still 3.8 times it with eight uploads at once (6 KB/s each), and a GiB file at
 * the rate would take 7.6 days, so only a link that (nearly) stopped is cut, never a large file.
 */
export const UPLOAD_RATE_GRACE_WINDOWS = 5;

/** How a body is held to a minimum rate (see {@link minRateBody}). */
export interface MinRate {
  /** The window the rate is measured over, in milliseconds. */
  windowMs: number;
  /** Fewest bytes a window must bring once the rate applies. */
  minBytes: number;
  /** Bytes a body may send before the rate applies. */
  freeBytes: number;
  /** Windows of the minimum a body may fall behind by before it is cut. */
  graceWindows: number;
}

/** The rate of a request body read whole (`readBodyText`): past 64 KiB, 1.6 KiB/s, 20 s pauses. */
export const BODY_MIN_RATE: MinRate = {
  windowMs: BODY_RATE_WINDOW_MS,
  minBytes: BODY_RATE_MIN_BYTES,
  freeBytes: BODY_RATE_FREE_BYTES,
  graceWindows: BODY_RATE_GRACE_WINDOWS,
};

/**
 * The rate of an upload (`POST /v1/files`): 1.6 KiB/s from its first byte, pauses of up to 50 s.
 * No free bytes: they are free only because the whole-body deadline ends a small body that stays
 * under them, and an upload has no such deadline (with 64 KiB free, a byte every 59 s would meet
 * the rate after 64 Ki × 59 s, 45 days). A client slow to start is covered by the grace: the
 * first window's shortfall comes out of it like any pause.
 */
export const UPLOAD_MIN_RATE: MinRate = {
  windowMs: BODY_RATE_WINDOW_MS,
  minBytes: BODY_RATE_MIN_BYTES,
  freeBytes: 0,
  graceWindows: UPLOAD_RATE_GRACE_WINDOWS,
};

/** A request body that arrived slower than the minimum rate (HTTP 408 `request_body_too_slow`). */
export class RequestBodyTooSlowError extends EdgeError {
  /**
   * Create it.
   *
   * @param rate The rate the body was held to; default {@link BODY_MIN_RATE}.
   */
  constructor(rate: MinRate = BODY_MIN_RATE) {
    super(
      "request_body_too_slow",
      `the request body arrived slower than ${rate.minBytes / 1024 / (rate.windowMs / 1000)} ` +
        `KiB/s${rate.freeBytes > 0 ? ` after its first ${rate.freeBytes / 1024} KiB` : ""} ` +
        `(pauses of up to ${rate.graceWindows * rate.windowMs / 1000} s allowed), so the node ` +
        "stopped reading it: the link stalled or is too slow; send the request again",
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
 * `body`, watched for the minimum rate `rate` (default {@link BODY_MIN_RATE}) once it is past
 * `rate.freeBytes` (from the start when there are none): from then on the body holds a credit, at first `rate.graceWindows` windows of
 * `rate.minBytes`; at the end of each `rate.windowMs` window (on `timers`) it gains the bytes that
 * came since the last (those past the free bytes) and loses one window's minimum, and never holds
 * more than it began with. So it is the average since the free bytes that is judged, with the
 * grace for pauses. Below zero the body is too slow: `tooSlow` is called with a
 * {@link RequestBodyTooSlowError} (the caller aborts its read). Pulls nothing ahead, and judges
 * only the sender: a window that ends while nobody is reading (the consumer busy with what it
 * read, as a store writing a chunk) is not judged, its bytes counted in the next, which begins
 * with the next read, so a slow consumer is never taken for a slow client.
 */
export function minRateBody(
  body: ReadableStream<Uint8Array>,
  timers: DrainTimers,
  tooSlow: (error: RequestBodyTooSlowError) => void,
  rate: MinRate = BODY_MIN_RATE,
): RateWatchedBody {
  const reader = body.getReader();
  const maxCredit = rate.minBytes * rate.graceWindows;
  let total = 0;
  let credit = maxCredit;
  let inWindow = 0; // bytes past the free bytes since the last judged window's end
  let waiting = false; // a read of the sender's bytes is under way
  let stopped = false;
  let timer: unknown;
  const stop = () => {
    stopped = true;
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = undefined;
  };
  const arm = () => {
    if (!stopped && timer === undefined) timer = timers.setTimeout(windowEnds, rate.windowMs);
  };
  const windowEnds = () => {
    timer = undefined;
    // Nobody reads: the window is not judged, and the next begins with the next read, so a
    // consumer's pause is not the sender's, and a body nobody reads any more holds no timer.
    if (!waiting) return;
    if (total > rate.freeBytes || rate.freeBytes === 0) {
      credit = Math.min(maxCredit, credit + inWindow - rate.minBytes);
      if (credit < 0) {
        stop();
        return tooSlow(new RequestBodyTooSlowError(rate));
      }
    }
    inWindow = 0;
    arm();
  };
  arm();
  const watched = new ReadableStream<Uint8Array>({
    async pull(controller) {
      waiting = true;
      arm();
      const next = await reader.read().catch((error) => {
        stop();
        throw error;
      }).finally(() => waiting = false);
      if (next.done) {
        stop();
        return controller.close();
      }
      const before = total;
      total += next.value.byteLength;
      inWindow += Math.max(0, total - Math.max(before, rate.freeBytes));
      controller.enqueue(next.value);
    },
    cancel(reason) {
      stop();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
  return { body: watched, stop };
}
