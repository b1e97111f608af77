/**
 * The ValidatorActor's ledger reopened after a write failed, without a restart of the node. A
 * write that fails poisons the ledger (`ledger_poisoned`: its log may hold a torn entry), and
 * where the failure is swallowed (the receipt intake, peers' verdicts: `_ledger_write_faults.ts`)
 * nothing else reopens it: the node served jobs and recorded none of their receipts until its
 * operator restarted it, even after the disk was freed. Now the failure arms one timer; when it
 * fires, a `ledger_reopen` self-message has the actor reopen the ledger from disk in its
 * `receive` (`Ledger.reopen`: the open the supervisor's restart runs, in place, so the actor's
 * in-flight challenges and memories are kept). The condition (`ledger_write_failed` on
 * `/healthz`) no longer holds once the reopen succeeds (`LedgerWriteFault.reopenedAt`); the fault
 * is cleared, with its one line, by the next write that succeeds. In the same turn, the receipts
 * the coin drew whose challenge a failed write cut off are challenged (see below).
 *
 * While the cause holds it does not spin: one timer at a time whatever the traffic (a receipt
 * refused while one is armed arms nothing), each next delay twice the last, from
 * {@link LEDGER_REOPEN_FIRST_MS} up to {@link LEDGER_REOPEN_MAX_MS}, until a write succeeds; a
 * reopen that fails, or one whose next write fails again, is logged only for a new cause; and the
 * actor does not crash for it (its supervisor would give up and take the node down). Once the
 * cause is gone, the next timer, at most {@link LEDGER_REOPEN_MAX_MS} away, reopens the ledger and
 * it takes writes again.
 *
 * What happens to a receipt that arrives while the ledger cannot write (`_receipt_intake.ts`),
 * branch by branch:
 * - its write fails and nothing of it reached the log (the append threw, or wrote a torn frame
 *   that the reopen cuts off, copied aside): not recorded, answered `ledger_write_failed` and
 *   counted refused (the sender is told, and `/healthz` says why). No stake of its worker is
 *   locked here and this ledger does not pay it: the worker loses this ledger's credit for it
 *   unless the receipt comes again after the reopen (a copy announced again, inside its window, is
 *   new here then and recorded once); the ledgers that recorded it pay it.
 * - the ledger is poisoned already (a write failed before): refused so, before any write, the same
 *   way as above.
 * - the file the intake keeps it in beside the ledger cannot be written (a full disk): refused so
 *   before the ledger is asked, the same way as above (the ledger is not poisoned by it: the next
 *   receipt whose write succeeds clears the condition).
 * - its entry reached the log whole before the failure (the log's `fsync` or the history index's
 *   apply failed after the write): the reopen finds it, so it is recorded once, from disk, though
 *   its sender was answered `ledger_write_failed` (the index's failure, `ledger_index_failed`, is
 *   answered recorded: the entry is in the state too); a copy that comes again is a copy
 *   (answered recorded, recorded no second time), paid when its window closes. If the coin drew
 *   it, the receipt and job kept for its challenge stay kept (`drawn`), and the reopen that
 *   succeeds opens that challenge then (`ValidatorRestart.resumeDrawnAfterReopen`; a node
 *   restart before it, at the start): a cheat among them is slashed, honest work paid. One whose
 *   window closed before the reopen is left unpaid (`unresolved`, reason `ledger_write_failed`):
 *   its draw was owed and nothing here checked it, so it is not paid as if it passed, and its
 *   worker is not slashed for this node's fault — as a challenge the validator could not run ends
 *   (`validator_restarted` at a start, `_validator_restart.ts`). Before (review s72), it was paid
 *   unchallenged when the window closed before a restart.
 * - this node's own receipt (origin `local`), in any of the cases above: its prover releases it
 *   all the same (`ProverActor`), but this node announces only what its ledger recorded, so the
 *   node's own work for it is paid only where its requester's node announced it; the operator of
 *   this node pays for the outage.
 * - refused by the ledger (not a write failure): as ever, its refusal's code; nothing here.
 *
 * A peer's verdict whose write fails is lost here as a refused one is (its sender never learns);
 * its author's copies reach the ledgers that recorded it. Owned by the actor, built in its
 * constructor; armed and read only inside its `receive` (and its start). Not part of the public
 * API.
 *
 * @module
 */
