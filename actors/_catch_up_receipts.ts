/**
 * The receipts part of a validator's catch-up (`_catch_up.ts`): the announcements of receipts
 * THIS node assigned — it forwarded the job, and its signed assignment is held by no other node —
 * while their receipt is pending in its ledger, inside the window. Sent to each ledger-keeping
 * peer that connects, after the convictions and the verdicts (never pushing them out: bounded
 * apart), as the `validation.receipt` requests the NetworkActor sends when the validator records
 * one (`network/catch_up.ts`).
 *
 * Why: that announcement reaches only the ledgers connected at the moment, once. Every branch
 * where it reaches none — no ledger-keeping peer connected, the NetworkActor down, a peer's
 * validator down past the inbox's bound (answered `service_unavailable`), a peer refusing `busy`
 * past the retries, a peer that joins later — left the assignment in this node's ledger alone,
 * and the honest worker that delivered every token was paid there and in no other ledger. Until
 * review s60 those that reached no peer were kept in the validator's memory (`#unsent`), lost
 * with a restart of its process before a peer connected
 * (`tests/network/catch_up_receipts_test.ts`); those a peer answered without recording
 * were never sent again.
 *
 * Kept on disk (`<ledger dir>/catch-up-receipts/<receipt id>.cbor`, one file each, a
 * `ReceiptFiles` folder), written durably just before the ledger records the receipt as assigned
 * by this node ({@link CatchUpReceipts.write}: a process killed right after the record has it;
 * written after it, until review s61, a kill between the two lost it for good,
 * `tests/network/catch_up_restart_test.ts`), its file removed if the ledger did not record
 * it so ({@link CatchUpReceipts.discard}), and read back when a process first opens the catch-up
 * of its ledger directory; kept, read back and sent only while the ledger holds the receipt
 * pending, assigned by this node, inside its window ({@link CatchUpReceiptsOptions.pending}): one
 * that left `pending` (final, fraud, unpaid) or whose window closed is dropped and its file
 * removed at the next look. A damaged entry (not a receipt, job and assignment as the wire carries
 * them, bound together, named by the receipt's id) is logged and removed.
 *
 * Bounds and who pays: at most {@link MAX_CATCH_UP_RECEIPTS} announcements of at most
 * {@link MAX_CATCH_UP_RECEIPT_BYTES} in all (receipt, job and assignment as canonical CBOR) — the
 * bounds the validator's memory list had. Only this node's own forwarded jobs fill them: a
 * requester's flood of jobs is its own cost. Past a bound the longest kept of the worker holding
 * the most (announcements, or bytes) goes, so a worker given many jobs (or jobs of
 * `MAX_NETWORK_JOB_BYTES`) pushes out its own receipts, not another worker's.
 *
 * A relay's too (review s62): the catch-up holds a second `CatchUpReceipts` of the peers' assigned
 * receipts this node's validator recorded and passed on (not its own assignment: the ledger holds
 * it pending, assigned by another node). Passed on to no ledger — none connected, or each refused
 * it — it reached no ledger past this node, and a ledger that then connected to this node only
 * never heard of the job: the honest worker went unpaid there
 * (`tests/network/catch_up_receipts_test.ts`). Their requester's catch-up carries them
 * too, but only to the peers that connect to it. Bounded apart
 * ({@link MAX_RELAYED_CATCH_UP_RECEIPTS}, {@link MAX_RELAYED_CATCH_UP_RECEIPT_BYTES}: they never push this
 * node's own out), weighed per worker as above: a requester and a staked worker flooding this relay
 * push out that worker's longest kept first, not another worker's. Kept on disk in a folder of
 * their own (`catch-up-relayed/`), written after the record (`add`, not ahead: a kill between the
 * two loses that one, which its requester's catch-up still carries), read back at the next start
 * inside the window each was kept with, and sent only while the ledger holds it pending. Memory
 * only until review s65: a restart lost them, and a requester that announced to the relay alone and
 * never talked to another ledger left the honest worker unpaid in every ledger that met the relay
 * afterwards (`tests/network/catch_up_receipts_test.ts`). Not part of the public API.
 *
 * @module
 */
