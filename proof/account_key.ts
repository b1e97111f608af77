/**
 * What the ledger takes as an account's key: an ed25519 public key, 32 bytes. Any other bytes
 * name no account that could ever hold money, so a lookup by them is a caller's mistake, refused
 * with {@link InvalidAccountKeyError} — not answered with the zeros of an unknown key.
 *
 * @module
 */
import { PUBLIC_KEY_BYTES } from "../protocols/identity.ts";
import { InvalidAccountKeyError } from "./ledger_errors.ts";

/**
 * `key`, if it can be an account's key.
 *
 * @throws {InvalidAccountKeyError} for anything but {@link PUBLIC_KEY_BYTES} bytes.
 *
 * @example
 * ```ts
 * import { checkAccountKey } from "./account_key.ts";
 * checkAccountKey(new Uint8Array(32)); // the same bytes back
 * try {
 *   checkAccountKey(new Uint8Array(31));
 * } catch (error) {
 *   console.log((error as { code: string }).code); // invalid_account_key
 * }
 * ```
 */
export function checkAccountKey(key: unknown): Uint8Array {
  if (key instanceof Uint8Array && key.length === PUBLIC_KEY_BYTES) return key;
  throw new InvalidAccountKeyError(
    key instanceof Uint8Array ? `${key.length} bytes` : key === null ? "null" : typeof key,
  );
}
