/**
 * The round outcomes a TrainingValidator (`training_validator.ts`) audits. An outcome the outcome
 * gate lets through (`_outcome_gate.ts`: new, signed by a coordinator staked here, within its and
 * its relay's budgets) is audited outside the mailbox (the outer step redone); one that holds, or
 * could not be checked here, comes back as the validator's `audited` message: its receipts are
 * credited (`_receipt_credits.ts`), it is passed on, its trainers are sampled on this node's own
 * coin (`TrainingChallengeRun.afterRound`), and its model is fetched by CID and served. One that
 * does not hold is refused by the gate.
 *
 * **An outcome the ledger did not answer for is kept and taken again.** The ledger is asked twice
 * for a peer's outcome: the coordinator's stake at the gate, and a credit per receipt once the
 * audit held. A ledger that does not answer (the ValidatorActor stopped, restarting after a failed
 * write, or past its ask's timeout) says nothing about either: the outcome is kept here
 * ({@link MAX_KEPT_OUTCOMES}, an eighth of them per relaying peer at the gate) and taken again —
 * through the gate, or its receipts credited again — after `END_RETRY_MS`, doubling,
 * `MAX_END_ATTEMPTS` tries, as a challenge's ending or a peer's fraud proof whose settlement
 * went unanswered (`_challenge_endings.ts`; the mechanism: `_ledger_retries.ts`). Before (review
 * s59), "no answer" at the gate read as stake 0 (`unstaked_coordinator`) and an unanswered credit
 * as a refusal: passed on once, the outcome never came again (its model proven here shut out every
 * later copy), and the round's honest trainers, credited in every other ledger, went unpaid in
 * this one. Who pays when the ledger stays down past the tries, or the bound is full: those
 * trainers, in this ledger alone, as before; a coordinator's or a relay's audit budget is charged only when the gate lets the
 * outcome through. A node with no ledger at all audits no peer's outcome, as before. This node's own coordinator's
 * credit of its round (the validator's `credit`) is kept and made again the same way: dropped
 * unanswered, its trainers went unpaid in its own ledger whenever its own outcome did not credit
 * them again (an audit here without the momentum of the round before credits nothing).
 *
 * **An audit storage failed is kept and made again too.** The audit fetches the round's deltas
 * (and its start model) from storage; a read that fails (not found, past its timeout, bytes that
 * are not the file: `RoundModels.getFile`) is storage's failure, not a verdict on the round: nobody
 * is credited, slashed or benched for it. The outcome, admitted at the gate already (marked seen,
 * its audit budgets charged), comes back as the validator's `unaudited` and is kept with the
 * others (stage `audit`, the same bounds and tries, its relay's share) and audited again without
 * passing the gate again. Before (stop 62) it was lost for good: another relay's copy was dropped
 * as seen, and the round's honest trainers stayed unpaid in this ledger after storage recovered.
 *
 * **A kept outcome outlives a stop.** It is on disk (`<ledger dir>/kept-training-outcomes/`, one
 * file each, `_kept_held_training_proofs.ts`) before it counts as kept, and so is a kept credit
 * while it is made again; at the next start ({@link OutcomeAudits.readBack}) each is taken again:
 * an outcome (kept at the gate, or its credit) through the gate and its audit again, as a peer's
 * copy (nothing read is trusted: one from `"local"` only when signed by this node's key; a round
 * after the first is reproduced from the momentum the gate kept on disk, `_outcome_gate.ts`,
 * memory only before review s61, when such a round read back was taken unverified and credited
 * nothing), this node's coordinator's credit with its receipts' signatures checked. Before (review s60,
 * `tests/training/outcome_audits_test.ts`) they were memory only: a stop or
 * restart of the training validator while the ledger was down lost them, and the round's honest
 * trainers went unpaid in this ledger alone.
 *
 * **An audit or a credit under way at a stop is not lost either.** An outcome the gate admitted
 * is on disk (stage `audit`, as one storage failed) before its audit starts, and stays there
 * until its audit ended and, when it held, its credit answered (the credit takes its place); so
 * is this node's coordinator's credit while its first try is made. At the next start each is
 * taken again as a kept one is. Before (stop 63, `tests/training/
 * tests/training/outcome_audits_test.ts`) they were memory only: the validator's `audited`,
 * `unaudited` or `uncredited` tell to a stopped incarnation was refused, a relay's later copy was
 * dropped as seen, and the round's honest trainers went unpaid in this ledger after the restart.
 * What is under way counts in the kept outcomes' bounds ({@link MAX_KEPT_OUTCOMES}, a relay's
 * share {@link MAX_KEPT_OUTCOMES_PER_PEER}), beside what is kept: a peer relaying outcomes of
 * keys of its own gets no more disk than its share; past the bounds an audit runs in memory only,
 * as before, logged (who pays, if the validator stops then: that round's trainers, in this
 * ledger alone).
 *
 * Owned by the validator, whose `outcome`, `audited`, `credit` and `outcome_again` messages it
 * handles;
 * what is kept of each audit is the gate's. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { ActorError } from "../actors/errors.ts";
import { StorageError } from "../storage/errors.ts";
import { encodeCbor } from "../protocols/cbor.ts";
import { sha256Hex } from "../protocols/hash.ts";
import {
  type OutcomeBody,
  OutcomeMessage,
  type TrainingGossip,
  type TrainingReceiptBody,
  TrainingReceiptMessage,
} from "../protocols/training_messages.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { type TrainingReceipt, verifyTrainingReceipt } from "./training_receipt.ts";
import { LedgerRetries } from "./_ledger_retries.ts";
import type { AccountMessage, ReceiptStatusMessage } from "../actors/validator_messages.ts";
import type { RoundAudit } from "./round_audit.ts";
import type { OutcomeGate } from "./_outcome_gate.ts";
import type { TrainingChallengeRun } from "./_training_challenge_run.ts";
import type { TrainingValidatorMessage, TrainingValidatorOptions } from "./training_validator.ts";

/**
 * Outcomes kept for a ledger that did not answer, at most: a round makes one outcome every few
 * minutes, so a ledger down for the whole retry span (about four minutes) misses a handful; each
 * is one frame at most (256 receipts), so the bound keeps the memory to a few MiB.
 */
