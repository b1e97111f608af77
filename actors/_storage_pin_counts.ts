/**
 * The StorageActor's running counts of its pinned files (files, public files, chunks), the
 * `file_counts` answer the dashboard shows. Review s74 F1: the dashboard asked for the whole `list`
 * once a second for these three numbers, and `list` reads every pinned manifest; with 2000 pins
 * that took longer than the ask's timeout and the asks piled up in the actor's mailbox.
 *
 * Each pin's figures are read once, when it is first seen, and kept; an answer costs one `stat` of
 * the pins directory while it has not changed ({@link ChunkStore.pinsStamp}). When it has (a pin
 * made or removed here, or by another process: `cli.ts put` into this store) the names are listed
 * again and only the new pins' manifests are read. Not part of the public API.
 *
 * @module
 */
import type { StorageTier } from "../protocols/manifest.ts";

/** The `file_counts` answer: what the pinned files are. */
export interface FileCounts {
  /** Files pinned here. */
  files: number;
  /** Of them, public (not encrypted). */
  publicFiles: number;
  /** Their chunks, as their manifests list them. */
  chunks: number;
}

/** One pinned file's part of the counts. */
export interface PinnedFigures {
  /** Its tier. */
  tier: StorageTier;
  /** Its chunks (its manifest's list). */
  chunks: number;
}

/** What {@link PinCounts} reads from the store. */
export interface PinCountsSource {
  /** The pins directory's stamp (`ChunkStore.pinsStamp`). */
  stamp(): Promise<number>;
  /** The pinned roots (`ChunkStore.pins`). */
  pins(): Promise<string[]>;
  /**
   * One pin's figures: reads its manifest (`_storage_pin_stat.ts`'s rule); undefined when it
   * cannot be read now (a missing or damaged root): counted as a file, and read again next time.
   */
  describe(cid: string): Promise<PinnedFigures | undefined>;
}

/** The counts, kept by pin (see the module doc). */
export class PinCounts {
  readonly #source: PinCountsSource;
  readonly #byPin = new Map<string, PinnedFigures>();
  /** The sums over {@link #byPin}, kept as pins come and go. */
  readonly #counts: FileCounts = { files: 0, publicFiles: 0, chunks: 0 };
  /** The stamp the kept figures were listed at; undefined: list again. */
  #stamp: number | undefined;
  /** Bumped by each {@link stale}: a listing it overtook does not vouch for the stamp. */
  #staleness = 0;

  /** Counts over `source`, read at the first {@link counts}. */
  constructor(source: PinCountsSource) {
    this.#source = source;
  }

  /**
   * List the pins again at the next {@link counts}, whatever the stamp says: the actor's own pin or
   * put may fall in the same millisecond as the last listing, which the stamp cannot tell.
   */
  stale(): void {
    this.#stamp = undefined;
    this.#staleness++;
  }

  /** The counts now. */
  async counts(): Promise<FileCounts> {
    const staleness = this.#staleness;
    const stamp = await this.#source.stamp();
    let unreadable = 0;
    if (stamp !== this.#stamp) {
      const pins = new Set(await this.#source.pins());
      for (const [cid, figures] of this.#byPin) {
        if (pins.has(cid)) continue;
        this.#byPin.delete(cid);
        this.#count(figures, -1);
      }
      for (const cid of pins) {
        if (this.#byPin.has(cid)) continue;
        const figures = await this.#source.describe(cid);
        // Not kept (review verify4, F4: a guess made once was kept for the pin's life): a read
        // that failed for a passing reason is tried again at the next answer.
        if (figures === undefined) unreadable++;
        else {
          this.#byPin.set(cid, figures);
          this.#count(figures, 1);
        }
      }
      // A put that ended meanwhile may have pinned after the listing, or a pin could not be
      // read: list again next time.
      if (staleness === this.#staleness && unreadable === 0) this.#stamp = stamp;
    }
    // An unreadable pin is a file still (ls lists it), of no known tier or chunks.
    return { ...this.#counts, files: this.#counts.files + unreadable };
  }

  /** Add (`sign` 1) or take off (-1) one pin's figures. */
  #count(figures: PinnedFigures, sign: 1 | -1): void {
    this.#counts.files += sign;
    if (figures.tier === "public") this.#counts.publicFiles += sign;
    this.#counts.chunks += sign * figures.chunks;
  }
}
