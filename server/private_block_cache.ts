/**
 * The `Cache-Control` of an `/ipfs` answer rooted at one block: a year, immutable, in any cache
 * (`IMMUTABLE`), unless that block is a private file's manifest. Then `private, no-store`, as
 * `/share` answers: a share link's keys outlive its revocation, and the remedy (put the file
 * again, unpin the old copy) cannot reach a shared cache's or a proxy's copy of the ciphertext
 * (review s76). A private file's chunks are raw ciphertext: nothing in such a block says its
 * tier, so a chunk named on its own keeps `IMMUTABLE`.
 *
 * Decided from the bytes, never from the CID's codec: the same digest under the raw codec
 * (`bafkrei…` for `bafyrei…`) is a CID anyone can write, and named so the manifest was cached for
 * a year as a public block (review s78 F3).
 *
 * @module
 */
import { decodeManifest, looksLikeManifest } from "../protocols/manifest.ts";
import { IMMUTABLE } from "./gateway_request.ts";

/** What caches may not keep: the blocks of a private file. */
export const PRIVATE_NO_STORE = "private, no-store";

/**
 * Whether `bytes` (a verified block, named by any CID) are a private file's manifest: whatever
 * decodes as one is taken as one, under any codec. A public file's leaf that happens to hold such
 * bytes loses only shared caching. Takes no CID: its codec is what must not decide.
 */
export function isPrivateManifest(bytes: Uint8Array): boolean {
  if (!looksLikeManifest(bytes)) return false; // a one-byte test for most blocks
  try {
    return decodeManifest(bytes).tier === "private";
  } catch {
    return false;
  }
}

/** The `Cache-Control` of an answer rooted at the block `bytes` (named by any CID). */
export function blockCacheControl(bytes: Uint8Array): string {
  return isPrivateManifest(bytes) ? PRIVATE_NO_STORE : IMMUTABLE;
}
