/**
 * The work a `ReplicatedStore` goes on with after its caller has its answer: the copies
 * past a put's write quorum, the late answers of a read's slower replicas, and read repairs.
 * `ReplicatedStore.flush` waits for it ({@link BackgroundWork.settle}), and the bytes of the
 * chunks it holds are bounded ({@link BackgroundWork.bytes}, {@link BackgroundWork.room}): a put
 * waits for room, a read repair past the bound is not sent. The store owns one; its reads
 * (`_replica_reads.ts`) and repairs (`_replica_repair.ts`) share it. Not part of the public API.
 *
 * @module
 */

/** A store's background work and the bytes it holds (see the module doc). */
export class BackgroundWork {
  readonly #background = new Set<Promise<unknown>>();
  /**
   * Bytes of the chunks whose puts resolved while copies past the quorum are in flight, and of
   * the read repairs in flight.
   */
  bytes = 0;
  /** `ReplicatedStoreOptions.maxBackgroundBytes`. */
  readonly max: number;

  /** Background work whose chunks hold at most `max` bytes. */
  constructor(max: number) {
    this.max = max;
  }

  /**
   * Resolves when the background work in `tasks` has finished (default: all of it, put copies
   * and read repairs).
   */
  async settle(tasks: Set<Promise<unknown>> = this.#background): Promise<void> {
    while (tasks.size > 0) await Promise.allSettled([...tasks]);
  }

  /**
   * Resolves once the copies past the quorum hold at most `maxBackgroundBytes` (each that lands or
   * fails gives back its put's bytes); rejects with `signal`'s reason if it aborts first.
   */
  async room(signal: AbortSignal | undefined): Promise<void> {
    const { promise: abort, resolve } = Promise.withResolvers<void>();
    const onAbort = () => resolve();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      while (this.bytes > this.max && this.#background.size > 0) {
        signal?.throwIfAborted();
        const settled = [...this.#background].map((p) => p.then(() => {}, () => {}));
        await Promise.race([abort, ...settled]);
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Background work: `ReplicatedStore.flush` waits for it, and `tasks` (a caller's own set) holds
   * it too.
   */
  track(p: Promise<unknown>, tasks?: Set<Promise<unknown>>): void {
    this.#background.add(p);
    tasks?.add(p);
    p.finally(() => {
      this.#background.delete(p);
      tasks?.delete(p);
    }).catch(() => {});
  }
}
