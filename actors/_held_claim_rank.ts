/**
 * Where a claimant ranks among the authors of "proof withheld" claims held here that are equally
 * backed (`_validator_memory.ts`, `ClaimBacking.rank`): when the held claims' space is full and
 * every claimant of the least backed class holds as many claims, the claimant ranked highest
 * gives a claim. The rank is a hash of this validator's signature over the claimant's key (as the
 * challenge coin is over a receipt id, `proof/challenge.ts`): nobody without this validator's
 * secret key can compute it, each validator ranks keys otherwise, and it is the same across a
 * restart.
 *
 * Why not arrival order: claims of equals are alike in all the memory can see (a claim about a
 * receipt not here yet cannot be told from one about a made-up id), so a rule on order alone
 * drops the claim at some place in the order, and a flood that fills the space puts its claims
 * on the other side of the honest one — before it where the newest goes (review s76: 256 keys
 * pledging a penalty each, one claim each, before the honest claim), after it where the oldest
 * goes. Ranked by a secret, an honest claimant keeps its claim unless the flood brings as many
 * keys that rank above it as the space has places: against `k` flooding keys it stays with
 * probability 256 / (k + 1) at the least (every one of 256 such keys, 0.996), and a key cannot
 * draw again without a new pledge (a new claim of the same key only counts against that key).
 * That holds among equals only: a flood's claim of a higher class (about a receipt recorded here,
 * one per receipt, `_validator_memory.ts`) takes a place before the rank is asked, so `m` of them
 * make it (256 − m) / (k + 1); a receipt merely waiting for its worker's pledge no longer counts
 * (review s77 F1: any key can put one there, and such a flood made the rank moot).
 * Not part of the public API.
 *
 * @module
 */
import { sha256Hex } from "../protocols/hash.ts";
import type { Identity } from "../protocols/identity.ts";

const RANK_DOMAIN = "veriflow/held-claim-rank/v1:";
/**
 * Ranks kept (one per claimant key, about 200 bytes each): a claimant holding a claim is ranked
 * at each drop, and the held claims have at most 256 claimants, so 4,096 keeps every current one
 * with room for the flood that came and went; past it the cache starts afresh (a signature is
 * about 20 µs).
 */
const MAX_CACHED_RANKS = 4_096;

/** Ranks claimants for one validator (see the module doc). */
export class HeldClaimRank {
  readonly #identity: Identity;
  readonly #cache = new Map<string, string>();

  /**
   * @param identity The validator whose secret key ranks claimants.
   */
  constructor(identity: Identity) {
    this.#identity = identity;
  }

  /**
   * The rank of `claimant` (hex key): 64 hex digits; the highest goes first.
   *
   * @example
   * ```ts
   * import { Identity } from "../protocols/identity.ts";
   * import { HeldClaimRank } from "./_held_claim_rank.ts";
   * const rank = new HeldClaimRank(Identity.generate());
   * rank.of("ab".repeat(32)) === rank.of("ab".repeat(32)); // true
   * ```
   */
  of(claimant: string): string {
    let rank = this.#cache.get(claimant);
    if (rank !== undefined) return rank;
    const sig = this.#identity.sign(new TextEncoder().encode(RANK_DOMAIN + claimant));
    rank = sha256Hex(sig);
    if (this.#cache.size >= MAX_CACHED_RANKS) this.#cache.clear();
    this.#cache.set(claimant, rank);
    return rank;
  }
}
