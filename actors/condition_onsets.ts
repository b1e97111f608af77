/**
 * When each of a health check's own conditions began, kept by the checker across checks: a
 * condition the check infers from a state (a store opened read-only, free space under a floor)
 * has no time of its own, and stamping it "now" at each check made its `since`, an alert's age,
 * always 0 (review verify4, F5).
 *
 * @module
 */

/**
 * The first time each condition was seen, forgotten once a check does not see it.
 *
 * @example
 * ```ts
 * import { ConditionOnsets } from "./condition_onsets.ts";
 * const onsets = new ConditionOnsets();
 * onsets.check((since) => [since("disk_low", 1000)]); // [1000]
 * onsets.check((since) => [since("disk_low", 5000)]); // [1000]: the same condition
 * onsets.check(() => []); // gone: forgotten
 * onsets.check((since) => [since("disk_low", 9000)]); // [9000]: began again
 * ```
 */
export class ConditionOnsets {
  #since = new Map<string, number>();

  /**
   * Run one check: `since(key, now)` answers when condition `key` began (`now` the first time it
   * is seen); a condition the check does not ask about is forgotten, so it begins anew if it
   * comes back.
   */
  check<T>(run: (since: (key: string, now: number) => number) => T): T {
    const seen = new Set<string>();
    const result = run((key, now) => {
      seen.add(key);
      const first = this.#since.get(key) ?? now;
      this.#since.set(key, first);
      return first;
    });
    for (const key of [...this.#since.keys()]) if (!seen.has(key)) this.#since.delete(key);
    return result;
  }
}
