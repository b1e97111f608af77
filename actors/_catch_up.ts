/**
 * What the ValidatorActor keeps for the ledger-keeping peers that connect after it decided: their
 * catch-up. Gossip reaches only the peers connected at the moment — none at a node's first start,
 * where the network starts after this actor and dials its peers after that; not one that was
 * offline, restarting, or had not joined yet — and a peer that recorded the receipt through
 * others would otherwise pay a worker every other ledger slashed, or took over. So each
 * ledger-keeping peer that connects is sent (the NetworkActor asks, `catch_up`), after this
 * node's pledge, while the receipt's window is open (past it no ledger takes them):
 *
 * - every fraud proof this validator settled as confirmed: its own, and a peer's it checked and
 *   confirmed (the gossip it passed on), so a cheat is slashed in every ledger its receipt
 *   reached — of inference receipts, and of training receipts (the training validator's, settled
 *   here through `training_fraud`: sent as training gossip to the peers that offer training);
 *   and every stream proof it settled as confirmed (its router's, signed by this node, or a
 *   peer's), for one challenge window from its settlement (a stream has no receipt window), after
 *   the convicted worker's pledge (a ledger that lacked it would cut nothing);
 * - the verdict of each challenge ending its start applied from disk (`_challenge_endings.ts`),
 *   and of each fault this validator decided (review s54), a peer's claim it took over included:
 *   the worker that withheld from it too is slashed here on this validator's own verdict, the one
 *   kept (a claim only recorded and passed on is not: it moved nothing here, and keeping it would
 *   let any staked key fill the bounds below; review s59,
 *   `tests/network/catch_up_evidence_test.ts`). A "proof withheld" fault goes after
 *   the receipt and job it is about (`ClaimEvidence`, `evidence`: kept while its challenge had
 *   them; a start's, kept with its ending), as a claim the NetworkActor passes on does: a peer
 *   takes a claim over only while it remembers the receipt and job, so one that had forgotten
 *   the receipt (pushed out by a flood) held the claim for evidence that never came, and one that
 *   never had it, for a receipt that never came — the worker that withheld was paid there, or
 *   kept its stake, slashed here (review s58,
 *   `tests/network/catch_up_evidence_test.ts`);
 * - after them, the announcement of each receipt THIS node assigned (it forwarded the job: the
 *   worker's receipt, its job and this node's signed assignment, which no other node holds) while
 *   the receipt is pending in its ledger inside the window: the announcement made when it was
 *   recorded reached only the ledgers connected then, and one that reached none (no peer, the
 *   NetworkActor down, a peer's validator down past its inbox's bound, `busy` past the retries)
 *   left the honest worker paid in this ledger alone. Kept on disk
 *   (`<ledger dir>/catch-up-receipts/`), bounded apart from the rest (never pushing a conviction
 *   or a verdict out), weighed per worker; `_catch_up_receipts.ts` (review s60,
 *   `tests/network/catch_up_receipts_test.ts`). Written ahead of the ledger's record, so
 *   a process killed right after it still has it; their workers' pledges go first among those
 *   pushed on connect, after the accusers' ({@link CatchUp.workers}; review s61,
 *   `tests/network/catch_up_restart_test.ts`);
 * - last, the announcement of each peer's assigned receipt this node's validator recorded and
 *   passed on (a relay's: another node's assignment), while it is pending here inside the window:
 *   passed on to no ledger (none connected, or each refused it), it reached none past this node,
 *   and a ledger that connected to this node only paid the honest worker nothing. Bounded apart
 *   from this node's own ({@link CatchUp.addRelayed}; review s62,
 *   `tests/network/catch_up_receipts_test.ts`); kept on disk
 *   (`<ledger dir>/catch-up-relayed/`, {@link CATCH_UP_RELAYED_DIR}) and read back at the next
 *   start: memory only until review s65, a restart of the relay lost them, and a requester that
 *   announced to the relay alone and never talked to another ledger (gone, or hostile) left the
 *   honest worker paid in the relay's ledger and unpaid in every ledger that met it afterwards
 *   (`tests/network/catch_up_receipts_test.ts`).
 *
 * Bounds and who pays: each connect costs this node at most {@link MAX_CATCH_UP_FRAUD_PROOFS}
 * fraud proofs of at most {@link MAX_CATCH_UP_FRAUD_PROOF_BYTES} in all, and
 * {@link MAX_CATCH_UP_VERDICTS} verdicts (about 1.3 KiB each at most) with at most
 * {@link MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES} of receipts and jobs ahead of them, written one
 * after another under the connection's write budget (a peer that does not read is sent no more).
 * Connections per key are bounded (`network/connection_limits.ts`), and a peer that reconnects pays a full
 * handshake for the same items again, never more: it cannot grow them. Only this ledger's
 * settlements grow them — a kept proof is a worker slashed here (a staked key's loss), at most
 * one per receipt (the ledger refuses a second conviction); a kept verdict, one of this
 * validator's own decisions (a fault: a worker slashed here). The two kinds are bounded apart, and
 * convictions are sent first: verdicts never push a conviction out, nor delay it; nor does their
 * evidence, bounded apart again (a job may take `MAX_NETWORK_JOB_BYTES`, 448 KiB: 64 faults about
 * such jobs would make each connect cost 28 MiB more; past the bound the worker whose receipts'
 * evidence holds the most bytes gives up its longest kept first, and its verdict still goes,
 * alone — taken over where the receipt is remembered). Past a bound the longest kept of the worker
 * holding the most goes: its conviction (by proofs, or bytes past the byte bound), or its verdict
 * (by verdicts, weighed by the key each names as `target`, the node whose work it is about, which
 * every verdict names: none is left unweighed). A key convicted on purpose many times (cheap: a
 * receipt contradicting its own job is convicted without a model, for 20 × a one-token reward)
 * pushes out its own convictions, not another cheat's; a worker that withholds on purpose many
 * times (its colluding requester's receipts only lock stake), its own faults, not another
 * withholder's. Until review s58 the oldest verdict went, whoever's: 64 faults of one worker
 * pushed every other fault out, and a ledger that connected afterwards paid those workers,
 * slashed here (`tests/actors/catch_up_test.ts`).
 *
 * Training convictions share both bounds, with no byte bound of their own. A training proof
 * carries model states (12 bytes a parameter each) and can be megabytes, but a connection sends
 * one in one frame (1 MiB) or not at all, as gossip does: a sendable one is no larger than the
 * largest inference one, for which the byte bound was sized; a larger one is skipped when sent
 * (`network/catch_up.ts`), and past the byte bound its key, then holding the most, gives room back
 * first. Its trainer
 * pays for it as a worker does: a kept training proof is its locked stake slashed here, one per
 * receipt, and past a bound the key holding the most (proofs, or bytes) loses its longest kept
 * first — a trainer's megabyte proofs go before another cheat's few KiB. A bound of their own
 * would have doubled what a connect may cost (16 MiB) and kept out no cheat the shared one lets in.
 *
 * A peer takes each once (a verdict by its id; a fraud proof by its hash, and a proof whose
 * accuser it already settled on that receipt is dropped before its signature is checked — the
 * model is not run again; a training one, before its re-run: `repeated_accusation` in the
 * training intake), so sending them again costs the peer next to nothing.
 *
 * Convictions are kept on disk too (`<ledger dir>/catch-up/<receipt id>.cbor`, one file each,
 * a `ReceiptFiles` folder, `_receipt_files.ts`: written durably once, just before the ledger
 * settles the conviction — `write`, then kept by `add` once settled, its file removed if the
 * ledger refuses it — and removed when it is dropped past a bound or found past its window), and
 * read back when a process first opens the catch-up of its ledger directory (a node's start).
 * Before, they were memory only: after a process restart the node resent its own proofs (read
 * back from `own-fraud-proofs/`) but not a peer's conviction it had confirmed, and a ledger that
 * was away and reconnected only to it paid the cheat every other ledger slashed
 * (`tests/network/catch_up_restart_test.ts`). One file per conviction, not one file of them all:
 * each conviction costs one write of its own size (a frame at most), never a rewrite of up to
 * 8 MiB for a cheat convicted on purpose. What is read back goes through the same bounds, oldest
 * first (each keeps the order it was kept in), so a bound holds whatever the folder holds; an
 * entry that is not a conviction as the wire carries it (damaged, cut short, of another version)
 * is logged and removed, and a folder that cannot be read is logged and the catch-up starts
 * empty: neither stops the node. Written ahead of its settlement, a conviction the process died
 * right after settling is read back (before, written after it, it was lost, and a ledger that
 * connected only to the restarted node paid the cheat:
 * `tests/network/catch_up_restart_test.ts`); so only what the ledger settled as fraud
 * on that accuser's proof is read back, sent until the receipt's window in the ledger closes
 * (not the window its file holds, unsigned), and the others' files are removed — also at each
 * start of the validator in the process, for one written ahead of a ledger write that failed
 * and crashed it (`tests/actors/catch_up_kept_test.ts`). A training conviction
 * whose receipt was not recorded here before its proof (the settlement records it) is written
 * after its settlement: that one is lost if the process dies in between.
 *
 * Verdicts are kept on disk too, with the evidence each still carries
 * (`<ledger dir>/catch-up-verdicts/<verdict id>.cbor`, one file each, a `ReceiptFiles` folder):
 * written durably just before the ledger applies the ending ({@link CatchUp.write}: a fault's
 * settlement, a start's applied ending), kept and sent only once it has ({@link CatchUp.add}; its
 * file removed by {@link CatchUp.discard} if the ledger ended the receipt otherwise), written
 * again without its evidence when the byte bound drops it, removed when it is dropped past the
 * count bound or found past its window; read back with the convictions (also at each start of
 * the validator in the process, for one written ahead of a ledger write that failed), oldest
 * first under the same bounds, only if the ledger recorded the verdict
 * ({@link CatchUpReadOptions.recorded}) and, at the start, its receipt stands where the verdict's
 * ending leaves it ({@link CatchUp.dropUnsettled}: a verdict is recorded before its ending is
 * applied, so a fault whose settlement a stop cut off is not sent), until its receipt's window
 * there closes; a damaged entry (not a verdict as the wire carries it, evidence not the receipt it
 * names bound to its job, a name not its id) is logged and removed. Until review s59 they were in memory only: the next
 * start does not decide those faults again, so a ledger that was away when a validator decided
 * one and met it only after its process restarted never heard the claim, never asked the worker,
 * and paid the worker that withheld, slashed here
 * (`tests/network/catch_up_restart_test.ts`). Written after the settlement, as they first
 * were, a verdict whose process died (or whose write failed) in between was lost for good: the
 * next start found the receipt settled and nothing to apply, and a ledger that connected later
 * paid the worker that withheld, slashed here (review s59,
 * `tests/actors/catch_up_kept_test.ts`). A start's fault once lacked its
 * evidence (the job was kept nowhere past the challenge's opening), and a peer that forgot the
 * receipt, or never had it, held the claim for good; its ending keeps them now (`_challenge_endings.ts`,
 * `tests/network/catch_up_restart_test.ts`).
 *
 * The items and their files are `_catch_up_items.ts`'s; the verdicts' part of the catch-up, its
 * bounds included, is `CatchUpVerdicts` (`_catch_up_verdicts.ts`), which `CatchUp` holds beside
 * its convictions. Not part of the public API.
 *
 * @module
 */
