/**
 * The node's stake pledge, signed once and kept in `<dataDir>/stake_pledge.cbor`: every peer, on
 * every run, gets the same bytes. A ledger counts the first pledge it sees of a key as its stake,
 * and a second, different one convicts the key of pledge equivocation (stake and balance forfeited
 * in every ledger that comes to hold both, `docs/PROTOCOL.md`, "Stake pledges"), so a node signs a
 * pledge only when it holds none of its key, and says where it keeps it. A changed `selfStake` is
 * not re-pledged: the node says so and keeps the old one. A pledge by another key found there (a
 * start under the wrong `identity.key`) is set aside as `stake_pledge.<key hex>.cbor`, not written
 * over, and taken back when that key returns.
 *
 * @module
 */
import { join } from "node:path";
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import type { Identity } from "../protocols/identity.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { toHex } from "../protocols/hash.ts";
import { signStakePledge, type StakePledge, verifyStakePledge } from "../protocols/stake_pledge.ts";
import { removeTemporaries, writeFileDurably } from "../proof/_durable_file.ts";

/** File name of the pledge inside the data directory. */
export const PLEDGE_FILE = "stake_pledge.cbor";

/**
 * This node's pledge of `amount`: the one in `dataDir` if there is a valid one by `identity`
 * (whatever its amount: `log` says when it differs), else a new one, written durably first.
 * The temporary file of a write a crash cut short is removed first: call it only under the
 * data directory's lock (the node's start), where nothing else writes the pledge.
 */
export async function loadOrCreatePledge(
  dataDir: string,
  identity: Identity,
  amount: number,
  log: (line: string) => void = () => {},
  now: () => number = Date.now,
): Promise<StakePledge> {
  const path = join(dataDir, PLEDGE_FILE);
  await removeTemporaries(dataDir, (name) => name === PLEDGE_FILE || ASIDE.test(name));
  const kept = await readPledge(path, log);
  if (kept !== undefined && bytesEqual(kept.key, identity.publicKey)) {
    return keptPledge(kept, amount, log);
  }
  if (kept !== undefined) {
    // Another key's pledge (the wrong identity.key restored, or a copied directory): set aside
    // under its key, not written over, so that the key it belongs to, back here, sends the
    // same pledge as before instead of signing a second one.
    const other = asidePath(dataDir, kept.key);
    await writeFileDurably(other, encodeCanonical(kept));
    log(`stake: ${path} is not a pledge by this node's key; set aside as ${other}`);
  }
  const ownPath = asidePath(dataDir, identity.publicKey);
  const aside = await readPledge(ownPath, log);
  if (aside !== undefined && bytesEqual(aside.key, identity.publicKey)) {
    await writeFileDurably(path, encodeCanonical(aside));
    log(`stake: this node's pledge taken back from ${ownPath}`);
    return keptPledge(aside, amount, log);
  }
  if (kept !== undefined) log(`stake: pledging anew for this node's key`);
  const pledge = signStakePledge(identity, amount, now());
  await writeFileDurably(path, encodeCanonical(pledge));
  // A key signs one pledge, ever: a second, different one that reaches a ledger holding the
  // first convicts the key of pledge equivocation (its stake and balance forfeited).
  log(
    `stake: pledged ${amount} for key ${toHex(identity.publicKey).slice(0, 16)}… in ${path}; ` +
      `keep this file with the key: a key that pledged before (another data directory) and ` +
      `pledges again is convicted of pledge equivocation and loses its stake`,
  );
  return pledge;
}

/** The name of a pledge set aside (see {@link asidePath}). */
const ASIDE = /^stake_pledge\.[0-9a-f]{64}\.cbor$/;

/** Where the pledge of `key` is set aside while another key's is the node's (see above). */
function asidePath(dataDir: string, key: Uint8Array): string {
  return join(dataDir, `stake_pledge.${toHex(key)}.cbor`);
}

/** The valid pledge in `path`, if there is one (`log` says why one that is there is not). */
async function readPledge(
  path: string,
  log: (line: string) => void,
): Promise<StakePledge | undefined> {
  try {
    const kept = decodeCbor(await Deno.readFile(path));
    if (verifyStakePledge(kept)) return kept;
    log(`stake: ${path} is not a valid pledge; pledging anew`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      log(`stake: ${path} is unreadable (${(error as Error).message}); pledging anew`);
    }
  }
  return undefined;
}

/** This node's pledge as kept, saying so when `amount` (selfStake) differs from it. */
function keptPledge(kept: StakePledge, amount: number, log: (line: string) => void): StakePledge {
  if (kept.amount !== amount) {
    log(
      `stake: this node pledged ${kept.amount} on ${new Date(kept.issuedAt).toISOString()}; ` +
        `selfStake ${amount} is not pledged again (ledgers keep a key's first pledge)`,
    );
  }
  return kept;
}