import type { ActorContext } from "./actor.ts";
import type { ActorRef } from "./actor_ref.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import type { ValidatorCore } from "./_validator_core.ts";
import { ledgerWriteFailed } from "./_ledger_write_faults.ts";
import type { ValidatorMessage } from "./validator_messages.ts";

/**
 * The first reopen's delay after a failed write: soon, so a passing error (one EIO, a disk
 * freed at once) costs a second of lost receipts, not minutes; not at once, so a disk that is
 * still full is not asked again in the same breath.
 */
export const LEDGER_REOPEN_FIRST_MS = 1_000;

/**
 * The longest delay between two reopens while the cause holds: bounds how long the node keeps
 * refusing receipts after the operator fixed the disk, while a reopen (it verifies at most a
 * checkpoint's worth of entries, well under a second) once a minute costs next to nothing.
 */
export const LEDGER_REOPEN_MAX_MS = 60_000;

/** Each delay is this many times the last: few attempts over a long outage. */
const LEDGER_REOPEN_FACTOR = 2;

/** The ledger's reopen after a failed write (see the module doc). */
export class LedgerReopen {
  readonly #core: ValidatorCore;
  readonly #timers: ConnectionTimers;
  #self?: ActorRef<ValidatorMessage>;
  /** The armed timer's handle; undefined while none is. */
  #armed: unknown = undefined;
  /** Reopens tried since the last write that succeeded: the next delay grows with them. */
  #tries = 0;

  /**
   * Create the part (the actor's constructor calls this).
   * @param core What the actor's parts share.
   * @param timers The reopen timer's clock; default the real one (tests pass fake timers).
   */
  constructor(core: ValidatorCore, timers: ConnectionTimers = SYSTEM_TIMERS) {
    this.#core = core;
    this.#timers = timers;
  }

  /** At the actor's start: where the timer tells, and its end with this incarnation. */
  start(ctx: ActorContext<ValidatorMessage>): void {
    this.#self = ctx.self;
    ctx.signal.addEventListener("abort", () => this.#disarm(), { once: true });
  }

  /**
   * A write failed (`_ledger_write_faults.ts`): if it left the ledger poisoned and no reopen is
   * armed, one is, after the next delay of the backoff.
   */
  failed(): void {
    if (this.#armed !== undefined || this.#self === undefined) return;
    if (!this.#core.ledger().poisoned) return;
    const self = this.#self;
    const delay = Math.min(
      LEDGER_REOPEN_MAX_MS,
      LEDGER_REOPEN_FIRST_MS * LEDGER_REOPEN_FACTOR ** this.#tries,
    );
    // Background work reports back by message: the reopen runs in `receive`, in turn.
    this.#armed = this.#timers.setTimeout(() => {
      self.tell({ type: "ledger_reopen" }).catch(() => {});
    }, delay);
  }

  /** A write succeeded: the backoff starts over, and a reopen armed is not needed. */
  succeeded(): void {
    this.#tries = 0;
    this.#disarm();
  }

  /**
   * The `ledger_reopen` message: the armed timer fired. A poisoned ledger is reopened from disk;
   * a reopen that fails is the ledger's condition as a failed write is, and arms the next.
   *
   * @returns Whether the ledger was reopened: the actor then opens the challenges its draws owe
   * (`ValidatorRestart.resumeDrawnAfterReopen`), in this same turn, before a finalize can pay them.
   */
  async onReopen(): Promise<boolean> {
    // Not armed by this incarnation (told before a crash, taken after the restart): not its turn.
    if (this.#armed === undefined) return false;
    this.#disarm();
    const ledger = this.#core.ledger();
    if (!ledger.poisoned) return false;
    this.#tries++;
    const fault = this.#core.stats.ledgerWriteFault;
    if (fault !== undefined) fault.reopens++;
    try {
      await ledger.reopen();
    } catch (error) {
      // Still failing (the disk still full, the file still read-only): held, logged only for a
      // new cause, and the next reopen armed, later.
      ledgerWriteFailed(this.#core, error);
      return false;
    }
    // The ledger takes writes again: `/healthz` is ok from now (`ledger_conditions.ts`), not only
    // after the next write, which may not come for a long while on a quiet node. The fault's
    // counters and the backoff stay until a write succeeds: a reopen that reads a disk still full
    // proves little, and a write that fails after it raises the condition again.
    if (fault !== undefined) fault.reopenedAt = this.#core.now();
    return true;
  }

  #disarm(): void {
    if (this.#armed === undefined) return;
    this.#timers.clearTimeout(this.#armed);
    this.#armed = undefined;
  }
}
