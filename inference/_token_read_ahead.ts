/**
 * Reading a job's tokens a few ahead of the wire, so the serving side of `inference.submit`
 * can send every token that is ready in one event. One read is kept outstanding while fewer
 * than `limit` tokens wait: when the requester (or the link to it) keeps up, each pull finds one
 * token and sends it alone, as before; when it falls behind, the tokens computed meanwhile go
 * out together — one frame, one write, one packet through each swarm host, instead of one per
 * token — and the worker is never more than `limit` tokens ahead of what was sent.
 *
 * @module
 */

/** Buffered reads of a stream, at most `limit` ahead; see the module doc. */
export class ReadAhead<T> {
  readonly #reader: ReadableStreamDefaultReader<T>;
  readonly #limit: number;
  readonly #buffer: T[] = [];
  #reading = false;
  #done = false;
  #waiter: (() => void) | undefined;

  /**
   * @param reader The stream to read (its errors end it, like its end: the caller learns the
   *   job's outcome elsewhere).
   * @param limit Most items kept ahead, and most returned by one {@link take}.
   */
  constructor(reader: ReadableStreamDefaultReader<T>, limit: number) {
    this.#reader = reader;
    this.#limit = Math.max(1, limit);
  }

  /** The items ready now (at least one, waiting for it), or `[]` once the stream ended. */
  async take(): Promise<T[]> {
    while (this.#buffer.length === 0 && !this.#done) {
      const ready = new Promise<void>((resolve) => this.#waiter = resolve);
      this.#fill();
      await ready;
    }
    const out = this.#buffer.splice(0, this.#limit);
    this.#fill(); // keep one read going while the wire takes these
    return out;
  }

  #fill(): void {
    if (this.#reading || this.#done || this.#buffer.length >= this.#limit) return;
    this.#reading = true;
    this.#reader.read().then(
      (result) => {
        if (result.done) this.#done = true;
        else this.#buffer.push(result.value);
      },
      () => {
        this.#done = true;
      },
    ).finally(() => {
      this.#reading = false;
      const waiter = this.#waiter;
      this.#waiter = undefined;
      waiter?.();
      this.#fill();
    });
  }
}
