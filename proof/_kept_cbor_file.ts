/**
 * One CBOR file kept in step with a value held in memory: written durably when its encoding
 * differs from what is on disk, removed when there is nothing to keep, and never written when
 * nothing changed — so an actor may call {@link KeptCborFile.keep} at every tick, and a flood of
 * messages costs at most one write per tick. What is read back is untrusted (the caller checks
 * each entry as it would a peer's). The held-evidence file (`actors/_held_evidence.ts`) is kept
 * this way, and, as a {@link KeptCborList}, the training validator's unbacked-check counts
 * (`training/_kept_unbacked_training_checks.ts`) and its receipts held for their trainer's stake
 * (`training/_kept_stake_held_training_receipts.ts`). Not part of the public API.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { decodeCbor, encodeCanonical } from "../protocols/cbor.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { removeTemporaries, writeFileDurably } from "./_durable_file.ts";
import { OWNER_DIR_MODE } from "../protocols/owner_only.ts";

/** See the module doc. */
export class KeptCborFile {
  readonly #path: string;
  /** The bytes on disk as last written or read (undefined: no file). */
  #kept: Uint8Array | undefined;

  /** @param path The file. */
  constructor(path: string) {
    this.#path = path;
  }

  /**
   * What the file holds (undefined: no file). One that is not readable CBOR is removed and reads
   * as none. Read at the start, before any {@link KeptCborFile.keep}: the temporary files of a
   * keep a crash cut short are removed then.
   */
  async read(): Promise<unknown> {
    await removeTemporaries(dirname(this.#path), (name) => name === basename(this.#path));
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(this.#path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    let value: unknown;
    try {
      value = decodeCbor(bytes);
    } catch {
      await this.#remove();
      return undefined;
    }
    this.#kept = bytes;
    return value;
  }

  /**
   * Make the file hold `value` (canonical CBOR), durably, or remove it when `value` is
   * undefined. Returns whether the disk changed.
   */
  async keep(value: unknown): Promise<boolean> {
    if (value === undefined) {
      if (this.#kept === undefined) return false;
      await this.#remove();
      return true;
    }
    const bytes = encodeCanonical(value);
    if (this.#kept !== undefined && bytesEqual(this.#kept, bytes)) return false;
    await Deno.mkdir(dirname(this.#path), { recursive: true, mode: OWNER_DIR_MODE });
    await writeFileDurably(this.#path, bytes);
    this.#kept = bytes;
    return true;
  }

  async #remove(): Promise<void> {
    await Deno.remove(this.#path).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
    this.#kept = undefined;
  }
}

/**
 * A {@link KeptCborFile} holding a list: read back as a list (none, or not a list: empty), and
 * no file while the list is empty.
 */
export class KeptCborList<T> {
  readonly #file: KeptCborFile;
  readonly #entry: (item: T) => unknown;

  /**
   * The list kept at `path`.
   *
   * @param path The file.
   * @param entry What of an item is written (default: the item as it is).
   */
  constructor(path: string, entry: (item: T) => unknown = (item) => item) {
    this.#file = new KeptCborFile(path);
    this.#entry = entry;
  }

  /** What the file holds, untrusted (the caller checks each entry); none: []. */
  async read(): Promise<unknown[]> {
    const value = await this.#file.read();
    return Array.isArray(value) ? value : [];
  }

  /** Make the file hold `items`, durably; removed when empty. Returns whether the disk changed. */
  keep(items: readonly T[]): Promise<boolean> {
    return this.#file.keep(items.length === 0 ? undefined : items.map(this.#entry));
  }
}
