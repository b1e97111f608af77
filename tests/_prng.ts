/**
 * The tests' seeded PRNG (mulberry32): small, fast and deterministic, so a test that draws
 * random frames or splits replays exactly from its seed. Shared by the protocol fuzzer and the
 * stream tests; not for anything that needs statistical quality.
 *
 * @module
 */

/** A uniform generator on [0, 1) fully determined by `seed` (taken as an unsigned 32-bit int). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
