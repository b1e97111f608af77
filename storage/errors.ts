/**
 * Typed errors of the storage layer. Each carries a stable `code` so the wire, the CLI and the
 * tests name the same failure: a reader of a log line `corrupt_chunk` knows that bytes on disk
 * (or from a peer) did not hash to their CID and were refused, not served.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/** Base class of all storage errors. */
export class StorageError extends VeriflowError {}

/** Bytes read for a CID did not hash to it. They were never returned to the caller. */
export class CorruptChunkError extends StorageError {
  /** The CID whose bytes failed verification. */
  readonly cid: string;
  /**
   * Build the error.
   *
   * @param cid The CID whose bytes failed verification.
   * @param where Where the bad bytes came from (a path or a peer id), for the log.
   */
  constructor(cid: string, where: string) {
    super("corrupt_chunk", `bytes for ${cid} from ${where} do not match the CID; refused`);
    this.cid = cid;
  }
}

/** No stored object (chunk or manifest) has this CID. */
export class ChunkNotFoundError extends StorageError {
  /** The CID that was asked for. */
  readonly cid: string;
  /**
   * Build the error.
   * @param cid The CID that was asked for.
   */
  constructor(cid: string, where = "the local store") {
    super("chunk_not_found", `no object ${cid} in ${where}`);
    this.cid = cid;
  }
}

/**
 * A peer, or a client of the node's gateway, asked this node for a chunk it is challenging some
 * holder on right now (an audit awaiting its answer: `actors/_challenged_chunks.ts`). Served, a
 * holder that keeps nothing answered the challenge with this node's own copy, fetched under a
 * second key (review s81 store, F1) or from the gateway (review s81 vaudit, F1). Says nothing of
 * this node's copy: a reader asks the chunk's other holders, or again after `retryAfterS`.
 */
export class ChunkUnderAuditError extends StorageError {
  /** The CID that was asked for. */
  readonly cid: string;
  /** Seconds after which the hold has ended: the longest a holder has to answer. */
  readonly retryAfterS: number;
  /**
   * Build the error.
   * @param cid The CID that was asked for.
   * @param retryAfterS Seconds after which the hold has ended (default 1).
   */
  constructor(cid: string, retryAfterS = 1) {
    super(
      "chunk_under_audit",
      `${cid} is not served for a few seconds while this node audits a holder on it: ask another ` +
        "holder, or retry after the Retry-After seconds",
    );
    this.cid = cid;
    this.retryAfterS = retryAfterS;
  }
}

/**
 * A peer's chunk would take what this node holds for other nodes past its cap
 * (`replicaQuotaBytes`), or leave the disk with less free space than the node keeps for itself
 * (`replicaMinFreeBytes`). Nothing was written; the peer places the copy on another holder.
 */
export class ReplicaQuotaExceededError extends StorageError {
  /**
   * Build the error.
   *
   * @param needed Bytes the write needed: the chunk's and `overhead`.
   * @param why Which limit refused it, with its figures.
   * @param overhead What the copy is charged beyond the chunk's bytes (`REPLICA_OVERHEAD_BYTES`),
   * named apart so a 256 KiB chunk is not called a chunk of 270,848 bytes. Default 0.
   */
  constructor(needed: number, why: string, overhead = 0) {
    const charge = overhead > 0
      ? `a chunk of ${needed - overhead} bytes, charged ${needed} (its bytes and ${overhead} ` +
        `per copy held for a peer),`
      : `a chunk of ${needed} bytes`;
    super(
      "replica_quota_exceeded",
      `this node holds no more for peers: ${charge} would pass ${why}`,
    );
  }
}

/** A write would take the store past its configured quota. Nothing was written. */
export class QuotaExceededError extends StorageError {
  /**
   * Build the error.
   *
   * @param needed Bytes the write needed.
   * @param available Bytes left under the quota.
   */
  constructor(needed: number, available: number) {
    super(
      "quota_exceeded",
      `storage quota exceeded: need ${needed} bytes, ${Math.max(0, available)} available`,
    );
  }
}

/**
 * The disk ran out of space (ENOSPC) during a write. The pack that write was filling is removed;
 * the objects a put stored before it stay until a GC takes them (nothing else references them,
 * but they are inside the grace period: see `cli.ts gc`).
 */