import { encodeCanonical } from "../protocols/cbor.ts";
import { toHex } from "../protocols/hash.ts";
import { jobId } from "../protocols/job.ts";
import { receiptId } from "../protocols/receipt.ts";
import { ReceiptAnnouncementMessage } from "../protocols/inference_messages.ts";
import type { ReceiptFiles } from "./_receipt_files.ts";
import type { AssignedReceiptItem } from "./validator_messages.ts";
import type { Kept } from "./_catch_up_items.ts";

/** The folder of kept announcements of assigned receipts under the ledger's directory. */
export const CATCH_UP_RECEIPTS_DIR = "catch-up-receipts";

/**
 * Most announcements of assigned receipts kept. This node's own forwarded jobs inside one window
 * (10 minutes by default); past it the longest kept of the worker holding the most goes (they
 * were still announced at once to the peers connected then).
 */
export const MAX_CATCH_UP_RECEIPTS = 256;

/**
 * Most bytes of them kept (canonical CBOR). A text job's announcement is a few KiB; one of a job
 * near `MAX_NETWORK_JOB_BYTES` about 450 KiB, and without this bound 256 of those would make each
 * connect cost over 100 MiB. Past it the longest kept of the worker holding the most bytes goes.
 */
export const MAX_CATCH_UP_RECEIPT_BYTES = 4 << 20;

/**
 * Most announcements kept of peers' assigned receipts this node passed on (a relay's,
 * {@link CatchUpReceiptsOptions.maxReceipts} of the catch-up's second `CatchUpReceipts`): a relay
 * passes on every peer's assigned receipt its ledger records, and without a bound of their own
 * they would push this node's own assignments out (its own are the only copy of the assignment:
 * a peer's is held by its requester too). As many as of its own, so a connect costs at most
 * twice what it did.
 */
export const MAX_RELAYED_CATCH_UP_RECEIPTS = 256;

/** Most bytes of the relayed ones kept (canonical CBOR), as {@link MAX_CATCH_UP_RECEIPT_BYTES}. */
export const MAX_RELAYED_CATCH_UP_RECEIPT_BYTES = 4 << 20;

/** An announcement as its file holds it (untrusted when read). */
interface KeptReceiptFile {
  /** The order it was kept in: read back oldest first, so the bounds drop what they dropped. */
  seq: number;
  /** End of the receipt's window (ledger clock, ms) when it was kept. */
  until: number;
  /** The announcement. */
  item: AssignedReceiptItem;
}

/**
 * The end of the window of receipt `id` if the ledger holds it pending, assigned by this node
 * (for the relayed ones: assigned by anyone), inside its window now; undefined otherwise (not
 * kept, or dropped).
 */
export type AssignedPending = (id: string) => number | undefined;

/** How a {@link CatchUpReceipts} keeps its files, shared with the rest of the catch-up. */
export interface CatchUpReceiptsOptions {
  /** Where the announcements are kept on disk; none: memory only. */
  disk?: ReceiptFiles;
  /** Run `write` after the catch-up's earlier disk writes; a failure is logged, never thrown. */
  onDisk(write: () => Promise<void>, what: string): Promise<void>;
  /** The end of the catch-up's queue of disk writes now. */
  writes(): Promise<void>;
  /** Where a damaged entry, or a folder that failed, is reported (the catch-up's log now). */
  log(line: string): void;
  /** Most announcements kept; default {@link MAX_CATCH_UP_RECEIPTS}. */
  maxReceipts?: number;
  /** Most bytes of them kept (canonical CBOR); default {@link MAX_CATCH_UP_RECEIPT_BYTES}. */
  maxBytes?: number;
}

/** An announcement's file as read back, if it is one (see the module doc). */
function keptReceiptOf(id: string, value: unknown): KeptReceiptFile | undefined {
  const file = value as Partial<KeptReceiptFile> | undefined;
  const { seq, until, item } = file ?? {};
  if (!Number.isSafeInteger(seq) || seq! < 0 || !Number.isFinite(until)) return undefined;
  if (typeof item !== "object" || item === null || item.kind !== "assigned_receipt") {
    return undefined;
  }
  const { receipt, job, assignment } = item;
  if (assignment === undefined) return undefined;
  const parsed = ReceiptAnnouncementMessage.schema.safeParse({ receipt, job, assignment });
  if (!parsed.success || job?.kind !== "text") return undefined;
  try {
    if (receiptId(receipt) !== id || jobId(job) !== receipt.jobId) return undefined;
  } catch {
    return undefined;
  }
  return { seq: seq!, until: until!, item: { kind: "assigned_receipt", receipt, job, assignment } };
}

