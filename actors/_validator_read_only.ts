/**
 * What the ValidatorActor does with a message that writes its ledger while the ledger refuses
 * writes: the node is read-only on a full disk (`node/disk_room.ts`, `LedgerOptions.refuseWrite`).
 * Before, each such message was handled as a failed write: a peer's fraud proof settled after its
 * check, a challenge ending, a local deposit crashed the actor (a few in a row and its supervisor
 * gave up and took the node down), and a peer's claim, pledge or receipt was dropped, the refusal
 * raised as the ledger's write fault (`ledger_write_failed`, `_ledger_write_faults.ts`) though
 * nothing was wrong with the disk but its room.
 *
 * Now, while the ledger refuses writes (asked before each message, without touching the disk):
 * - held, in order, and taken again once the ledger takes writes, at the next message (the
 *   finalize tick at the latest, before it can pay anything): the messages the validator sends
 *   itself when background work ends (`challenged`, `challenge_failed`, `fraud_checked`,
 *   `stream_checked`), and a peer's `verdict`, `pledge` and `receipt`. A receipt's sender is told
 *   `disk_full` (the code of the ledger's refusal), not `ledger_write_failed`: the receipt is kept
 *   here all the same and recorded once there is room, while its window is open (the intake
 *   refuses a stale one then). A peer's fraud proof or stream proof is taken as ever: its check
 *   runs (it writes nothing) and its settlement, `fraud_checked` or `stream_checked`, is held.
 * - refused with the ledger's `disk_full` error, the actor not crashed (a later reply that
 *   rejects): a local `deposit` and the training validator's writes (`training_receipt`,
 *   `training_fraud`, `training_challenge`); their caller is in this node and tries again.
 * - anything else (reads, `finalize`: `Ledger.finalizeDue` pays nothing while refused) as ever.
 *
 * Kept across a stop or a crash meanwhile (what the held evidence file and the files beside the
 * ledger already keep on other refusals): held receipts and peers' claims go into the held
 * evidence (`_held_evidence.ts`, written at each finalize tick and at the stop) and come back at
 * the start, held again if the node is still read-only; a challenge's ending, or its own fraud
 * proof, is kept on disk when its `challenged` is held (`Challenges.keepEnding`), and applied at
 * the next start with room (`_validator_restart.ts`); a peer's proof whose settlement is held is
 * still among the proofs being checked, which the held evidence keeps, and is checked again at
 * the start. Not kept: a held pledge (every new connection brings every pledge its peer holds) and
 * a held `challenge_failed` (the start ends its challenge undecided, as this message would).
 *
 * Who pays: this node, at most {@link MAX_HELD_FROM_PEERS} peers' messages in memory while
 * read-only; past it a peer's message is dropped as it was before (a receipt answered `disk_full`
 * and not kept, a claim or pledge lost until the peer's next catch-up), said once per read-only
 * period. The validator's own messages are not bounded here: they are bounded where they are made
 * (the open challenges per worker, the proofs being checked). Owned by the actor, read and
 * written only inside its `receive` (and its start). Not part of the public API.
 *
 * @module
 */
import type { KeptClaim } from "./_held_evidence.ts";
import type { ReceiptHandled, ReceiptMessage, ValidatorMessage } from "./validator_messages.ts";
import { parseReceipt, receiptId } from "../protocols/receipt.ts";

/**
 * How the log line for a message held while read-only begins (then its type): said once per type
 * in a read-only period, so a peer's flood does not flood the log; the count is said when they are
 * taken.
 */
export const READ_ONLY_HELD = "validator: read-only (disk_full): held";

/**
 * Most peers' messages held while read-only: the held-evidence file's own bounds are of this
 * order (256 claims), and a read-only period lasts until the operator frees room, minutes to
 * hours, in which an honest peer set passes on far fewer receipts, claims and pledges than the
 * bound; a flood past it is dropped as it was before, not buffered without bound.
 */
export const MAX_HELD_FROM_PEERS = 256;

/** Messages held while read-only (see the module doc). */
const HELD: ReadonlySet<ValidatorMessage["type"]> = new Set<ValidatorMessage["type"]>([
  "challenged",
  "challenge_failed",
  "fraud_checked",
  "stream_checked",
  "verdict",
  "pledge",
  "receipt",
]);

