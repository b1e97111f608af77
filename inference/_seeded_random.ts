/**
 * The seeded PRNG behind the built-in models' weights: xoshiro128** seeded through
 * splitmix32, with Box–Muller normals. Weights must be a pure function of the seed (the model
 * CID is then a pure function of size and seed), and JS has no seedable `Math.random`.
 *
 * Not the sampling RNG: generation uses the counter-based `counter_rng.ts`, which must be
 * random-access by position; this one is a fast sequential stream for filling tensors.
 *
 * @module
 */

/** A deterministic stream of uniform and normal floats derived from a seed. */
export class SeededRandom {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;
  #spare: number | null = null;

  /**
   * A stream positioned at the start for `seed`.
   *
   * @param seed Any safe integer; equal seeds give equal streams.
   */
  constructor(seed: number) {
    // splitmix32 over both 32-bit halves, so seeds above 2^32 still differ.
    let state = (seed >>> 0) ^ Math.imul(Math.floor(seed / 0x1_0000_0000) | 0, 0x9e3779b9);
    const next = (): number => {
      state = (state + 0x9e3779b9) | 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#s0 = next();
    this.#s1 = next();
    this.#s2 = next();
    this.#s3 = next();
  }

  /** Next uniform 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5), 7), 9) >>> 0;
    const t = this.#s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    return result;
  }

  /** Uniform in (0, 1): never exactly 0, so `Math.log` is safe. */
  uniform(): number {
    return (this.nextUint32() + 0.5) / 0x1_0000_0000;
  }

  /** Standard normal (Box–Muller, the second value of each pair is kept for the next call). */
  normal(): number {
    if (this.#spare !== null) {
      const v = this.#spare;
      this.#spare = null;
      return v;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const theta = 2 * Math.PI * this.uniform();
    this.#spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** A new Float32Array of `n` normals with standard deviation `std`. */
  normals(n: number, std: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * std;
    return out;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