import { encodeCanonical } from "../protocols/cbor.ts";
import type { Receipt } from "../protocols/receipt.ts";
import type { StreamProof } from "../protocols/stream_proof.ts";
import { toHex } from "../protocols/hash.ts";
import type { Verdict } from "../protocols/verdict.ts";
import { ReceiptFiles } from "./_receipt_files.ts";
import type { AssignedReceiptItem, CatchUpItem } from "./validator_messages.ts";
import {
  accuserOfConviction,
  convictedOf,
  type Conviction,
  convictionOf,
  idOf,
  type Kept,
  type KeptFile,
  type KeptVerdict,
} from "./_catch_up_items.ts";
import {
  CatchUpVerdicts,
  MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES,
  MAX_CATCH_UP_VERDICTS,
} from "./_catch_up_verdicts.ts";
import {
  type AssignedPending,
  CATCH_UP_RECEIPTS_DIR,
  CatchUpReceipts,
  MAX_CATCH_UP_RECEIPT_BYTES,
  MAX_CATCH_UP_RECEIPTS,
  MAX_RELAYED_CATCH_UP_RECEIPT_BYTES,
  MAX_RELAYED_CATCH_UP_RECEIPTS,
} from "./_catch_up_receipts.ts";

export {
  CATCH_UP_RECEIPTS_DIR,
  MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES,
  MAX_CATCH_UP_RECEIPT_BYTES,
  MAX_CATCH_UP_RECEIPTS,
  MAX_CATCH_UP_VERDICTS,
  MAX_RELAYED_CATCH_UP_RECEIPT_BYTES,
  MAX_RELAYED_CATCH_UP_RECEIPTS,
};