export const MAX_KEPT_OUTCOMES = 16;
/**
 * Of those, the outcomes one relaying peer may have kept at the gate (not audited yet): an eighth,
 * as the validator inboxes share their holds (`network/_validator_inbox.ts`), so a peer relaying
 * outcomes signed by keys of its own while the ledger is down cannot shut out the genuine one.
 */
export const MAX_KEPT_OUTCOMES_PER_PEER = MAX_KEPT_OUTCOMES / 8;
/** The folder, under the ledger's directory, of the kept outcomes and credits (module doc). */
export const KEPT_OUTCOMES_DIR = "kept-training-outcomes";

/**
 * What makes a kept outcome again at the next start, as the validator's message: a round outcome
 * (through the gate and its audit again), or this node's coordinator's credit of its receipts.
 */
export type OutcomeAgain =
  | { type: "outcome"; body: OutcomeBody; origin: string }
  | { type: "credit"; receipts: TrainingReceipt[]; terms: TrainingReceiptBody["terms"] };

/** An outcome kept before its audit ended: at the gate, or for its audit (see below). */
interface KeptOutcome {
  /** The outcome. */
  body: OutcomeBody;
  /** The relaying peer's hex key, or `"local"`. */
  origin: string;
  /** Tries made so far. */
  attempts: number;
}

/**
 * An outcome kept to take again (see the module doc): at the `gate`, the coordinator's stake not
 * answered by the ledger, the outcome not audited yet; for its `audit`, admitted at the gate
 * (charged, marked seen) and its audit ended without a verdict because storage failed it (a
 * delta not found, bytes that are not the file, an ask past its timeout); or its `credit`, some
 * of its receipts' credit asks not answered (an audited round's, or this node's own coordinator's
 * credit of its round).
 */
