/**
 * Settling a steering conviction in the ValidatorActor's ledger (`validator_actor.ts`): what
 * the convicted worker's receipts in the evidence earned is clawed back and slashed, once. Not
 * part of the public API.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";
import { ownEndChoices } from "../proof/steering.ts";
import { type Ledger, LedgerRejectedError } from "../proof/ledger.ts";

/**
 * `key` is convicted of steering here: unless done before, what its receipts in the
 * evidence earned is clawed back and slashed (`Ledger.settleSteering`), so steering until
 * caught does not pay either. The receipt that completed the evidence is settled as a fault
 * already (not paid), so the ledger leaves it out.
 *
 * @param ledger The validator's ledger.
 * @param validator The validator's own key: the evidence is its own verdicts.
 * @param key The convicted worker.
 * @param log Where the conviction's line goes.
 */
export async function settleSteering(
  ledger: Ledger,
  validator: Uint8Array,
  key: Uint8Array,
  log: (line: string) => void,
): Promise<void> {
  if (ledger.steeringSettled(key)) return;
  const worker = toHex(key);
  // Only this validator's verdicts about this worker are read (an index lookup), not every
  // verdict the ledger holds (review s57: 2 to 3 s a conviction with 200,000 recorded).
  const evidence = [...ownEndChoices(ledger.verdictsBy(validator, key), validator)]
    .filter((v) => v.choices.passed > 0).map((v) => v.receiptId);
  try {
    const cut = await ledger.settleSteering(key, evidence);
    log(
      `validator: worker ${worker.slice(0, 16)} convicted of steering: ${cut} of stake cut ` +
        `over ${evidence.length} earlier receipts`,
    );
  } catch (error) {
    if (!(error instanceof LedgerRejectedError && error.code === "already_settled")) throw error;
  }
}
