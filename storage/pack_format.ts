/**
 * The on-disk format of a pack: many immutable objects in one file, with the index up front.
 *
 * ```
 * offset 0   "VFPK"                 magic
 *        4   u8   version (1)
 *        5   u8[3] reserved (0)
 *        8   u32  header length H   (bytes from offset 0 to the first object)
 *       12   u32  object count N
 *       16   N × { u8[32] sha2-256 digest, u32 length }
 *  H − 16    u8[16] first 16 bytes of SHA-256 over bytes [0, H − 16)
 *        H   the objects' bytes, back to back, in index order
 * ```
 *
 * All integers are little-endian. An object's CID is the CIDv1 raw sha2-256 of its digest (the
 * only kind of CID the store accepts), its offset is H plus the lengths before it. The header
 * checksum catches a damaged index, so a bit flip there is reported as a damaged pack rather
 * than misplacing every object after it; the objects themselves are verified against their CIDs
 * on every read, as before.
 *
 * Every later version keeps the magic, the version byte at 4, H at 8 and the checksum at H − 16
 * over [0, H − 16), whatever else it changes: so a build that reads only version 1 can still tell
 * a newer node's pack ({@link NewerPackError}: left alone) from a damaged one
 * ({@link DamagedPackError}: set aside) in the same directory.
 *
 * @module
 */
import { cidDigest, cidFromDigest } from "../protocols/cid.ts";
import { equalBytes } from "./_hash.ts";
import { DamagedPackError, StorageError } from "./errors.ts";

/**
 * A well-formed pack of a version newer than this build reads (a newer node's, in a directory an
 * older process opens too: `cli.ts` beside the node): its header checks out under the layout
 * every version keeps, so it is no damage. It is left where it is, unread.
 */
export class NewerPackError extends StorageError {
  /**
   * Build the error.
   *
   * @param path The pack file.
   * @param version The version its header names.
   */
  constructor(readonly path: string, readonly version: number) {
    super(
      "newer_pack",
      `pack ${path} is of version ${version}; this build reads version ${VERSION}`,
    );
  }
}

/** One object in a pack. */
export interface PackEntry {
  /** CID of the object. */
  cid: string;
  /** Byte offset of the object in the pack file. */
  offset: number;
  /** Length of the object in bytes. */
  length: number;
}

const MAGIC = new Uint8Array([0x56, 0x46, 0x50, 0x4b]); // "VFPK"
const VERSION = 1;
const PREFIX_BYTES = 16;
const ENTRY_BYTES = 36;
const CHECKSUM_BYTES = 16;
/** Largest object a pack records (its length is a u32). */
export const MAX_OBJECT_BYTES = 0xffff_ffff;

/** Bytes of the header of a pack holding `count` objects. */
export function packHeaderLength(count: number): number {
  return PREFIX_BYTES + count * ENTRY_BYTES + CHECKSUM_BYTES;
}

/**
 * Encode the header of a pack holding `objects` in this order; returns the header and each
 * object's place in the file.
 */
export async function encodePackHeader(
  objects: readonly { cid: string; length: number }[],
): Promise<{ header: Uint8Array; entries: PackEntry[] }> {
  const headerLength = packHeaderLength(objects.length);
  const header = new Uint8Array(headerLength);
  const view = new DataView(header.buffer);
  header.set(MAGIC, 0);
  view.setUint8(4, VERSION);
  view.setUint32(8, headerLength, true);
  view.setUint32(12, objects.length, true);
  const entries: PackEntry[] = [];
  let offset = headerLength;
  objects.forEach(({ cid, length }, i) => {
    if (!Number.isSafeInteger(length) || length < 0 || length > MAX_OBJECT_BYTES) {
      throw new RangeError(`object of ${length} bytes does not fit a pack`);
    }
    const at = PREFIX_BYTES + i * ENTRY_BYTES;
    header.set(cidDigest(cid), at);
    view.setUint32(at + 32, length, true);
    entries.push({ cid, offset, length });
    offset += length;
  });
  const body = header.subarray(0, headerLength - CHECKSUM_BYTES);
  header.set(await checksum(body), headerLength - CHECKSUM_BYTES);
  return { header, entries };
}

/**
 * The index of the pack file at `path`: one small read, no object bytes.
 *
 * @throws {DamagedPackError} the header is not a valid pack header (or the file is shorter than
 *   its index says; objects cut off by truncation are found at read time instead).
 * @throws {NewerPackError} the header is whole and checks out, but names a newer version.
 * @throws {Deno.errors.NotFound} no such file.
 */
export async function readPackIndex(path: string): Promise<PackEntry[]> {
  const file = await Deno.open(path, { read: true });
  try {
    const prefix = await readExactly(file, PREFIX_BYTES);
    if (prefix.length < PREFIX_BYTES || !equalBytes(prefix.subarray(0, 4), MAGIC)) {
      throw new DamagedPackError(path, "not a pack (bad magic)");
    }
    const view = new DataView(prefix.buffer, prefix.byteOffset, prefix.length);
    const version = view.getUint8(4);
    if (version < VERSION) throw new DamagedPackError(path, `unknown version ${version}`);
    const headerLength = view.getUint32(8, true);
    const count = view.getUint32(12, true);
    // A newer version may lay out its index otherwise: only what every version keeps is checked.
    const plausible = version === VERSION
      ? headerLength === packHeaderLength(count)
      : headerLength >= PREFIX_BYTES + CHECKSUM_BYTES;
    if (!plausible) {
      throw new DamagedPackError(path, "header length does not match the object count");
    }
    // Check against the file before allocating: a damaged count must not cost gigabytes.
    if (headerLength > (await file.stat()).size) {
      throw new DamagedPackError(path, "header longer than the file");
    }
    const rest = await readExactly(file, headerLength - PREFIX_BYTES);
    if (rest.length !== headerLength - PREFIX_BYTES) {
      throw new DamagedPackError(path, "header cut short");
    }
    const header = new Uint8Array(headerLength);
    header.set(prefix, 0);
    header.set(rest, PREFIX_BYTES);
    const body = header.subarray(0, headerLength - CHECKSUM_BYTES);
    if (!equalBytes(await checksum(body), header.subarray(headerLength - CHECKSUM_BYTES))) {
      throw new DamagedPackError(path, "header checksum mismatch");
    }
    if (version !== VERSION) throw new NewerPackError(path, version);
    const entryView = new DataView(header.buffer);
    const entries: PackEntry[] = [];
    let offset = headerLength;
    for (let i = 0; i < count; i++) {
      const at = PREFIX_BYTES + i * ENTRY_BYTES;
      const length = entryView.getUint32(at + 32, true);
      entries.push({ cid: cidFromDigest(header.slice(at, at + 32)), offset, length });
      offset += length;
    }
    return entries;
  } finally {
    file.close();
  }
}

async function checksum(bytes: Uint8Array): Promise<Uint8Array> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return new Uint8Array(digest, 0, CHECKSUM_BYTES);
}

/** Read `size` bytes from the current position of `file` (fewer at end of file). */
export async function readExactly(file: Deno.FsFile, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let offset = 0;
  while (offset < size) {
    const n = await file.read(out.subarray(offset));
    if (n === null) break;
    offset += n;
  }
  return out.subarray(0, offset);
}
