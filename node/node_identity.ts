/**
 * The node's persistent identity: a 32-byte ed25519 seed in `<dataDir>/identity.key`, created
 * on first start (owner-only permissions, written atomically so a crash never leaves half a key).
 *
 * @module
 */
import { join } from "node:path";
import { Identity } from "../protocols/identity.ts";
import { VeriflowError } from "../protocols/errors.ts";

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

/** Load the node's identity from `dataDir`, creating it on first use. */
export async function loadOrCreateIdentity(dataDir: string): Promise<Identity> {
  const path = join(dataDir, IDENTITY_FILE);
  try {
    const seed = await Deno.readFile(path);
    if (seed.length !== 32) throw new CorruptIdentityError(path, seed.length);
    return Identity.fromSecretKey(seed);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  await Deno.mkdir(dataDir, { recursive: true });
  const identity = Identity.generate();
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    const seed = identity.exportSecretKey();
    for (let off = 0; off < seed.length;) off += await file.write(seed.subarray(off));
    await file.sync();
  } finally {
    file.close();
  }
  await Deno.rename(tmp, path);
  return identity;
}