/** The folder of kept convictions under the ledger's directory. */
export const CATCH_UP_DIR = "catch-up";

/**
 * The folder of kept verdicts (with the evidence each carries) under the ledger's directory, one
 * file each by verdict id (review s59).
 */
export const CATCH_UP_VERDICTS_DIR = "catch-up-verdicts";

/**
 * The folder of kept announcements of peers' assigned receipts this node passed on (a relay's),
 * under the ledger's directory, one file each by receipt id (review s65).
 */
export const CATCH_UP_RELAYED_DIR = "catch-up-relayed";

/**
 * Most convictions kept. A confirmed fraud proof is a staked worker slashed in this ledger; 64
 * inside one challenge window (10 minutes by default) is a rate of cheats far past what a
 * network that slashes them sees, so this is reached only under a flood of convictions, and past
 * it the longest kept of the worker holding the most go (they were still gossiped at once to the
 * peers connected then).
 */
export const MAX_CATCH_UP_FRAUD_PROOFS = 64;

/**
 * Most bytes of convictions kept (canonical CBOR). A text job's fraud proof is a few KiB, so 64
 * of them fit far inside this; one about a job near `MAX_NETWORK_JOB_BYTES` fills a 1 MiB frame,
 * and without this bound the convictions a flood of such cheats left would make each connect
 * cost 64 MiB. Past it the longest kept of the worker holding the most bytes go.
 */
