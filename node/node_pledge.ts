/**
 * The node's stake pledge, signed once and kept in `<dataDir>/stake_pledge.cbor`: every peer,
 * on every run, gets the same bytes. Ledgers keep the first pledge they see of a key, and
 * pledges travel by gossip, so a key with two pledges in the network (say 1,000 and then
 * 5,000) would have different stake in different ledgers; with one pledge it has the same stake
 * everywhere. A changed `selfStake` is not re-pledged: the node says so and keeps the old one.
 *
 * @module
 */
import { join } from "node:path";
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import type { Identity } from "../protocols/identity.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
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
  await removeTemporaries(dataDir, (name) => name === PLEDGE_FILE);
  try {
    const kept = decodeCbor(await Deno.readFile(path));
    if (verifyStakePledge(kept) && bytesEqual(kept.key, identity.publicKey)) {
      if (kept.amount !== amount) {
        log(
          `stake: this node pledged ${kept.amount} on ${new Date(kept.issuedAt).toISOString()}; ` +
            `selfStake ${amount} is not pledged again (ledgers keep a key's first pledge)`,
        );
      }
      return kept;
    }
    log(`stake: ${path} is not a pledge by this node's key; pledging anew`);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      log(`stake: ${path} is unreadable (${(error as Error).message}); pledging anew`);
    }
  }
  const pledge = signStakePledge(identity, amount, now());
  await writeFileDurably(path, encodeCanonical(pledge));
  return pledge;
}
