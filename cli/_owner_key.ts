/**
 * The owner key of the storage commands' private files: derived from `--key-file FILE` (any file
 * of at least 32 bytes of secret material), else from the node's `DIR/identity.key` (created on
 * first use by a put, as the node does).
 *
 * @module
 */
import { join } from "node:path";
import { IDENTITY_FILE, loadOrCreateIdentity } from "../node/node_identity.ts";
import { KeyRequiredError } from "../storage/errors.ts";
import { OwnerKey } from "../storage/private_tier.ts";
import { UsageError } from "./_command_support.ts";

/**
 * The fewest bytes a `--key-file` may hold: the minimum `OwnerKey.fromSecret` takes (an HKDF
 * secret of 256 bits, as strong as the keys derived from it), checked here so that the error
 * names the file and the flag instead of an anonymous "owner secret".
 */
const KEY_FILE_MIN_BYTES = 32;

/**
 * The owner key from `--key-file`, else from the node identity. A put creates the identity if
 * the data directory has none; a get or a share (`readingCid` set) never does, since a fresh
 * key could not open anything.
 *
 * @throws {UsageError} the key file holds fewer than 32 bytes (the message names the file, its
 * size and the minimum).
 * @throws {KeyRequiredError} `readingCid` is set, no key file is given and the data directory
 * has no identity.
 */
export async function ownerKey(
  dataDir: string,
  keyFile: string | undefined,
  readingCid?: string,
): Promise<OwnerKey> {
  if (keyFile !== undefined) {
    const secret = await Deno.readFile(keyFile);
    if (secret.length < KEY_FILE_MIN_BYTES) {
      throw new UsageError(
        `--key-file ${keyFile} holds ${secret.length} bytes; a key file must hold at least ` +
          `${KEY_FILE_MIN_BYTES} bytes of secret material`,
      );
    }
    return await OwnerKey.fromSecret(secret);
  }
  if (readingCid !== undefined) {
    try {
      await Deno.stat(join(dataDir, IDENTITY_FILE));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw new KeyRequiredError(readingCid);
      throw error;
    }
  }
  const identity = await loadOrCreateIdentity(dataDir);
  return await OwnerKey.fromSecret(identity.exportSecretKey());
}