export const MAX_CATCH_UP_FRAUD_PROOF_BYTES = 8 << 20;

/** How {@link CatchUp.of} reads a catch-up back. */
export interface CatchUpReadOptions {
  /** The ledger's clock, ms: what is past its window is not read back (and is removed). */
  now: () => number;
  /** Where a damaged entry, or a folder or write that failed, is reported. */
  log?: (line: string) => void;
  /**
   * Whether the ledger settled receipt `id` as fraud on `accuser`'s accusation: the end of the
   * receipt's window if so. A conviction written ahead of its settlement ({@link CatchUp.write})
   * is kept only then, with the ledger's window, and its file removed otherwise (the ledger
   * refused it, or the process or the actor died before it settled). Absent: every one kept.
   * `receipt`: an inference conviction's receipt, as its proof carries it: a proof about one
   * variant of a receipt settles against the variant its worker had recorded there for the job
   * (`Ledger.fraudSubject`), whose id is not `id` (`tests/actors/catch_up_kept_test.ts`).
   */
  settled?: (id: string, accuser: Uint8Array, receipt?: Receipt) => number | undefined;
  /**
   * Whether the ledger settled the stream conviction `proof` is about (`Ledger.streamFraudSettled`):
   * a stream proof written ahead of its settlement is kept only then, until the end its file
   * holds (a stream has no receipt window: this node's clock at its settlement plus one challenge
   * window), and its file removed otherwise. Absent: every one kept.
   */
  streamSettled?: (proof: StreamProof) => boolean;
  /**
   * Whether the ledger recorded `verdict` (a kept verdict read back from disk, or one written
   * ahead, {@link CatchUp.write}): the end of its receipt's window if so. One it does not have
   * (written by no settlement of this ledger, or ahead of a recording cut off) is not read back,
   * and its file is removed. Absent: every one kept. A verdict is recorded before its ending is
   * applied: the start then drops those whose ending the ledger lacks
   * ({@link CatchUp.dropUnsettled}).
   */
  recorded?: (verdict: Verdict) => number | undefined;
  /**
   * Whether the ledger holds receipt `id` pending, assigned by this node, inside its window: its
   * end if so. A kept announcement of an assigned receipt (`_catch_up_receipts.ts`) is read back
   * only then, and its file removed otherwise. Absent: every one inside the window its file holds.
   */
  assignedPending?: AssignedPending;
}

