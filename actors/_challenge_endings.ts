/**
 * How the ValidatorActor's challenges ended, kept on disk between the decision and the ledger's
 * write of it (`<ledger dir>/challenge-endings/<receipt id>.cbor`): the signed verdict and the
 * ledger transition it calls for — `cleared` (valid: paid when the window closes), `fault`
 * (proof data withheld, steering: slashed, burned) or `unresolved` (undecided here: unpaid). A
 * challenge that ends with its own fraud proof is kept in `own-fraud-proofs/` instead
 * (`_receipt_files.ts`) and settled from it.
 *
 * The ledger belongs to the actor: a write that fails (a disk error) poisons it, the actor
 * crashes, and its supervisor restarts it with the ledger reopened from disk (after its backoff,
 * which doubles; past its restart budget the node stops, and the next start takes the ending up).
 * Before, the restart found the receipt `challenged` with nothing kept of the decision and left
 * it unresolved: an honest worker whose challenge passed was never paid there, a worker that
 * withheld its proof data kept its stake. Now the start applies the kept ending first. An ending
 * whose receipt is no longer `challenged` at the start was applied (the write reached the log,
 * the crash came after it) or settled otherwise: it is removed, never applied twice.
 *
 * A "proof withheld" fault keeps its receipt and job beside it (`evidence`): the job is kept
 * nowhere else once the challenge opened, and a peer takes the fault's claim over only while it
 * remembers them. Before review s58 the start's fault went to the peers (and to the catch-up of
 * those that connect later) without them, and a peer that had forgotten the receipt, or never
 * had it, held the claim for good: the worker that withheld was paid there, or kept its stake,
 * slashed here (`tests/actors/catch_up_test.ts`). Its cost: one job more
 * in the ending's single write (a job may take `MAX_NETWORK_JOB_BYTES`, 448 KiB), only for such
 * a fault, and on disk only until the ledger has the ending; what the start then keeps for the
 * catch-up is bounded there (`_catch_up.ts`).
 *
 * Written, durably, before the verdict is recorded; removed once the ledger has the ending. Not
 * part of the public API.
 *
 * @module
 */
import type { Verdict } from "../protocols/verdict.ts";
import type { ClaimEvidence } from "./validator_messages.ts";
import { ReceiptFiles } from "./_receipt_files.ts";

/** The folder under the ledger's directory. */
export const CHALLENGE_ENDINGS_DIR = "challenge-endings";

/** The ledger transition that ends a challenge without a fraud proof. */
export type ChallengeEndStep = "cleared" | "fault" | "unresolved";

/** One challenge's ending, as kept until the ledger has it. */
export interface ChallengeEnding {
  /** The ledger transition. */
  end: ChallengeEndStep;
  /** The verdict's reason (the `fault` and `unresolved` entries record it). */
  reason: string;
  /** This validator's signed verdict (recorded again at the start if the stop came first). */
  verdict: Verdict;
  /**
   * A "proof withheld" fault's receipt and job (`ClaimEvidence`, `claimEvidence`): what the
   * start sends its verdict after, to the peers connected then and in the catch-up (see the
   * module doc). Absent for any other ending. Untrusted when read: checked against the verdict's
   * receipt id at the start.
   */
  evidence?: ClaimEvidence;
}

const STEPS: ReadonlySet<string> = new Set(["cleared", "fault", "unresolved"]);

/** Challenge endings by receipt id, on disk (see the module doc). */
export class ChallengeEndings {
  readonly #store: ReceiptFiles;

  private constructor(store: ReceiptFiles) {
    this.#store = store;
  }

  /** The endings of `ledgerDir` (the folder is made on the first keep). */
  static in(ledgerDir: string): ChallengeEndings {
    return new ChallengeEndings(ReceiptFiles.in(ledgerDir, CHALLENGE_ENDINGS_DIR));
  }

  /** Keep the ending of the challenge of `id` until {@link remove}: durable once this returns. */
  async keep(id: string, ending: ChallengeEnding): Promise<void> {
    await this.#store.save(id, ending);
  }

  /**
   * The endings kept, by receipt id; one whose bytes are not an ending comes as undefined
   * (untrusted: the verdict's signature is the ledger's to check, and the transition and reason,
   * which no one signed, are taken only where that verdict calls for them).
   */
  async all(): Promise<Map<string, ChallengeEnding | undefined>> {
    const found = new Map<string, ChallengeEnding | undefined>();
    for (const [id, value] of await this.#store.all()) found.set(id, asEnding(value));
    return found;
  }

  /** Forget the ending of `id` (the ledger has it); nothing if none is kept. */
  async remove(id: string): Promise<void> {
    await this.#store.remove(id);
  }
}

function asEnding(value: unknown): ChallengeEnding | undefined {
  const kept = value as Partial<ChallengeEnding> | null | undefined;
  if (typeof kept !== "object" || kept === null) return undefined;
  if (typeof kept.end !== "string" || !STEPS.has(kept.end)) return undefined;
  if (typeof kept.reason !== "string") return undefined;
  if (typeof kept.verdict !== "object" || kept.verdict === null) return undefined;
  const ending: ChallengeEnding = { end: kept.end, reason: kept.reason, verdict: kept.verdict };
  if (typeof kept.evidence === "object" && kept.evidence !== null) ending.evidence = kept.evidence;
  return ending;
}
