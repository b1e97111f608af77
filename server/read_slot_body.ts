/**
 * The response body of a read that holds a read slot (`read_slots.ts`): it gives the slot back
 * once the body has been sent whole, has failed, or was cancelled (the client went away), and
 * also once its client has taken nothing for {@link READ_IDLE_TIMEOUT_MS}. Without that last
 * rule a client that read the headers and then stopped reading (a TCP window kept at zero, which
 * `Deno.serve` has no write timeout for) held its slot for ever: 64 such reads from four /64s
 * shut every other reader out of the node, key holders included (review verify_limits, F1).
 *
 * Only the client's silence counts: the timer runs from when a piece was handed to the server
 * until the server asks for the next one (the body is pulled one piece at a time, as the socket
 * takes bytes), never while the store is still producing the next piece, so a slow store or a
 * read that waits on storage peers is not blamed on the client. This is the idle cut-off the SSE
 * answers have (`openai_answers.ts`, `http.clientIdleTimeoutMs`), written for a body with no job
 * behind it.
 *
 * @module
 */
import type { EdgeStats } from "./edge_stats.ts";
import type { DrainTimers } from "./serve.ts";

/**
 * Longest a read's client may take nothing before its read is cut and its slot given back:
 * 60 s, nginx's `send_timeout` and Caddy's usual write timeout between two writes. A client that
 * reads at all, however slowly, takes a piece far more often (a 256 KiB piece at 5 KB/s, a GPRS
 * phone, drains in 52 s), so only a client that stopped reading is cut. A `<video>` paused for
 * more than a minute stops reading too and is cut like one: its player asks again with a `Range`
 * from where it stopped when it plays on (browsers reopen a media read that failed), while the
 * slot it held serves another reader meanwhile.
 */
export const READ_IDLE_TIMEOUT_MS = 60_000;

/**
 * Largest piece handed to the server at once: the client's silence is timed between two pulls,
 * and the server pulls again only once the socket has taken the last piece. A store chunk
 * (256 KiB) drains in 64 s at 4 KB/s, past {@link READ_IDLE_TIMEOUT_MS}, though that client reads
 * all along; 16 KiB pieces (views of the chunk, not copies) drain in 4 s at that rate, so the
 * pieces are never what makes a steady client look silent. The socket's own send buffer batches
 * writes too (the server is woken only once much of it has drained): over loopback a client
 * reading steadily at 160 KiB/s saw at most 9.2 s between two pulls (`tmp/s75/fix_limits2/`).
 */
export const READ_PIECE_BYTES = 16 * 1024;

/** A read cut because its client took nothing for the idle time (its body errors with it). */
export class ReadIdleError extends Error {
  /** Stable code, as the edge's errors carry one. */
  readonly code = "client_idle";

  /**
   * Create it.
   *
   * @param timeoutMs The idle time the client passed, in milliseconds.
   */
  constructor(timeoutMs: number) {
    super(
      `a client read nothing of its answer for ${timeoutMs} ms: the read was cut, its slot freed`,
    );
    this.name = "ReadIdleError";
    // `Deno.serve` prints the error of every response body that fails, stack and all: a timer's
    // stack says nothing, and an operator whose node cut 40 stalled reads gets 40 lines, not 280.
    this.stack = `${this.name}: ${this.message}`;
  }
}

/** How long a read's client may take nothing, and the timers that time it. */
export interface ReadIdle {
  /** Longest the client may take nothing; default {@link READ_IDLE_TIMEOUT_MS}. */
  timeoutMs?: number;
  /** The timers; default the global ones. */
  timers?: DrainTimers;
  /**
   * The edge's counters: a cut counts in `idleTimeouts` (`veriflow_http_idle_timeouts_total`),
   * as a streaming client's does. Default: counted nowhere.
   */
  stats?: EdgeStats;
}

const GLOBAL_TIMERS: DrainTimers = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as number),
};

/**
 * `body`, calling `release` (once) when it has been read to its end, has failed, was cancelled,
 * or its client took nothing for `idle.timeoutMs`: then `body` is cancelled (the store's read
 * stops) and the stream errors with a {@link ReadIdleError}, so the server drops the connection.
 * Pulls one piece of `body` at a time and hands it over in pieces of at most
 * {@link READ_PIECE_BYTES}, so it buffers nothing of its own beyond the piece being handed over.
 */
export function slotHeldBody(
  body: ReadableStream<Uint8Array>,
  release: () => void,
  idle: ReadIdle = {},
): ReadableStream<Uint8Array> {
  const timeoutMs = idle.timeoutMs ?? READ_IDLE_TIMEOUT_MS;
  const timers = idle.timers ?? GLOBAL_TIMERS;
  const reader = body.getReader();
  /** What is left of the store's last piece, handed over {@link READ_PIECE_BYTES} at a time. */
  let rest: Uint8Array = new Uint8Array(0);
  let timer: unknown;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const disarm = () => {
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = undefined;
  };
  const end = () => {
    disarm();
    release();
  };
  // Armed while the client owes the next pull: from the body's handing over, and after each piece.
  // The rule of the SSE answers' cut-off (`openai_answers.ts`, `waitingSince`), not its code: that
  // one keeps one lazy timer on a clock because it hands over an event per token, where re-arming
  // per event cost the main thread; a read's 16 KiB pieces are few, and its timers have no clock.
  const arm = () => {
    timer = timers.setTimeout(() => {
      timer = undefined;
      const error = new ReadIdleError(timeoutMs);
      if (idle.stats) idle.stats.idleTimeouts++;
      release();
      controller.error(error);
      reader.cancel(error).catch(() => {});
    }, timeoutMs);
  };
  return new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      arm();
    },
    async pull(c) {
      disarm();
      if (rest.byteLength === 0) {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await reader.read();
        } catch (error) {
          end();
          throw error;
        }
        if (next.done) {
          end();
          c.close();
          return;
        }
        rest = next.value;
      }
      c.enqueue(rest.subarray(0, READ_PIECE_BYTES));
      rest = rest.subarray(READ_PIECE_BYTES);
      arm();
    },
    cancel(reason) {
      end();
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
