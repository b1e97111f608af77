/**
 * The ValidatorActor's open challenges (`validator_actor.ts`): which receipts have a challenge
 * open here (not to be finalized) and how many each worker has, so one worker cannot fill the
 * validator's queue. Owned by the actor, read and written only inside its `receive`. Not part
 * of the public API.
 *
 * @module
 */

/** Open challenges here, by receipt and counted per worker. */
export class ChallengeHolds {
  /** Receipts with an open challenge here (not to be finalized), and their worker (hex). */
  readonly #held = new Map<string, string>();
  /** Open challenges per worker (hex): bounded, so one worker cannot fill the queue. */
  readonly #openByWorker = new Map<string, number>();

  /** How many challenges are open here. */
  get size(): number {
    return this.#held.size;
  }

  /** Whether a challenge on `id` is open here. */
  has(id: string): boolean {
    return this.#held.has(id);
  }

  /** How many challenges of `worker` (hex) are open here. */
  openOf(worker: string): number {
    return this.#openByWorker.get(worker) ?? 0;
  }

  /** A challenge opened on `id`: its receipt is not paid until the challenge ends. */
  hold(id: string, worker: string): void {
    this.#held.set(id, worker);
    this.#openByWorker.set(worker, (this.#openByWorker.get(worker) ?? 0) + 1);
  }

  /** The challenge on `id` ended (and its own fraud proof, if any, was settled). */
  release(id: string): void {
    const worker = this.#held.get(id);
    if (worker === undefined) return;
    this.#held.delete(id);
    const open = (this.#openByWorker.get(worker) ?? 1) - 1;
    if (open > 0) this.#openByWorker.set(worker, open);
    else this.#openByWorker.delete(worker);
  }
}
