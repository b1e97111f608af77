/**
 * What a ValidatorActor holds in memory waiting for something else to arrive — peers' receipts
 * refused for want of their worker's stake (taken again when the pledge comes), peers' fraud
 * proofs about receipts not recorded here yet (checked when the receipt comes), and peers' fraud
 * proofs from keys with no pledge here yet (taken again when the pledge comes,
 * `_pledge_held_proofs.ts`) — kept across a stop in `<ledger dir>/held-evidence.cbor`.
 *
 * Lost at a restart, each was a branch where this ledger settled differently from the others:
 * a proof held for a cheat's receipt, gone when the receipt came after the restart, let this
 * ledger pay the cheat every other ledger slashed (as a proof waiting for its accuser's pledge,
 * gone, would); a receipt waiting for its worker's pledge, gone, left honest work unpaid here for
 * good.
 *
 * Written once, when the actor stops (its `postStop`, which also runs when its supervisor
 * restarts it after a failure), and read and removed when it starts: what it held then goes
 * through the intake again, as it would have when it arrived. A crash that skips `postStop`
 * (the process killed) still loses it. Bounded by what the memory holds
 * (`_validator_memory.ts`, `_pledge_held_proofs.ts`). Both kinds of proof are kept in one list:
 * at the start each goes through the intake again, which holds it for what it still lacks. Not
 * part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import { writeFileDurably } from "../proof/_durable_file.ts";
import type { ReceiptMessage } from "./validator_messages.ts";

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
}

/** Keep `held` in `ledgerDir`, durably (nothing is written when it is empty). */
export async function keepHeldEvidence(ledgerDir: string, held: HeldEvidence): Promise<void> {
  if (held.receipts.length === 0 && held.proofs.length === 0) return;
  const receipts = held.receipts.map((m) => definedOnly({ ...m }));
  const proofs = held.proofs.map((p) => definedOnly({ ...p }));
  await writeFileDurably(
    join(ledgerDir, HELD_EVIDENCE_FILE),
    encodeCanonical({ receipts, proofs }),
  );
}

/**
 * What was kept in `ledgerDir` at the last stop, removed from disk (the caller takes it in again,
 * and keeps what it still holds at its own stop). Unreadable bytes give nothing; entries are
 * untrusted (the intake checks each as it checks a peer's message).
 */
export async function takeHeldEvidence(ledgerDir: string): Promise<HeldEvidence> {
  const path = join(ledgerDir, HELD_EVIDENCE_FILE);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { receipts: [], proofs: [] };
    throw error;
  }
  await Deno.remove(path);
  let value: unknown;
  try {
    value = decodeCbor(bytes);
  } catch {
    return { receipts: [], proofs: [] };
  }
  const kept = value as Partial<HeldEvidence> | null;
  const list = <T>(xs: unknown): T[] =>
    Array.isArray(xs) ? xs.filter((x) => typeof x === "object" && x !== null) : [];
  return {
    receipts: list<ReceiptMessage>(kept?.receipts).map((m) => ({ ...m, type: "receipt" })),
    proofs: list<KeptProof>(kept?.proofs),
  };
}

/** `value` without its undefined fields (canonical CBOR has no undefined). */
function definedOnly<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}
