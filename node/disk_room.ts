/**
 * The node's read-only state on a full disk. A node whose data directory's disk has less free than
 * `storage.putMinFreeBytes` starts anyway, read-only: it serves what it holds (files, the gateway,
 * status, metrics, ledger queries) and refuses every write with the store's `disk_full` (507),
 * while the operator frees room through the node's own API (unpin, delete, `gc`). Before, the
 * ledger's open needed room (its history index's shared-memory file) and `start` failed on a full
 * disk, so the operator could not even look at what filled it (stop 75).
 *
 * Room for that open and for the deletes: a small file, {@link DISK_RESERVE_FILE}, written while
 * the disk has room and deleted at every start before anything else writes. Deleting it needs no
 * free space and gives back exactly what the ledger's open and an unpin's small records need; it is
 * written again once the disk has room. Whether the node is read-only is asked again on a timer
 * (the injected clock) and on each refused write, so it leaves read-only by itself, saying so (and
 * enters it, saying so, when the disk fills under a running node).
 *
 * @module
 */
import { join } from "node:path";
import { diskFreeBytes } from "../storage/disk_free.ts";
import { DiskFullError } from "../storage/errors.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import type { HealthCondition } from "../server/health_routes.ts";

/** The reserve's name in the data directory. */
export const DISK_RESERVE_FILE = "disk.reserve";
/**
 * The reserve's size: 1 MiB. The ledger's open on a full disk needs its index's shared-memory
 * file (32 KiB) and a few WAL pages; an unpin rewrites a record of a few hundred bytes. 1 MiB is
 * some 30 times that, and nothing next to the 256 MiB floor the store keeps anyway.
 */
export const DISK_RESERVE_BYTES = 1024 * 1024;
/**
 * How often the node asks the disk again: 10 s. Room freed by hand (`rm` of an unrelated file) is
 * seen within that; a free-space question is one `statfs`, so asking costs nothing.
 */
export const DISK_ROOM_CHECK_MS = 10_000;

/** What a {@link DiskRoom} watches, and with what. */
export interface DiskRoomOptions {
  /** The data directory: its disk is watched, and the reserve lives in it. */
  dir: string;
  /** Free bytes the node needs to write (`storage.putMinFreeBytes`). */
  floorBytes: number;
  /**
   * Free bytes of the data directory's disk; default the OS's (`statfs`). The store's own
   * test hook (`ChunkStoreOptions.faults.freeBytes`) is given here too, so both see one disk.
   */
  freeBytes?: () => number | Promise<number>;
  /** Clock and timers; default the real ones. */
  timers?: ConnectionTimers;
  /** Where it says it entered or left read-only. */
  log?: (line: string) => void;
}

/** What `/healthz` and `status` show of the disk while the node is read-only. */
export interface DiskRoomState {
  /** Whether writes are refused. */
  readOnly: boolean;
  /** Free bytes at the last check. */
  freeBytes: number;
  /** Free bytes the node needs to write (`storage.putMinFreeBytes`). */
  needsBytes: number;
}

/** See the module doc. */
export class DiskRoom {
  readonly #dir: string;
  readonly #floor: number;
  readonly #freeBytes: () => number | Promise<number>;
  readonly #timers: ConnectionTimers;
  readonly #log: (line: string) => void;
  #free = Infinity;
  #readOnly = false;
  /** Unix ms when it became read-only (the condition's `since`). */
  #since = 0;
  #timer: unknown = undefined;
  #closed = false;

  private constructor(options: DiskRoomOptions) {
    this.#dir = options.dir;
    this.#floor = options.floorBytes;
    this.#freeBytes = options.freeBytes ?? (() => diskFreeBytes(options.dir));
    this.#timers = options.timers ?? SYSTEM_TIMERS;
    this.#log = options.log ?? (() => {});
  }

