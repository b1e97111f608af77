/**
 * The unbacked checks each training receipt has spent in a TrainingValidator
 * (`actors/_unbacked_checks.ts`: at most 3 per receipt), kept across a stop beside the ledger in
 * `<ledger dir>/training-unbacked-checks.cbor`.
 *
 * Memory only, each start of the training validator granted every receipt its budget again: a
 * stranger's pledged keys, their stake spent, could have this node re-run 3 more false proofs per
 * receipt per restart, each costing its accuser what stake it had left
 * (`tests/training/training_proof_hold_restart_test.ts`). The inference side keeps its count with
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
import { dirname, join } from "node:path";
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import { writeFileDurably } from "../proof/_durable_file.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import type { SpentUnbacked } from "../actors/_unbacked_checks.ts";

/** The file under the ledger's directory. */
export const UNBACKED_TRAINING_CHECKS_FILE = "training-unbacked-checks.cbor";

/** The spent unbacked checks of one ledger directory (see the module doc). */
export class KeptUnbackedTrainingChecks {
  readonly #path: string;
  /** The bytes on disk as this store last wrote or read them; undefined: no file. */
  #kept: Uint8Array | undefined;

  private constructor(path: string) {
    this.#path = path;
  }

  /** The file of `ledgerDir`. */
  static in(ledgerDir: string): KeptUnbackedTrainingChecks {
    return new KeptUnbackedTrainingChecks(join(ledgerDir, UNBACKED_TRAINING_CHECKS_FILE));
  }

  /** What the file holds, untrusted (`UnbackedChecks.restore` checks each entry); none: []. */
  async read(): Promise<unknown[]> {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(this.#path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    }
    this.#kept = bytes;
    try {
      const value = decodeCbor(bytes);
      return Array.isArray(value) ? value : [];
    } catch {
      return []; // not CBOR: rewritten at the next keep
    }
  }

  /** Make the file hold `spent`, durably; removed when empty. Returns whether the disk changed. */
  async keep(spent: readonly SpentUnbacked[]): Promise<boolean> {
    if (spent.length === 0) {
      if (this.#kept === undefined) return false;
      await Deno.remove(this.#path).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
      this.#kept = undefined;
      return true;
    }
    const bytes = encodeCanonical(spent.map(({ receiptId, checks, until }) => ({
      receiptId,
      checks,
      until,
    })));
    if (this.#kept !== undefined && bytesEqual(this.#kept, bytes)) return false;
    await Deno.mkdir(dirname(this.#path), { recursive: true });
    await writeFileDurably(this.#path, bytes);
    this.#kept = bytes;
    return true;
  }
}
