/**
 * What `ls` finds damaged in a pinned file: the walk below its root (missing blocks, blocks that
 * fail their hash, file nodes whose leaf lengths lie) and the line `ls` prints of it.
 *
 * @module
 */
import { cidCodec, DAG_PB_CODEC, storageKey } from "../protocols/cid.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { chunkCountOf } from "../protocols/manifest.ts";
import type { ChunkStore } from "../storage/chunk_store.ts";
import { blocksReferencedBy, isDagNode, storedLinks } from "../storage/dag_links.ts";
import type { FileInfo, FileStore } from "../storage/file_store.ts";
import { assertRawLeafSizes } from "../storage/unixfs.ts";
import { countOf } from "./_command_support.ts";
import { quarantinedKeys } from "./_quarantined.ts";

/** Blocks of a file found damaged ({@link damageOf}), as `ls --json` prints them. */
export interface FileDamage {
  /** Blocks not in the store, nor set aside. */
  missing: number;
  /** Blocks whose bytes failed their hash, now or at an earlier read (these in `quarantined`). */
  corrupt: number;
  /** Of `corrupt`, those an earlier read found and set aside in `quarantine/`; absent when none. */
  quarantined?: number;
  /**
   * File nodes (the root among them) linking a raw leaf whose length is not the one they say
   * (`invalid_manifest`: every read of the file fails on it, review s76 F1); absent when none.
   */
  invalid?: number;
}

/** What {@link damageOf} found below a file's root. */
export interface WalkedFile {
  /** Blocks missing, and (with `verify`) failing their hash: inner nodes and chunks alike. */
  damage: FileDamage;
  /** Chunks (blocks that link nothing) met, present or not. */
  chunks: number;
  /** True when an inner node could not be read: the chunks below it were not met. */
  hidden: boolean;
}

/**
 * How many chunks the damaged file `info` has: a private file's root says (a manifest tree's
 * branches carry their counts, so a lost node hides none); any other file's are the chunks the
 * walk met, "at least" that many when a lost inner node hid some.
 */
export async function chunkTotalOf(
  files: FileStore,
  info: FileInfo,
  walked: WalkedFile,
): Promise<string> {
  if (info.tier === "private") return String(chunkCountOf(await files.manifest(info.cid)));
  return walked.hidden ? `at least ${walked.chunks}` : String(walked.chunks);
}

/**
 * Blocks of file `root` (below it, `chunks` being its links) that are missing from `store`, or
 * (with `verify`) fail their hash, and its file nodes that link a raw leaf of another length than
 * they say; a UnixFS file's inner nodes and a manifest tree's nodes are walked. Each block walked
 * goes into `reached`.
 */
export async function damageOf(
  store: ChunkStore,
  root: string,
  chunks: readonly string[],
  verify: boolean,
  reached?: Set<string>,
): Promise<WalkedFile> {
  const damage: FileDamage = { missing: 0, corrupt: 0 };
  let leaves = 0;
  let hidden = false;
  const seen = new Set<string>();
  // Read once, when a block is first found gone: most files lose none.
  let quarantined: Set<string> | undefined;
  // A block gone because a read found it corrupt and set it aside is corrupt, not missing: after
  // the first `ls --verify` moved it to quarantine/, every later `ls` called it missing.
  const gone = async (cid: string) => {
    quarantined ??= await quarantinedKeys(store.dir);
    if (!quarantined.has(storageKey(cid))) return void damage.missing++;
    damage.corrupt++;
    damage.quarantined = (damage.quarantined ?? 0) + 1;
  };
  // The read of a block that is there: counted when it fails its hash or went meanwhile.
  const read = async (cid: string) => {
    try {
      return await store.get(cid);
    } catch (error) {
      if (error instanceof VeriflowError && error.code === "corrupt_chunk") damage.corrupt++;
      else if (error instanceof VeriflowError && error.code === "chunk_not_found") await gone(cid);
      else throw error;
      return undefined;
    }
  };
  // A leaf's length from the index: no leaf is read for it, with or without `verify`.
  const checkLeafSizes = async (cid: string, bytes: Uint8Array) => {
    try {
      await assertRawLeafSizes(cid, bytes, (c) => store.storedLength(c));
    } catch (error) {
      if (!(error instanceof VeriflowError) || error.code !== "invalid_manifest") throw error;
      damage.invalid = (damage.invalid ?? 0) + 1;
    }
  };
  // The root's own leaves: the caller read it to list the file, so it is there (read once more).
  if (cidCodec(root) === DAG_PB_CODEC) {
    const bytes = await read(root);
    if (bytes) await checkLeafSizes(root, bytes);
  }
  // A file's inlined (identity CID) links are stored nowhere: no key to look up, no damage.
  const stack = storedLinks(chunks);
  while (stack.length > 0) {
    const cid = stack.pop()!;
    if (seen.has(cid)) continue;
    seen.add(cid);
    reached?.add(storageKey(cid));
    const node = isDagNode(cid);
    if (!node) leaves++;
    if (!await store.has(cid)) {
      await gone(cid);
      hidden ||= node;
    } else if (node) {
      // An inner UnixFS node: read (so verified) to find the blocks below it.
      const bytes = await read(cid);
      if (bytes) {
        stack.push(...blocksReferencedBy(cid, bytes));
        await checkLeafSizes(cid, bytes);
      } else hidden = true;
    } else if (verify) {
      await read(cid);
    }
  }
  return { damage, chunks: leaves, hidden };
}

/** What `ls` prints after DAMAGED for a file whose walk found `damage`; `chunks`: its total. */
export function damageLine(damage: FileDamage, chunks: string | undefined): string {
  const parts = [];
  if (damage.missing + damage.corrupt > 0) {
    parts.push(`${describeDamage(damage)} of ${chunks} chunks`);
  }
  if (damage.invalid !== undefined) {
    parts.push(
      `${countOf(damage.invalid, "file node")} linking a leaf of another length than it says ` +
        "(invalid_manifest: no read of the file succeeds)",
    );
  }
  return `${parts.join("; ")}; put the file again`;
}

function describeDamage(damage: FileDamage): string {
  const parts = [];
  if (damage.missing > 0) parts.push(`${damage.missing} missing`);
  if (damage.corrupt > 0) {
    const aside = damage.quarantined ?? 0;
    parts.push(
      `${damage.corrupt} corrupt` +
        (aside === 0
          ? ""
          : ` (${
            aside === damage.corrupt ? "" : `${aside} `
          }set aside in quarantine/ by an earlier read)`),
    );
  }
  return parts.join(", ");
}
