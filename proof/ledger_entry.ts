/**
 * One ledger entry: its shape, its bytes on disk, its signature and its place in the hash chain.
 *
 * An entry is `{ seq, prev, at, kind, body, signer, sig }`: `prev` is the hash of the previous
 * entry (so editing, dropping or reordering any entry breaks every later link), `sig` is the
 * ledger owner's ed25519 signature over the rest. On disk each entry is canonical CBOR framed by
 * a 4-byte big-endian length. {@link ChainVerifier} checks entries one after another, from
 * genesis or from a checkpoint's head.
 *
 * @module
 */
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { type Identity, verifySignature } from "../protocols/identity.ts";
import {
  LedgerNewerFormatError,
  LedgerOwnerMismatchError,
  LedgerTamperedError,
} from "./ledger_errors.ts";

/** Domain separation of entry signatures. */
const ENTRY_DOMAIN = "veriflow/ledger/v1";
/** Bytes of a frame's length prefix. */
export const FRAME_HEADER_BYTES = 4;
/** Largest entry accepted when reading (a length beyond this is corruption, not data). */
export const MAX_ENTRY_BYTES = 1 << 20;
/** What the first entry's `prev` names. */
export const GENESIS_PREV = "0".repeat(64);

/**
 * Kinds of ledger entries. `training_receipt` and `training_equivocation` are the training
 * receipts' counterparts of `receipt` and `equivocation`; a training receipt then settles
 * through the same `final`, `fraud`, `false_accusation`, `challenge`, `cleared`, `fault` and
 * `unresolved` entries as an inference receipt. `double_assignment` records a job's requester
 * assigning it to two workers: the open receipt recorded first loses its credit.
 * `unrecorded_claim` keeps a receipt refused because another worker's open receipt holds its
 * job, as its worker's claim for the job (moving nothing: a later, different receipt of that
 * worker for the job is its equivocation). `assigned` records a job's assignment on its
 * worker's record that holds the job without one (credited only while open, and only for the
 * work it records), whichever receipt of that worker's it came with (`receivedWith` when
 * another); an `equivocation` whose second receipt came assigned carries its `requester`.
 * `cancelled_pair` keeps the other half of a worker's cancelled pair (its finished receipt over n
 * and its `cancelled` one over k < n for the same job) whose recorded receipt holds the job: one
 * claim, paid the k tokens once (`credit`, with `requester` when it came assigned), and, the
 * record closed paid more, that much taken back (`reclaimed`; `_ledger_receipts.ts`).
 * `pledge_equivocation` records a key's second, different signed pledge (its first is the `stake`
 * entry): the key is convicted and its stake and balance forfeited (`ledger_state.ts`).
 * `training_late_credit` pays a training receipt that closed unpaid (recorded without credit, its
 * window ended) and was never convicted, once its round's credit comes (its `worker` is paid its
 * `credit`; review s79 trainnet F1: the round had outlasted the window).
 * `stream_fraud` records the owner's conviction of a worker that signed wrong tokens of a job it
 * never finished (no receipt): cut from its stake, once per job and worker, its share to the
 * accuser (`validator`: the owner, or the peer that signed the stream proof); a peer's stream
 * proof the owner refuted is a `false_accusation` whose `receiptId` is the stream's key
 * (`stream-fraud/<job>/<worker>`) and that carries `stream` (`_ledger_stream_fraud.ts`).
 */
export type LedgerEntryKind =
  | "genesis"
  | "stake"
  | "pledge_equivocation"
  | "receipt"
  | "training_receipt"
  | "training_equivocation"
  | "training_late_credit"
  | "final"
  | "fraud"
  | "false_accusation"
  | "assigned"
  | "equivocation"
  | "double_assignment"
  | "unrecorded_claim"
  | "cancelled_pair"
  | "challenge"
  | "cleared"
  | "fault"
  | "unresolved"
  | "steering"
  | "stream_fraud"
  | "verdict";

/**
 * Every kind this version knows, each listed once: the compiler refuses a kind added to
 * {@link LedgerEntryKind} without its line here. An entry of any other kind was written by a
 * newer version ({@link LedgerNewerFormatError}).
 */
const KNOWN_KINDS: Readonly<Record<LedgerEntryKind, true>> = {
  genesis: true,
  stake: true,
  pledge_equivocation: true,
  receipt: true,
  training_receipt: true,
  training_equivocation: true,
  training_late_credit: true,
  final: true,
  fraud: true,
  false_accusation: true,
  assigned: true,
  equivocation: true,
  double_assignment: true,
  unrecorded_claim: true,
  cancelled_pair: true,
  challenge: true,
  cleared: true,
  fault: true,
  unresolved: true,
  steering: true,
  stream_fraud: true,
  verdict: true,
};

/** Whether `kind` is one this version knows how to apply. */
export function isKnownEntryKind(kind: unknown): kind is LedgerEntryKind {
  return typeof kind === "string" && Object.hasOwn(KNOWN_KINDS, kind);
}