type UnsettledOutcome =
  | ({ stage: "gate" } & KeptOutcome)
  | ({ stage: "audit" } & KeptOutcome)
  | ({ stage: "credit" } & KeptCredit);

/** An outcome kept for its audit (see {@link UnsettledOutcome}). */
type UnsettledAudit = Extract<UnsettledOutcome, { stage: "audit" }>;

/**
 * A credit of receipts some of whose ledger asks went unanswered (the validator's `uncredited`
 * message carries it back from outside the mailbox).
 */
export interface KeptCredit {
  /** What is credited: kept once. */
  key: string;
  /** What is credited, for the log. */
  what: string;
  /** Credit the receipts (again): how many asks went unanswered. */
  credit: () => Promise<number>;
  /** Tries made so far. */
  attempts: number;
  /** What makes it again at the next start (kept on disk); absent: memory only. */
  again?: OutcomeAgain;
}

/** What {@link OutcomeAudits} needs from the validator. */
export interface OutcomeAuditsOptions {
  /**
   * The validator's options, read at each use (`models`, `serve`; `ledger`: whether this node has
   * one; `endRetryMs`: the first wait before an outcome the ledger did not answer for is taken
   * again; `timers`: what its wait runs on).
   */
  settings: Pick<
    TrainingValidatorOptions,
    "models" | "serve" | "ledger" | "endRetryMs" | "identity" | "ownProofsDir" | "now" | "timers"
  >;
  /** Which outcomes are audited, and what is kept of each audit. */
  gate: OutcomeGate;
  /**
   * Credit the receipts a reproduced round averaged (`ReceiptCredits.creditRound`); resolves with
   * how many of the ledger asks went unanswered (0: every receipt credited or refused).
   */
  creditRound(
    ctx: ActorContext<TrainingValidatorMessage>,
    body: OutcomeBody,
  ): Promise<number>;
  /**
   * Credit receipts this node's coordinator's round averaged (`ReceiptCredits.credit`): a kept
   * credit read back at start is made with it; resolves with how many asks went unanswered.
   */
  creditReceipts(
    ctx: ActorContext<TrainingValidatorMessage>,
    receipts: readonly TrainingReceipt[],
    terms: TrainingReceiptBody["terms"],
  ): Promise<number>;
  /** The challenge run: a peer's round's trainers are sampled on this node's own coin. */
  challenges: TrainingChallengeRun;
  /** Ask the ValidatorActor holding the ledger; rejects when there is none, or no answer. */
  ask<R>(
    ctx: ActorContext<TrainingValidatorMessage>,
    message: AccountMessage | ReceiptStatusMessage,
  ): Promise<R>;
  /** Pass gossip on to every peer but the one it came from. */
  publish(
    ctx: ActorContext<TrainingValidatorMessage>,
    gossip: TrainingGossip,
    origin: string,
  ): void;
  /** Where one line per model goes. */
  log(line: string): void;
}

/** See the module doc. */
export class OutcomeAudits {
  readonly #options: OutcomeAuditsOptions["settings"];
  readonly #parts: OutcomeAuditsOptions;
  /** Which outcomes are audited, and what is kept of each audit (`_outcome_gate.ts`). */
  readonly #outcomes: OutcomeGate;
  readonly #challenges: TrainingChallengeRun;
  /** Outcomes the ledger did not answer for, by outcome hash, to take again (`outcome_again`). */
  readonly #unsettled: LedgerRetries<UnsettledOutcome>;
  /**
   * Audits and credits under way (outside the mailbox, or a coordinator's credit in it): an
   * outcome admitted at the gate until its audit ended, a credit (of an audited outcome, or this
   * node's coordinator's) until it answered, a kept one made again likewise. On disk until then,
   * within the kept outcomes' bounds (`#underWay`): a stop meanwhile loses
   * nothing, the next start takes them again.
   */
  readonly #retrying = new Map<string, UnsettledOutcome>();