/** A validator's catch-up for connecting peers, each item until its receipt's window closes. */
export class CatchUp {
  /** One per ledger directory in this process (see {@link CatchUp.of}). */
  static readonly #byLedger = new Map<string, Promise<CatchUp>>();
  /** Confirmed fraud proofs (inference and training) by receipt id, the oldest first. */
  readonly #proofs = new Map<string, Kept<Conviction>>();
  /** Bytes of {@link CatchUp.#proofs}. */
  #proofBytes = 0;
  /**
   * The verdicts kept, and their files beside {@link CatchUp.#disk}'s, written in one queue with
   * the convictions' (`_catch_up_verdicts.ts`).
   */
  readonly #verdicts: CatchUpVerdicts;
  /**
   * The announcements of receipts this node assigned, pending here (`_catch_up_receipts.ts`):
   * sent after the convictions and the verdicts, bounded apart from them.
   */
  readonly #receipts: CatchUpReceipts;
  /**
   * The announcements of peers' assigned receipts this node passed on, pending here (a relay's,
   * review s62): sent last, bounded apart from this node's own, kept on disk (review s65).
   */
  readonly #relayed: CatchUpReceipts;
  /** Where the convictions are kept on disk; none: memory only. */
  readonly #disk?: ReceiptFiles;
  /**
   * Convictions written ahead of their settlement ({@link CatchUp.write}), or read back from
   * disk, not kept yet: kept by {@link CatchUp.add} once settled, or at a start if the ledger
   * settled them (see {@link CatchUpReadOptions.settled}).
   */
  readonly #written = new Map<string, KeptFile>();
  /** The disk's writes and removals, one after another (a removal never overtakes its write). */
  #writes: Promise<void> = Promise.resolve();
  /** The order of the next conviction kept. */
  #seq = 0;
  #log: (line: string) => void = () => {};

