/**
 * Where a queued job stands, for whoever streams it on. A port that queues a job for a slot
 * calls `SubmitOptions.onQueued` with the job's place in its model's queue (1: next to get
 * a slot) each time it changes, and 0 once the job leaves the queue; a streamer passes
 * {@link QueuePosition.update} as that callback and races {@link QueuePosition.next} against its
 * read of the job's first token, reporting each position it gets: the `queued` event of
 * `inference.submit` (`docs/PROTOCOL.md`), the `queued` message of `/v1/stream`, an SSE comment
 * on the OpenAI routes (`docs/API.md`).
 *
 * With `repeatMs` the last position is reported again after that long without a change: a
 * requester that waits behind jobs it cannot see (another router's, the worker's own clients')
 * then keeps hearing that the job is alive, and does not take a deep queue for a stalled worker.
 *
 * ```ts
 * import { QueuePosition } from "./queue_position.ts";
 *
 * const queue = new QueuePosition();
 * queue.update(3); // the port queued the job third
 * console.log(await queue.next()); // 3
 * queue.update(1);
 * console.log(await queue.next()); // 1
 * queue.close();
 * ```
 *
 * @module
 */
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";

/** Options of {@link QueuePosition}. */
export interface QueuePositionOptions {
  /** Report an unchanged position again after this long, ms; 0 (the default): only changes. */
  repeatMs?: number;
  /** Clock of the repeats (default the real one; tests pass a fake clock). */
  timers?: ConnectionTimers;
}

/**
 * Where a queued job stands, for whoever streams it on: fed by `SubmitOptions.onQueued`
 * ({@link QueuePosition.update}), read with {@link QueuePosition.next}; the module doc tells
 * the whole protocol.
 */
export class QueuePosition {
  readonly #repeatMs: number;
  readonly #timers: ConnectionTimers;
  /** The port's last word: the job's place in the queue, 0 when it is not queued. */
  #position = 0;
  /** The last position {@link next} gave. */
  #reported = 0;
  #waiter: PromiseWithResolvers<number> | undefined;
  #timer: unknown;
  #closed = false;

  /**
   * Create it, with nothing to report until the port calls {@link update}.
   *
   * @param options See {@link QueuePositionOptions}.
   */
  constructor(options: QueuePositionOptions = {}) {
    this.#repeatMs = options.repeatMs ?? 0;
    this.#timers = options.timers ?? SYSTEM_TIMERS;
  }

  /**
   * The port's callback (`SubmitOptions.onQueued`): the job is queued at `position`
   * (1: next), or no longer queued (0). Bound, so it can be passed as it is.
   */
  readonly update = (position: number): void => {
    if (this.#closed || !(Number.isSafeInteger(position) && position >= 0)) return;
    this.#position = position;
    if (position === 0) this.#disarm();
    else if (position !== this.#reported) this.#give(position);
  };

  /**
   * The next position to report: at once when the job is queued at a place not reported yet,
   * else when its place changes, or (with `repeatMs`) the same place again after that long.
   * Stays pending while the job is not queued, and for ever once closed: race it against the
   * read of the job's token, never await it alone.
   */
  next(): Promise<number> {
    const waiting = this.#waiter;
    if (waiting !== undefined) return waiting.promise;
    const waiter = this.#waiter = Promise.withResolvers<number>();
    const position = this.#position;
    if (!this.#closed && position > 0) {
      if (position !== this.#reported) this.#give(position);
      else if (this.#repeatMs > 0) {
        this.#timer = this.#timers.setTimeout(() => this.#give(this.#position), this.#repeatMs);
      }
    }
    return waiter.promise;
  }

  /** Nothing more to report (the job's first token came, or it ended): stop the repeats. */
  close(): void {
    this.#closed = true;
    this.#disarm();
  }

  #give(position: number): void {
    const waiter = this.#waiter;
    if (waiter === undefined || position === 0 || this.#closed) return;
    this.#disarm();
    this.#waiter = undefined;
    this.#reported = position;
    waiter.resolve(position);
  }

  #disarm(): void {
    this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Whichever comes first: `read` (the job's next token), or, while `queue` is open, a place in
 * the queue to report. The read goes on behind a report: pass the same promise again next time.
 * A rejected `read` rejects.
 *
 * @param read The read in progress.
 * @param queue The job's place in the queue; absent: only the read.
 * @returns `{ read }` with what it read, or `{ position }` to report.
 */
export async function readOrQueued<T>(
  read: Promise<T>,
  queue: QueuePosition | undefined,
): Promise<{ read: T } | { position: number }> {
  if (queue === undefined) return { read: await read };
  return await Promise.race([
    read.then((value) => ({ read: value })),
    queue.next().then((position) => ({ position })),
  ]);
}