  /** @param options See {@link OutcomeAuditsOptions}. */
  constructor(options: OutcomeAuditsOptions) {
    this.#options = options.settings;
    this.#parts = options;
    this.#outcomes = options.gate;
    this.#challenges = options.challenges;
    const settings = options.settings;
    // Why it is kept: the ledger did not answer, or storage failed its audit (no verdict either).
    const why = (outcome: UnsettledOutcome) =>
      outcome.stage === "audit" ? "storage failed in its audit" : "the ledger did not answer";
    this.#unsettled = new LedgerRetries<UnsettledOutcome>({
      dir: settings.ownProofsDir,
      folder: KEPT_OUTCOMES_DIR,
      max: MAX_KEPT_OUTCOMES,
      maxPerShare: MAX_KEPT_OUTCOMES_PER_PEER,
      shareName: "relay",
      key: unsettledKey,
      // Only a peer's copy, at the gate or its audit: a credit is this node's own.
      share: (outcome) =>
        outcome.stage !== "credit" && outcome.origin !== "local" ? outcome.origin : undefined,
      duplicate: "replaces",
      onDisk: (key, kept) => {
        // An audit storage failed is read back as the outcome: through the gate and audited again.
        const again: OutcomeAgain | undefined = kept.stage !== "credit"
          ? { type: "outcome", body: kept.body, origin: kept.origin }
          : kept.again;
        if (again === undefined) return undefined;
        return {
          hash: sha256Hex(new TextEncoder().encode(key)),
          body: again,
          origin: "origin" in again ? again.origin : "local",
          since: (settings.now ?? Date.now)(),
        };
      },
      inFlight: () => this.#retrying,
      tryAgain: async (kept, ctx) => {
        if (kept.stage === "gate") {
          await this.#take(kept, ctx, kept.attempts);
          return;
        }
        if (kept.stage === "audit") {
          // Admitted already (charged, marked seen): audited again, on disk until it ends.
          const retry = { ...kept, attempts: kept.attempts + 1 };
          this.#retrying.set(unsettledKey(retry), retry);
          this.#audit(retry, ctx);
          return;
        }
        const { stage: _stage, ...credit } = kept;
        // On disk until it answers (`uncredited`, told whatever the answer).
        this.#retrying.set(`credit:${credit.key}`, kept);
        void this.#creditOutside(ctx, { ...credit, attempts: credit.attempts + 1 });
      },
      // One unanswered stake ask per round of tries: the gate asks in the mailbox; a credit is
      // made outside it.
      inMailbox: (kept) => kept.stage === "gate",
      again: { type: "outcome_again" },
      retryMs: () => settings.endRetryMs,
      timers: settings.timers,
      label: "training: kept outcomes",
      noun: "outcome",
      kept: (outcome, error) =>
        `training: ${describe(outcome)} kept, ${why(outcome)}: ${error.message}`,
      dropped: (outcome, reason, error) =>
        `training: ${describe(outcome)} dropped, ${why(outcome)} (${reason}): ` +
        `${error.message}; its trainers go unpaid in this ledger`,
      log: (line) => options.log(line),
    });
  }

  /**
   * At start: the outcomes and credits kept when the validator last stopped are kept again (in
   * memory) and taken again at the first `outcome_again` (see the module doc). Nothing read is
   * trusted: an entry that is not an outcome body from a peer (or from `"local"` signed by this
   * node's key), nor a credit of receipts their trainers signed, is dropped, logged, and leaves
   * the folder at its next write.
   */
  async readBack(ctx: ActorContext<TrainingValidatorMessage>): Promise<void> {
    const restored: UnsettledOutcome[] = [];
    for (const { body: entry } of await this.#unsettled.read()) {
      const kept = this.#readEntry(ctx, entry);
      if (kept === undefined) {
        this.#parts.log("training: a damaged kept outcome dropped");
        continue;
      }
      restored.push(kept);
    }
    this.#unsettled.restore(ctx, restored);
  }

  /** A kept entry read back, as it is kept again; undefined when it is not one. */
  #readEntry(
    ctx: ActorContext<TrainingValidatorMessage>,
    entry: unknown,
  ): UnsettledOutcome | undefined {
    if (typeof entry !== "object" || entry === null) return undefined;
    const again = entry as Record<string, unknown>;
    if (again.type === "outcome" && typeof again.origin === "string") {
      const parsed = OutcomeMessage.schema.safeParse(again.body);
      if (!parsed.success) return undefined;
      const body = parsed.data as OutcomeBody;
      const own = body.coordinator instanceof Uint8Array &&
        bytesEqual(body.coordinator, this.#options.identity.publicKey);
      if (again.origin === "local" && !own) return undefined; // would skip the stake question
      return { stage: "gate", body, origin: again.origin, attempts: 0 };
    }
    if (again.type === "credit" && Array.isArray(again.receipts)) {
      const receipts: TrainingReceipt[] = [];
      let terms: TrainingReceiptBody["terms"] | undefined;
      for (const receipt of again.receipts) {
        const parsed = TrainingReceiptMessage.schema.safeParse({ receipt, terms: again.terms });
        if (!parsed.success) return undefined;
        const body = parsed.data as TrainingReceiptBody;
        if (!verifyTrainingReceipt(body.receipt).ok) return undefined;
        receipts.push(body.receipt);
        terms = body.terms;
      }
      if (terms === undefined) return undefined;
      // One try made (its own, before the stop): made again, it is told back whatever the answer.
      return { stage: "credit", ...this.coordinatorCredit(ctx, receipts, terms) };
    }
    return undefined;
  }

  /**
   * This node's coordinator's credit of `receipts` (the validator's `credit`), kept and made again
   * when the ledger does not answer, across a stop too.
   */
  coordinatorCredit(
    ctx: ActorContext<TrainingValidatorMessage>,
    receipts: TrainingReceipt[],
    terms: TrainingReceiptBody["terms"],
  ): KeptCredit {
    return {
      key: `round:${terms.round}:${terms.startModel}`,
      what: `round ${terms.round} from this node's coordinator`,
      credit: () => this.#parts.creditReceipts(ctx, receipts, terms),
      attempts: 1,
      again: { type: "credit", receipts, terms },
    };
  }

  /**
   * Take an outcome (the `outcome` message): audit it outside the mailbox when the gate lets it
   * through. From this node's coordinator (`origin: "local"`): `{ result }`, settled once it was
   * passed on or its audit ended without; rejected when this actor stopped first.
   */
  take(
    message: Extract<TrainingValidatorMessage, { type: "outcome" }>,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<{ result: Promise<void> } | undefined> {
    return this.#take(message, ctx, 0);
  }

  /** {@link OutcomeAudits.take}, its gate tried `attempts` times before without a ledger answer. */
  async #take(
    message: { body: OutcomeBody; origin: string },
    ctx: ActorContext<TrainingValidatorMessage>,
    attempts: number,
  ): Promise<{ result: Promise<void> } | undefined> {
    // This node's own coordinator waits on `result` before it forgets the outcome (its
    // state keeps it until then, and a restart sends it again): it settles once the outcome
    // was passed on, or its audit here ended without (refused, no verdict); it rejects when
    // this actor stopped before that. A peer's copy is handed over with an ask
    // (`network/_validator_inbox.ts`), its answer unused.
    const ended = Promise.withResolvers<void>();
    ended.promise.catch(() => {}); // nobody may be waiting on it
    // Stopped with its `audited` still to come (told or not): that answer is lost.
    const stopped = () => ended.reject(new Error("the training validator stopped"));
    ctx.signal.addEventListener("abort", stopped, { once: true });
    ended.promise.finally(() => ctx.signal.removeEventListener("abort", stopped))
      .catch(() => {});
    const answer = message.origin === "local" ? { result: ended.promise } : undefined;
    // Signed by a staked coordinator, within its budget and its relay's, a copy of a model
    // not proven yet, or refused (`_outcome_gate.ts`).
    let admitted: boolean;
    try {
      admitted = await this.#outcomes.mayAudit(message.body, message.origin, this.#stakeOf(ctx));
    } catch (error) {
      // The ledger did not answer for the coordinator's stake: nothing charged, kept for later.
      const { body, origin } = message;
      await this.#unsettled.keep(
        ctx,
        { body, origin, stage: "gate", attempts: attempts + 1 },
        error as Error,
      );
      ended.resolve();
      return answer;
    }
    if (!admitted) {
      ended.resolve();
      return answer;
    }
    const { body, origin } = message;
    // Admitted (charged, marked seen): on disk until its audit ends, or its credit answered.
    const audit: UnsettledAudit = { stage: "audit", body, origin, attempts: 1 };
    await this.#underWay(audit);
    this.#audit(audit, ctx, ended);
    return answer;
  }

  /**
   * Audit `kept.body` outside the mailbox (its try `kept.attempts`): served and passed on only
   * when it holds (`audited`); one that failed comes back as the validator's `unaudited` (made
   * again when storage failed it; it leaves the disk otherwise). Stopped meanwhile, it stays on
   * disk. `ended`: told once its first try ended (see {@link OutcomeAudits.take}).
   */
  #audit(
    kept: UnsettledAudit,
    ctx: ActorContext<TrainingValidatorMessage>,
    ended?: PromiseWithResolvers<void>,
  ): void {
    const { body, origin, attempts } = kept;
    void this.#outcomes.audit(body, this.#convicted(ctx)).then(
      (audit) => ctx.self.tell({ type: "audited", body, audit, origin, ended: ended?.resolve }),
      (error) => {
        this.#parts.log(
          `training: model ${body.model.slice(0, 16)} not adopted: ${(error as Error).message}`,
        );
        ended?.resolve();
        // Stopped meanwhile: on disk still (within the bounds), for the next start to take.
        if (ctx.signal.aborted) return;
        // Told whatever the failure: it leaves the disk, or is kept to make again.
        return ctx.self.tell({ type: "unaudited", body, origin, attempts, error: error as Error });
      },
    ).catch((error) => ended?.reject(error)); // this actor stopped meanwhile: kept on disk
  }

  /**
   * An audit ended without a verdict (the validator's `unaudited`), its try `attempts`: kept to
   * make again (`outcome_again`) when storage failed it, within the tries and the bounds; one that
   * failed otherwise leaves the disk (logged by the audit).
   */
  async unaudited(
    ctx: ActorContext<TrainingValidatorMessage>,
    outcome: { body: OutcomeBody; origin: string; attempts: number; error: Error },
  ): Promise<void> {
    const { body, origin, attempts, error } = outcome;
    const kept: UnsettledAudit = { stage: "audit", body, origin, attempts };
    const retried = this.#retrying.delete(unsettledKey(kept));
    if (isStorageFailure(error)) await this.#unsettled.keep(ctx, kept, error);
    if (retried) await this.#unsettled.keepOnDisk();
  }

  /**
   * Serve and pass on an outcome that holds (or could not be checked here); refuse one that does
   * not. Its audit leaves the disk; a reproduced round's credit takes its place there until it
   * answered. Its receipts are credited outside the mailbox, and the credit comes back as the
   * validator's `uncredited` (kept to credit again when some asks went unanswered).
   */
  async audited(
    body: OutcomeBody,
    audit: RoundAudit,
    origin: string,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<void> {
    // Its audit ended with a verdict: it leaves the disk, its credit (if any) in its place.
    this.#retrying.delete(unsettledKey({ stage: "audit", body, origin, attempts: 0 }));
    if (!audit.ok) {
      this.#outcomes.auditFailed(body, audit, origin);
      return await this.#unsettled.keepOnDisk();
    }
    if (!this.#outcomes.auditHeld(body, audit)) {
      return await this.#unsettled.keepOnDisk(); // another copy proved it first
    }
    const name = `round ${body.round} model ${body.model.slice(0, 16)}…`;
    // Its receipts are recorded before this node challenges any: a challenge holds its receipt
    // in the ledger, which it can only once the receipt is there.
    const credit: KeptCredit = {
      key: `model:${body.model}`,
      what: `outcome of ${name}`,
      credit: () => this.#parts.creditRound(ctx, body),
      attempts: 1,
      // Read back at the next start, it is audited again before anything is credited (a round
      // after the first from the momentum the gate kept on disk: `_outcome_gate.ts`).
      again: { type: "outcome", body, origin },
    };
    // On disk until it answered (`uncredited`): a stop meanwhile loses nothing.
    if (audit.verified) await this.#underWay({ stage: "credit", ...credit });
    else await this.#unsettled.keepOnDisk();
    const credited = audit.verified ? this.#creditOutside(ctx, credit) : Promise.resolve();
    this.#parts.publish(ctx, { kind: "outcome", body }, origin);
    // The coordinator challenged before it aggregated; this node samples the same receipts
    // on its own coin, so no trainer is checked by its coordinator alone.
    if (origin !== "local") {
      body.reports.forEach((report, i) => {
        const delta = audit.verified ? audit.deltas[i] : undefined;
        void credited.catch(() => {}).then(() =>
          this.#challenges.afterRound(body, report, delta, ctx)
        );
      });
    }
    void this.#adopt(body, audit.verified ? "reproduced" : `not audited: ${audit.why}`).then(
      () => ctx.self.tell({ type: "adopted", model: body.model }),
      (error) => this.#parts.log(`training: ${name} not adopted: ${(error as Error).message}`),
    ).catch(() => {}); // this actor stopped meanwhile
  }

  /**
   * Credit receipts (`credit.credit`, its first try), keeping them to credit again when some of
   * the ledger asks went unanswered: this node's own coordinator's credit of its round (the
   * validator's `credit` message, answered once this first try ended), which before was dropped
   * unanswered as a refusal is.
   */
  async credit(ctx: ActorContext<TrainingValidatorMessage>, credit: KeptCredit): Promise<void> {
    // On disk until it answered: a stop while the ledger holds its asks loses nothing.
    await this.#underWay({ stage: "credit", ...credit });
    await this.uncredited(ctx, credit, await credit.credit());
  }

  /**
   * A credit was tried (`credit.attempts` times) and `unanswered` of its ledger asks went
   * unanswered (the validator's `uncredited`): kept to make again if any did.
   */
  async uncredited(
    ctx: ActorContext<TrainingValidatorMessage>,
    credit: KeptCredit,
    unanswered: number,
  ): Promise<void> {
    // A credit under way answered (or not): no longer on disk as under way.
    const retried = this.#retrying.delete(`credit:${credit.key}`);
    if (unanswered === 0) {
      if (retried) await this.#unsettled.keepOnDisk();
      return;
    }
    const error = new Error(`${unanswered} credit asks not answered`);
    await this.#unsettled.keep(ctx, { stage: "credit", ...credit }, error);
  }

  /**
   * Take again every outcome the ledger did not answer for (the validator's `outcome_again`):
   * through the gate, or its receipts credited again (kept again if still unanswered).
   */
  again(ctx: ActorContext<TrainingValidatorMessage>): Promise<void> {
    return this.#unsettled.again(ctx);
  }

  /**
   * Make `credit` outside the mailbox (its asks, one per receipt, each up to the ask's timeout,
   * must not hold it); it comes back as the validator's `uncredited` (leaving the disk, or kept
   * when some asks went unanswered). Resolves once the credit was made.
   */
  #creditOutside(
    ctx: ActorContext<TrainingValidatorMessage>,
    credit: KeptCredit,
  ): Promise<void> {
    return credit.credit().then((unanswered) => {
      // Told whatever the answer (it leaves the disk then); stopped meanwhile, it stays there.
      if (ctx.signal.aborted) return;
      // Told, not kept here: the kept outcomes change in the validator's `receive`.
      void ctx.self.tell({ type: "uncredited", credit, unanswered }).catch(() => {});
    }).catch((error) =>
      this.#parts.log(`training: ${credit.what} not credited: ${(error as Error).message}`)
    );
  }

  /**
   * Put `outcome` on disk while it is under way (an admitted outcome's first audit, a credit's
   * first try), so that a stop before it ends loses nothing: the next start takes it again
   * ({@link OutcomeAudits.readBack}). Within the kept outcomes' bounds (a relay's share of
   * {@link MAX_KEPT_OUTCOMES}, counted with what is kept and under way): past them it runs in
   * memory only, as before, logged. A credit that takes the place of its outcome's audit has
   * its room.
   */
  async #underWay(outcome: UnsettledOutcome): Promise<void> {
    const full = this.#unsettled.outOfBounds(outcome);
    if (full === undefined) this.#retrying.set(unsettledKey(outcome), outcome);
    else this.#parts.log(`training: ${describe(outcome)} not kept on disk meanwhile (${full})`);
    await this.#unsettled.keepOnDisk();
  }

  async #adopt(body: OutcomeBody, how: string): Promise<void> {
    const model = await this.#options.models.get(body.model, body.arch, body.file);
    await this.#options.serve?.(model.dir);
    this.#parts.log(
      `training: round ${body.round} model ${body.model.slice(0, 16)}… ${how}, served` +
        (body.heldOutLoss === undefined ? "" : ` (held-out loss ${body.heldOutLoss.toFixed(3)})`),
    );
  }
  /**
   * The outcome gate's question: the stake a key holds in the ledger (0 on a node with no ledger;
   * rejected when the ledger it has does not answer: see the module doc).
   */
  #stakeOf(ctx: ActorContext<TrainingValidatorMessage>): (key: Uint8Array) => Promise<number> {
    return async (key) => {
      if (this.#options.ledger === undefined) return 0;
      return (await this.#ledger<{ stake: number }>(ctx, { type: "account", key })).stake;
    };
  }

  /** The audit's question: whether the ledger convicted a receipt (no answer: not). */
  #convicted(
    ctx: ActorContext<TrainingValidatorMessage>,
  ): (receiptId: string) => Promise<boolean> {
    return async (receiptId) =>
      (await this.#ledger<{ status: string } | undefined>(ctx, {
        type: "receipt_status",
        receiptId,
      }).catch(() => undefined))?.status === "fraud";
  }

  #ledger<R>(
    ctx: ActorContext<TrainingValidatorMessage>,
    message: AccountMessage | ReceiptStatusMessage,
  ): Promise<R> {
    return this.#parts.ask<R>(ctx, message);
  }
}

