/**
 * What a ValidatorActor holds in memory waiting for something else to arrive — peers' receipts
 * refused for want of their worker's stake (taken again when the pledge comes), peers' fraud
 * proofs about receipts not recorded here yet (checked when the receipt comes), and peers' fraud
 * proofs from keys with no pledge here yet (taken again when the pledge comes,
 * `_pledge_held_proofs.ts`) — kept across a stop in `<ledger dir>/held-evidence.cbor`, with the
 * unbacked checks each receipt still in its window has spent (`_unbacked_checks.ts`: forgotten
 * at a restart, each start granted every receipt its budget of checks again).
 *
 * Lost at a restart, each was a branch where this ledger settled differently from the others:
 * a proof held for a cheat's receipt, gone when the receipt came after the restart, let this
 * ledger pay the cheat every other ledger slashed (as a proof waiting for its accuser's pledge,
 * gone, would); a receipt waiting for its worker's pledge, gone, left honest work unpaid here for
 * good.
 *
 * Written when it changed at each finalize tick (10 s by default) and when the actor stops (its
 * `postStop`, which also runs when its supervisor restarts it after a failure), and read when it
 * starts: what it held then goes through the intake again, as it would have when it arrived,
 * and the file stays until the next write replaces it. A process killed outright loses what
 * arrived since the last tick, no more; a write per message would let a stranger make the node
 * fsync at network rate. Bounded by what the memory holds
 * (`_validator_memory.ts`, `_pledge_held_proofs.ts`). Both kinds of proof are kept in one list:
 * at the start each goes through the intake again, which holds it for what it still lacks. Not
 * part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import { writeFileDurably } from "../proof/_durable_file.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import type { ReceiptMessage } from "./validator_messages.ts";
import type { SpentUnbacked } from "./_unbacked_checks.ts";

/** The file under the ledger's directory. */
export const HELD_EVIDENCE_FILE = "held-evidence.cbor";

/** A fraud proof held for its receipt, as kept: the proof (untrusted when read) and its sender. */
export interface KeptProof {
  /** The proof. */
  proof: unknown;
  /** Hex key of the peer that sent it. */
  origin?: string;
}

/** What is kept: receipts waiting for stake and proofs waiting for their receipt, in order. */
export interface HeldEvidence {
  /** Receipt messages refused for want of stake, oldest first. */
  receipts: ReceiptMessage[];
  /** Fraud proofs held for a receipt not recorded yet, or for their accuser's pledge; oldest first. */
  proofs: KeptProof[];
  /**
   * Unbacked checks spent per receipt still in its window (`_unbacked_checks.ts`): kept, or
   * each restart would grant every receipt its budget again. Untrusted when read.
   */
  unbacked: SpentUnbacked[];
}

/**
 * The held-evidence file of one ledger directory, kept in step with what the actor holds: at
 * most one durable write per {@link HeldEvidenceFile.keep} call, and none when nothing changed.
 * The actor keeps it at each finalize tick and at its stop, so a process killed outright loses
 * at most what arrived since the last tick, and a stranger's flood of refused receipts makes it
 * write no more often than the tick (never once per message).
 */
export class HeldEvidenceFile {
  readonly #path: string;
  /** The bytes on disk (undefined: no file). */
  #kept: Uint8Array | undefined;

  private constructor(path: string, kept: Uint8Array | undefined) {
    this.#path = path;
    this.#kept = kept;
  }

  /**
   * Open the file of `ledgerDir` and read what was kept at the last keep. The file stays until
   * the next {@link keep} replaces it (a process killed before then keeps it); one that is not
   * readable CBOR is removed. Entries are untrusted (the intake checks each as it checks a
   * peer's message).
   */
  static async open(ledgerDir: string): Promise<{ file: HeldEvidenceFile; held: HeldEvidence }> {
    const path = join(ledgerDir, HELD_EVIDENCE_FILE);
    const none = { receipts: [], proofs: [], unbacked: [] };
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) {
        return { file: new HeldEvidenceFile(path, undefined), held: none };
      }
      throw error;
    }
    let value: unknown;
    try {
      value = decodeCbor(bytes);
    } catch {
      await Deno.remove(path);
      return { file: new HeldEvidenceFile(path, undefined), held: none };
    }
    const kept = value as Partial<HeldEvidence> | null;
    const list = <T>(xs: unknown): T[] =>
      Array.isArray(xs) ? xs.filter((x) => typeof x === "object" && x !== null) : [];
    return {
      file: new HeldEvidenceFile(path, bytes),
      held: {
        receipts: list<ReceiptMessage>(kept?.receipts).map((m) => ({ ...m, type: "receipt" })),
        proofs: list<KeptProof>(kept?.proofs),
        unbacked: list<SpentUnbacked>(kept?.unbacked),
      },
    };
  }

  /**
   * Make the file hold `held`, durably: written when it differs from what is on disk, removed
   * when nothing is held. Returns whether the disk changed.
   */
  async keep(held: HeldEvidence): Promise<boolean> {
    const empty = held.receipts.length === 0 && held.proofs.length === 0 &&
      held.unbacked.length === 0;
    if (empty) {
      if (this.#kept === undefined) return false;
      await Deno.remove(this.#path).catch((error) => {
        if (!(error instanceof Deno.errors.NotFound)) throw error;
      });
      this.#kept = undefined;
      return true;
    }
    const receipts = held.receipts.map((m) => definedOnly({ ...m }));
    const proofs = held.proofs.map((p) => definedOnly({ ...p }));
    const bytes = encodeCanonical({ receipts, proofs, unbacked: held.unbacked });
    if (this.#kept !== undefined && bytesEqual(this.#kept, bytes)) return false;
    await writeFileDurably(this.#path, bytes);
    this.#kept = bytes;
    return true;
  }
}

/** `value` without its undefined fields (canonical CBOR has no undefined). */
function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
