/**
 * What a `replicas/<cid>` record holds: the giver of the chunk, the peer that placed it here
 * (`_replica_shares.ts`), so that what each peer holds is counted again after a restart. The
 * record's name is what roots the chunk (`gc_roots.ts` reads names only); its content is:
 *
 * ```
 * (empty)                        version 0: no giver (written before stop 64, or by no peer)
 * ["replica",1,"<giver hex>"]    version 1: the giver's key, in hex
 * ```
 *
 * Anything else — a newer version, a torn write (the content is written in place, so a power cut
 * may leave it empty or cut short), damage — reads as no giver: the chunk is still held, counted
 * for no peer. A record is written once and never rewritten, so a newer node's record is left
 * as it is. Not part of the public API.
 *
 * @module
 */
import { NO_GIVER } from "./_replica_shares.ts";

/** Name of the format, the first field of a version-1 record. */
const FORMAT = "replica";

/** The version written. */
const VERSION = 1;

/** Longest giver recorded, characters: a key in hex is 64. A longer one is recorded as none. */
const MAX_GIVER_CHARS = 256;

/** Longest record read back, bytes: a version-1 record is under 300. */
export const MAX_REPLICA_RECORD_BYTES = 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** The content of the record of a chunk placed by `giver` (empty for {@link NO_GIVER}). */
export function encodeReplicaRecord(giver: string): Uint8Array<ArrayBuffer> {
  if (giver === NO_GIVER || giver.length > MAX_GIVER_CHARS) return new Uint8Array();
  return encoder.encode(JSON.stringify([FORMAT, VERSION, giver]));
}

/** The giver a record's content names ({@link NO_GIVER} when it names none it can read). */
export function decodeReplicaRecord(content: Uint8Array): string {
  if (content.length === 0 || content.length > MAX_REPLICA_RECORD_BYTES) return NO_GIVER;
  try {
    const record: unknown = JSON.parse(decoder.decode(content));
    if (
      Array.isArray(record) && record.length === 3 && record[0] === FORMAT &&
      record[1] === VERSION && typeof record[2] === "string" &&
      record[2].length <= MAX_GIVER_CHARS
    ) return record[2];
  } catch {
    // Torn or damaged: no giver.
  }
  return NO_GIVER;
}

/** The giver recorded in the file at `path` ({@link NO_GIVER} when it names none it can read). */
export async function readReplicaRecord(path: string): Promise<string> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return NO_GIVER;
    throw error;
  }
  try {
    const buffer = new Uint8Array(MAX_REPLICA_RECORD_BYTES + 1);
    let filled = 0;
    while (filled < buffer.length) {
      const read = await file.read(buffer.subarray(filled));
      if (read === null) break;
      filled += read;
    }
    return decodeReplicaRecord(buffer.subarray(0, filled));
  } finally {
    file.close();
  }
}
