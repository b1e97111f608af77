/**
 * Messages between a model and its workers, posted together: what one side posts within one
 * microtask checkpoint goes as one message, an array, instead of one message each.
 *
 * Why: with a batch of n generations on a worker, a tick answers n steps at once, and the main
 * side, hearing them, asks for the n next steps at once. Each message costs both threads a
 * structured clone, an event and a wake-up; measured on the 2-core VM (Deno 2.9.6, 8 steps'
 * requests and replies of the real shape going back and forth), a round trip cost 155–280 µs
 * posted one by one against 60–100 µs as one array each way.
 *
 * Order is kept: a message that must carry transferred buffers first sends what is queued
 * ({@link BatchedPost.flush}), then itself alone. A receiver reads either form with
 * {@link eachMessage}. Neither protocol's messages are arrays, so a batch cannot be mistaken
 * for one.
 *
 * @module
 */

/** Posts messages, those of one microtask checkpoint as one array (see the module doc). */
export class BatchedPost<T> {
  readonly #post: (message: T | T[], transfer?: Transferable[]) => void;
  readonly #failed: (messages: T[], error: unknown) => void;
  #queue: T[] = [];

  /**
   * @param post Posts one message (a message alone, or an array of several), moving `transfer`.
   * @param failed Called with the messages of a post that threw (one not structured-cloneable,
   *   say), which reached nobody: they are answered here, as they cannot be by the receiver.
   */
  constructor(
    post: (message: T | T[], transfer?: Transferable[]) => void,
    failed: (messages: T[], error: unknown) => void,
  ) {
    this.#post = post;
    this.#failed = failed;
  }

  /**
   * Queue `message`; the queue is posted in a microtask, after whatever else runs in this
   * checkpoint has queued its own. A message with buffers to `transfer` goes at once, alone,
   * after what is queued (so the receiver sees messages in the order they were posted); a
   * failure to post it throws here.
   */
  post(message: T, transfer: Transferable[] = []): void {
    if (transfer.length > 0) {
      this.flush();
      this.#post(message, transfer);
      return;
    }
    this.#queue.push(message);
    if (this.#queue.length === 1) queueMicrotask(() => this.flush());
  }

  /** Post what is queued now (a message alone, or an array of several); nothing if empty. */
  flush(): void {
    if (this.#queue.length === 0) return;
    const queue = this.#queue;
    this.#queue = [];
    try {
      this.#post(queue.length === 1 ? queue[0] : queue);
    } catch (error) {
      this.#failed(queue, error);
    }
  }

  /** Forget what is queued (its receiver is gone). */
  discard(): void {
    this.#queue = [];
  }
}

/** Each message `data` carries: itself, or the elements of a batch posted by {@link BatchedPost}. */
export function eachMessage<T>(data: T | T[]): readonly T[] {
  return Array.isArray(data) ? data : [data];
}
