/**
 * The training receipts a TrainingValidator holds for their trainer's stake
 * (`_stake_held_training_receipts.ts`), kept across a stop beside the ledger in
 * `<ledger dir>/stake-held-training-receipts.cbor`.
 *
 * Memory only, a restart forgot them (review s64, `tests/training/stake_held_receipts_test.ts`):
 * a peer's receipt that came before its trainer's pledge and a restart was not recorded here (only a
 * fraud proof about it, which carries it, brought it back), so its trainer's contradicting receipt
 * for the round was recorded here where every ledger that had the pledge first convicted it
 * (`equivocation`), and a credit held so was lost for good (the honest trainer unpaid here). The
 * inference side keeps its
 * receipts held for stake in its held-evidence file (`actors/_held_evidence.ts`); this is the same
 * mechanism (`proof/_kept_cbor_file.ts`), one file, bounded as the hold is in memory (at most 64
 * peers' receipts, 16 carried by proofs and 64 credits, about a kilobyte each).
 *
 * The validator writes it at each recheck of the held receipts (`stakes_again`, every
 * `pledgeRecheckMs` while any is held: never once per message, so a stranger's flood of receipts
 * makes it write no more often than that), after reading it back, and at its stop; the file is
 * rewritten only when its bytes change, and removed when nothing is held. What is read back is
 * untrusted: `ReceiptCredits.readBack` checks each entry as a peer's receipt, forgets those held
 * past their window, and holds the rest again through the same bounds. Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { KeptCborList } from "../proof/_kept_cbor_file.ts";
import type { StakeHeldTrainingReceipt } from "./_stake_held_training_receipts.ts";

/** The file under the ledger's directory. */
export const STAKE_HELD_TRAINING_RECEIPTS_FILE = "stake-held-training-receipts.cbor";

/** The receipts held for their trainer's stake of one ledger directory (see the module doc). */
export type KeptStakeHeldTrainingReceipts = KeptCborList<StakeHeldTrainingReceipt>;

/** The receipts held for their trainer's stake kept in `ledgerDir`, oldest first. */
export function keptStakeHeldTrainingReceipts(ledgerDir: string): KeptStakeHeldTrainingReceipts {
  return new KeptCborList<StakeHeldTrainingReceipt>(
    join(ledgerDir, STAKE_HELD_TRAINING_RECEIPTS_FILE),
  );
}
