/**
 * Ledger checkpoints: the working state (`ledger_state.ts`) after entry `seq − 1`, signed by the
 * ledger's owner and hash-linked to the log — `head` is that entry's hash and `last`/`end` its
 * place in the file — so opening a ledger verifies the checkpoint and the entries after it, not
 * the whole history. One file, `checkpoint.cbor`, replaced atomically and durably; a checkpoint
 * that does not verify, or does not match the log, is ignored (the ledger replays from genesis
 * and writes a new one).
 *
 * A checkpoint vouches for the entries before it only because the owner signed it after checking
 * them: an edit to those entries is found by `ledger verify` (every entry from genesis), not on
 * open.
 *
 * @module
 */
import { join } from "node:path";
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import { type Identity, verifySignature } from "../protocols/identity.ts";
import type { LedgerStateSnapshot } from "./ledger_state.ts";
import { syncDirectory, writeFileDurably } from "./_durable_file.ts";
import { pathExists } from "../storage/path_exists.ts";
import { unusedPath } from "./_unused_path.ts";

/** File name of the checkpoint inside the ledger directory. */
export const CHECKPOINT_FILE = "checkpoint.cbor";
const CHECKPOINT_DOMAIN = "veriflow/ledger-checkpoint/v1";

/** A signed snapshot of the working state after `seq` entries. */
export interface LedgerCheckpoint {
  /** Format version. */
  v: 1;
  /** Entries it covers (the next entry's `seq`). */
  seq: number;
  /** Hash of entry `seq − 1`: the next entry's `prev`. */
  head: string;
  /** Byte offset of entry `seq − 1` in the log. */
  last: number;
  /** Byte offset just past it, where entry `seq` starts. */
  end: number;
  /** Unix ms when written. */
  at: number;
  /** The working state. */
  state: LedgerStateSnapshot;
  /** The ledger owner's public key. */
  signer: Uint8Array;
  /** Owner's signature over the rest. */
  sig: Uint8Array;
}

function signingBytes(checkpoint: Omit<LedgerCheckpoint, "sig">): Uint8Array {
  const { sig: _sig, ...unsigned } = checkpoint as LedgerCheckpoint;
  return encodeCanonical({ domain: CHECKPOINT_DOMAIN, checkpoint: unsigned });
}

/** Sign a checkpoint as the ledger owner. */
export function signCheckpoint(
  unsigned: Omit<LedgerCheckpoint, "sig" | "signer" | "v">,
  identity: Identity,
): LedgerCheckpoint {
  const body = { v: 1 as const, ...unsigned, signer: identity.publicKey };
  return { ...body, sig: identity.sign(signingBytes(body)) };
}

/** Whether `checkpoint` is well formed and signed by `owner`. */
export function verifyCheckpoint(checkpoint: LedgerCheckpoint, owner: Uint8Array): boolean {
  const c = checkpoint;
  if (typeof c !== "object" || c === null || c.v !== 1) return false;
  if (![c.seq, c.last, c.end, c.at].every(Number.isSafeInteger) || c.seq < 1) return false;
  if (typeof c.head !== "string" || typeof c.state !== "object" || c.state === null) return false;
  if (!Array.isArray(c.state.accounts) || !Array.isArray(c.state.open)) return false;
  if (!(c.signer instanceof Uint8Array) || !(c.sig instanceof Uint8Array)) return false;
  if (c.signer.length !== owner.length || !c.signer.every((b, i) => b === owner[i])) return false;
  return verifySignature(owner, signingBytes(c), c.sig);
}

/**
 * The checkpoint in ledger directory `dir`: absent, unreadable (not CBOR, or CBOR that is not a
 * map), or as written (unverified).
 */
export async function readCheckpoint(
  dir: string,
): Promise<LedgerCheckpoint | "unreadable" | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(join(dir, CHECKPOINT_FILE));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  let value: unknown;
  try {
    value = decodeCbor(bytes);
  } catch {
    return "unreadable";
  }
  // Whatever is not a map is no checkpoint at all (a damaged file can decode as `null`, a
  // number, an array): unreadable, as bytes that do not decode are.
  const isMap = typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Uint8Array);
  return isMap ? value as LedgerCheckpoint : "unreadable";
}

/** Replace the checkpoint in `dir` atomically and durably. */
export async function writeCheckpoint(dir: string, checkpoint: LedgerCheckpoint): Promise<void> {
  await writeFileDurably(join(dir, CHECKPOINT_FILE), encodeCanonical(checkpoint));
}

/**
 * Move the checkpoint in `dir`, if any, to `checkpoint.cbor.rejected-<stamp>` beside it (a repair
 * that keeps a log it does not match), never over an earlier one; resolves with where it went.
 * Moved, not deleted: a signed checkpoint beyond the kept log is the only record of what the
 * entries it covered held (review s75 F1).
 *
 * @param dir The ledger directory.
 * @param stamp What names the file (the repair's time, as its `ledger.log.rejected-*` is named).
 */
export async function setCheckpointAside(dir: string, stamp: string): Promise<string | undefined> {
  const from = join(dir, CHECKPOINT_FILE);
  if (!(await pathExists(from, { followSymlinks: false }))) return undefined;
  const to = await unusedPath(`${from}.rejected-${stamp}`);
  await Deno.rename(from, to);
  await syncDirectory(dir);
  return to;
}
