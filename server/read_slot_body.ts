/**
 * The response body of a read that holds a read slot (`read_slots.ts`): it gives the slot back
 * once the body has been sent whole, has failed, or was cancelled (the client went away), and
 * also once its client has taken nothing for {@link READ_IDLE_TIMEOUT_MS} and its slot is wanted
 * (`ReadIdle.overdue`; review vreads2, F1: honest slow readers were cut). Without that last
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
import { SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { VeriflowError } from "../protocols/errors.ts";
import type { EdgeStats } from "./edge_stats.ts";
import type { DrainTimers } from "./serve.ts";

/**
 * Longest a read's client may take nothing before its read may be cut and its slot given back:
 * 60 s, nginx's `send_timeout` and Caddy's usual write timeout between two writes. Past it the read
 * is cut only when its slot is wanted (`ReadIdle.overdue`: `read_slots.ts` cuts it when a read of
 * its pool is about to be refused or its own client has a read waiting), never merely because the
 * time ran out: the gap between two pulls is set by the kernel's socket buffers, not by how fast
 * the client reads. Over loopback (`tcp_wmem` 4 MiB) a client reading steadily at 16 KiB/s was not
 * pulled from for 60 s and was cut (review vreads2, F1): with 4 MiB of buffer between the node and
 * the client, a 16 KiB/s reader drains it in 4 MiB / 16 KiB/s = 256 s, so a pull may come only
 * every ~256 s, and at 4 KiB/s every ~1,024 s, though that client reads all along. A client that
 * took nothing for the idle time while nobody wants its slot costs only that slot, which nobody
 * wants; once somebody does, a client that took nothing for a minute yields it. A `<video>` paused
 * for more than a minute is cut like one when its slot is wanted: its player asks again with a
 * `Range` from where it stopped when it plays on (browsers reopen a media read that failed).
 */
export const READ_IDLE_TIMEOUT_MS = 60_000;

/**
 * Largest piece handed to the server at once: the client's silence is timed between two pulls,
 * and the server pulls again only once the socket has taken the last piece. A store chunk
 * (256 KiB) drains in 64 s at 4 KB/s, past {@link READ_IDLE_TIMEOUT_MS}, though that client reads
 * all along; 16 KiB pieces (views of the chunk, not copies) drain in 4 s at that rate, so the
 * pieces are never what makes a steady client look silent. The socket's buffers batch writes far
 * more (the server is woken only once much of them has drained: ~256 s at 16 KiB/s with 4 MiB of
 * them, {@link READ_IDLE_TIMEOUT_MS}), which is why a silent client is cut only when its slot is
 * wanted.
 */
export const READ_PIECE_BYTES = 16 * 1024;

/**
 * An answer cut because its client took nothing of it for the idle time: its body errors with it,
 * so the server drops the connection. A stored file's read here ({@link slotHeldBody}), a
 * streamed job's SSE answer in `openai_answers.ts`; the message says which, and whose.
 */
