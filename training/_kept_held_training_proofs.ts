/**
 * The training fraud proofs a TrainingValidator holds — for their accuser's pledge
 * (`_pledge_held_training_proofs.ts`) or for their receipt — kept across a stop beside the
 * ledger, one folder per hold (`<ledger dir>/pledge-held-training-proofs/<proof hash>.cbor`,
 * `receipt-held-training-proofs/`), one file per proof.
 *
 * Lost at a restart, a held proof was a branch where this ledger settled differently from the
 * others: the pledge came after the restart, found nothing held, and the lazy trainer every
 * other ledger slashed was paid here at its window's end (`tests/training/
 * tests/training/training_proof_pledge_test.ts`). The inference side keeps its equivalent in one
 * held-evidence file (`actors/_held_evidence.ts`); a training proof can be megabytes (an
 * `opening_mismatch` carries the trainer's whole answer), so here each proof is its own file,
 * written once and removed once it is no longer held, never rewritten whole.
 *
 * The actor keeps the folder in step with its hold at each pledge recheck and at its stop, never
 * once per message: a stranger's flood of proofs from fresh keys makes it write at most what
 * the hold keeps ({@link MAX_PLEDGE_HELD_TRAINING_PROOFS} files) per recheck, and a process
 * killed outright loses what arrived since the last one. What is read back at a start is
 * untrusted: the actor sends each through its intake again, which verifies the signatures and
 * asks the ledger, as for a peer's proof.
 *
 * The same store keeps, in a folder of its own ({@link RECEIPT_HELD_TRAINING_PROOFS_DIR}), the
 * peers' proofs the actor holds for a receipt not recorded here yet
 * (`MAX_RECEIPT_HELD_TRAINING_PROOFS` in `_receipt_held_training_proofs.ts`, also 16): lost at a
 * restart between the proof and its receipt, this ledger paid the lazy trainer the others slashed
 * (`tests/training/ tests/training/training_proof_intake_test.ts`). And in a third ({@link
 * TAKEN_TRAINING_PROOFS_DIR}), the peers' proofs taken and not settled yet: one taken up from
 * either hold and waiting in the mailbox, or being checked, at a stop was in neither hold nor on
 * disk, and this ledger paid the lazy trainer (the training side of the ValidatorActor's held
 * evidence, `waiting()`). Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import { removeTemporaries, syncDirectory, writeFileDurably } from "../proof/_durable_file.ts";
import { makeOwnerDir } from "../protocols/owner_only.ts";
import {
  MAX_PLEDGE_HELD_TRAINING_PROOFS,
  type PledgeHeldTrainingProof,
} from "./_pledge_held_training_proofs.ts";

/** The folder under the ledger's directory. */
export const PLEDGE_HELD_TRAINING_PROOFS_DIR = "pledge-held-training-proofs";
/** The folder of the proofs held for their receipt, under the ledger's directory. */
export const RECEIPT_HELD_TRAINING_PROOFS_DIR = "receipt-held-training-proofs";
/**
 * The folder of peers' proofs taken and not settled yet (told again from a hold, being checked,
 * waiting behind another copy's check, or their settlement unanswered), under the ledger's
 * directory; each file is named by the copy's key (its hash with its architecture and start file).
 */
export const TAKEN_TRAINING_PROOFS_DIR = "taken-training-proofs";

/** A proof hash as `trainingFraudProofHash` writes it: the only names this store reads. */
const PROOF_HASH = /^[0-9a-f]{64}$/;
const SUFFIX = ".cbor";

/** One held proof as kept (untrusted when read back). */
export interface KeptHeldProof {
  /** The proof with its architecture and start file (`TrainingFraudProofBody`). */
  body: unknown;
  /** Hex key of the peer it came from. */
  origin: unknown;
  /** When it was first held, ms. */
  since: unknown;
}

/**
 * An entry as it is kept: what the folder needs of either hold's entries (a held proof's `body`
 * is its `TrainingFraudProofBody`). The same folder store keeps other CBOR bodies too, each in a
 * folder of its own: the claims, outcomes and peers' receipts kept for a ledger that did not answer
 * (`_ledger_retries.ts`), each named by a 64-hex-digit hash.
 */
export type HeldProofToKeep = Pick<PledgeHeldTrainingProof, "hash" | "origin" | "since"> & {
  body: unknown;
};

/** The folder of held proofs of one ledger directory (see the module doc). */
export class KeptHeldTrainingProofs {
  readonly #dir: string;
  readonly #limit: number;
  /** Proof hashes with a file in the folder, as this store last wrote or read it. */
  readonly #onDisk = new Set<string>();

  private constructor(dir: string, limit: number) {
    this.#dir = dir;
    this.#limit = limit;
  }

  /**
   * The folder `folder` of `ledgerDir` (made at the first {@link keep} with something to keep),
   * for a hold of at most `limit` proofs; default the pledge hold's
   * ({@link PLEDGE_HELD_TRAINING_PROOFS_DIR}, {@link MAX_PLEDGE_HELD_TRAINING_PROOFS}).
   */
  static in(
    ledgerDir: string,
    folder: string = PLEDGE_HELD_TRAINING_PROOFS_DIR,
    limit: number = MAX_PLEDGE_HELD_TRAINING_PROOFS,
  ): KeptHeldTrainingProofs {
    return new KeptHeldTrainingProofs(join(ledgerDir, folder), limit);
  }

  /**
   * What the folder holds: at most the hold's bound of proofs (any more files, and those that do
   * not decode, are removed at the next {@link keep}). Removes what a write cut short by a crash
   * left.
   */
  async read(): Promise<KeptHeldProof[]> {
    await removeTemporaries(this.#dir);
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(this.#dir));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return [];
      throw error;
    }
    const kept: KeptHeldProof[] = [];
    for (const { name, isFile } of entries) {
      const hash = name.slice(0, -SUFFIX.length);
      if (!isFile || !name.endsWith(SUFFIX) || !PROOF_HASH.test(hash)) continue;
      this.#onDisk.add(hash);
      if (kept.length >= this.#limit) continue;
      try {
        const value = decodeCbor(await Deno.readFile(join(this.#dir, name)));
        if (typeof value === "object" && value !== null) kept.push(value as KeptHeldProof);
      } catch {
        // Not CBOR: held for nothing; removed at the next keep.
      }
    }
    return kept;
  }

  /**
   * Make the folder hold `held`, durably: a file written for each proof not on disk yet, and
   * removed for each no longer held. Returns whether the disk changed.
   */
  async keep(held: readonly HeldProofToKeep[]): Promise<boolean> {
    const wanted = new Map(held.map((h) => [h.hash, h]));
    let wrote = false;
    let removed = false;
    for (const [hash, { body, origin, since }] of wanted) {
      if (this.#onDisk.has(hash)) continue;
      await makeOwnerDir(this.#dir);
      await writeFileDurably(this.#path(hash), encodeCanonical({ body, origin, since }));
      this.#onDisk.add(hash);
      wrote = true;
    }
    for (const hash of [...this.#onDisk]) {
      if (wanted.has(hash)) continue;
      await Deno.remove(this.#path(hash)).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
      this.#onDisk.delete(hash);
      removed = true;
    }
    // Each write synced the folder; the removals, once for all.
    if (removed) await syncDirectory(this.#dir);
    return wrote || removed;
  }

  #path(hash: string): string {
    return join(this.#dir, `${hash}${SUFFIX}`);
  }
}
