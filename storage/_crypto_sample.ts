/**
 * Uniform samples drawn with the crypto RNG, so that a peer cannot predict which of its chunks
 * (or a node's files) an audit will ask for. Not part of the public API.
 *
 * @module
 */

/** A uniform integer in [0, n) from `crypto.getRandomValues` (rejection sampling: no bias). */
export function secureBelow(n: number): number {
  if (n <= 1) return 0;
  const limit = Math.floor(0x1_0000_0000 / n) * n;
  const word = new Uint32Array(1);
  do crypto.getRandomValues(word); while (word[0] >= limit);
  return word[0] % n;
}

/**
 * Up to `k` distinct items of `items`, uniformly (a partial Fisher–Yates over a copy), drawn
 * with `randomBelow` (default {@link secureBelow}; tests inject fixed draws).
 */
export function sample<T>(items: Iterable<T>, k: number, randomBelow = secureBelow): T[] {
  const pool = [...new Set(items)];
  const n = Math.min(k, pool.length);
  for (let i = 0; i < n; i++) {
    const j = i + randomBelow(pool.length - i);
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, n);
}