export class ClientIdleError extends VeriflowError {
  /**
   * Create it.
   *
   * @param message What was cut, after how long, and what that freed.
   */
  constructor(message: string) {
    super("client_idle", message);
    this.name = "ClientIdleError";
    // `Deno.serve` prints the error of every response body that fails, stack and all: a timer's
    // stack says nothing, and an operator whose node cut 40 stalled reads gets 40 lines, not 280.
    this.stack = `${this.name}: ${this.message}`;
    // It prints an error's own enumerable fields after it too, `code` on lines of its own: kept
    // readable (`error.code`), not listed, so a cut is one line of the node's stderr.
    Object.defineProperty(this, "code", { enumerable: false });
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
  /**
   * Called when the client has taken nothing for the idle time, with the read's `cut`: the read
   * is cut only when `cut` is called (by whoever wants its slot, `read_slots.ts`), and the result
   * is called to withdraw `cut` once the client pulls again or the read ends. Without it the read
   * is cut at the idle time.
   */
  overdue?: (cut: () => void) => () => void;
  /**
   * The node's log, where a cut is told in one line of its format, as the SSE answers' cut-off is
   * (`openai_answers.ts`); default none. `Deno.serve` prints an errored body's error itself,
   * outside that log (not JSON under `--log-format json`): see {@link sized}.
   */
  log?: (line: string) => void;
  /**
   * What was read (the request's path), named in the cut's message and log line; default none.
   */
  path?: string;
  /**
   * The answer declared its length (`Content-Length`). A cut then closes the body short of it:
   * the runtime drops the connection (the client's read fails) and prints nothing. A body without
   * one (a chunked answer, a CAR stream) is errored instead, which `Deno.serve` prints: closed, its
   * last chunk would tell the client it had the whole answer.
   */
  sized?: boolean;
}

/**
 * `body`, calling `release` (once) when it has been read to its end, has failed, was cancelled,
 * or was cut because its client took nothing for `idle.timeoutMs` (at once, or once
 * `idle.overdue`'s `cut` is called): then `body` is cancelled (the store's read stops) and the
 * stream errors with a {@link ClientIdleError}, so the server drops the connection. `release` is
 * told whether the client ended the read early (it went away, or was cut), not the body's end or
 * failure.
 * Pulls one piece of `body` at a time and hands it over in pieces of at most
 * {@link READ_PIECE_BYTES}, so it buffers nothing of its own beyond the piece being handed over.
 */
export function slotHeldBody(
  body: ReadableStream<Uint8Array>,
  release: (early: boolean) => void,
  idle: ReadIdle = {},
): ReadableStream<Uint8Array> {
  const timeoutMs = idle.timeoutMs ?? READ_IDLE_TIMEOUT_MS;
  const timers = idle.timers ?? SYSTEM_TIMERS;
  const reader = body.getReader();
  /** What is left of the store's last piece, handed over {@link READ_PIECE_BYTES} at a time. */
  let rest: Uint8Array = new Uint8Array(0);
  let timer: unknown;
  /** Takes this read off the wanted-slot list (`idle.overdue`) while it is on it. */
  let withdraw: (() => void) | undefined;
  /** Whether the slot was given back: a `cut` called after that does nothing. */
  let ended = false;
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const disarm = () => {
    if (timer !== undefined) timers.clearTimeout(timer);
    timer = undefined;
    withdraw?.();
    withdraw = undefined;
  };
  const end = (early: boolean) => {
    ended = true;
    disarm();
    release(early);
  };
  const cut = () => {
    if (ended) return;
    ended = true;
    disarm();
    const of = idle.path === undefined ? "" : ` of ${idle.path}`;
    const error = new ClientIdleError(
      `a client read nothing of its answer${of} for ${timeoutMs} ms: the read was cut, its ` +
        "slot freed",
    );
    if (idle.stats) idle.stats.idleTimeouts++;
    release(true);
    // Told by the node's log, in its format (stop 78, as the SSE cut-off since s77 F6).
    idle.log?.(`http: ${error.message}`);
    if (idle.sized) controller.close();
    else controller.error(error);
    reader.cancel(error).catch(() => {});
  };
  // Armed while the client owes the next pull: from the body's handing over, and after each piece.
  // The rule of the SSE answers' cut-off (`openai_answers.ts`, `waitingSince`), not its code: that
  // one keeps one lazy timer on a clock because it hands over an event per token, where re-arming
  // per event cost the main thread; a read's 16 KiB pieces are few, and its timers have no clock.
  const arm = () => {
    timer = timers.setTimeout(() => {
      timer = undefined;
      if (idle.overdue === undefined) return cut();
      const taken = idle.overdue(cut);
      // `overdue` may have cut the read at once (its slot was wanted already).
      if (ended) taken();
      else withdraw = taken;
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
          end(false);
          throw error;
        }
        if (next.done) {
          end(false);
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
      end(true);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