export class DiskFullError extends StorageError {
  /**
   * Build the error.
   * @param cause The underlying OS error.
   * @param message What was refused, where the store refused it before the disk did (its floor
   * of free space).
   */
  constructor(cause?: unknown, message?: string) {
    super(
      "disk_full",
      message ?? "no space left on the storage device; the write that hit it was removed",
      { cause },
    );
  }
}

/** Decryption of a private object failed: wrong key, or the ciphertext was tampered with. */
export class AuthenticationError extends StorageError {
  /**
   * Build the error.
   * @param what What failed to authenticate (manifest or chunk n of a file).
   */
  constructor(what: string, cause?: unknown) {
    super(
      "authentication_failed",
      `cannot decrypt ${what}: wrong key or tampered ciphertext`,
      { cause },
    );
  }
}

/** Bytes that should be a manifest are not a valid one (defined with the manifest format). */
export { InvalidManifestError } from "../protocols/manifest.ts";

/** A private file was opened without a key, or a key was given for a public file. */
export class KeyRequiredError extends StorageError {
  /**
   * Build the error.
   * @param cid The private file's id.
   */
  constructor(cid: string) {
    super("key_required", `file ${cid} is private: an owner key is needed to read it`);
  }
}

/**
 * Fewer storage peers acknowledged a write than the write quorum needs, or no replica of a read
 * answered with a good copy while some did not answer at all (the chunk may exist: try later).
 */
export class ReplicationError extends StorageError {
  /**
   * Build the error.
   *
   * @param message What failed.
   */
  constructor(message: string, cause?: unknown) {
    super("replication_failed", message, { cause });
  }
}

/**
 * An audited holder's answer was lost on the auditor's own side: the connection it came on was
 * closed by the auditor's network (it crashed or was restarted meanwhile). Nobody is judged: the
 * holder is audited again next round (`audit.ts`, `closedHere`).
 */
export class HolderNotReachedError extends StorageError {
  /** The holder's id. */
  readonly holderId: string;
  /**
   * Build the error.
   *
   * @param holderId The holder's id.
   * @param cause How its call failed.
   */
  constructor(holderId: string, cause: unknown) {
    super(
      "holder_not_reached",
      `holder ${holderId.slice(0, 16)} not reached: this node's network closed its connection`,
      { cause },
    );
    this.holderId = holderId;
  }
}

/**
 * A byte range the file cannot give was asked for. The message says which end is wrong: a range
 * that overlaps the file's last bytes was called "outside" it (review s79 F5), which sent users to
 * look for a wrong start.
 */
export class RangeNotSatisfiableError extends StorageError {
  /**
   * Build the error.
   *
   * @param start First byte asked for.
   * @param end One past the last byte asked for.
   * @param size Size of the file.
   */
  constructor(start: number, end: number, size: number) {
    super("range_not_satisfiable", `range [${start}, ${end}) ${rangeProblem(start, end, size)}`);
  }
}

/** What is wrong with `[start, end)` of a `size`-byte file, said after the range. */
function rangeProblem(start: number, end: number, size: number): string {
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0) {
    return "is not a range of byte offsets";
  }
  if (end < start) return "ends before it starts";
  if (start >= size && end > size) return `starts at or past the end of a ${size}-byte file`;
  if (end > size) return `runs past the end of a ${size}-byte file (its last byte is ${size - 1})`;
  return `is not a range of a ${size}-byte file`;
}

/** A file was to be read whole into memory, and it is larger than the configured limit. */
export class FileTooLargeError extends StorageError {
  /**
   * Build the error.
   *
   * @param cid The file id.
   * @param size Bytes it would take.
   * @param limit The limit (`maxInMemoryBytes`).
   */
  constructor(cid: string, size: number, limit: number) {
    super(
      "file_too_large",
      `file ${cid} is ${size} bytes; reading a file whole is limited to ${limit} bytes ` +
        `(storage.maxInMemoryBytes): stream it with get instead, or raise the limit`,
    );
  }
}

/**
 * A DAG node (dag-pb) larger than {@link MAX_DAG_BLOCK_BYTES}, or with more links than
 * {@link MAX_LINKS_PER_NODE}: refused before it is stored or walked, since decoding and walking
 * one costs far more memory and time than its bytes (200,000 links, 2 MB: ~1 GB, 16 s).
 */
export class BlockTooLargeError extends StorageError {
  /**
   * Build the error.
   *
   * @param cid The block's CID.
   * @param what What is too large, e.g. `3600000 bytes (limit 2097152)`.
   */
  constructor(readonly cid: string, what: string) {
    super("block_too_large", `block ${cid} is too large: ${what}`);
  }
}

