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
 * A pledge file that is there but cannot be read as a valid pledge (a bad copy, a bad sector)
 * refuses the start ({@link PledgeUnreadableError}), as a damaged `identity.key` does: pledging
 * anew would sign a second pledge of a key its peers hold the first of. So does a missing file
 * when the node's own ledger records a stake of its key ({@link PledgeMissingError}): the key
 * pledged before, and the file is lost. A new data directory (no ledger, or one without a stake
 * of the key) pledges.
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
import { Ledger } from "../proof/ledger.ts";
import { LOG_FILE } from "../proof/ledger_log.ts";
import { VeriflowError } from "../protocols/errors.ts";

/** File name of the pledge inside the data directory. */
export const PLEDGE_FILE = "stake_pledge.cbor";

/** What an operator does about a pledge file the node cannot use: said by both refusals. */
const RESTORE =
  "restore it from a backup of this data directory (a key signs one pledge, ever: a second " +
  "one convicts it of pledge equivocation in every ledger that holds both, its stake forfeited)";

/** The pledge file is there but is not a valid pledge: the start is refused, nothing signed. */
export class PledgeUnreadableError extends VeriflowError {
  /**
   * Create the error.
   * @param path The pledge file.
   * @param why What is wrong with it.
   * @param options Standard error options (`cause`: the read or decode error).
   */
  constructor(path: string, why: string, options?: ErrorOptions) {
    super(
      "pledge_unreadable",
      `${path} ${why}: the node does not pledge anew over it; ${RESTORE}`,
      options,
    );
  }
}

/** The pledge file is gone, and this node's ledger records that its key staked before. */
export class PledgeMissingError extends VeriflowError {
  /**
   * Create the error.
   * @param path Where the pledge file belongs.
   */
  constructor(path: string) {
    super(
      "pledge_missing",
      `${path} is missing, and this node's ledger records a stake of its key: the key pledged ` +
        `before, and the node does not pledge anew; ${RESTORE}, or start with selfStake 0 to ` +
        `run without sending a pledge`,
    );
  }
}

/**
 * This node's pledge of `amount`: the one in `dataDir` if there is a valid one by `identity`
 * (whatever its amount: `log` says when it differs), else a new one, written durably first
 * when the key never staked here (see the module doc).
 * The temporary file of a write a crash cut short is removed first: call it only under the
 * data directory's lock (the node's start), where nothing else writes the pledge.
 *
 * @throws {PledgeUnreadableError} the file (or this key's set aside) is not a valid pledge.
 * @throws {PledgeMissingError} there is none, and the ledger in `<dataDir>/ledger` records a
 *   stake of the key.
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
  const kept = await readPledge(path);
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
  const aside = await readPledge(ownPath);
  if (aside !== undefined && bytesEqual(aside.key, identity.publicKey)) {
    await writeFileDurably(path, encodeCanonical(aside));
    log(`stake: this node's pledge taken back from ${ownPath}`);
    return keptPledge(aside, amount, log);
  }
  if (await stakedBefore(dataDir, identity, log)) throw new PledgeMissingError(path);
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

/**
 * The pledge in `path`, or undefined when there is no file. One that is there but is not a valid
 * pledge is an error, never "none": a node that took it for none would sign a second pledge.
 */
async function readPledge(path: string): Promise<StakePledge | undefined> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new PledgeUnreadableError(path, `cannot be read (${(error as Error).message})`, {
      cause: error,
    });
  }
  let kept: unknown;
  try {
    kept = decodeCbor(bytes);
  } catch (error) {
    throw new PledgeUnreadableError(path, `is not a valid pledge (${(error as Error).message})`, {
      cause: error,
    });
  }
  if (!verifyStakePledge(kept)) {
    throw new PledgeUnreadableError(path, "is not a valid pledge (its signature does not verify)");
  }
  return kept;
}

/**
 * Whether the node's own ledger (`<dataDir>/ledger`) records a stake of `identity`'s key: its
 * first start's deposit, or its pledge. Read only when no pledge of the key is found, so a start
 * with its pledge file reads nothing more; a directory without a ledger, or with an empty log,
 * is new. The ledger is opened as the validator opens it (verified, a torn tail cut) but writes
 * no checkpoint; one kept by another key is refused here (`LedgerOwnerMismatchError`), before a
 * pledge is signed for a key that never ran on it.
 */
async function stakedBefore(
  dataDir: string,
  identity: Identity,
  log: (line: string) => void,
): Promise<boolean> {
  const dir = join(dataDir, "ledger");
  const size = await Deno.stat(join(dir, LOG_FILE)).then((info) => info.size, (error) => {
    if (error instanceof Deno.errors.NotFound) return 0;
    throw error;
  });
  if (size === 0) return false;
  // The first open after an upgrade may rebuild the history index here (minutes on a long
  // ledger): it says so in the node's log.
  const ledger = await Ledger.open(dir, identity, { checkpointEvery: 0, log });
  try {
    return ledger.hasStaked(identity.publicKey);
  } finally {
    await ledger.close();
  }
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