/** One signed ledger entry. */
export interface LedgerEntry {
  /** 0-based position in the log. */
  seq: number;
  /** Hex hash of the previous entry (64 zeros for the first). */
  prev: string;
  /** Unix ms when appended. */
  at: number;
  /** What happened. */
  kind: LedgerEntryKind;
  /** Kind-specific data (CBOR-able). */
  body: Record<string, unknown>;
  /** The ledger owner's public key. */
  signer: Uint8Array;
  /** Signature over the entry without `sig`. */
  sig: Uint8Array;
}

/** The bytes an entry's signature covers. */
export function entrySigningBytes(entry: Omit<LedgerEntry, "sig">): Uint8Array {
  const { sig: _sig, ...unsigned } = entry as LedgerEntry;
  return encodeCanonical({ domain: ENTRY_DOMAIN, entry: unsigned });
}

/** Hex hash of a whole entry (signature included): what the next entry's `prev` names. */
export function entryHash(entry: LedgerEntry): string {
  return sha256Hex(encodeCanonical(entry));
}

/** Sign an entry as the ledger owner. */
export function signEntry(unsigned: Omit<LedgerEntry, "sig">, identity: Identity): LedgerEntry {
  return { ...unsigned, sig: identity.sign(entrySigningBytes(unsigned)) };
}

/** An entry's bytes on disk: `[u32 length][canonical CBOR]`. */
export function encodeEntryFrame(entry: LedgerEntry): Uint8Array {
  const payload = encodeCanonical(entry);
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.length);
  new DataView(frame.buffer).setUint32(0, payload.length);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

/** The first bytes of every entry's canonical CBOR (a map of 7, its first key `at`). */
const ENTRY_PREFIX = encodeCanonical({
  seq: 0,
  prev: "",
  at: 0,
  kind: "genesis",
  body: {},
  signer: new Uint8Array(),
  sig: new Uint8Array(),
}).subarray(0, 4);

/** `payload` decoded, if it is CBOR shaped like an entry (nothing verified). */
export function decodeEntry(payload: Uint8Array): LedgerEntry | undefined {
  let entry: LedgerEntry;
  try {
    entry = decodeCbor(payload) as LedgerEntry;
  } catch {
    return undefined;
  }
  if (typeof entry !== "object" || entry === null || !Number.isSafeInteger(entry.seq)) {
    return undefined;
  }
  if (!(entry.signer instanceof Uint8Array) || !(entry.sig instanceof Uint8Array)) return undefined;
  return entry;
}

/**
 * The first whole frame at or after byte `from` of `bytes` whose entry is signed by `owner`
 * (absent: by its own signer) with a signature that verifies: an acknowledged entry, wherever
 * the frames before it went wrong. Only frames whose payload starts as every entry does are
 * decoded, so a scan of a megabyte costs milliseconds.
 */
export function findSignedEntry(
  bytes: Uint8Array,
  from: number,
  owner?: Uint8Array,
): { offset: number; entry: LedgerEntry } | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = from; at + FRAME_HEADER_BYTES + ENTRY_PREFIX.length <= bytes.length; at++) {
    const length = view.getUint32(at);
    const end = at + FRAME_HEADER_BYTES + length;
    if (length === 0 || length > MAX_ENTRY_BYTES || end > bytes.length) continue;
    const payload = bytes.subarray(at + FRAME_HEADER_BYTES, end);
    if (!ENTRY_PREFIX.every((b, i) => payload[i] === b)) continue;
    const entry = signedEntry(payload, owner);
    if (entry !== undefined) return { offset: at, entry };
  }
  return undefined;
}

/** `payload` as an entry signed by `owner` (absent: by its own signer), if it is one. */
export function signedEntry(payload: Uint8Array, owner?: Uint8Array): LedgerEntry | undefined {
  const entry = decodeEntry(payload);
  if (entry === undefined) return undefined;
  const key = owner ?? entry.signer;
  if (toHex(entry.signer) !== toHex(key)) return undefined;
  try {
    return verifySignature(key, entrySigningBytes(entry), entry.sig) ? entry : undefined;
  } catch {
    return undefined;
  }
}

/** Options of {@link ChainVerifier}. */
export interface ChainVerifierOptions {
  /**
   * The owner's public key. Absent: whoever signed the genesis entry (a read-only check of a
   * ledger whose identity is not at hand).
   */
  owner?: Uint8Array;
  /** Where the chain resumes (a checkpoint's `seq` and `head`); default genesis. */
  from?: { seq: number; head: string };
  /**
   * Check signatures (default). Off, only the sequence and the hash links are checked: for
   * entries a signed checkpoint already vouches for.
   */
  signatures?: boolean;
  /** The ledger directory, named in errors' recovery hints. */
  dir?: string;
}

