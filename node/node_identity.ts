/**
 * The node's persistent identity: a 32-byte ed25519 seed in `<dataDir>/identity.key`, created
 * on first start (owner-only permissions, written whole, fsynced and linked into place, so a
 * crash never leaves half a key and a second creator never replaces it; the temporary file a
 * crash leaves beside it is removed at the next load). A key found readable by others is made
 * owner-only (where it can be: not on a read-only volume).
 *
 * @module
 */
import { join } from "node:path";
import { Identity } from "../protocols/identity.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { keepToOwnerAsync, OWNER_DIR_MODE, OWNER_FILE_MODE } from "../protocols/owner_only.ts";
import { removeTemporaries, syncDirectory } from "../proof/_durable_file.ts";

/** File name of the identity seed inside the data directory. */
export const IDENTITY_FILE = "identity.key";

/** The identity file exists but is not a 32-byte seed. */
export class CorruptIdentityError extends VeriflowError {
  /**
   * Create the error.
   * @param path The identity file.
   * @param size Its size in bytes.
   */
  constructor(path: string, size: number) {
    super("corrupt_identity", `${path} holds ${size} bytes, expected a 32-byte ed25519 seed`);
  }
}

/**
 * Load the node's identity from `dataDir`, creating it on first use. Two processes creating it
 * at once (a node's first start beside a `cli.ts put`) end with the same key: the new file is
 * published with a link, which fails when one is there already, and the loser reads the
 * winner's. A rename replaced it, so one of them ran on a key no longer on disk, and the node's
 * ledger then refused to open under the key that was (a review found it at stop 33). A
 * dangling symbolic link (a secret volume not mounted yet) is an error, not a missing key.
 */
export async function loadOrCreateIdentity(dataDir: string): Promise<Identity> {
  const path = join(dataDir, IDENTITY_FILE);
  const existing = await readIdentity(path);
  if (existing !== undefined) return await withoutTemporaries(dataDir, existing);
  // Owner-only as the node's lock makes it: `keygen` or `put` may be the first to create it.
  await Deno.mkdir(dataDir, { recursive: true, mode: OWNER_DIR_MODE });
  const identity = Identity.generate();
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: OWNER_FILE_MODE });
  try {
    const seed = identity.exportSecretKey();
    for (let off = 0; off < seed.length;) off += await file.write(seed.subarray(off));
    await file.sync();
  } finally {
    file.close();
  }
  try {
    await Deno.link(tmp, path);
  } catch (error) {
    // Another process created it first (and may have swept our temporary file since: it
    // sweeps only once the key is published): its key is the node's.
    const lost = error instanceof Deno.errors.AlreadyExists ||
      error instanceof Deno.errors.NotFound;
    if (!lost) throw error;
    const winner = await readIdentity(path);
    if (winner === undefined) throw error;
    return winner;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
  await syncDirectory(dataDir);
  return await withoutTemporaries(dataDir, identity);
}

/**
 * `identity`, once the temporary files of creations a crash cut short are removed: each holds a
 * secret key, an orphan one (killed before the key was published) or a second name for the
 * node's own (killed just after), which moving `identity.key` aside would leave behind. Only
 * once the key is on disk: a creator still under way then loses the race to publish whether
 * its file is swept or not, and reads the published key.
 */
async function withoutTemporaries(dataDir: string, identity: Identity): Promise<Identity> {
  await removeTemporaries(dataDir, (target) => target === IDENTITY_FILE);
  return identity;
}

/** The identity in `path`, or undefined when there is no file (a dangling link is an error). */
async function readIdentity(path: string): Promise<Identity | undefined> {
  try {
    const seed = await Deno.readFile(path);
    if (seed.length !== 32) throw new CorruptIdentityError(path, seed.length);
    // Made its owner's only when others can read it (a copy restored from a backup, or made
    // under umask 022), as the operator token is. Best effort: a key on a read-only volume (a
    // mounted secret) or owned by another user keeps the mode the operator set there.
    await keepToOwnerAsync(path).catch(() => {});
    return Identity.fromSecretKey(seed);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  try {
    await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  throw new VeriflowError(
    "identity_unreadable",
    `${path} is a link to nothing (a volume not mounted?): the node's key is not made anew ` +
      `in its place; mount it, or remove the link to start as a new node`,
  );
}
