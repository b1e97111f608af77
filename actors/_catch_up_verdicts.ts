/**
 * The verdicts a validator's catch-up (`_catch_up.ts`) keeps for the peers that connect: each
 * fault's or start's ending verdict with the receipt and job it goes after, if any. How they are
 * bounded ({@link MAX_CATCH_UP_VERDICTS}, {@link MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES}: past a bound
 * the longest kept of the key holding the most goes), written ahead of their settlement, kept once
 * settled, and read back from their folder at a start (see the module doc of `_catch_up.ts`).
 * `CatchUp` holds one {@link CatchUpVerdicts} beside its convictions and hands it its disk queue
 * and its log: the verdicts' files are written and removed in one order with the convictions'.
 * Not part of the public API (the bounds are re-exported by `_catch_up.ts`).
 *
 * @module
 */
import { encodeCanonical } from "../protocols/cbor.ts";
import { toHex } from "../protocols/hash.ts";
import { type Verdict, verdictId } from "../protocols/verdict.ts";
import type { ReceiptFiles } from "./_receipt_files.ts";
import type { CatchUpItem } from "./validator_messages.ts";
import {
  type Kept,
  type KeptVerdict,
  type KeptVerdictFile,
  keptVerdictOf,
  verdictIdOf,
} from "./_catch_up_items.ts";
import type { CatchUpReadOptions } from "./_catch_up.ts";

/**
 * Most bytes of receipts and jobs kept ahead of "proof withheld" faults (canonical CBOR of each
 * `ClaimEvidence`). An honest text job is a few KiB, so {@link MAX_CATCH_UP_VERDICTS} faults' fit
 * far inside this; one about a job near `MAX_NETWORK_JOB_BYTES` (448 KiB) takes about a ninth of
 * it. Bounded apart from the convictions' bytes (never pushing one out), at half of theirs: each
 * connect costs at most 8 + 4 MiB of them. Past it, the longest kept evidence of the worker whose
 * evidence holds the most bytes is dropped (its verdict is still sent, alone): a worker made to
 * withhold on purpose with large jobs gives up its own, not another withholder's.
 */
export const MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES = 4 << 20;

/**
 * Most verdicts kept. A start applies only what a stop or a failed ledger write cut off between a
 * decision and its write — a few challenges — and a fault is a worker slashed here, so this is
 * reached only after a long outage under load or under a flood of faults made on purpose; past it
 * the longest kept of the worker holding the most go (they were still told to the network at
 * once).
 */
export const MAX_CATCH_UP_VERDICTS = 64;

/** What a {@link CatchUpVerdicts} shares with the `CatchUp` that holds it. */
export interface CatchUpVerdictsOptions {
  /** Where the verdicts are kept on disk; none: memory only. */
  disk?: ReceiptFiles;
  /**
   * Run `write` after the catch-up's earlier disk writes, the convictions' included; a failure
   * is logged (`what`), never thrown. Returns the end of the queue.
   */
  onDisk(write: () => Promise<void>, what: string): Promise<void>;
  /** The end of the catch-up's queue of disk writes now. */
  writes(): Promise<void>;
  /** Where a damaged entry, or a folder that failed, is reported (the catch-up's log now). */
  log(line: string): void;
}

/** The verdicts of a validator's catch-up, each until its receipt's window closes. */
export class CatchUpVerdicts {
  readonly #verdicts: Kept<Extract<CatchUpItem, { kind: "verdict" }>>[] = [];
  /** Bytes of the evidence {@link CatchUpVerdicts.#verdicts} carry. */
  #evidenceBytes = 0;
  /** Where the verdicts are kept on disk (beside the convictions' folder). */
  readonly #verdictDisk?: ReceiptFiles;
  /** The order of the next verdict kept. */
  #verdictSeq = 0;
  /**
   * Verdicts written ahead of their settlement (`CatchUp.write`), or read back from disk,
   * not kept yet, by verdict id: kept by `CatchUp.add` once settled, or at a start if the
   * ledger recorded them ({@link CatchUpReadOptions.recorded}); never sent before.
   */
  readonly #writtenVerdicts = new Map<string, KeptVerdictFile>();
  readonly #options: CatchUpVerdictsOptions;

  constructor(options: CatchUpVerdictsOptions) {
    this.#options = options;
    this.#verdictDisk = options.disk;
  }

