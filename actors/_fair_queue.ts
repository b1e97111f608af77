/**
 * {@link FairQueue}: the waiting jobs of one model, served round-robin across the clients that
 * queued them and first-in first-out within one client. A client that queued sixty jobs does not
 * make another client's single job wait behind all sixty: when a seat frees, the next job is the
 * oldest one of the client after the one served last, so a client's second job waits behind every
 * other client's first (as LLM servers serve their waiting clients in turn).
 *
 * The queue is a ring of per-client FIFOs and a cursor on the client served last. A client new to
 * the ring joins it just before that client: it is served after every client already waiting and
 * before the one just served goes again. The client served last stays in the ring while the
 * cursor is on it, even with nothing queued, so its next job waits its turn too.
 *
 * An entry may stop being live while it sits here (a job cancelled in the queue, its end note
 * still on the way to the actor): it keeps its slot in its FIFO until {@link FairQueue.remove}
 * drops it, but it is never taken, counted or given a place. Private to the InferenceActor.
 *
 * @example
 * ```ts
 * import { FairQueue } from "./_fair_queue.ts";
 *
 * const queue = new FairQueue<string>(() => true);
 * queue.served("a"); // a's first job started at once
 * for (const job of ["a2", "a3"]) queue.push("a", job);
 * queue.push("b", "b1");
 * console.log(queue.order()); // ["b1", "a2", "a3"]
 * ```
 *
 * @module
 */

/**
 * The most jobs a model's queue may be configured to hold (`inference.queueLimit`). The
 * InferenceActor retells every waiting job its place on each push, start and cancel
 * ({@link FairQueue.order}, linear in the waiting jobs), so filling a queue of n places costs
 * about n²/2 steps of the actor's turns. Measured on 6 December 2026 (2 shared CPU cores,
 * `order_cost.ts` of review s73): filling 4,096 places with one-job clients took 0.3 to 0.4 s of
 * `order()` in all, under 1 ms for the last one; 10,000 took 3 to 4 s. And a queue that long is
 * already hours of waiting on an LLM node (4,096 jobs of 10 s on 4 seats: almost 3 hours), so a
 * longer one only holds clients that would give up first. Was 100,000, when `order()` was
 * quadratic: 30 s of it to fill 10,000 places (review s73).
 */
export const MAX_QUEUE_LIMIT = 4_096;

/** Waiting entries per client, served in turn; see the module doc. */
export class FairQueue<T> {
  readonly #live: (entry: T) => boolean;
  /** Each client's waiting entries, oldest first. */
  readonly #fifos = new Map<string, T[]>();
  /** Whose FIFO each entry sits in. */
  readonly #clientOf = new Map<T, string>();
  /** The clients in serving order, from the one after {@link #cursor} round to it. */
  readonly #ring: string[] = [];
  /** Index in {@link #ring} of the client served last; -1 before any, or once it left the ring. */
  #cursor = -1;

  /**
   * Create an empty queue.
   *
   * @param live Whether an entry still waits (an ended one is skipped until it is removed).
   */
  constructor(live: (entry: T) => boolean) {
    this.#live = live;
  }

  /** Queue `entry` behind `client`'s other waiting entries. */
  push(client: string, entry: T): void {
    this.#join(client).push(entry);
    this.#clientOf.set(entry, client);
  }

  /**
   * A job of `client` started without waiting (a seat was free): the cursor moves to `client`,
   * so its next queued job waits for every other client's turn, as if it had been taken here.
   */
  served(client: string): void {
    this.#join(client);
    this.#moveCursor(this.#ring.indexOf(client));
  }

