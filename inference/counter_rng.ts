/**
 * The counter-based RNG of sampled generation: the uniform draw for output token `t` is a pure
 * function of `(seed, t)`, with no hidden state. That is what makes a sampled output
 * reproducible (same seed → same draws), resumable (a worker restarting at token k needs only k)
 * and checkable (a validator recomputes the draw for any single position).
 *
 * Exact definition (validators in other languages must match it bit for bit):
 *
 * ```
 * msg = ASCII("veriflow/counter-rng/v1") ‖ int64_be(seed) ‖ uint64_be(t)
 * u   = (first 53 bits of SHA-256(msg), as an unsigned integer) / 2^53
 * ```
 *
 * `seed` is any safe integer, written as 64-bit two's complement; `t` is a non-negative safe
 * integer. `u` is in [0, 1) and has the full 53-bit resolution of a double.
 *
 * @module
 */
import { sha256 } from "../protocols/hash.ts";
import { InvalidGenerationParamsError } from "./errors.ts";

/** Domain-separation prefix, so these draws never collide with other SHA-256 uses. */
const DOMAIN = new TextEncoder().encode("veriflow/counter-rng/v1");
const SEED_OFFSET = DOMAIN.length;
const POSITION_OFFSET = SEED_OFFSET + 8;
/** 2^-53: scales a 53-bit integer into [0, 1). */
const TWO_POW_MINUS_53 = 2 ** -53;
/** 2^21: shifts word 0 above the 21 bits taken from word 1. */
const TWO_POW_21 = 2 ** 21;

/**
 * The uniform draw in [0, 1) for output position `position` under `seed`.
 *
 * @example
 * ```ts
 * import { counterUniform } from "./counter_rng.ts";
 * counterUniform(42, 0) === counterUniform(42, 0); // true: a pure function
 * ```
 * @throws {InvalidGenerationParamsError} when `seed` is not a safe integer or `position` is
 * not a non-negative safe integer.
 */
export function counterUniform(seed: number, position: number): number {
  if (!Number.isSafeInteger(seed)) {
    throw new InvalidGenerationParamsError(`seed must be a safe integer, got ${seed}`);
  }
  if (!Number.isSafeInteger(position) || position < 0) {
    throw new InvalidGenerationParamsError(`position must be a non-negative integer`);
  }
  const msg = new Uint8Array(POSITION_OFFSET + 8);
  msg.set(DOMAIN, 0);
  const view = new DataView(msg.buffer);
  view.setBigInt64(SEED_OFFSET, BigInt(seed));
  view.setBigUint64(POSITION_OFFSET, BigInt(position));
  const digest = sha256(msg);
  const d = new DataView(digest.buffer, digest.byteOffset, digest.byteLength);
  // 53 bits = the 32 bits of word 0 followed by the top 21 bits of word 1.
  const high = d.getUint32(0);
  const low = d.getUint32(4) >>> 11;
  return (high * TWO_POW_21 + low) * TWO_POW_MINUS_53;
}