  /**
   * Read back the verdicts kept on disk (see `CatchUp.read`): each that is a verdict as the
   * wire carries it (its evidence, if any, the receipt it names and that receipt's job), named by
   * its id, recorded by the ledger and inside the window the ledger gives its receipt, kept
   * oldest first under the bounds; the others' files removed (a damaged one logged).
   */
  async read(options: CatchUpReadOptions): Promise<void> {
    const disk = this.#verdictDisk!;
    let kept: Map<string, unknown>;
    try {
      kept = await disk.all();
    } catch (error) {
      this.#options.log(`validator: catch-up verdicts not read: ${(error as Error).message}`);
      return;
    }
    for (const [id, value] of kept) {
      const file = keptVerdictOf(value);
      if (file === undefined || verdictIdOf(file.item.verdict) !== id) {
        this.#options.log(`validator: catch-up verdict ${id.slice(0, 12)} is damaged: removed`);
        this.#removeVerdict(id);
      } else {
        this.#verdictSeq = Math.max(this.#verdictSeq, file.seq + 1);
        this.#writtenVerdicts.set(id, file);
      }
    }
    this.settle(options);
    await this.#options.writes();
  }

  /**
   * Keep, oldest first under the bounds, the verdicts written ahead (or read back) that the
   * ledger recorded (`options.recorded`, with the ledger's window) and still inside their window;
   * the others' files are removed.
   */
  settle(options: CatchUpReadOptions): void {
    const written = [...this.#writtenVerdicts].sort(([, a], [, b]) => a.seq - b.seq);
    this.#writtenVerdicts.clear();
    const now = options.now();
    for (const [id, { seq, until, item }] of written) {
      if (this.#verdicts.some((kept) => kept.id === id)) continue; // its file is the kept one's
      const end = options.recorded === undefined ? until : options.recorded(item.verdict);
      if (end === undefined || now > end) this.#removeVerdict(id);
      else this.#keepVerdict(item, end, seq, id);
    }
  }

  /** `CatchUp.dropUnsettled`: the kept verdicts `settled` refuses are dropped. */
  dropUnsettled(settled: (verdict: Verdict) => boolean): void {
    const kept = this.#verdicts.filter((k) => settled(k.item.verdict));
    for (const k of this.#verdicts) if (!kept.includes(k)) this.#removeVerdict(k.id!);
    this.#verdicts.splice(0, this.#verdicts.length, ...kept);
    this.#evidenceBytes = kept.reduce((sum, k) => sum + (k.bytes ?? 0), 0);
  }

  /** A verdict's file written ahead of its ending's settlement (see `CatchUp.write`). */
  write(item: KeptVerdict, until: number): Promise<void> {
    const id = verdictId(item.verdict);
    const disk = this.#verdictDisk;
    if (disk === undefined || this.#verdicts.some((kept) => kept.id === id)) {
      return Promise.resolve();
    }
    const file: KeptVerdictFile = { seq: this.#verdictSeq++, until, item };
    this.#writtenVerdicts.set(id, file);
    const save = () =>
      disk.save(id, file).catch((error) => {
        // Not on disk: `CatchUp.add` tries again.
        if (this.#writtenVerdicts.get(id) === file) this.#writtenVerdicts.delete(id);
        throw error;
      });
    return this.#options.onDisk(save, `verdict ${id.slice(0, 12)} not kept`);
  }

  /**
   * The ledger refused the verdict `id` written ahead: its file removed (see `CatchUp.discard`).
   */
  discard(id: string): void {
    if (this.#writtenVerdicts.delete(id)) this.#removeVerdict(id);
  }

  /** `CatchUp.add` for a verdict. */
  add(item: KeptVerdict, until: number): Promise<void> {
    const id = verdictId(item.verdict);
    if (this.#verdicts.some((kept) => kept.id === id)) return this.#options.writes();
    // Written ahead of its settlement: that file is this verdict's (its order kept).
    const written = this.#writtenVerdicts.get(id);
    this.#writtenVerdicts.delete(id);
    const seq = written?.seq ?? this.#verdictSeq++;
    const kept = this.#keepVerdict(item, until, seq, id);
    const disk = this.#verdictDisk;
    // Dropped at once past the bound (its file removed), or kept as it is now.
    if (disk === undefined || !this.#verdicts.includes(kept)) return this.#options.writes();
    if (written?.item === item && written.until === until && kept.item === item) {
      return this.#options.writes();
    }
    return this.#saveVerdict(kept);
  }

  /**
   * Keep a verdict in memory (its evidence weighed), and drop what the bounds then push out
   * (their files removed, or written again without the evidence dropped).
   */
  #keepVerdict(item: KeptVerdict, until: number, seq: number, id: string): Kept<KeptVerdict> {
    const { evidence } = item;
    const worker = toHex(item.verdict.target);
    const kept: Kept<KeptVerdict> = evidence === undefined
      ? { item, until, worker, seq, id }
      : { item, until, worker, seq, id, bytes: encodeCanonical(evidence).length };
    this.#verdicts.push(kept);
    this.#evidenceBytes += kept.bytes ?? 0;
    if (this.#verdicts.length > MAX_CATCH_UP_VERDICTS) this.#dropVerdict();
    while (this.#evidenceBytes > MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES) this.#dropEvidence();
    return kept;
  }

  /** Write verdict `kept`'s file as it is kept now (after the disk's earlier writes). */
  #saveVerdict(kept: Kept<KeptVerdict>): Promise<void> {
    const disk = this.#verdictDisk;
    if (disk === undefined) return this.#options.writes();
    const id = kept.id!;
    const file: KeptVerdictFile = { seq: kept.seq!, until: kept.until, item: kept.item };
    return this.#options.onDisk(() => disk.save(id, file), `verdict ${id.slice(0, 12)} not kept`);
  }

  /** Remove the file of the verdict `id`, after the writes before it. */
  #removeVerdict(id: string): void {
    const disk = this.#verdictDisk;
    if (disk === undefined) return;
    this.#options.onDisk(() => disk.remove(id), `verdict ${id.slice(0, 12)} not removed`);
  }

  /**
   * Drop the longest kept verdict of the worker holding the most verdicts: dropped oldest first
   * over all, one worker's run of faults made on purpose pushed every other worker's fault out,
   * and a ledger that connected afterwards paid that worker, slashed here
   * (`tests/actors/catch_up_test.ts`).
   */
  #dropVerdict(): void {
    const [dropped] = this.#verdicts.splice(this.#heaviestVerdict("count"), 1);
    this.#evidenceBytes -= dropped.bytes ?? 0;
    this.#removeVerdict(dropped.id!);
  }

  /**
   * Drop the evidence of the longest kept verdict of the worker whose verdicts' evidence holds the
   * most bytes; the verdict stays, to be sent alone.
   */
  #dropEvidence(): void {
    const kept = this.#verdicts[this.#heaviestVerdict("bytes")];
    this.#evidenceBytes -= kept.bytes!;
    // A new item: one already handed out (a catch-up being sent) keeps what it carries.
    kept.item = { kind: "verdict", verdict: kept.item.verdict };
    kept.bytes = undefined;
    // On disk without it too: read back, the bounds hold whatever the folder holds.
    void this.#saveVerdict(kept);
  }

  /**
   * The index in {@link CatchUpVerdicts.#verdicts} of the longest kept verdict of the worker
   * holding the most: verdicts, or bytes of evidence (of the verdicts that still carry theirs), as
   * `CatchUp`'s `#heaviest` (`_catch_up.ts`) weighs convictions.
   */
  #heaviestVerdict(by: "count" | "bytes"): number {
    const weighs = (kept: Kept<unknown>) => by === "count" || kept.bytes !== undefined;
    const weight = new Map<string, number>();
    for (const kept of this.#verdicts) {
      if (!weighs(kept)) continue;
      weight.set(
        kept.worker!,
        (weight.get(kept.worker!) ?? 0) + (by === "count" ? 1 : kept.bytes!),
      );
    }
    const most = Math.max(...weight.values());
    return this.#verdicts.findIndex((kept) => weighs(kept) && weight.get(kept.worker!) === most);
  }

  /**
   * `CatchUp.current` for the verdicts: those still inside their window at `now`, each
   * carrying its evidence; the others are forgotten (and their files removed).
   */
  current(now: number): KeptVerdict[] {
    const open = this.#verdicts.filter((k) => now <= k.until);
    for (const kept of this.#verdicts) if (now > kept.until) this.#removeVerdict(kept.id!);
    this.#verdicts.splice(0, this.#verdicts.length, ...open);
    this.#evidenceBytes = open.reduce((sum, k) => sum + (k.bytes ?? 0), 0);
    return open.map((k) => k.item);
  }
}