/** Local asks refused `disk_full` while read-only (see the module doc). */
const REFUSED: ReadonlySet<ValidatorMessage["type"]> = new Set<ValidatorMessage["type"]>([
  "deposit",
  "training_receipt",
  "training_fraud",
  "training_challenge",
]);

/** What a message is while the ledger refuses writes. */
export type WhileReadOnly = "held" | "refused" | "served";

/** One held message; `resubmitted`: a receipt counted before (taken back from the held file). */
export interface HeldMessage {
  message: ValidatorMessage;
  resubmitted?: boolean;
}

/** The messages held while the validator's ledger refuses writes (see the module doc). */
export class ReadOnlyHold {
  readonly #log: (line: string) => void;
  #held: HeldMessage[] = [];
  #fromPeers = 0;
  /** Whether a drop was said in this read-only period. */
  #saidDrop = false;
  /** The types whose hold was said in this read-only period. */
  readonly #saidTypes = new Set<ValidatorMessage["type"]>();

  /** @param log Where a held or dropped message is said. */
  constructor(log: (line: string) => void) {
    this.#log = log;
  }

  /** What `message` is while read-only: held, refused or served as ever. */
  static kind(message: ValidatorMessage): WhileReadOnly {
    if (HELD.has(message.type)) return "held";
    if (REFUSED.has(message.type)) return "refused";
    return "served";
  }

  /** Messages held now. */
  get size(): number {
    return this.#held.length;
  }

  /**
   * Hold `message` (of kind `held`); false when it is a peer's past {@link MAX_HELD_FROM_PEERS}
   * (dropped, said once per read-only period).
   */
  hold(message: ValidatorMessage, resubmitted = false): boolean {
    const peer = fromPeer(message);
    if (peer && this.#fromPeers >= MAX_HELD_FROM_PEERS) {
      if (!this.#saidDrop) {
        this.#saidDrop = true;
        this.#log(
          `validator: read-only (disk_full): ${MAX_HELD_FROM_PEERS} peers' messages held already; ` +
            "more are dropped until the disk has room (peers send them again when they reconnect)",
        );
      }
      return false;
    }
    if (peer) this.#fromPeers++;
    this.#held.push({ message, ...(resubmitted && { resubmitted }) });
    if (!this.#saidTypes.has(message.type)) {
      this.#saidTypes.add(message.type);
      this.#log(`${READ_ONLY_HELD} ${message.type} until the ledger takes writes again`);
    }
    return true;
  }

  /** Everything held, oldest first, taken out (the ledger takes writes again). */
  take(): HeldMessage[] {
    const held = this.#held;
    this.#held = [];
    this.#fromPeers = 0;
    this.#saidDrop = false;
    this.#saidTypes.clear();
    return held;
  }

  /** What the held-evidence file keeps of what is held: the receipts and the peers' claims. */
  kept(): { receipts: ReceiptMessage[]; claims: KeptClaim[] } {
    const receipts: ReceiptMessage[] = [];
    const claims: KeptClaim[] = [];
    for (const { message } of this.#held) {
      if (message.type === "receipt") receipts.push(message);
      if (message.type === "verdict" && fromPeer(message)) {
        claims.push({ verdict: message.verdict, origin: message.origin });
      }
    }
    return { receipts, claims };
  }
}

/**
 * The answer to a held ask: a receipt is refused with `code` (the ledger's refusal, `disk_full`),
 * a pledge is not recorded (false), the rest answer nothing (their sender is this actor, or a
 * peer's one-way notify).
 */
export function heldAnswer(message: ValidatorMessage, code: string): unknown {
  if (message.type === "pledge") return false;
  if (message.type !== "receipt") return undefined;
  let id = "";
  try {
    id = receiptId(parseReceipt(message.receipt));
  } catch {
    // Garbage: the intake refuses it once there is room; its id is not known now.
  }
  const handled: ReceiptHandled = {
    receiptId: id,
    recorded: false,
    refusal: code,
    challenged: false,
    draw: 1,
  };
  return handled;
}

/** Whether `message` came from a peer (not from this node or this actor). */
function fromPeer(message: ValidatorMessage): boolean {
  const origin = (message as { origin?: unknown }).origin;
  return typeof origin === "string" && origin !== "local";
}
