/**
 * The modes of what the node writes durably: its owner's only, whatever the umask. The ledger
 * (every receipt, verdict and balance this node recorded), the chunk store's packs (the bytes of
 * every public file clients uploaded, in clear) and its records (what the node holds and for
 * whom). The node's data directory is 0700 (`node/data_dir_lock.ts`), but a copy or backup of it
 * (tar to a shared volume, `cp -r` into a world-readable place), or a store opened in a directory
 * of its own, keeps only each file's own mode: created with the umask they were 0644, where the
 * README says the files the node writes durably are 0600 (review s72, docs F1). The same holds
 * for everything else the node creates in its data directory: `node.lock`, `models/` (the
 * built-in model), `calibration/`, the proof store's directories (stop 73), and what the
 * training code keeps: trained models, the coordinator's state and momenta, a trainer's traces,
 * answers and records, a validator's kept steps, held proofs and audited momenta (stop 74). Not
 * part of the public API.
 *
 * @module
 */

/** Each durable file: read and written by its owner only. */
export const OWNER_FILE_MODE = 0o600;

/** Each directory the node creates in its data directory: entered and listed by its owner only. */
export const OWNER_DIR_MODE = 0o700;

/**
 * Take from `path` what others may do with it, when they may do anything (a file an earlier
 * version created with the umask, or a copy restored so), keeping its owner's bits. Best effort,
 * as for the identity key (`node/node_identity.ts`): a file that is not there is nothing to do,
 * and one on a read-only volume or owned by another user keeps the mode its operator set.
 */
export function keepToOwner(path: string): void {
  if (Deno.build.os === "windows") return; // no modes there
  try {
    const narrowed = toOwner(Deno.statSync(path).mode);
    if (narrowed !== undefined) Deno.chmodSync(path, narrowed);
  } catch {
    // missing, read-only, or not this user's: left as it is
  }
}

/**
 * {@link keepToOwner} without blocking the event loop, and failing where it fails (a missing
 * file, a read-only volume): for a secret read or written in an async path (the identity key,
 * the operator token), whose caller decides whether a failure matters.
 * @throws {Deno.errors.NotFound} and the other errors of `Deno.stat` and `Deno.chmod`.
 */
export async function keepToOwnerAsync(path: string): Promise<void> {
  if (Deno.build.os === "windows") return; // no modes there
  const narrowed = toOwner((await Deno.stat(path)).mode);
  if (narrowed !== undefined) await Deno.chmod(path, narrowed);
}

/**
 * Make directory `path`, with the parents it lacks, its owner's only ({@link OWNER_DIR_MODE}),
 * and tighten it when an earlier version made it with the umask ({@link keepToOwner}, best
 * effort): for the folders a store makes in the data directory, where a copy of the directory
 * keeps each folder's own mode.
 */
export async function makeOwnerDir(path: string): Promise<void> {
  await Deno.mkdir(path, { recursive: true, mode: OWNER_DIR_MODE });
  keepToOwner(path);
}

/** `mode` with its group and others' bits cleared; undefined when they are clear already. */
function toOwner(mode: number | null): number | undefined {
  const bits = mode ?? 0;
  return bits & 0o077 ? bits & 0o700 : undefined;
}