/**
 * Largest DAG node (dag-pb block) stored, imported or walked: 2 MiB, the largest block kubo and
 * bitswap exchange, so no DAG IPFS tools make is refused. Veriflow's own nodes are a few KiB (174
 * links) and a flat directory at most ~256 KiB of links.
 */
export const MAX_DAG_BLOCK_BYTES = 2 * 1024 * 1024;

/**
 * Most links one dag-pb node may have: Veriflow writes 174 per file node and refuses a directory
 * over 256 KiB of links (a few thousand); 16,384 leaves room for other tools' layouts while
 * keeping a node's decoded links to a few MiB.
 */
export const MAX_LINKS_PER_NODE = 16_384;

/**
 * Largest block a CAR import takes, of any codec but dag-cbor: 2 MiB as for DAG nodes (a raw leaf
 * of `ipfs add` is at most 1 MiB). A dag-cbor manifest has its own, larger cap (`car.ts`'s
 * `MAX_CAR_MANIFEST_BYTES`): a flat manifest written before manifest trees lists every chunk, about
 * 61 bytes each, so a file over ~8.6 GiB has one over 2 MiB.
 */
export const MAX_CAR_BLOCK_BYTES: number = MAX_DAG_BLOCK_BYTES;

/** True when `error` is the OS's "no space left on device". */
export function isDiskFullOsError(error: unknown): boolean {
  const e = error as { code?: string; message?: string } | null;
  return e?.code === "ENOSPC" || /os error 28\b|No space left/i.test(e?.message ?? "");
}

/**
 * The store's directory cannot be written: its filesystem turned read-only (`EROFS`: ext4 remounts
 * itself read-only on errors), the process may not write there (`EACCES`, `EPERM`), or the device
 * fails (`EIO`). Nothing was kept of the write; what is stored is still served. A store opened on
 * such a directory opens read-only (`ChunkStore.readOnly`) and refuses every write with this.
 */
export class StorageUnwritableError extends StorageError {
  /**
   * Build the error.
   *
   * @param what What could not be written (a path, or the store).
   * @param cause The underlying OS error, if any.
   */
  constructor(what: string, cause?: unknown) {
    const os = (cause as { code?: unknown } | undefined)?.code;
    super(
      "storage_unwritable",
      `cannot write ${what}: the storage directory is read-only or failing` +
        (typeof os === "string" ? ` (${os})` : "") + "; stored files are still served",
      { cause },
    );
  }
}

/** The OS error codes that say a directory cannot be written (see {@link StorageUnwritableError}). */
const UNWRITABLE_OS_CODES: ReadonlySet<string> = new Set(["EROFS", "EACCES", "EPERM", "EIO"]);

/**
 * True when `error` is the OS refusing a write for good: a read-only filesystem, no permission, or
 * an I/O error (`EROFS`, `EACCES`, `EPERM`, `EIO`). Not Deno's own permission checks
 * (`NotCapable`): those are the process's flags, not the disk.
 */
export function isUnwritableOsError(error: unknown): boolean {
  const e = error as { code?: string; message?: string } | null;
  return (e?.code !== undefined && UNWRITABLE_OS_CODES.has(e.code)) ||
    /os error (30|13|1|5)\)/.test(e?.message ?? "");
}

/**
 * The typed error of a failed write of `what`: {@link DiskFullError} for `ENOSPC`,
 * {@link StorageUnwritableError} for an {@link isUnwritableOsError}; any other error (a typed one
 * already, a bug) as it is. Every write path of the chunk store rethrows through this, so a disk
 * failing under a running node is answered to the asker, never a crash of the actor.
 */
export function storageWriteError(error: unknown, what: string): unknown {
  if (error instanceof VeriflowError) return error;
  if (isDiskFullOsError(error)) return new DiskFullError(error);
  if (isUnwritableOsError(error)) return new StorageUnwritableError(what, error);
  return error;
}

/**
 * A pack file's header (its index of objects) is unreadable: bad magic, a version older than any written, cut
 * short or failing its checksum. The pack is moved to quarantine; its objects count as missing
 * here, so replicas repair them.
 */
export class DamagedPackError extends StorageError {
  /**
   * Build the error.
   *
   * @param path The pack file.
   * @param reason What is wrong with it.
   */
  constructor(readonly path: string, reason: string) {
    super("damaged_pack", `damaged pack ${path}: ${reason}`);
  }
}
