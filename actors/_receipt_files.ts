/**
 * A folder of CBOR records kept on disk by receipt id (`<folder>/<receipt id>.cbor`), each
 * written durably and removed when its owner is done with it. Three stores of the validators
 * are one each:
 *
 * - a validator's own fraud proofs between its verdict and their settlement
 *   (`<ledger dir>/own-fraud-proofs/`; the training validator's in `own-training-fraud-proofs/`):
 *   a validator that stops while it checks the proof of a cheat it caught settles it at its next
 *   start, as the ledgers it sent the proof to do, instead of leaving the receipt unresolved
 *   (neither paid nor slashed) in its own. A proof is written before its verdict is recorded and
 *   removed once its challenge ended; one whose receipt is no longer `challenged` at start is
 *   stale (it ended, and the removal did not happen) and is removed;
 * - challenge endings decided before a ledger write failed (`_challenge_endings.ts`);
 * - receipts drawn for a challenge, with their jobs, between the draw and the challenge's opening
 *   (`<ledger dir>/drawn-challenges/`): the receipt is recorded, then its challenge opened, in two
 *   ledger writes; a validator that stops between them opens it at its next start (review s48:
 *   it never did, and the cheat it had drawn was paid unchecked when its window closed);
 * - peers' receipts recorded and not drawn, with their jobs, while they are pending
 *   (`<ledger dir>/pending-receipts/`): a peer's "proof withheld" claim is taken over by asking
 *   the worker for the data that opens the receipt, so it needs the receipt and its job, which
 *   the ledger does not keep; read back at the start, a claim that comes after a restart is taken
 *   over as one before it is (review s56: it was not, and the worker that withheld from everyone
 *   was paid here, slashed in the ledgers that had not restarted). Written at intake, where a
 *   drawn receipt is, but not synced (0.05 ms a write on the 2-core VM against 0.7–0.9 ms for a
 *   durable one, paid by every receipt the ledger takes): a power loss forgets them, and a claim
 *   after it is not taken over here, as before they were kept. Removed when its challenge opens,
 *   at the first finalize tick after it left `pending` (paid, slashed, left unpaid: its window
 *   bounds what is kept), and when the validator's memory of receipts forgets it
 *   (`_validator_memory.ts`: the newest 4096, and 64 MiB of records, at most);
 * - this node's own receipts its ledger refused (`<ledger dir>/own-refused-receipts/`, each with
 *   its job id, kept for good): the prover releases them all the same, so the job is one this
 *   node signed a receipt for even though its ledger holds none of its own (review s49);
 * - the catch-up's convictions and verdicts, and the peers' receipts it relays (`catch-up/`,
 *   `catch-up-verdicts/`, `catch-up-relayed/`: `_catch_up.ts`).
 *
 * Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import { removeTemporaries, syncDirectory, writeFileDurably } from "../proof/_durable_file.ts";
import { OWNER_DIR_MODE, OWNER_FILE_MODE } from "../protocols/owner_only.ts";

/** The folder under the ledger's directory: the ValidatorActor's own inference proofs. */
export const OWN_FRAUD_PROOFS_DIR = "own-fraud-proofs";
/**
 * The folder of the TrainingValidator's own training fraud proofs (each with the architecture
 * and start file it is checked under), resumed by it at its start.
 */
export const OWN_TRAINING_FRAUD_PROOFS_DIR = "own-training-fraud-proofs";
/**
 * The folder of the receipts drawn for a challenge, each with its job, kept until the challenge
 * ends: one not opened yet is opened at the start, one open at a stop is run again (review s79).
 */
export const DRAWN_CHALLENGES_DIR = "drawn-challenges";
/**
 * The folder of peers' receipts recorded and not drawn here, each with its job, kept while they are
 * pending: what taking over a peer's "proof withheld" claim needs, after a restart too.
 */
