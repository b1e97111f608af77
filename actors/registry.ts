/**
 * The name registry of one actor system: every actor and supervisor holds a unique name while
 * it exists, so `system.lookup("node/storage")` finds it and two parts of a node can never both
 * believe they own the same name. Names are taken verbatim; a `/`-separated hierarchy such as
 * `"node/inference/job-42"` is a convention, not enforced.
 *
 * @module
 */

import { InvalidNameError, NameTakenError } from "./errors.ts";

/** Name → owner map with collision checks. `T` is what is registered (refs, supervisors). */
export class Registry<T> {
  #entries = new Map<string, T>();

  /**
   * Claims `name` for `owner`.
   *
   * @throws {InvalidNameError} if the name is not a non-empty string.
   * @throws {NameTakenError} if another owner holds it.
   */
  register(name: string, owner: T): void {
    if (typeof name !== "string" || name.length === 0 || name.trim() !== name) {
      throw new InvalidNameError(name);
    }
    const existing = this.#entries.get(name);
    if (existing !== undefined && existing !== owner) throw new NameTakenError(name);
    this.#entries.set(name, owner);
  }

  /** Releases `name` if `owner` holds it (a stale owner cannot evict a newer one). */
  unregister(name: string, owner: T): void {
    if (this.#entries.get(name) === owner) this.#entries.delete(name);
  }

  /** The owner of `name`, if any. */
  get(name: string): T | undefined {
    return this.#entries.get(name);
  }

  /** Whether `name` is held. */
  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** All registered names, in registration order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** Number of registered names. */
  get size(): number {
    return this.#entries.size;
  }
}
