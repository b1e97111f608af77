/**
 * What the ValidatorActor's start passes on to the network, kept for the peers that connect after
 * it: the verdict of each challenge ending it applied from disk (`_challenge_endings.ts`), and
 * each own fraud proof it resumed (`_own_fraud_proofs.ts`) once confirmed. Told to the
 * NetworkActor at once, these reach only the peers connected then — none at a node's first
 * start, where the network starts after this actor and dials its peers after that — and the
 * stop that cut them off may have come before they left this node. So each ledger-keeping peer
 * that connects is sent them (the NetworkActor asks, `start_publications`), as it is sent this
 * node's pledges, while their receipt's window is open: past it no ledger takes them. A peer
 * that has one already takes it once (a verdict by its id, a fraud proof by its hash).
 *
 * Not part of the public API.
 *
 * @module
 */
import type { StartPublication } from "./validator_messages.ts";

/**
 * Most kept: each is sent to every ledger-keeping peer on connect. A start resumes only what a
 * stop or a failed ledger write cut off between a decision and its write — a few challenges —
 * so this is reached only after a long outage under load; past it the oldest go (they were
 * still told to the network at once).
 */
export const MAX_START_PUBLICATIONS = 64;

/** The start's publications, each until its receipt's window closes (ledger clock, ms). */
export class StartPublications {
  /** One per ledger directory in this process (see {@link StartPublications.of}). */
  static readonly #byLedger = new Map<string, StartPublications>();
  readonly #kept: { item: StartPublication; until: number }[] = [];

  /**
   * The publications of the validator of `ledgerDir`: the same object for every instance of it
   * in this process, so they outlive its restarts. A crash after the start (a failed ledger
   * write, say) restarts the actor, which finds the kept endings already applied and does not
   * publish them again: a list of the instance's own would be empty, and a peer that connects
   * after the crash would never hear of them.
   */
  static of(ledgerDir: string): StartPublications {
    let kept = StartPublications.#byLedger.get(ledgerDir);
    if (kept === undefined) {
      kept = new StartPublications();
      StartPublications.#byLedger.set(ledgerDir, kept);
    }
    return kept;
  }

  /** Keep `item` for the peers that connect until `until`. */
  add(item: StartPublication, until: number): void {
    this.#kept.push({ item, until });
    if (this.#kept.length > MAX_START_PUBLICATIONS) this.#kept.shift();
  }

  /** Those still inside their window at `now`; the others are forgotten. */
  current(now: number): StartPublication[] {
    const open = this.#kept.filter((k) => now <= k.until);
    this.#kept.splice(0, this.#kept.length, ...open);
    return open.map((k) => k.item);
  }
}
