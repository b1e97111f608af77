/**
 * The storage file id of bytes a round stores (`RoundModels.putFile`): the UnixFS root the node's
 * storage writes for them (`storage/file_store.ts` `put`, public): raw leaves of
 * {@link DEFAULT_CHUNK_SIZE} bytes, a balanced dag-pb tree above them, a file of one chunk its
 * leaf. Computed here, nothing stored, so what storage returns for a file id can be checked
 * against it: storage verifies every chunk it serves, and bytes that are not the file are its
 * failure (`RoundModels.getFile`). Not part of the public API.
 *
 * @module
 */
import { cidOf } from "../protocols/cid.ts";
import { buildFile, leafEntry } from "../storage/unixfs.ts";
import { DEFAULT_CHUNK_SIZE } from "../streams/chunker_stream.ts";

/** The file id storage gives `bytes` when they are put as a public file (see the module doc). */
export async function storedFileId(bytes: Uint8Array): Promise<string> {
  const leaves = [];
  for (let at = 0; at < bytes.length || leaves.length === 0; at += DEFAULT_CHUNK_SIZE) {
    const chunk = bytes.subarray(at, at + DEFAULT_CHUNK_SIZE);
    leaves.push(leafEntry(cidOf(chunk), chunk.length));
  }
  // The dag-pb nodes are hashed, not stored: `buildFile` names each by the key `put` returns.
  return (await buildFile(leaves, (node) => Promise.resolve(cidOf(node)))).cid;
}
