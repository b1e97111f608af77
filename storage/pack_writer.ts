/**
 * Writes objects into new pack files with group commit: every object handed to {@link
 * PackWriter.write} while a pack is being written waits, and the next pack takes all of them (up
 * to a size cap). Each pack is written to a temp file, fsynced, renamed into place and its
 * directory fsynced — the same atomic write-then-rename as one file per object, paid once per
 * pack instead of once per object. A write resolves only once its pack is durable.
 *
 * The temp file is held under an exclusive lock while it is written, so a store opening the
 * same directory (another process) can tell a crashed writer's leftover (lock free) from a live
 * one (lock held) and sweep only the first.
 *
 * @module
 */
import { join } from "node:path";
import { DiskFullError, isDiskFullOsError } from "./errors.ts";
import { encodePackHeader, type PackEntry } from "./pack_format.ts";
import { OWNER_FILE_MODE } from "../protocols/owner_only.ts";

/** Suffix of pack files. */
export const PACK_SUFFIX = ".pack";
/** Temp files are `.<name>.tmp`, in the packs directory. */
export const TEMP_PREFIX = ".";
/** See {@link TEMP_PREFIX}. */
export const TEMP_SUFFIX = ".tmp";

/** True when `name` is a pack writer's temp file name. */
export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX);
}

/** Where a written object landed. */
export interface WrittenObject extends PackEntry {
  /** File name of its pack (in the packs directory). */
  pack: string;
}

/** Options of {@link PackWriter}. */
export interface PackWriterOptions {
  /** fsync packs and the directory. Default `true`. */
  durable?: boolean;
  /** A pack takes objects until it holds at least this many bytes. Default 8 MiB. */
  maxPackBytes?: number;
  /**
   * Called after a pack's temp file is opened and before its bytes are written; throwing
   * simulates a failing write (an ENOSPC from the OS, for instance).
   */
  beforeWrite?(tempPath: string): void | Promise<void>;
  /** Called when an object joins the queue of the next pack (tests wait on it, not on time). */
  queued?(cid: string): void;
  /** Called once a pack is in place under its name (durable), before {@link onPack} (race tests). */
  beforeIndex?(packPath: string): void | Promise<void>;
  /** Milliseconds since the epoch, recorded in pack names as their age. Default `Date.now`. */
  clock?(): number;
  /**
   * Called once a pack is durable, with all its objects, before any of their writes resolve:
   * the place to index them, so the pack is never half known.
   */
  onPack?(name: string, objects: readonly WrittenObject[]): void;
}

/** Options of {@link PackWriter.write}. */
export interface PackWriteOptions {
  /**
   * The creation time (ms) to record in the object's pack name instead of the writer's clock. A
   * copy's age is its pack's (the GC grace period), so a rewrite passes the time of the pack its
   * survivors come from: moving an object must not give it a new grace period. Default: now.
   */
  packTime?: number;
}

interface Pending {
  cid: string;
  bytes: Uint8Array;
  /** {@link PackWriteOptions.packTime}; `undefined` for now. */
  packTime: number | undefined;
  done: PromiseWithResolvers<WrittenObject>;
}

const DEFAULT_MAX_PACK_BYTES = 8 * 1024 * 1024;

/** Group-committing writer of new packs into one directory. */
export class PackWriter {
  readonly #dir: string;
  readonly #durable: boolean;
  readonly #maxPackBytes: number;
  readonly #beforeWrite: PackWriterOptions["beforeWrite"];
  readonly #beforeIndex: PackWriterOptions["beforeIndex"];
  readonly #onPack: PackWriterOptions["onPack"];
  readonly #queued: PackWriterOptions["queued"];
  readonly #clock: () => number;
  #pending: Pending[] = [];
  #flushing = false;

  /**
   * @param dir The packs directory (must exist).
   * @param options Durability, pack size and fault hook.
   */
  constructor(dir: string, options?: PackWriterOptions) {
    this.#dir = dir;
    this.#durable = options?.durable ?? true;
    this.#maxPackBytes = options?.maxPackBytes ?? DEFAULT_MAX_PACK_BYTES;
    this.#beforeWrite = options?.beforeWrite;
    this.#beforeIndex = options?.beforeIndex;
    this.#onPack = options?.onPack;
    this.#queued = options?.queued;
    this.#clock = options?.clock ?? Date.now;
  }

