/**
 * A set of strings that can also be read by position: an array and an index of where each string
 * sits, a removal moving the last entry into the gap. What `given_chunks.ts` keeps each holder's
 * record in, so an audit round draws a holder's chunks by random position
 * (`audit_round.ts`, `planFromGiven`) without copying a record of a million chunks every round
 * (review s81 vaudit, F4). Not part of the public API.
 *
 * @module
 */

/** Read-only access by position: what a round draws from (a plain array is one too). */
export interface IndexedChunks {
  /** How many there are. */
  readonly length: number;
  /** The one at `index` (0 ≤ index < length). */
  at(index: number): string | undefined;
}

/** A set of strings with positions; the order is insertion order until something is deleted. */
export class IndexedKeys implements IndexedChunks, Iterable<string> {
  readonly #items: string[] = [];
  readonly #index = new Map<string, number>();

  /** How many are held. */
  get size(): number {
    return this.#items.length;
  }

  /** As {@link size} ({@link IndexedChunks}). */
  get length(): number {
    return this.#items.length;
  }

  /** The key at `index`. */
  at(index: number): string | undefined {
    return this.#items[index];
  }

  /** Whether `key` is held. */
  has(key: string): boolean {
    return this.#index.has(key);
  }

  /** Hold `key`; false when it was held already. */
  add(key: string): boolean {
    if (this.#index.has(key)) return false;
    this.#index.set(key, this.#items.length);
    this.#items.push(key);
    return true;
  }

  /** Drop `key` (the last key takes its place); false when it was not held. */
  delete(key: string): boolean {
    const at = this.#index.get(key);
    if (at === undefined) return false;
    const last = this.#items.pop()!;
    this.#index.delete(key);
    if (at < this.#items.length) {
      this.#items[at] = last;
      this.#index.set(last, at);
    }
    return true;
  }

  /** The keys, by position. */
  [Symbol.iterator](): Iterator<string> {
    return this.#items[Symbol.iterator]();
  }
}