/** What the log calls a kept outcome. */
function describe(outcome: UnsettledOutcome): string {
  return outcome.stage === "credit"
    ? `credit of the ${outcome.what}`
    : `outcome of round ${outcome.body.round} model ${outcome.body.model.slice(0, 16)}… ` +
      (outcome.stage === "gate" ? "(not audited)" : "(its audit not ended)");
}

/** The key of a kept outcome: at the gate its hash (copies of one model differ), or its credit's. */
function unsettledKey(outcome: UnsettledOutcome): string {
  if (outcome.stage === "credit") return `credit:${outcome.key}`;
  return outcome.stage === "gate" ? gateKey(outcome.body) : `audit:${gateKey(outcome.body)}`;
}

/**
 * Whether an audit that threw failed on storage (a delta or the start model not found, its bytes
 * not the file, a storage ask past its timeout or to a storage actor gone): no verdict on the round,
 * made again ({@link OutcomeAudits.unaudited}). Its only other asks, the ledger's, answer "not
 * convicted" when unanswered.
 */
function isStorageFailure(error: unknown): boolean {
  return error instanceof StorageError || error instanceof ActorError;
}

/** The key of an outcome kept at the gate: its hash (copies of one model differ). */
function gateKey(body: OutcomeBody): string {
  return `gate:${sha256Hex(encodeCbor(body))}`;
}