export const PENDING_RECEIPTS_DIR = "pending-receipts";
/** The folder of this node's own receipts its ledger refused, each with its job id. */
export const OWN_REFUSED_RECEIPTS_DIR = "own-refused-receipts";
/**
 * The folder of the peers' "proof withheld" claims this validator's open takeovers were opened
 * on, each with the claim, until the challenge ends: a takeover a stop cuts off ends as one
 * undecided here does (cleared), not as a challenge this validator drew (unpaid).
 */
export const TAKEN_OVER_CLAIMS_DIR = "taken-over-claims";

/** A receipt id as {@link receiptId} writes it: the only names this store reads or writes. */
const RECEIPT_ID = /^[0-9a-f]{64}$/;
const SUFFIX = ".cbor";

/** CBOR records by receipt id in one folder, on disk (see the module doc). */
export class ReceiptFiles {
  readonly #dir: string;
  readonly #durable: boolean;

  private constructor(dir: string, durable: boolean) {
    this.#dir = dir;
    this.#durable = durable;
  }

  /**
   * The store in `folder` of `ledgerDir` (made on the first save). `durable: false` (default
   * true): saves and removals are not synced to disk — a record survives the process being
   * killed, not the machine losing power — for records written at a rate where a sync each
   * costs more than losing one does ({@link PENDING_RECEIPTS_DIR}: one per receipt taken).
   */
  static in(
    ledgerDir: string,
    folder: string = OWN_FRAUD_PROOFS_DIR,
    { durable = true }: { durable?: boolean } = {},
  ): ReceiptFiles {
    return new ReceiptFiles(join(ledgerDir, folder), durable);
  }

  /**
   * Keep `record` (an own `FraudProof`, a training proof with what it is checked under, a
   * challenge ending, a conviction), about receipt `id`, until {@link remove}: durable once this
   * returns (in a durable store; else whole or not at all after a crash of the process).
   */
  async save(id: string, record: object): Promise<void> {
    await Deno.mkdir(this.#dir, { recursive: true, mode: OWNER_DIR_MODE });
    const bytes = encodeCanonical(record);
    if (this.#durable) return await writeFileDurably(this.#path(id), bytes);
    // Renamed into place, so a kill mid-write leaves a temporary (removed by `all`), never a
    // record cut short.
    const tmp = `${this.#path(id)}.${crypto.randomUUID()}.tmp`;
    await Deno.writeFile(tmp, bytes, { mode: OWNER_FILE_MODE });
    await Deno.rename(tmp, this.#path(id));
  }

  /**
   * The receipts with a record kept, and each record as read (untrusted: the caller parses it;
   * bytes that do not decode come as undefined; a file that cannot be read fails the call). Removes what a save cut short by a crash left.
   */
  async all(): Promise<Map<string, unknown>> {
    const found = new Map<string, unknown>();
    // A save cut short by a crash left its temporary file: its record was never kept.
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
      let record: unknown;
      try {
        record = decodeCbor(bytes);
      } catch {
        record = undefined;
      }
      found.set(id, record);
    }
    return found;
  }

  /** Forget the record about receipt `id`; nothing if none is kept. */
  async remove(id: string): Promise<void> {
    if (await this.#unlink(id) && this.#durable) await syncDirectory(this.#dir);
  }

  /**
   * Forget the records about receipts `ids` (those kept), with one sync of the folder for them
   * all: what a finalize tick prunes at once.
   */
  async removeAll(ids: Iterable<string>): Promise<void> {
    let removed = false;
    for (const id of ids) removed = await this.#unlink(id) || removed;
    if (removed && this.#durable) await syncDirectory(this.#dir);
  }

  /** Remove the record about `id`: whether there was one. */
  async #unlink(id: string): Promise<boolean> {
    try {
      await Deno.remove(this.#path(id));
      return true;
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
  }

  #path(id: string): string {
    if (!RECEIPT_ID.test(id)) throw new RangeError(`not a receipt id: ${id}`);
    return join(this.#dir, `${id}${SUFFIX}`);
  }
}
