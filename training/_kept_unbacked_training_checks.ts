/**
 * The unbacked checks each training receipt has spent in a TrainingValidator
 * (`actors/_unbacked_checks.ts`: at most 3 per receipt), kept across a stop beside the ledger in
 * `<ledger dir>/training-unbacked-checks.cbor`.
 *
 * Memory only, each start of the training validator granted every receipt its budget again: a
 * stranger's pledged keys, their stake spent, could have this node re-run 3 more false proofs per
 * receipt per restart, each costing its accuser what stake it had left
 * (`tests/training/training_proof_intake_test.ts`). The inference side keeps its count with
 * its held evidence (`actors/_held_evidence.ts`); the training side has no such file, so this one
 * holds the count alone: a few dozen bytes per receipt still inside its window.
 *
 * The actor writes it when an unbacked check is taken (each one also costs a training step's
 * re-run, so a write per check is bounded by that budget, never by the messages that come) and at
 * its stop; the file is rewritten only when its bytes change, and removed when nothing is spent.
 * What is read back is untrusted: `UnbackedChecks.restore` skips what is not a count and never
 * lowers one. Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { KeptCborList } from "../proof/_kept_cbor_file.ts";
import type { SpentUnbacked } from "../actors/_unbacked_checks.ts";

/** The file under the ledger's directory. */
export const UNBACKED_TRAINING_CHECKS_FILE = "training-unbacked-checks.cbor";

/** The spent unbacked checks of one ledger directory (see the module doc). */
export type KeptUnbackedTrainingChecks = KeptCborList<SpentUnbacked>;

/** The spent unbacked checks kept in `ledgerDir` (each entry its receipt id, count and end). */
export function keptUnbackedTrainingChecks(ledgerDir: string): KeptUnbackedTrainingChecks {
  return new KeptCborList<SpentUnbacked>(
    join(ledgerDir, UNBACKED_TRAINING_CHECKS_FILE),
    ({ receiptId, checks, until }) => ({ receiptId, checks, until }),
  );
}