  /**
   * Write `bytes` (already hashed to `cid`) into the next pack; resolves with its place once the
   * pack is durable. A pack holds objects of one {@link PackWriteOptions.packTime} only.
   *
   * @throws {DiskFullError} the disk filled up (the partial pack was removed).
   */
  write(cid: string, bytes: Uint8Array, options?: PackWriteOptions): Promise<WrittenObject> {
    const done = Promise.withResolvers<WrittenObject>();
    this.#pending.push({ cid, bytes, packTime: options?.packTime, done });
    this.#queued?.(cid);
    if (!this.#flushing) this.#flushLoop();
    return done.promise;
  }

  async #flushLoop(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#pending.length > 0) {
        const batch = this.#takeBatch();
        try {
          const written = await this.#writePack(batch);
          batch.forEach((p, i) => p.done.resolve(written[i]));
        } catch (error) {
          for (const p of batch) p.done.reject(error);
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /**
   * The next pack's objects: the first waiting and every other of its time, up to the size cap.
   * One time per pack, since the pack's time is each copy's age: a fresh write beside a rewrite's
   * survivors would otherwise either lose its grace period or give them a new one.
   */
  #takeBatch(): Pending[] {
    const packTime = this.#pending[0].packTime;
    const batch: Pending[] = [];
    const rest: Pending[] = [];
    let bytes = 0;
    for (const p of this.#pending) {
      if (p.packTime === packTime && (batch.length === 0 || bytes < this.#maxPackBytes)) {
        batch.push(p);
        bytes += p.bytes.length;
      } else {
        rest.push(p);
      }
    }
    this.#pending = rest;
    return batch;
  }

  async #writePack(batch: Pending[]): Promise<WrittenObject[]> {
    const { header, entries } = await encodePackHeader(
      batch.map((p) => ({ cid: p.cid, length: p.bytes.length })),
    );
    const name = newPackName(batch[0].packTime ?? this.#clock());
    const temp = join(this.#dir, `${TEMP_PREFIX}${name}${TEMP_SUFFIX}`);
    try {
      const file = await Deno.open(temp, { write: true, createNew: true, mode: OWNER_FILE_MODE });
      try {
        await file.lock(true);
        await this.#beforeWrite?.(temp);
        await writeAll(file, header);
        for (const p of batch) await writeAll(file, p.bytes);
        if (this.#durable) await file.syncData();
        await Deno.rename(temp, join(this.#dir, name));
      } finally {
        file.close();
      }
      if (this.#durable) await syncDir(this.#dir);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      if (isDiskFullOsError(error)) throw new DiskFullError(error);
      throw error;
    }
    if (this.#beforeIndex) await this.#beforeIndex(join(this.#dir, name));
    const written = entries.map((entry) => ({ ...entry, pack: name }));
    this.#onPack?.(name, written);
    return written;
  }
}

const TIME_CHARS = 9;

/** A fresh pack file name: creation time first, so names sort by age and tell it without a stat. */
function newPackName(now: number): string {
  const time = now.toString(36).padStart(TIME_CHARS, "0");
  const random = crypto.getRandomValues(new Uint8Array(8));
  const suffix = Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${time}-${suffix}${PACK_SUFFIX}`;
}

/** The creation time (ms) a pack's name records, or `null` for a name not made by this writer. */
export function packTimeOf(name: string): number | null {
  const time = name.length > TIME_CHARS && name[TIME_CHARS] === "-"
    ? parseInt(name.slice(0, TIME_CHARS), 36)
    : NaN;
  return Number.isFinite(time) ? time : null;
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await file.write(bytes.subarray(offset));
}

/** fsync a directory so a rename inside it survives power loss. */
export async function syncDir(path: string): Promise<void> {
  const dir = await Deno.open(path, { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}
