/**
 * A validator's own fraud proofs between its verdict and their settlement, on disk
 * (`<ledger dir>/own-fraud-proofs/<receipt id>.cbor`; the training validator's in
 * `own-training-fraud-proofs/`): a validator that stops while it checks the proof of a cheat it
 * caught settles it at its next start, as the ledgers it sent the proof to do, instead of leaving
 * the receipt unresolved (neither paid nor slashed) in its own.
 *
 * A proof is written, durably, before its verdict is recorded, and removed once its challenge
 * ended; one whose receipt is no longer `challenged` at start is stale (it ended, and the
 * removal did not happen) and is removed. Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import { removeTemporaries, syncDirectory, writeFileDurably } from "../proof/_durable_file.ts";

/** The folder under the ledger's directory: the ValidatorActor's own inference proofs. */
export const OWN_FRAUD_PROOFS_DIR = "own-fraud-proofs";
/**
 * The folder of the TrainingValidator's own training fraud proofs (each with the architecture
 * and start file it is checked under), resumed by it at its start.
 */
export const OWN_TRAINING_FRAUD_PROOFS_DIR = "own-training-fraud-proofs";

/** A receipt id as {@link receiptId} writes it: the only names this store reads or writes. */
const RECEIPT_ID = /^[0-9a-f]{64}$/;
const SUFFIX = ".cbor";

/** Own fraud proofs by receipt id, on disk (see the module doc). */
export class OwnFraudProofs {
  readonly #dir: string;

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /** The store in `folder` of `ledgerDir` (made on the first save). */
  static in(ledgerDir: string, folder: string = OWN_FRAUD_PROOFS_DIR): OwnFraudProofs {
    return new OwnFraudProofs(join(ledgerDir, folder));
  }

  /**
   * Keep `proof` (a `FraudProof`, or a training proof with what it is checked under), about `id`,
   * until {@link remove}: durable once this returns.
   */
  async save(id: string, proof: object): Promise<void> {
    await Deno.mkdir(this.#dir, { recursive: true });
    await writeFileDurably(this.#path(id), encodeCanonical(proof));
  }

  /**
   * The receipts with a proof kept, and each proof as read (untrusted: the caller parses it;
   * unreadable bytes come as undefined). Removes what a save cut short by a crash left.
   */
  async all(): Promise<Map<string, unknown>> {
    const found = new Map<string, unknown>();
    // A save cut short by a crash left its temporary file: its proof was never kept.
    await removeTemporaries(this.#dir);
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(this.#dir));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return found;
      throw error;
    }
    for (const { name, isFile } of entries) {
      const id = name.slice(0, -SUFFIX.length);
      if (!isFile || !name.endsWith(SUFFIX) || !RECEIPT_ID.test(id)) continue;
      const bytes = await Deno.readFile(join(this.#dir, name));
      let proof: unknown;
      try {
        proof = decodeCbor(bytes);
      } catch {
        proof = undefined;
      }
      found.set(id, proof);
    }
    return found;
  }

  /** Forget the proof about receipt `id` (its challenge ended); nothing if none is kept. */
  async remove(id: string): Promise<void> {
    try {
      await Deno.remove(this.#path(id));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return;
      throw error;
    }
    await syncDirectory(this.#dir);
  }

  #path(id: string): string {
    if (!RECEIPT_ID.test(id)) throw new RangeError(`not a receipt id: ${id}`);
    return join(this.#dir, `${id}${SUFFIX}`);
  }
}