/** The announcements of receipts this node assigned, kept for the peers that connect. */
export class CatchUpReceipts {
  /** Kept announcements by receipt id, the oldest first. */
  readonly #kept = new Map<string, Kept<AssignedReceiptItem>>();
  /** Bytes of {@link CatchUpReceipts.#kept}. */
  #bytes = 0;
  /**
   * Announcements written ahead of the ledger's record ({@link CatchUpReceipts.write}), not kept
   * yet: kept by {@link CatchUpReceipts.add} once recorded, their files removed by
   * {@link CatchUpReceipts.discard} if not, or at a start as the ledger has them
   * ({@link CatchUpReceipts.settle}).
   */
  readonly #written = new Map<string, KeptReceiptFile>();
  /** The order of the next one kept. */
  #seq = 0;
  readonly #options: CatchUpReceiptsOptions;

  /** Receipts kept with the catch-up's disk queue and log. */
  constructor(options: CatchUpReceiptsOptions) {
    this.#options = options;
  }

  /**
   * Read back those kept on disk that the ledger still holds pending, assigned by this node
   * (`pending`; absent: every one inside the window its file holds), oldest first under the
   * bounds; the others' files are removed (a damaged one logged).
   */
  async read(now: number, pending?: AssignedPending): Promise<void> {
    const disk = this.#options.disk;
    if (disk === undefined) return;
    let kept: Map<string, unknown>;
    try {
      kept = await disk.all();
    } catch (error) {
      this.#options.log(`validator: catch-up receipts not read: ${(error as Error).message}`);
      return;
    }
    const found: [string, KeptReceiptFile][] = [];
    for (const [id, value] of kept) {
      const file = keptReceiptOf(id, value);
      if (file === undefined) {
        this.#options.log(`validator: catch-up receipt ${id.slice(0, 12)} is damaged: removed`);
        this.#remove(id);
      } else {
        found.push([id, file]);
      }
    }
    found.sort(([, x], [, y]) => x.seq - y.seq);
    for (const [id, { seq, until, item }] of found) {
      this.#seq = Math.max(this.#seq, seq + 1);
      const end = pending === undefined ? until : pending(id);
      if (end === undefined || now > end) this.#remove(id);
      else this.#keep(id, item, end, seq);
    }
    await this.#options.writes();
  }

