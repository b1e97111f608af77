/**
 * The `Cache-Control` of an `/ipfs` answer rooted at one block: a year, immutable, in any cache
 * (`IMMUTABLE`), unless that block is a private file's manifest. Then `private, no-store`, as
 * `/share` answers: a share link's keys outlive its revocation, and the remedy (put the file
 * again, unpin the old copy) cannot reach a shared cache's or a proxy's copy of the ciphertext
 * (review s76). A private file's chunks are raw ciphertext: nothing in such a block says its
 * tier, so a chunk named on its own keeps `IMMUTABLE`.
 *
 * @module
 */
import { cidCodec, DAG_CBOR_CODEC } from "../protocols/cid.ts";
import { decodeManifest } from "../protocols/manifest.ts";
import { IMMUTABLE } from "./gateway_request.ts";

/** What caches may not keep: the blocks of a private file. */
export const PRIVATE_NO_STORE = "private, no-store";

/** Whether block `cid` (its verified `bytes`) is a private file's manifest. */
export function isPrivateManifest(cid: string, bytes: Uint8Array): boolean {
  try {
    // Inside the try: `cidCodec` refuses some CIDs the gateway answers (an identity CID's).
    return cidCodec(cid) === DAG_CBOR_CODEC && decodeManifest(bytes).tier === "private";
  } catch {
    return false;
  }
}

/** The `Cache-Control` of an answer rooted at block `cid`. */
export function blockCacheControl(cid: string, bytes: Uint8Array): string {
  return isPrivateManifest(cid, bytes) ? PRIVATE_NO_STORE : IMMUTABLE;
}