/**
 * Checks entries one after another as links of one chain: sequence, hash link, signature by the
 * owner, genesis first. The first entry that fails raises {@link LedgerTamperedError} naming it;
 * one that verifies but is of a kind this version does not know raises
 * {@link LedgerNewerFormatError}.
 *
 * Signatures are checked with the platform's ed25519 (WebCrypto), about 15 times faster than
 * the JavaScript one `protocols/identity.ts` uses; that one's stricter rules exist for keys an
 * attacker picks (small-order keys), while every entry here must be signed by the owner's own
 * key, compared byte for byte first.
 */
export class ChainVerifier {
  #owner?: Uint8Array;
  #ownerHex?: string;
  #key?: Promise<CryptoKey>;
  readonly #signatures: boolean;
  readonly #dir?: string;
  /** Position the next entry must have. */
  seq: number;
  /** Hash the next entry's `prev` must name. */
  head: string;

  /**
   * Create a verifier.
   * @param options The owner, where to resume, what to check.
   */
  constructor(options: ChainVerifierOptions = {}) {
    this.#owner = options.owner;
    this.#ownerHex = options.owner && toHex(options.owner);
    this.#signatures = options.signatures ?? true;
    this.#dir = options.dir;
    this.seq = options.from?.seq ?? 0;
    this.head = options.from?.head ?? GENESIS_PREV;
  }

  /** The owner's key: as given, or the genesis entry's signer once it has been checked. */
  get owner(): Uint8Array | undefined {
    return this.#owner;
  }

  /**
   * Check the next frame's payload and advance; returns the entry.
   * @throws {LedgerTamperedError} naming the entry when it fails.
   * @throws {LedgerOwnerMismatchError} when genesis was signed by another owner than expected.
   * @throws {LedgerNewerFormatError} when the entry verifies but is of a kind this version does
   *   not know (a newer version wrote it): neither applied nor skipped.
   */
  async next(payload: Uint8Array): Promise<LedgerEntry> {
    const entry = this.#decode(payload);
    const signer = toHex(entry.signer);
    if (this.seq === 0 && this.#ownerHex === undefined) {
      this.#owner = new Uint8Array(entry.signer);
      this.#ownerHex = signer;
    }
    if (signer !== this.#ownerHex) {
      // Rare, so checked the slow way: a bad signature is named before a foreign signer.
      if (this.#signatures && !verifySignature(entry.signer, entrySigningBytes(entry), entry.sig)) {
        throw this.#fail("signature does not verify");
      }
      if (this.seq === 0) throw new LedgerOwnerMismatchError();
      if (this.#ownerHex === undefined) {
        throw this.#fail("the chain resumes without an owner to check it against");
      }
      throw this.#fail("signed by a key other than the ledger owner");
    }
    if (this.#signatures && !await this.#verify(entry)) {
      throw this.#fail("signature does not verify");
    }
    if (!isKnownEntryKind(entry.kind)) {
      // Judged only once the owner's signature holds (checked here, the slow way, where the
      // chain skips signatures: rare), so a damaged byte in a kind is damage, not a newer format.
      if (
        !this.#signatures && !verifySignature(entry.signer, entrySigningBytes(entry), entry.sig)
      ) {
        throw this.#fail("signature does not verify");
      }
      throw new LedgerNewerFormatError(this.seq, String(entry.kind), this.#dir);
    }
    this.head = entryHash(entry);
    this.seq++;
    return entry;
  }

  /** The failure of the entry at the current position. */
  #fail(reason: string): LedgerTamperedError {
    return new LedgerTamperedError(this.seq, reason, this.#dir);
  }

  #decode(payload: Uint8Array): LedgerEntry {
    let entry: LedgerEntry;
    try {
      entry = decodeCbor(payload) as LedgerEntry;
    } catch {
      throw this.#fail("not valid CBOR");
    }
    if (typeof entry !== "object" || entry === null) throw this.#fail("not an entry");
    if (entry.seq !== this.seq) throw this.#fail(`sequence ${entry.seq} out of order`);
    if (entry.prev !== this.head) throw this.#fail("hash link to the previous entry is broken");
    if (!(entry.signer instanceof Uint8Array) || !(entry.sig instanceof Uint8Array)) {
      throw this.#fail("missing signer or signature");
    }
    if (this.seq === 0 && entry.kind !== "genesis") throw this.#fail("first entry not genesis");
    return entry;
  }

  async #verify(entry: LedgerEntry): Promise<boolean> {
    if (entry.sig.length !== 64) return false;
    this.#key ??= crypto.subtle.importKey(
      "raw",
      this.#owner! as Uint8Array<ArrayBuffer>,
      { name: "Ed25519" },
      false,
      [
        "verify",
      ],
    );
    try {
      return await crypto.subtle.verify(
        "Ed25519",
        await this.#key,
        entry.sig as Uint8Array<ArrayBuffer>,
        entrySigningBytes(entry) as Uint8Array<ArrayBuffer>,
      );
    } catch {
      return false;
    }
  }
}
