/**
 * The ValidatorActor's budget for taking over peers' "proof withheld" claims
 * (`_peer_verdicts.ts`, `#takeOverWithheld`). A claim costs its author nothing (stake is
 * self-pledged, keys are free), and each takeover costs this ledger a proof fetch and a full
 * validation, and the worker a proof served: without a budget, one key claiming every receipt
 * it sees turns this ledger's challenge rate from p into 1. So takeovers run on credit of their
 * own, not on the claimants' say:
 *
 * - **Bounded.** Each peer's receipt newly recorded here earns `p` credits (the validator's own
 *   challenge probability), up to {@link TAKEOVER_BURST}; a takeover spends one. Takeovers thus
 *   at most double the validation work the coin already does: at most
 *   `TAKEOVER_BURST + p × receipts` over any stretch, whoever claims and with how many keys.
 * - **Fair between claimants.** One claimant holds at most {@link MAX_OPEN_TAKEOVERS_PER_CLAIMANT}
 *   open takeovers at once, so no single key takes the whole burst.
 * - **A false claimant loses its weight.** A takeover the worker answered with valid proof data
 *   here (the claim was false here) is held against its claimant: at
 *   {@link MAX_FALSE_CLAIMS} such findings within one challenge window, its claims open no
 *   takeover here until the older finding is a window old. One false claim is forgiven: an
 *   honest claimant cut off from the worker for a while claims in good faith.
 *
 * A claim the budget refuses is still recorded and passed on (other ledgers judge it on their
 * own budget); this ledger just does not ask the worker on its word. Owned by the actor, read
 * and written only inside its `receive`. Not part of the public API.
 *
 * @module
 */

/**
 * Takeovers this ledger runs on credit at once: one withholding worker's receipts claimed by
 * several challengers are taken over together. Half the per-worker cap of open challenges
 * (`MAX_OPEN_CHALLENGES_PER_WORKER`, 16), so a burst of takeovers leaves a worker room.
 */
export const TAKEOVER_BURST = 8;
/** Open takeovers one claimant may hold at once: half the burst, so no key takes all of it. */
export const MAX_OPEN_TAKEOVERS_PER_CLAIMANT = 4;
/**
 * False claims (the worker served valid proof data here) within one challenge window that bench
 * a claimant: the first can be an honest claimant's network fault, the second is a pattern.
 */
export const MAX_FALSE_CLAIMS = 2;
/** Claimants whose false claims are remembered (oldest forgotten first): bounds the memory. */
const MAX_REMEMBERED_CLAIMANTS = 4096;
/** Credit is counted in millionths of a takeover: ten receipts at p = 0.1 make exactly one. */
const UNIT = 1_000_000;

/** Why a claim opens no takeover here (see {@link TakeoverBudget.refusal}). */
export type TakeoverRefusal = "no_budget" | "claimant_busy" | "claimant_benched";

/** Credit for takeovers, and the false claims held against their claimants. */
export class TakeoverBudget {
  /** Takeovers that may open now, in {@link UNIT}s (earned `p` per receipt). */
  #credits = TAKEOVER_BURST * UNIT;
  /** Per claimant (hex): until when (ms) each of its recent false claims counts, oldest first. */
  readonly #falseUntil = new Map<string, number[]>();

  /** Takeovers that may open now (whole ones). */
  get credits(): number {
    return Math.floor(this.#credits / UNIT);
  }

  /**
   * A peer's receipt was newly recorded here: it earns `share` of a takeover (the validator's
   * challenge probability), up to {@link TAKEOVER_BURST}.
   */
  earn(share: number): void {
    if (!(share > 0)) return;
    this.#credits = Math.min(TAKEOVER_BURST * UNIT, this.#credits + Math.round(share * UNIT));
  }

  /**
   * Why `claimant`'s (hex) claim opens no takeover now, or undefined when it may (then call
   * {@link spend}).
   *
   * @param claimant The claim's validator key (hex).
   * @param now The ledger's clock (ms).
   * @param open Takeovers on `claimant`'s claims open here now.
   */
  refusal(claimant: string, now: number, open: number): TakeoverRefusal | undefined {
    const counted = (this.#falseUntil.get(claimant) ?? []).filter((until) => until > now);
    if (counted.length >= MAX_FALSE_CLAIMS) return "claimant_benched";
    if (open >= MAX_OPEN_TAKEOVERS_PER_CLAIMANT) return "claimant_busy";
    if (this.#credits < UNIT) return "no_budget";
    return undefined;
  }

  /** A takeover opened: one credit spent. */
  spend(): void {
    this.#credits = Math.max(0, this.#credits - UNIT);
  }

  /**
   * `claimant`'s (hex) claim was false here (the worker served valid proof data): held against
   * it until `until` (ms; the ledger's clock plus one challenge window).
   */
  foundFalse(claimant: string, until: number): void {
    const kept = [...(this.#falseUntil.get(claimant) ?? []), until].slice(-MAX_FALSE_CLAIMS);
    this.#falseUntil.delete(claimant); // re-inserted last: the oldest claimant is dropped first
    this.#falseUntil.set(claimant, kept);
    while (this.#falseUntil.size > MAX_REMEMBERED_CLAIMANTS) {
      this.#falseUntil.delete(this.#falseUntil.keys().next().value!);
    }
  }
}