  /**
   * Take the next live entry in serving order out of the queue and move the cursor to its
   * client; undefined when no live entry waits.
   */
  takeNext(): T | undefined {
    const clients = this.#ring.length;
    // Step `clients` lands on the cursor's own client: it is asked last.
    for (let step = 1; step <= clients; step++) {
      const at = (this.#cursor + step) % clients;
      const fifo = this.#fifos.get(this.#ring[at])!;
      const index = fifo.findIndex(this.#live);
      if (index < 0) continue;
      const [entry] = fifo.splice(index, 1);
      this.#clientOf.delete(entry);
      this.#moveCursor(at);
      return entry;
    }
    return undefined;
  }

  /** Drop `entry` from the queue, live or not; false when it is not here. */
  remove(entry: T): boolean {
    const client = this.#clientOf.get(entry);
    if (client === undefined) return false;
    this.#clientOf.delete(entry);
    const fifo = this.#fifos.get(client)!;
    fifo.splice(fifo.indexOf(entry), 1);
    if (fifo.length === 0 && this.#ring[this.#cursor] !== client) this.#leave(client);
    return true;
  }

  /** Whether `entry` is in the queue (live or not). */
  has(entry: T): boolean {
    return this.#clientOf.has(entry);
  }

  /**
   * The place `entry` would be served at if nothing else arrived (1: next), counting only live
   * entries; 0 for an entry that is not here or not live.
   */
  positionOf(entry: T): number {
    return this.order().indexOf(entry) + 1;
  }

  /**
   * The live entries in the order they would be served if nothing else arrived: round by round,
   * each client's oldest entry not yet served, clients in their turn.
   *
   * Linear in the entries waiting: the InferenceActor runs it on every push, start and cancel to
   * retell places (review s73: one splice per client that ran out made it quadratic, 30 s of the
   * actor's turns to fill a queue with 10,000 one-job clients). Each round walks only the clients
   * that still have an entry for it and keeps them by compacting the list in place, so a client
   * costs one visit per entry it has, plus the one that drops it.
   */
  order(): T[] {
    const clients = this.#ring.length;
    // The clients with entries left, in their turn, and where each one's next entry is looked for.
    const fifos: T[][] = [];
    const next: number[] = [];
    for (let step = 1; step <= clients; step++) {
      const fifo = this.#fifos.get(this.#ring[(this.#cursor + step) % clients])!;
      if (fifo.length === 0) continue;
      fifos.push(fifo);
      next.push(0);
    }
    const order: T[] = [];
    while (fifos.length > 0) {
      let kept = 0;
      for (let i = 0; i < fifos.length; i++) {
        const fifo = fifos[i];
        let at = next[i];
        while (at < fifo.length && !this.#live(fifo[at])) at++; // ended: no turn
        if (at === fifo.length) continue; // nothing left for this round or any later one
        order.push(fifo[at]);
        fifos[kept] = fifo;
        next[kept++] = at + 1;
      }
      fifos.length = next.length = kept;
    }
    return order;
  }

  /** Live entries waiting, over all clients. */
  get liveCount(): number {
    let live = 0;
    for (const fifo of this.#fifos.values()) {
      for (const entry of fifo) if (this.#live(entry)) live++;
    }
    return live;
  }

  /** Live entries `client` has waiting. */
  liveCountOf(client: string): number {
    return this.#fifos.get(client)?.filter(this.#live).length ?? 0;
  }

  /** `client`'s FIFO, adding the client to the ring just before the cursor's when new. */
  #join(client: string): T[] {
    let fifo = this.#fifos.get(client);
    if (fifo !== undefined) return fifo;
    fifo = [];
    this.#fifos.set(client, fifo);
    if (this.#cursor < 0) this.#ring.push(client); // the ring starts at 0: the end is last
    else this.#ring.splice(this.#cursor++, 0, client);
    return fifo;
  }

  /** Put the cursor on the client at `at`; the one it leaves goes when it has nothing queued. */
  #moveCursor(at: number): void {
    const left = this.#ring[this.#cursor];
    this.#cursor = at;
    if (left !== undefined && left !== this.#ring[at] && this.#fifos.get(left)!.length === 0) {
      this.#leave(left);
    }
  }

  /** Take `client`, whose FIFO is empty, out of the ring, the cursor kept on its client. */
  #leave(client: string): void {
    const at = this.#ring.indexOf(client);
    this.#ring.splice(at, 1);
    this.#fifos.delete(client);
    // Never the cursor's own client (both callers make sure): the cursor keeps naming the same
    // client when one before it in the ring leaves.
    if (at < this.#cursor) this.#cursor--;
  }
}
