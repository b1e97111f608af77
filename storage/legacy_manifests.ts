/**
 * Which raw-labelled objects of a store are manifests: the files written before UnixFS.
 *
 * Before UnixFS a file's id was the raw CID (`bafkrei…`) of its manifest, a CBOR map tagged
 * `veriflow/manifest`. Today a raw CID names a leaf — the bytes themselves, as IPFS defines it —
 * and any public file of one chunk has one. Deciding from the bytes which raw root is a manifest
 * would let anyone upload a one-chunk file shaped like a manifest and have it served as another
 * file, under a type they chose. So only the store's own record decides: `legacy-manifests/<cid>`,
 * one empty file per old manifest, written once, when a store made before this record existed is
 * first opened, for every pinned raw root that decodes as a manifest. Nothing writes raw
 * manifests any more, so the record never grows after that.
 *
 * A pinned raw root that cannot be read then (a rotten copy, say) is neither: it is recorded as
 * undecided (`legacy-manifests/<cid>.undecided`) and decided, by the same rule, the first time
 * its bytes are read again ({@link decideLegacyManifest}). Taken for a leaf, a manifest repaired
 * later was a raw leaf to GC, which collected its pinned file's chunks. Deciding from the bytes
 * is safe there as it is at the first open: the root was pinned before the record existed, and
 * whoever puts it again puts the same bytes (the CID names them).
 *
 * @module
 */
import { join } from "node:path";
import { cidCodec, isCid, RAW_CODEC, storageKey } from "../protocols/cid.ts";
import { isManifest } from "../protocols/manifest.ts";
import { PINS_DIR } from "./gc_roots.ts";
import { syncDir } from "./pack_writer.ts";
import { pathExists } from "./path_exists.ts";
import { OWNER_DIR_MODE, OWNER_FILE_MODE } from "../protocols/owner_only.ts";

/** Directory (under the store) of the raw roots that are manifests written before UnixFS. */
export const LEGACY_MANIFESTS_DIR = "legacy-manifests";

/** Suffix of a root's entry in that directory while it is undecided (unreadable at the record). */
const UNDECIDED = ".undecided";

/**
 * Record every pinned raw root of the store in `dir` that is a manifest, unless the record
 * exists already (then nothing is read); returns how many were recorded. The record is built in a
 * directory of its own and renamed into place, so a crash leaves either none (built again on the
 * next open) or all of it.
 */
export async function markLegacyManifests(
  dir: string,
  read: (cid: string) => Promise<Uint8Array>,
  durable: boolean,
): Promise<number> {
  const target = join(dir, LEGACY_MANIFESTS_DIR);
  if (await pathExists(target)) return 0;
  const temp = join(dir, `.${LEGACY_MANIFESTS_DIR}.${crypto.randomUUID()}.tmp`);
  await Deno.mkdir(temp, { mode: OWNER_DIR_MODE });
  let marked = 0;
  try {
    for await (const entry of Deno.readDir(join(dir, PINS_DIR))) {
      if (!entry.isFile || !isCid(entry.name) || cidCodec(entry.name) !== RAW_CODEC) continue;
      const bytes = await read(entry.name).catch(() => undefined);
      if (bytes !== undefined && !isManifest(bytes)) continue;
      const name = storageKey(entry.name) + (bytes === undefined ? UNDECIDED : "");
      await Deno.writeFile(join(temp, name), new Uint8Array(), { mode: OWNER_FILE_MODE });
      if (bytes !== undefined) marked++;
    }
    if (durable) await syncDir(temp);
    try {
      await Deno.rename(temp, target);
    } catch (error) {
      // Another process on the same directory put its record in place first: it is the same.
      if (!await pathExists(target)) throw error;
    }
    if (durable) await syncDir(dir);
  } finally {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
  }
  return marked;
}

/**
 * What the store in `dir` records of raw object `cid`: a manifest written before UnixFS (true),
 * not one (false), or `"undecided"` (unreadable when the record was made: see the module doc).
 */
export async function legacyManifestRecord(
  dir: string,
  cid: string,
): Promise<boolean | "undecided"> {
  if (!isCid(cid) || cidCodec(cid) !== RAW_CODEC) return false;
  const path = join(dir, LEGACY_MANIFESTS_DIR, storageKey(cid));
  if (await pathExists(path)) return true;
  return await pathExists(path + UNDECIDED) ? "undecided" : false;
}

/**
 * Decide undecided raw root `cid` from its `bytes` (read and verified against the CID): record
 * it as a manifest if it decodes as one (durably, before the undecided entry goes: a crash in
 * between leaves both, and the record wins), then drop the undecided entry. Returns the decision.
 */
export async function decideLegacyManifest(
  dir: string,
  cid: string,
  bytes: Uint8Array,
  durable: boolean,
): Promise<boolean> {
  const record = join(dir, LEGACY_MANIFESTS_DIR);
  const path = join(record, storageKey(cid));
  const manifest = isManifest(bytes);
  if (manifest) {
    await Deno.writeFile(path, new Uint8Array(), { mode: OWNER_FILE_MODE });
    if (durable) await syncDir(record);
  }
  await Deno.remove(path + UNDECIDED).catch(() => {});
  if (durable) await syncDir(record);
  return manifest;
}