  /**
   * Before the ledger records `item`'s receipt as assigned by this node: its file, written durably
   * (once the returned promise resolves), so a process killed right after the record still has the
   * announcement at its next start, where it is read back only if the ledger holds the receipt
   * pending, assigned by this node ({@link CatchUpReceipts.read}). Written after the record, as it
   * was until review s61, a kill between the two left the receipt pending here and no file to
   * carry its job and assignment: no peer that connected afterwards heard of it, and the honest
   * worker was paid in this ledger alone (`tests/network/catch_up_restart_test.ts`). Not
   * sent before {@link CatchUpReceipts.add}; {@link CatchUpReceipts.discard} if the ledger did not
   * record it. `until`: the window's end the record is expected to get (the ledger's own is used
   * wherever the ledger is asked). A write that fails is logged, and {@link CatchUpReceipts.add}
   * writes it again.
   */
  write(item: AssignedReceiptItem, until: number): Promise<void> {
    const id = receiptId(item.receipt);
    const disk = this.#options.disk;
    if (disk === undefined || this.#kept.has(id) || this.#written.has(id)) {
      return this.#options.writes();
    }
    const file: KeptReceiptFile = { seq: this.#seq++, until, item };
    this.#written.set(id, file);
    const save = () =>
      disk.save(id, file).catch((error) => {
        // Not on disk: `add` writes it again.
        if (this.#written.get(id) === file) this.#written.delete(id);
        throw error;
      });
    return this.#options.onDisk(save, `receipt ${id.slice(0, 12)} not written ahead`);
  }

  /** The ledger did not record receipt `id` as written ahead: its file is removed. */
  discard(id: string): void {
    if (this.#written.delete(id)) this.#remove(id);
  }

  /**
   * At a start in this process, those written ahead of a record that a crash of the validator cut
   * off: kept if the ledger holds their receipt pending, assigned by this node (`pending`; absent:
   * inside the window each was written with), their files removed if not.
   */
  settle(now: number, pending?: AssignedPending): void {
    const written = [...this.#written].sort(([, x], [, y]) => x.seq - y.seq);
    this.#written.clear();
    for (const [id, { seq, until, item }] of written) {
      const end = pending === undefined ? until : pending(id);
      if (end === undefined || now > end) this.#remove(id);
      else this.#keep(id, item, end, seq);
    }
  }

  /**
   * Keep `item` (a receipt this node assigned, recorded pending) for the peers that connect until
   * `until`, unless kept already. In memory at once; on disk once the returned promise resolves
   * (written ahead of the record, {@link CatchUpReceipts.write}: not again; a write that fails is
   * logged: it is still sent until this process ends).
   */
  add(item: AssignedReceiptItem, until: number): Promise<void> {
    const id = receiptId(item.receipt);
    if (this.#kept.has(id)) return this.#options.writes();
    const written = this.#written.get(id);
    this.#written.delete(id);
    const seq = written?.seq ?? this.#seq++;
    this.#keep(id, item, until, seq);
    const disk = this.#options.disk;
    // Dropped at once past a bound (too large alone, its file removed): nothing to write; written
    // ahead: on disk already.
    if (disk === undefined || !this.#kept.has(id) || written !== undefined) {
      return this.#options.writes();
    }
    const file: KeptReceiptFile = { seq, until, item };
    return this.#options.onDisk(() => disk.save(id, file), `receipt ${id.slice(0, 12)} not kept`);
  }

  /** Keep one in memory, and drop what the bounds then push out. */
  #keep(id: string, item: AssignedReceiptItem, until: number, seq: number): void {
    const { receipt, job, assignment } = item;
    const bytes = encodeCanonical({ receipt, job, assignment }).length;
    this.#kept.set(id, { item, until, bytes, worker: toHex(receipt.worker), seq });
    this.#bytes += bytes;
    const { maxReceipts = MAX_CATCH_UP_RECEIPTS, maxBytes = MAX_CATCH_UP_RECEIPT_BYTES } =
      this.#options;
    while (this.#kept.size > maxReceipts) this.#forget(this.#heaviest("count"));
    while (this.#bytes > maxBytes) this.#forget(this.#heaviest("bytes"));
  }

  /**
   * The receipt id of the longest kept announcement of the worker holding the most
   * (announcements, or bytes), as `CatchUp` weighs convictions: oldest first over all, one
   * worker given many jobs would push every other worker's receipts out.
   */
  #heaviest(by: "count" | "bytes"): string {
    const weight = new Map<string, number>();
    for (const kept of this.#kept.values()) {
      weight.set(
        kept.worker!,
        (weight.get(kept.worker!) ?? 0) + (by === "count" ? 1 : kept.bytes!),
      );
    }
    const most = Math.max(...weight.values());
    for (const [id, kept] of this.#kept) if (weight.get(kept.worker!) === most) return id;
    return this.#kept.keys().next().value!;
  }

  #forget(id: string): void {
    this.#bytes -= this.#kept.get(id)?.bytes ?? 0;
    this.#kept.delete(id);
    this.#remove(id);
  }

  /** Remove the file of receipt `id`, after the writes before it. */
  #remove(id: string): void {
    const disk = this.#options.disk;
    if (disk === undefined) return;
    void this.#options.onDisk(() => disk.remove(id), `receipt ${id.slice(0, 12)} not removed`);
  }

  /**
   * The workers (public keys, one each, that of the longest kept first) of the announcements kept
   * inside their window at `now`: their pledges go among the first pushed on connect.
   */
  workers(now: number): Uint8Array[] {
    const seen = new Map<string, Uint8Array>();
    for (const kept of this.#kept.values()) {
      if (now > kept.until || seen.has(kept.worker!)) continue;
      seen.set(kept.worker!, kept.item.receipt.worker);
    }
    return [...seen.values()];
  }

  /**
   * Those the ledger still holds pending, assigned by this node, inside the window at `now`
   * (`pending`; absent: inside the window each was kept with); the others are dropped (and their
   * files removed).
   */
  current(now: number, pending?: AssignedPending): AssignedReceiptItem[] {
    for (const [id, kept] of this.#kept) {
      const end = pending === undefined ? kept.until : pending(id);
      if (end === undefined || now > end) this.#forget(id);
    }
    return [...this.#kept.values()].map((kept) => kept.item);
  }
}
