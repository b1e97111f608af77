/**
 * What a ValidatorActor holds in memory waiting for something else to arrive — peers' receipts
 * refused for want of their worker's stake (taken again when the pledge comes), peers' fraud
 * proofs taken and not settled yet (queued, being checked, or their settlement's ledger write the
 * one that failed and crashed the actor: checked again), peers' fraud proofs about receipts not
 * recorded here yet (checked when the receipt comes), peers' fraud proofs from keys with no
 * pledge here yet (taken again when the pledge comes, `_pledge_held_proofs.ts`), and peers'
 * "proof withheld" claims that outran their receipt or their author's pledge, or that came here
 * without the evidence of a receipt this validator had forgotten (taken, within the takeover
 * budget, when those come) — kept across a stop in `<ledger dir>/held-evidence.cbor`,
 * with the unbacked checks each receipt still in its window has spent (`_unbacked_checks.ts`:
 * forgotten at a restart, each start granted every receipt its budget of checks again).
 *
 * Lost at a restart, each was a branch where this ledger settled differently from the others:
 * a proof held for a cheat's receipt, gone when the receipt came after the restart, let this
 * ledger pay the cheat every other ledger slashed (as a proof waiting for its accuser's pledge,
 * or one being checked when a ledger write failed, gone, would; and a claim gone, the worker that
 * withheld from its claimant and from here); a receipt waiting for its worker's pledge, gone, left
 * honest work unpaid here for good.
 *
 * Written when it changed at each finalize tick (10 s by default) and when the actor stops (its
 * `postStop`, which also runs when its supervisor restarts it after a failure), and read when it
 * starts: what it held then goes through the intake again, as it would have when it arrived,
 * and the file stays until the next write replaces it. A process killed outright loses what
 * arrived since the last tick, no more; a write per message would let a stranger make the node
 * fsync at network rate. Bounded by what the memory keeps of each kind, at most a frame (1 MiB)
 * a proof: 64 proofs taken and not settled (the memory may remember thousands in flight, one per
 * accuser and receipt, each backed by its accuser's stake: those past 64 are not kept, the newest
 * of the accusers with the most in flight first, `_validator_memory.ts`), 64 held for their
 * receipt, 64 held for their accuser's pledge (`_pledge_held_proofs.ts`), 64 queued behind their
 * accuser's accusation in flight (last, each with when it came, `_queued_accusations.ts`), and 256
 * claims (a verdict each, about 1.3 KiB at most). The unbacked checks of the proofs kept here are
 * not counted as spent beside them (each spends its check again when taken up); those of the
 * proofs in flight not kept are. Every kind of proof is kept in one list:
 * at the start each goes through the intake again, which holds it for what it still lacks. Not
 * part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { KeptCborFile } from "../proof/_kept_cbor_file.ts";
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
  /**
   * When it was first taken for checking (unix ms, the ledger's clock), for one taken and not
   * settled: taken again at the start with it, so one taken inside its receipt's window still
   * settles after it; for one held for its accuser's pledge, when it arrived (timed from then when
   * the pledge comes within `MAX_PLEDGE_WAIT_MS`, `_pledge_held_proofs.ts`). Absent (held for its
   * receipt, or a file written before this was kept): taken at the start, as then. Untrusted when
   * read.
   */
  takenAt?: number;
}

/** A "proof withheld" claim held for what it lacks, as kept: the verdict and its sender. */
export interface KeptClaim {
  /** The claim (a signed verdict; untrusted when read: it goes through the verdict intake). */
  verdict: unknown;
  /** Hex key of the peer that sent it. */
  origin?: string;
  /**
   * Recorded here already, held for its receipt's evidence (`HeldClaim.recorded`,
   * `_validator_memory.ts`): restored as held, not through the verdict intake (which would find it
   * known and not take it over). Untrusted when read.
   */
  recorded?: true;
}

