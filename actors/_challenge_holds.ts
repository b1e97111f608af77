/**
 * The ValidatorActor's open challenges (`validator_actor.ts`): which receipts have a challenge
 * open here (not to be finalized), how many each worker has, and which were taken over on whose
 * "proof withheld" claim. Owned by the actor, read and written only inside its `receive`. Not
 * part of the public API.
 *
 * Two counts per worker, because they bound different things: the challenges this validator's
 * own coin drew (a worker past its cap has its new receipts refused: it floods the validator),
 * and all open ones, takeovers included (a takeover past the cap is dropped instead: a peer's
 * claim must never get an honest worker's receipts refused).
 *
 * @module
 */

/** One open challenge: the worker (hex) and, for a takeover, the claimant (hex). */
interface Hold {
  worker: string;
  claimant?: string;
}

/** Open challenges here, by receipt, counted per worker and per claimant. */
export class ChallengeHolds {
  /** Receipts with an open challenge here (not to be finalized). */
  readonly #held = new Map<string, Hold>();
  /** Open challenges per worker (hex), drawn and taken over alike. */
  readonly #openByWorker = new Map<string, number>();
  /** Open challenges per worker (hex) that this validator drew itself (its coin, a contradiction). */
  readonly #drawnByWorker = new Map<string, number>();
  /** Open takeovers per claimant (hex). */
  readonly #byClaimant = new Map<string, number>();

  /** How many challenges are open here. */
  get size(): number {
    return this.#held.size;
  }

  /** Whether a challenge on `id` is open here. */
  has(id: string): boolean {
    return this.#held.has(id);
  }

  /** How many challenges of `worker` (hex) are open here, takeovers included. */
  openOf(worker: string): number {
    return this.#openByWorker.get(worker) ?? 0;
  }

  /** How many challenges of `worker` (hex) this validator drew itself and are open here. */
  drawnOf(worker: string): number {
    return this.#drawnByWorker.get(worker) ?? 0;
  }

  /** How many takeovers on `claimant`'s (hex) claims are open here. */
  takenOverFor(claimant: string): number {
    return this.#byClaimant.get(claimant) ?? 0;
  }

  /** The claimant (hex) whose claim the challenge on `id` was taken over on; undefined if drawn. */
  claimantOf(id: string): string | undefined {
    return this.#held.get(id)?.claimant;
  }

  /**
   * A challenge opened on `id`: its receipt is not paid until the challenge ends. `claimant`:
   * taken over on that peer's "proof withheld" claim; absent: drawn by this validator.
   */
  hold(id: string, worker: string, claimant?: string): void {
    this.#held.set(id, { worker, claimant });
    bump(this.#openByWorker, worker, 1);
    if (claimant === undefined) bump(this.#drawnByWorker, worker, 1);
    else bump(this.#byClaimant, claimant, 1);
  }

  /** The challenge on `id` ended (and its own fraud proof, if any, was settled). */
  release(id: string): void {
    const hold = this.#held.get(id);
    if (hold === undefined) return;
    this.#held.delete(id);
    bump(this.#openByWorker, hold.worker, -1);
    if (hold.claimant === undefined) bump(this.#drawnByWorker, hold.worker, -1);
    else bump(this.#byClaimant, hold.claimant, -1);
  }
}

/** Add `by` to `key`'s count, forgetting a count that falls to 0. */
function bump(counts: Map<string, number>, key: string, by: number): void {
  const n = (counts.get(key) ?? 0) + by;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