  /**
   * Free the reserve, then judge the disk: read-only (said in the log, with the free bytes and
   * what the node needs) when it has less free than the floor; else the reserve is written again.
   * Call it once the data directory is this node's (its lock) and before anything else writes.
   */
  static async open(options: DiskRoomOptions): Promise<DiskRoom> {
    const room = new DiskRoom(options);
    // Deleting needs no room: the reserve's blocks are what the ledger's open then takes.
    await Deno.remove(room.#reserve).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    await room.check();
    return room;
  }

  get #reserve(): string {
    return join(this.#dir, DISK_RESERVE_FILE);
  }

  /** Whether writes are refused now (as of the last check). */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  /** The state as of the last check. */
  state(): DiskRoomState {
    return { readOnly: this.#readOnly, freeBytes: this.#free, needsBytes: this.#floor };
  }

  /**
   * The refusal of a write now, without asking the disk (for callers that cannot wait: the
   * ledger's writer); undefined when the node writes. A refusal asks the disk again in the
   * background, so the next write finds room that came back.
   */
  refusalNow(): DiskFullError | undefined {
    if (!this.#readOnly) return undefined;
    this.check().catch(() => {});
    return this.#refusal();
  }

  /**
   * The refusal of a write (`disk_full`), asking the disk again first while read-only: a write
   * that finds room that came back is taken, and the node leaves read-only. Undefined: write.
   */
  async refusal(): Promise<DiskFullError | undefined> {
    if (!this.#readOnly) return undefined;
    await this.check();
    return this.#readOnly ? this.#refusal() : undefined;
  }

  #refusal(): DiskFullError {
    return new DiskFullError(
      undefined,
      `the node is read-only: its data directory's disk has ${this.#free} bytes free and it ` +
        `needs ${this.#floor} (storage.putMinFreeBytes) to write; free space (unpin or delete ` +
        "files, then gc) and it takes writes again by itself",
    );
  }

  /** `/healthz`'s condition while read-only (`disk_full`, degraded: reads are served). */
  conditions(): HealthCondition[] {
    if (!this.#readOnly) return [];
    return [{
      component: "disk",
      status: "degraded",
      code: "disk_full",
      message: `read-only: ${this.#free} bytes free, ${this.#floor} needed ` +
        "(storage.putMinFreeBytes); reads are served, writes refused disk_full",
      since: this.#since,
    }];
  }

  /** Ask the disk now; enter or leave read-only, saying so; ask again later. */
  async check(): Promise<void> {
    if (this.#closed) return;
    // No floor (`putMinFreeBytes` 0): nothing to keep, so the disk is not asked at all (as the
    // store does not ask it), and the node never turns read-only.
    if (this.#floor <= 0) return await this.#writeReserve();
    this.#free = await this.#freeBytes();
    const full = this.#free < this.#floor;
    if (full && !this.#readOnly) {
      this.#readOnly = true;
      this.#since = Date.now();
      this.#log(
        `disk: read-only: ${this.#free} bytes free on the data directory's disk, the node ` +
          `needs ${this.#floor} (storage.putMinFreeBytes) to write; files, status, metrics and ` +
          "the ledger are served, writes are refused disk_full; free space (unpin or delete " +
          "files, then gc) and the node takes writes again by itself",
      );
    } else if (!full && this.#readOnly) {
      this.#readOnly = false;
      this.#log(`disk: ${this.#free} bytes free: writes are taken again (read-only ended)`);
    }
    if (!this.#readOnly) await this.#writeReserve();
    this.#arm();
  }

  /**
   * Ask again in {@link DISK_ROOM_CHECK_MS}, read-only or not (a disk that fills under a running
   * node makes it read-only too, before its ledger's writes fail); one timer at a time.
   */
  #arm(): void {
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#closed) return;
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      this.check().catch((error) => this.#log(`disk: free space unread: ${error}`));
    }, DISK_ROOM_CHECK_MS);
  }

  /** Write the reserve where it is missing (a disk that refuses it keeps the node as it is). */
  async #writeReserve(): Promise<void> {
    try {
      const stat = await Deno.stat(this.#reserve).catch(() => undefined);
      if (stat?.size === DISK_RESERVE_BYTES) return;
      await Deno.writeFile(this.#reserve, new Uint8Array(DISK_RESERVE_BYTES), { mode: 0o600 });
    } catch {
      // Not written: the next start on a full disk has less room for its ledger, nothing more.
      await Deno.remove(this.#reserve).catch(() => {});
    }
  }

  /** Stop the timer. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
