/**
 * The simulation's seeded random numbers: one seed gives the same topology, the same roles and
 * the same chunk bytes on every run, so two runs differ only in what the runtime does.
 *
 * @module
 */

/** A uniform generator on [0, 1), fully determined by `seed` (a 32-bit unsigned integer). */
export function seededRandom(seed: number): () => number {
  // A 32-bit counter through an avalanche mix (splitmix32-style): every seed, even 0, gives a
  // well-spread sequence, and the state is one integer.
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}

/** An integer in [0, n) drawn from `random`. */
export function randomIndex(random: () => number, n: number): number {
  return Math.floor(random() * n);
}

/** `count` distinct integers of [0, n), in draw order (a partial Fisher–Yates shuffle). */
export function sampleIndices(random: () => number, n: number, count: number): number[] {
  const pool = Array.from({ length: n }, (_, i) => i);
  const k = Math.min(count, n);
  for (let i = 0; i < k; i++) {
    const j = i + randomIndex(random, n - i);
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, k);
}
