/**
 * A ledger with damage a signed checkpoint vouches past (`LedgerVerifyReport.vouched`): genesis,
 * {@link VOUCHED_DEPOSITS} deposits and a checkpoint at its end, then one bit flipped inside one
 * entry's signature (bit rot). Shared by the tests of repair and verify on such a ledger, of what
 * verify prints, and of an index rebuilt on it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Identity } from "../../protocols/identity.ts";
import { decodeCbor } from "../../protocols/cbor.ts";
import { Ledger } from "../../proof/ledger.ts";
import { FRAME_HEADER_BYTES, type LedgerEntry } from "../../proof/ledger_entry.ts";
import { LOG_FILE } from "../../proof/ledger_log.ts";
import { frameOffsets } from "./_ledger_fixtures.ts";

/** Deposits after genesis: entries 1 to this. */
export const VOUCHED_DEPOSITS = 12;

/** Stake the deposits add up to (1 + 2 + … + {@link VOUCHED_DEPOSITS}). */
export const VOUCHED_STAKE = VOUCHED_DEPOSITS * (VOUCHED_DEPOSITS + 1) / 2;

/**
 * A ledger in `dir` of `owner`'s genesis and {@link VOUCHED_DEPOSITS} deposits (1, 2, … to
 * `staker`), with a signed checkpoint at its end.
 */
export async function checkpointedLedger(
  dir: string,
  owner: Identity,
  staker: Identity,
): Promise<void> {
  const ledger = await Ledger.open(dir, owner, { checkpointEvery: 0 });
  for (let i = 1; i <= VOUCHED_DEPOSITS; i++) await ledger.deposit(staker.publicKey, i);
  await ledger.checkpoint();
  await ledger.close();
}

/** Flip one bit inside the signature of entry `seq` of the log in `dir`. */
export async function flipSignatureBit(dir: string, seq: number): Promise<void> {
  const path = join(dir, LOG_FILE);
  const bytes = await Deno.readFile(path);
  const offsets = frameOffsets(bytes);
  const start = offsets[seq] + FRAME_HEADER_BYTES;
  const end = offsets[seq + 1] ?? bytes.length;
  const frame = bytes.subarray(start, end);
  const sig = (decodeCbor(frame) as LedgerEntry).sig;
  const at = frame.findIndex((_, i) => sig.every((b, j) => frame[i + j] === b));
  assert.ok(at >= 0, "the signature's bytes are in the frame");
  bytes[start + at + 5] ^= 0x01;
  await Deno.writeFile(path, bytes);
}