  /**
   * A catch-up kept in memory only, or, with `ledgerDir`, whose convictions, verdicts and
   * announcements are kept on disk there (read back by {@link CatchUp.read}).
   */
  constructor(ledgerDir?: string) {
    if (ledgerDir !== undefined) this.#disk = ReceiptFiles.in(ledgerDir, CATCH_UP_DIR);
    this.#verdicts = new CatchUpVerdicts({
      disk: ledgerDir === undefined ? undefined : ReceiptFiles.in(ledgerDir, CATCH_UP_VERDICTS_DIR),
      onDisk: (write, what) => this.#onDisk(write, what),
      writes: () => this.#writes,
      log: (line) => this.#log(line),
    });
    this.#receipts = new CatchUpReceipts({
      disk: ledgerDir === undefined ? undefined : ReceiptFiles.in(ledgerDir, CATCH_UP_RECEIPTS_DIR),
      onDisk: (write, what) => this.#onDisk(write, what),
      writes: () => this.#writes,
      log: (line) => this.#log(line),
    });
    this.#relayed = new CatchUpReceipts({
      disk: ledgerDir === undefined ? undefined : ReceiptFiles.in(ledgerDir, CATCH_UP_RELAYED_DIR),
      onDisk: (write, what) => this.#onDisk(write, what),
      writes: () => this.#writes,
      log: (line) => this.#log(line),
      maxReceipts: MAX_RELAYED_CATCH_UP_RECEIPTS,
      maxBytes: MAX_RELAYED_CATCH_UP_RECEIPT_BYTES,
    });
  }

  /**
   * The catch-up of the validator of `ledgerDir`: the same object for every instance of it in
   * this process, so it outlives its restarts. A crash (a failed ledger write, say) restarts the
   * actor, which finds the kept endings already applied and the settled proofs settled, and does
   * not publish them again: a list of the instance's own would be empty, and a peer that connects
   * after the crash would never hear of them. Read from disk the first time a process asks
   * ({@link CatchUp.read}); `options.log` is where it reports from then on.
   */
  static async of(ledgerDir: string, options: CatchUpReadOptions): Promise<CatchUp> {
    let kept = CatchUp.#byLedger.get(ledgerDir);
    if (kept === undefined) {
      kept = CatchUp.read(ledgerDir, options);
      CatchUp.#byLedger.set(ledgerDir, kept);
      // A read the ledger's look-up failed (the start fails with it) is read again next time.
      kept.catch(() => CatchUp.#byLedger.delete(ledgerDir));
    }
    const catchUp = await kept;
    if (options.log !== undefined) catchUp.#log = options.log;
    // Written ahead of a settlement a crash cut off (the ledger write failed): kept if the ledger
    // has it after all, its file removed if not.
    catchUp.#settle(options);
    catchUp.#verdicts.settle(options);
    // An assigned receipt's announcement written ahead of a record a crash cut off: likewise.
    catchUp.#receipts.settle(options.now(), options.assignedPending);
    await catchUp.#writes;
    return catchUp;
  }

  /**
   * A new catch-up of `ledgerDir` holding the convictions kept there that the ledger settled
   * (`options.settled`) and the verdicts it recorded (`options.recorded`), read back oldest
   * first under the bounds (see the module doc). Throws only what `options.settled` or
   * `options.recorded` throws: what cannot be read is logged and left out, a damaged entry
   * removed.
   */
  static async read(ledgerDir: string, options: CatchUpReadOptions): Promise<CatchUp> {
    const catchUp = new CatchUp(ledgerDir);
    const log = options.log ?? (() => {});
    catchUp.#log = log;
    await catchUp.#verdicts.read(options);
    await catchUp.#receipts.read(options.now(), options.assignedPending);
    // A relay's, inside the window each was kept with: each send asks the ledger whether it is
    // still pending (`current`), as for those kept in this process.
    await catchUp.#relayed.read(options.now());
    const disk = catchUp.#disk!;
    let kept: Map<string, unknown>;
    try {
      kept = await disk.all();
    } catch (error) {
      log(`validator: catch-up not read, starting it empty: ${(error as Error).message}`);
      return catchUp;
    }
    const now = options.now();
    const found: [string, KeptFile][] = [];
    for (const [id, value] of kept) {
      const file = convictionOf(value);
      if (file === undefined || idOf(file.item) !== id) {
        log(`validator: catch-up entry ${id.slice(0, 12)} is damaged: removed`);
        catchUp.#remove(id);
      } else if (now > file.until) {
        catchUp.#remove(id);
      } else {
        found.push([id, file]);
      }
    }
    for (const [id, file] of found) {
      catchUp.#seq = Math.max(catchUp.#seq, file.seq + 1);
      catchUp.#written.set(id, file);
    }
    catchUp.#settle(options);
    await catchUp.#writes;
    return catchUp;
  }

  /**
   * At a start, after {@link CatchUp.of}: drop the kept verdicts whose ending the ledger does not
   * have (`settled` false: a fault whose receipt it did not slash, written ahead of a settlement
   * that a stop or a failed write cut off), their files removed. The ledger recording a verdict
   * ({@link CatchUpReadOptions.recorded}) comes before its settlement: that alone would send
   * peers a fault this ledger never settled. A start that applies the ending
   * (`_challenge_endings.ts`) keeps it again.
   */
  dropUnsettled(settled: (verdict: Verdict) => boolean): void {
    this.#verdicts.dropUnsettled(settled);
  }

  /**
   * Keep, oldest first under the bounds, the convictions written ahead whose settlement the
   * ledger has (`options.settled`, with the ledger's window) and still inside their window; the
   * others' files are removed.
   */
  #settle(options: CatchUpReadOptions): void {
    const written = [...this.#written].sort(([, a], [, b]) => a.seq - b.seq);
    this.#written.clear();
    const now = options.now();
    for (const [id, { seq, until, item }] of written) {
      if (this.#proofs.has(id)) continue; // its file is the kept conviction's
      const end = this.#settledUntil(options, id, item, until);
      if (end === undefined || now > end) this.#remove(id);
      else this.#keep(item, end, seq);
    }
  }

  /**
   * Whether the ledger settled conviction `item` (written ahead as `id`, kept until `until`):
   * the end of its window if so (see {@link CatchUpReadOptions.settled},
   * {@link CatchUpReadOptions.streamSettled}).
   */
  #settledUntil(
    options: CatchUpReadOptions,
    id: string,
    item: Conviction,
    until: number,
  ): number | undefined {
    switch (item.kind) {
      case "fraud_proof":
        return options.settled === undefined
          ? until
          : options.settled(id, item.proof.validator, item.proof.receipt);
      case "training_fraud_proof":
        return options.settled === undefined
          ? until
          : options.settled(id, item.body.proof.validator);
      case "stream_proof":
        return options.streamSettled === undefined || options.streamSettled(item.proof)
          ? until
          : undefined;
    }
  }

  /**
   * Before the ledger settles conviction `item` (a confirmed fraud proof), or the ending of
   * verdict `item` (a fault, an ending a start applies): its file, written durably, so a process
   * that dies right after the settlement still has it at its next start, where it is read back
   * only if the ledger settled it ({@link CatchUpReadOptions.settled};
   * {@link CatchUpReadOptions.recorded} and {@link CatchUp.dropUnsettled} for a verdict). Not
   * sent before {@link CatchUp.add}; {@link CatchUp.discard} if the ledger refuses it. A write
   * that fails is logged: the item is still kept by {@link CatchUp.add}, in memory. Likewise
   * before the ledger records a receipt this node assigned: its announcement
   * (`CatchUpReceipts.write`; {@link CatchUp.discardAssigned} if the ledger did not record it).
   */
  write(item: Conviction | KeptVerdict | AssignedReceiptItem, until: number): Promise<void> {
    if (item.kind === "verdict") return this.#verdicts.write(item, until);
    if (item.kind === "assigned_receipt") return this.#receipts.write(item, until);
    const id = idOf(item);
    const disk = this.#disk;
    if (disk === undefined || this.#proofs.has(id)) return Promise.resolve();
    const file: KeptFile = { seq: this.#seq++, until, item };
    this.#written.set(id, file);
    const save = () =>
      disk.save(id, file).catch((error) => {
        // Not on disk: {@link CatchUp.add} tries again.
        if (this.#written.get(id) === file) this.#written.delete(id);
        throw error;
      });
    return this.#onDisk(save, `conviction ${id.slice(0, 12)} not kept`);
  }

  /**
   * The ledger refused what was written ahead as `id` (a conviction's receipt id, a verdict's
   * id): its file removed.
   */
  discard(id: string): void {
    if (this.#written.delete(id)) this.#remove(id);
    this.#verdicts.discard(id);
  }

  /**
   * The ledger did not record receipt `id` as assigned by this node (or it was not announced):
   * the announcement written ahead of it is removed (one kept by {@link CatchUp.add} stays).
   */
  discardAssigned(id: string): void {
    this.#receipts.discard(id);
  }

  /**
   * Keep `item` for the peers that connect until `until`. A fraud proof about a receipt that has
   * one kept already is not kept again (one conviction per receipt is all a ledger takes), nor
   * is a verdict kept already (by its id); a verdict's evidence is kept within
   * {@link MAX_CATCH_UP_CLAIM_EVIDENCE_BYTES}. Kept in memory at once; on disk once the returned
   * promise resolves (a write that fails is logged: the item is still sent until this process
   * ends).
   */
  add(item: CatchUpItem, until: number): Promise<void> {
    if (item.kind === "verdict") return this.#verdicts.add(item, until);
    if (item.kind === "assigned_receipt") return this.#receipts.add(item, until);
    const id = idOf(item);
    if (this.#proofs.has(id)) return Promise.resolve();
    // Written ahead of its settlement: that file is this conviction's (its order kept).
    const written = this.#written.get(id);
    this.#written.delete(id);
    const seq = written?.seq ?? this.#seq++;
    this.#keep(item, until, seq);
    const disk = this.#disk;
    // Dropped at once past a bound (its file removed), or written ahead as it is kept.
    if (disk === undefined || !this.#proofs.has(id)) return this.#writes;
    if (written?.item === item && written.until === until) return this.#writes;
    const file: KeptFile = { seq, until, item };
    return this.#onDisk(() => disk.save(id, file), `conviction ${id.slice(0, 12)} not kept`);
  }

  /**
   * Keep `item`, a peer's assigned receipt (another node's assignment) this node's validator
   * recorded pending and passed on, for the peers that connect until `until`, unless kept already:
   * bounded apart from this node's own ({@link MAX_RELAYED_CATCH_UP_RECEIPTS}), sent after them.
   * Passed on to no ledger (none connected, or each refused it), it reached no ledger past this
   * node, and one that connected to this node only paid the honest worker nothing (review s62,
   * `tests/network/catch_up_receipts_test.ts`). In memory at once, on disk after it
   * ({@link CATCH_UP_RELAYED_DIR}, read back at the next start; written after the record, not
   * ahead: a process killed between the two loses this one, which its requester's catch-up
   * still carries); memory only until review s65, when a restart of the relay lost every one
   * (`tests/network/catch_up_receipts_test.ts`).
   */
  addRelayed(item: AssignedReceiptItem, until: number): void {
    void this.#relayed.add(item, until);
  }

  /** Keep a conviction in memory, and drop what the bounds then push out. */
  #keep(item: Conviction, until: number, seq: number): void {
    const id = idOf(item);
    const bytes = encodeCanonical(item.kind === "training_fraud_proof" ? item.body : item.proof)
      .length;
    const worker = toHex(convictedOf(item));
    this.#proofs.set(id, { item, until, bytes, worker, accuser: accuserOfConviction(item), seq });
    this.#proofBytes += bytes;
    while (this.#proofs.size > MAX_CATCH_UP_FRAUD_PROOFS) this.#forget(this.#heaviest("count"));
    while (this.#proofBytes > MAX_CATCH_UP_FRAUD_PROOF_BYTES) {
      this.#forget(this.#heaviest("bytes"));
    }
  }

  /**
   * The receipt id of the longest kept conviction of the worker holding the most (proofs, or
   * bytes; see the module doc): dropped oldest first over all, one worker's run of convictions
   * pushed out every other cheat's, which a ledger that connects later then paid
   * (`tests/actors/catch_up_test.ts`).
   */
  #heaviest(by: "count" | "bytes"): string {
    const weight = new Map<string, number>();
    for (const kept of this.#proofs.values()) {
      weight.set(
        kept.worker!,
        (weight.get(kept.worker!) ?? 0) + (by === "count" ? 1 : kept.bytes!),
      );
    }
    const most = Math.max(...weight.values());
    for (const [id, kept] of this.#proofs) if (weight.get(kept.worker!) === most) return id;
    return this.#proofs.keys().next().value!;
  }

  #forget(id: string): void {
    this.#proofBytes -= this.#proofs.get(id)?.bytes ?? 0;
    this.#proofs.delete(id);
    this.#remove(id);
  }

  /** Remove the file of conviction `id`, after the writes before it. */
  #remove(id: string): void {
    const disk = this.#disk;
    if (disk === undefined) return;
    this.#onDisk(() => disk.remove(id), `conviction ${id.slice(0, 12)} not removed`);
  }

  /** Run `write` after the disk's earlier writes; a failure is logged (`what`), never thrown. */
  #onDisk(write: () => Promise<void>, what: string): Promise<void> {
    this.#writes = this.#writes.then(write).catch((error) =>
      this.#log(`validator: catch-up ${what}: ${(error as Error).message}`)
    );
    return this.#writes;
  }

  /**
   * The accusers (public keys, one each, oldest conviction first) of the convictions still inside
   * their window at `now`: their pledges go first among those pushed on connect
   * (`PledgeSync.sendPledges`), or a peer that lacks one holds its conviction for a pledge that
   * never comes (the connect push carries only `PLEDGES_PUSHED_ON_CONNECT` keys, and gossip
   * sends a proof's pledge ahead of it, the catch-up does not).
   */
  accusers(now: number): Uint8Array[] {
    const seen = new Map<string, Uint8Array>();
    for (const kept of this.#proofs.values()) {
      if (now > kept.until) continue;
      const key = kept.accuser!;
      if (!seen.has(toHex(key))) seen.set(toHex(key), key);
    }
    return [...seen.values()];
  }

  /**
   * The workers (public keys, one each, oldest kept first) of the announcements of receipts this
   * node assigned kept inside their window at `now`: their pledges go among the first pushed on
   * connect, after the accusers' ({@link CatchUp.accusers}). A peer that lacks one refuses the
   * receipt `insufficient_stake` and is sent the pledge then (`network/catch_up.ts`), but out of
   * the room kept back for pledges a peer needs (`PLEDGE_SEND_RESERVE`, 16 at once): with more
   * workers than that, the others' receipts were held there for pledges that did not fit, and
   * those honest workers went unpaid (review s61, `tests/network/catch_up_restart_test.ts`).
   */
  workers(now: number): Uint8Array[] {
    return [...this.#receipts.workers(now), ...this.#relayed.workers(now)];
  }

  /**
   * Those still inside their window at `now`, convictions first (a verdict carrying its evidence,
   * sent ahead of it), then the verdicts, then the announcements of receipts this node assigned
   * that `assignedPending` finds pending (absent: inside the window each was kept with), last the
   * peers' assigned receipts this node passed on that `relayedPending` finds pending (likewise);
   * the others are forgotten (and their files removed).
   * @returns At most {@link MAX_CATCH_UP_FRAUD_PROOFS} + {@link MAX_CATCH_UP_VERDICTS} +
   * {@link MAX_CATCH_UP_RECEIPTS} + {@link MAX_RELAYED_CATCH_UP_RECEIPTS} items.
   */
  current(
    now: number,
    assignedPending?: AssignedPending,
    relayedPending?: AssignedPending,
  ): CatchUpItem[] {
    for (const [id, kept] of this.#proofs) if (now > kept.until) this.#forget(id);
    const open = this.#verdicts.current(now);
    const receipts = this.#receipts.current(now, assignedPending);
    const relayed = this.#relayed.current(now, relayedPending);
    return [...[...this.#proofs.values()].map((k) => k.item), ...open, ...receipts, ...relayed];
  }

  /** Resolves once the disk's writes queued so far are done (a validator's stop awaits it). */
  written(): Promise<void> {
    return this.#writes;
  }
}