/** What is kept: receipts waiting for stake and proofs waiting for their receipt, in order. */
export interface HeldEvidence {
  /** Receipt messages refused for want of stake, oldest first. */
  receipts: ReceiptMessage[];
  /**
   * Peers' fraud proofs taken and not settled yet (at most 64 of them, `_validator_memory.ts`),
   * held for a receipt not recorded yet, or for their accuser's pledge; oldest first.
   */
  proofs: KeptProof[];
  /**
   * Unbacked checks spent per receipt still in its window (`_unbacked_checks.ts`): kept, or
   * each restart would grant every receipt its budget again. Untrusted when read.
   */
  unbacked: SpentUnbacked[];
  /**
   * Peers' "proof withheld" claims held for their receipt or their author's pledge, or recorded
   * and held for their receipt's evidence (at most 256 in all, `_validator_memory.ts`), oldest
   * first. Absent in a file written before they were kept.
   */
  claims?: KeptClaim[];
  /**
   * Stream claims from this node's router, and peers' stream proofs, taken and not settled yet
   * (`_stream_claims.ts`), taken again at the start. Absent in a file written before they were
   * kept. Untrusted when read.
   */
  streamClaims?: unknown[];
  /**
   * Peers' stream accusations left undecided here (`_stream_proof_bounds.ts`), remembered again
   * at the start. Absent in a file written before they were kept. Untrusted when read.
   */
  streamUndecided?: unknown[];
}

/**
 * The held-evidence file of one ledger directory, kept in step with what the actor holds: at
 * most one durable write per {@link HeldEvidenceFile.keep} call, and none when nothing changed.
 * The actor keeps it at each finalize tick and at its stop, so a process killed outright loses
 * at most what arrived since the last tick, and a stranger's flood of refused receipts makes it
 * write no more often than the tick (never once per message).
 */
export class HeldEvidenceFile {
  readonly #file: KeptCborFile;

  private constructor(file: KeptCborFile) {
    this.#file = file;
  }

  /**
   * Open the file of `ledgerDir` and read what was kept at the last keep. The file stays until
   * the next {@link keep} replaces it (a process killed before then keeps it); one that is not
   * readable CBOR is removed. Entries are untrusted (the intake checks each as it checks a
   * peer's message).
   */
  static async open(ledgerDir: string): Promise<{ file: HeldEvidenceFile; held: HeldEvidence }> {
    const file = new KeptCborFile(join(ledgerDir, HELD_EVIDENCE_FILE));
    const kept = await file.read() as Partial<HeldEvidence> | null | undefined;
    const list = <T>(xs: unknown): T[] =>
      Array.isArray(xs) ? xs.filter((x) => typeof x === "object" && x !== null) : [];
    return {
      file: new HeldEvidenceFile(file),
      held: {
        receipts: list<ReceiptMessage>(kept?.receipts).map((m) => ({ ...m, type: "receipt" })),
        proofs: list<KeptProof>(kept?.proofs),
        unbacked: list<SpentUnbacked>(kept?.unbacked),
        claims: list<KeptClaim>(kept?.claims),
        streamClaims: list<unknown>(kept?.streamClaims),
        streamUndecided: list<unknown>(kept?.streamUndecided),
      },
    };
  }

  /**
   * Make the file hold `held`, durably: written when it differs from what is on disk, removed
   * when nothing is held. Returns whether the disk changed.
   */
  keep(held: HeldEvidence): Promise<boolean> {
    const claims = (held.claims ?? []).map((c) => definedOnly({ ...c }));
    const streamClaims = held.streamClaims ?? [];
    const streamUndecided = held.streamUndecided ?? [];
    const empty = held.receipts.length === 0 && held.proofs.length === 0 &&
      held.unbacked.length === 0 && claims.length === 0 && streamClaims.length === 0 &&
      streamUndecided.length === 0;
    if (empty) return this.#file.keep(undefined);
    const receipts = held.receipts.map((m) => definedOnly({ ...m }));
    const proofs = held.proofs.map((p) => definedOnly({ ...p }));
    // Written only when there are claims: a file of a node that holds none reads as before.
    const kept = {
      ...(claims.length === 0 ? {} : { claims }),
      ...(streamClaims.length === 0 ? {} : { streamClaims }),
      ...(streamUndecided.length === 0 ? {} : { streamUndecided }),
    };
    return this.#file.keep({ receipts, proofs, unbacked: held.unbacked, ...kept });
  }
}

/** `value` without its undefined fields (canonical CBOR has no undefined). */
function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
