/**
 * The ValidatorActor's fraud proofs (`validator_actor.ts`): how a proof is taken
 * (`onFraudProof`: what costs nothing to refuse is skipped, a proof that outran its receipt is
 * held for it and the receipt it carries handed to the intake, one whose accuser has no pledge
 * here is held for the pledge
 * (`_pledge_held_proofs.ts`), one whose accuser's stake falls short is checked within a budget
 * per receipt (`_unbacked_checks.ts`)), checked on the serial work queue (`#checkFraud`, tried
 * again at the finalize tick when the check throws) and settled in the ledger
 * (`onFraudChecked`), and how a training fraud proof the training validator checked is settled
 * (`onTrainingFraud`). Also the peers' proofs being checked (`checking`), which hold their
 * receipt out of the finalize tick. Owned by the actor, built in its constructor on its
 * {@link ValidatorCore}; read and written only inside its `receive` (and its start). Not part of
 * the public API.
 *
 * @module
 */
import type { ActorContext } from "./actor.ts";
import { type Receipt, receiptId, verifyReceipt } from "../protocols/receipt.ts";
import {
  type FraudProof,
  fraudProofHash,
  FraudProofSchema,
  verifyFraudProofSignature,
} from "../protocols/fraud_proof.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { ReceiptAnnouncementMessage } from "../protocols/inference_messages.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";
import {
  checkFraudProof,
  type FraudCheckResult,
  fraudProofNeedsModel,
} from "../proof/fraud_check.ts";
import {
  freeStake,
  LedgerRejectedError,
  takesFraudProofs,
  worthFraudCheck,
} from "../proof/ledger.ts";
import { PledgeHeldProofs, timedFromArrival } from "./_pledge_held_proofs.ts";
import { UnbackedChecks } from "./_unbacked_checks.ts";
import { QueuedAccusations } from "./_queued_accusations.ts";
import { settleTrainingFraud } from "./_validator_training.ts";
import { trainingReceiptId } from "../training/training_receipt.ts";
import type { ValidatorCore } from "./_validator_core.ts";
import type {
  FraudCheckedMessage,
  FraudProofHandled,
  TrainingFraudLedgerMessage,
  ValidatorMessage,
} from "./validator_messages.ts";

/**
 * Longest a peer's fraud proof being checked holds its receipt out of the finalize tick (ms,
 * from when it was taken): three challenge windows, far past any check's re-run (seconds for an
 * inference proof, minutes for a training one), so only a check that never reports lapses.
 */
const MAX_CHECK_HOLD_MS = 3 * DEFAULT_ECONOMICS.challengeWindowMs;
/**
 * How many times a peer's fraud proof is checked when its check throws (the model failing to
 * load, the checker's own error): again at each finalize tick after a failure, the proof still
 * taken and its receipt held meanwhile; past the last, it is undecided here, as a check without
 * the model is (passed on, remembered, nobody charged, the hold released). Review s45: a check
 * that threw dropped the proof, not passed on, not remembered, and the cheat it caught was paid
 * here and in the ledgers behind this node.
 */
const MAX_FRAUD_CHECK_TRIES = 3;

/**
 * Check reasons that name no one to charge: the proof, or the receipt it carries, is not what its
 * signer signed. Nothing is settled and the proof is not passed on: a peer's intake refuses such
 * a proof `bad_signature` and charges whoever sent it (`network/peer_services.ts`), so a node
 * passes on only evidence whose every signature it verified itself (review s80 vgfx F3). A peer's
 * proof meets them only here if the intake let it through (`FraudProofs.onFraudProof` checks the
 * receipt's signature too).
 */
const UNATTRIBUTABLE: ReadonlySet<string> = new Set([
  "malformed",
  "bad_signature",
  "receipt_malformed",
  "receipt_bad_signature",
]);

/** The validator's fraud proofs: taken, checked and settled (see the module doc). */
export class FraudProofs {
  readonly #core: ValidatorCore;
  /** Peers' fraud proofs waiting for their accuser's pledge (bounded). */
  readonly pledgeHeld = new PledgeHeldProofs();
  /**
   * Peers' fraud proofs being checked, by hash: their receipt and when they were taken (kept
   * across a restart in the held evidence; a training proof's, told by the training validator:
   * `training_checking`). The receipt is not finalized meanwhile, and a proof taken inside its
   * window settles after it.
   */
  readonly checking = new Map<string, { receiptId: string; takenAt: number }>();
  /**
   * Peers' fraud proofs whose check threw, by hash, with the checks tried: checked again at the
   * next finalize tick (see {@link MAX_FRAUD_CHECK_TRIES}). Still taken meanwhile.
   */
  readonly #failedChecks = new Map<string, { proof: FraudProof; origin?: string; tries: number }>();
  /** Checks of proofs whose accuser's stake here falls short (bounded per receipt). */
  readonly unbacked = new UnbackedChecks();
  /**
   * Peers' proofs that came while their accuser's accusation of the receipt was in flight here,
   * taken again once it settles (`_queued_accusations.ts`).
   */
  readonly queued: QueuedAccusations;
  /**
   * Create the part (the actor's constructor calls this).
   * @param core What the actor's parts share.
   */
  constructor(core: ValidatorCore) {
    this.#core = core;
    // At the queue's bound an accuser's free stake per queued proof decides whose goes (review
    // s78, `MAX_QUEUED_ACCUSATIONS`).
    this.queued = new QueuedAccusations({
      freeStake: (accuser) => freeStake(core.ledger().account(fromHex(accuser))),
    });
  }

  /**
   * At the finalize tick: peers' proofs whose check threw are checked again (their receipt still
   * held), and proofs queued behind an accusation no longer in flight (the one before them left
   * without settling here: dropped from the holds' bounds) are taken again.
   */
  retryFailedChecks(ctx: ActorContext<ValidatorMessage>): void {
    for (const [accuser, subject] of this.queued.accusations()) {
      this.#takeQueued(accuser, subject, ctx);
    }
    for (const [hash, { proof, origin, tries }] of [...this.#failedChecks]) {
      this.#failedChecks.delete(hash);
      this.#checkPeerProof(proof, hash, origin, ctx, tries);
    }
  }

  /**
   * At the finalize tick: the receipts peers' fraud proofs are being checked against, as of
   * `now` (not paid yet), and those a proof that came inside their window waits on its
   * accuser's pledge for (within `MAX_PLEDGE_WAIT_MS`, `_pledge_held_proofs.ts`).
   */
  checkedReceipts(now: number): Set<string> {
    const checked = new Set<string>();
    for (const [hash, { receiptId, takenAt }] of this.checking) {
      // A check that never reported (its checker died and did not take it again) must not
      // keep an honest receipt unpaid for good: past the bound the hold lapses.
      if (now - takenAt > MAX_CHECK_HOLD_MS) this.checking.delete(hash);
      else checked.add(receiptId);
    }
    for (const { proof, arrivedAt } of this.pledgeHeld.waiting(now)) {
      const record = this.#core.ledger().fraudSubject(proof.receipt);
      if (record !== undefined && arrivedAt <= record.pendingUntil) checked.add(record.receiptId);
    }
    return checked;
  }

  /**
   * Take a fraud proof: skip what costs nothing to refuse, queue the check otherwise. A proof
   * about a receipt this ledger has not recorded is held (bounded, see `_validator_memory.ts`)
   * and taken again once the receipt comes in through `ReceiptIntake.onReceipt`, the one intake that binds it
   * to its job and runs the contradiction check and the coin: a proof never records its
   * receipt itself, so an accuser cannot make a receipt skip them; it hands the intake the
   * receipt and job it carries, as an announcement would (`#recordCarriedReceipt`). A proof from a key with no pledge
   * here is held for the pledge (skipped for now, `awaitingPledge`), and taken again when it is
   * recorded. `held`: the resolver of a proof taken again after it was held for its receipt.
   * `takenAt`: when a peer's proof kept across a stop was first taken (now if later or absent).
   */
  onFraudProof(
    value: unknown,
    ctx: ActorContext<ValidatorMessage>,
    own = false,
    origin?: string,
    held?: PromiseWithResolvers<FraudCheckResult>,
    takenAt?: number,
  ): FraudProofHandled {
    const ledger = this.#core.ledger();
    const skip = (skipped: NonNullable<FraudProofHandled["skipped"]>): FraudProofHandled => {
      this.#core.stats.fraudProofsSkipped++;
      held?.reject(new Error(`fraud proof skipped: ${skipped}`));
      return { queued: false, skipped };
    };
    const parsed = FraudProofSchema.safeParse(value);
    if (!parsed.success) return skip("malformed");
    const proof = parsed.data;
    const hash = fraudProofHash(proof);
    const id = receiptId(proof.receipt);
    const taken = this.#core.memory.hasFraudProof(hash) ||
      this.#core.memory.holdsFraudProof(id, hash);
    if (taken || this.pledgeHeld.holds(hash) || this.queued.holds(hash)) {
      return skip("duplicate");
    }
    // A worker accusing its own receipt can only be shaping its own settlement (a refuted
    // accusation costs it a flat penalty, a confirmed one rewards it with its own slash).
    if (bytesEqual(proof.validator, proof.receipt.worker)) return skip("self_accusation");
    // The receipt it settles here: its own, or the variant of it its worker had recorded here
    // for the job (review s46: a worker sends each ledger another variant of one receipt).
    const record = ledger.fraudSubject(proof.receipt);
    const subject = record?.receiptId ?? id; // `#subjectId`, with its record
    const now = this.#core.now();
    // Taken now, or when it was first taken before a stop or came into the queue: the window's
    // test is on that time (review s77 F4: a refuted proof that came inside the window behind a
    // confirmed one checked past it was skipped, and charged in the other order).
    const since = Math.min(now, takenAt ?? now);
    if (record !== undefined && !worthFraudCheck(record, since)) return skip("not_pending");
    // A peer's stake must cover the penalty of this accusation and of those still being checked
    // or held here: else one key staked at the penalty buys any number of checks at once. This
    // validator's own proofs, from its own challenges, are not a peer's claims to bound: checked
    // whatever its stake (a refuted one costs it what stake it has), or a validator with none
    // would catch a cheat and leave it unslashed in its own ledger.
    const penalty = ledger.economics.falseAccusationPenalty;
    const accuser = toHex(proof.validator);
    // Its free stake (review s45): what its own receipts lock as a worker backs their slash, not
    // its accusations (the ledger charges a penalty out of free stake only).
    const backed = own ||
      freeStake(ledger.account(proof.validator)) >=
        penalty * (this.#core.memory.accusing(proof.validator) + 1);
    // Short of stake, a proof still settles the same way whatever came first (a worker's
    // conviction must not hang on the order a pledge, a refuted proof and this one arrived): from
    // a key with no pledge here yet it waits for the pledge (`_pledge_held_proofs.ts`: memory,
    // never a forward pass); from a key that pledged, it is checked all the same while it could
    // settle its receipt, within a budget per receipt (`_unbacked_checks.ts`). About a receipt
    // not recorded here, a pledged key's proof is held for the receipt, as a backed one is.
    const pledged = backed || ledger.hasStaked(proof.validator);
    const unbacked = !backed && pledged && record !== undefined;
    // Its accuser's accusation of the receipt in flight here: queued behind it (below), and
    // weighed against its stake once that one settled and was charged. A proof of it held for
    // the accuser's pledge is in flight too (review s77 F3: this one was refused
    // `repeated_accusation`, and where the held one was refuted and this one confirmed, the cheat
    // was paid here once the pledge came, and slashed in the other order).
    const inFlight = !own && this.#accusesNow(accuser, subject, id);
    if (
      unbacked && !inFlight &&
      !(since <= record.pendingUntil && this.unbacked.available(subject, accuser))
    ) {
      return skip("unstaked_accuser");
    }
    // One accusation per accuser and receipt at a time: while one is taken and not settled (being
    // checked, or held for its receipt) the next waits behind it, bounded, and is taken again
    // once it settled (`_queued_accusations.ts`) — checked beside it, one key would re-sign a
    // claim into any number of checks in flight, each kept across a stop (`_held_evidence.ts`);
    // refused (until stop 77), an accuser's confirmed proof that came while its refuted one was
    // checked was lost, and the cheat paid here. Refused once one was left undecided here. One
    // that settled does not block the next: a refuted one cost its penalty, and the ledger
    // settles each further proof (`_ledger_accusations.ts`; review s76, F2: a settled refuted
    // proof blocked its accuser's confirmed one, and the cheat was paid in the ledger that heard
    // the false one first). A flood of re-signed refuted proofs is bounded by their price: each
    // backed one costs the penalty, and past the accuser's free stake at most
    // `MAX_UNBACKED_CHECKS_PER_RECEIPT` more are checked (`_unbacked_checks.ts`). This
    // validator's own proof is one per challenge already.
    const repeated = this.#core.memory.undecided(proof.validator, subject);
    if (repeated) return skip("repeated_accusation");
    // Checked before the proof takes its slot: a copy with a broken signature, arriving
    // first, must not make the genuine one a "duplicate".
    if (!verifyFraudProofSignature(proof)) return skip("bad_signature");
    // The receipt's signature too, recorded here or not: a receipt not recorded here is held only
    // if signed (any key can still sign a made-up one, which the holds' bounds take care of), and
    // `receiptId` leaves the signature out, so a copy of a recorded receipt with its signature
    // broken finds the record. Taken, it was checked (refuted `receipt_bad_signature`) and passed
    // on, and a peer without the record answered `bad_signature` and charged this node as its
    // forger: a node that passes on only what it verified in full is never charged (review s80
    // vgfx F3: an honest relay was cut off `too_many_refusals`).
    if (!verifyReceipt(proof.receipt).ok) return skip("bad_signature");
    if (inFlight) {
      const queued = held ?? Promise.withResolvers<FraudCheckResult>();
      queued.promise.catch(() => {});
      // Covered: its free stake pays a penalty for it and for each of its proofs in flight or
      // queued before it; an uncovered one (a 1-unit pledge, none yet) goes first at the bound.
      const covered = freeStake(ledger.account(proof.validator)) >=
        penalty * (this.#core.memory.accusing(proof.validator) + this.queued.queuedBy(accuser) + 1);
      this.queued.queue(accuser, subject, {
        proof,
        hash,
        origin,
        arrivedAt: since,
        backed: covered,
        known: record !== undefined,
        waiting: queued,
      });
      return { queued: false, awaitingAccusation: true, result: queued.promise };
    }
    if (!pledged) {
      held?.reject(new Error("fraud proof held for its accuser's pledge"));
      this.pledgeHeld.hold({ proof, hash, origin, arrivedAt: since });
      this.#core.stats.fraudProofsSkipped++;
      return { queued: false, skipped: "unstaked_accuser", awaitingPledge: true };
    }
    const waiting = held ?? Promise.withResolvers<FraudCheckResult>();
    waiting.promise.catch(() => {});
    if (record === undefined) {
      // The proof outran the receipt's announcement, or the receipt will never be announced
      // here: checked and settled once the receipt is recorded here through the intake.
      this.#core.memory.holdFraudProof(id, hash, { proof, origin, waiting });
      this.#recordCarriedReceipt(proof, origin, ctx);
      return { queued: false, awaitingReceipt: true, result: waiting.promise };
    }
    if (unbacked) this.unbacked.take(subject, accuser, hash, record.pendingUntil);
    this.#core.memory.takeFraudProof(
      hash,
      { waiting, proof, origin, own, takenAt: since },
      subject,
    );
    // Held only for a proof that can still settle it: one taken after the window is refused
    // whatever its check says (its accuser risks nothing), and would only delay the pay.
    if (!own && since <= record.pendingUntil) {
      this.checking.set(hash, { receiptId: subject, takenAt: since });
    }
    if (own) {
      this.#core.enqueue(() => this.#checkFraud(proof)).then(
        (check) => ctx.self.tell({ type: "fraud_checked", proof, check, own, origin }),
        // An own proof's challenge must end: undecided here, as a check without the model is.
        () => ctx.self.tell({ type: "fraud_checked", proof, check: failedCheck(hash), own }),
      ).catch(() => {});
    } else {
      this.#checkPeerProof(proof, hash, origin, ctx, 0);
    }
    return { queued: true, result: waiting.promise };
  }

  /**
   * Check a peer's proof taken here (`tries` checks of it threw before). A check that throws is
   * tried again at the next finalize tick, the proof still taken and its receipt held; past
   * {@link MAX_FRAUD_CHECK_TRIES} it is undecided here (`failedCheck`).
   */
  #checkPeerProof(
    proof: FraudProof,
    hash: string,
    origin: string | undefined,
    ctx: ActorContext<ValidatorMessage>,
    tries: number,
  ): void {
    this.#core.enqueue(() => this.#checkFraud(proof)).then(
      (check) => ctx.self.tell({ type: "fraud_checked", proof, check, origin }),
      () => {
        if (tries + 1 >= MAX_FRAUD_CHECK_TRIES) {
          return ctx.self.tell({ type: "fraud_checked", proof, check: failedCheck(hash), origin });
        }
        this.#failedChecks.set(hash, { proof, origin, tries: tries + 1 });
      },
    ).catch(() => {});
  }

  /**
   * A peer's proof held for its receipt: the receipt and job the proof carries are handed to the
   * intake (`ReceiptIntake.onReceipt`, a `receipt` message to this actor), which records the
   * receipt as it records any announcement of it, and the proof is then taken again
   * (`takeHeldFraudProofs`) and checked as any other.
   *
   * Why: a receipt that left `pending` in every ledger that had it (convicted, final) is announced
   * by nobody any more — a peer's catch-up carries only the receipts pending there — so a ledger
   * that was away when the cheat was convicted (restarting, in another part of a partition, not
   * joined yet) held the conviction for good: it left the cheat's stake whole and routed its
   * clients' jobs to the convicted worker (review s73 F1, `tests/network/catch_up_late_ledger_test.ts`).
   * The proof is evidence on its own: it carries the worker's signed receipt (its signature
   * checked before the proof was held) and the job (the receipt binds it by id).
   *
   * Not recorded from the proof itself: the intake is still the one way in, so such a receipt is
   * bound to its job, checked for a contradiction, backed by its worker's stake, refused when
   * stale, and drawn for by the coin — an accuser gets no receipt past what an announcement of
   * it meets, and an announcement is what any peer can send already. Only a job as the wire
   * carries an announcement's (a text job within `MAX_NETWORK_JOB_BYTES`) is handed on. The
   * cost is one intake pass per proof held (their number is bounded, `_validator_memory.ts`);
   * a copy of the receipt recorded meanwhile costs the intake a look-up.
   */
  #recordCarriedReceipt(
    proof: FraudProof,
    origin: string | undefined,
    ctx: ActorContext<ValidatorMessage>,
  ): void {
    const carried = ReceiptAnnouncementMessage.schema.safeParse({
      receipt: proof.receipt,
      job: proof.job,
    });
    if (!carried.success) return;
    const { receipt, job } = carried.data;
    // Not awaited: `tell` waits for room in this actor's own mailbox, which `receive` is
    // draining. A stop drops it with the held proof, both taken again at the next start.
    ctx.self.tell({ type: "receipt", receipt, job, origin }).catch(() => {});
  }

  /**
   * `accuser` (hex) has stake here now: the fraud proofs held for its pledge are taken again, and
   * then those queued behind them (each held one is taken first: the queued ones wait for it
   * to settle, or are taken now where it was not). Each is taken as of when it came if the
   * pledge came within `MAX_PLEDGE_WAIT_MS` of it (review s78: timed from the pledge, one that
   * came inside its receipt's window was refused as late), else as of now.
   */
  takePledgeHeldProofs(accuser: string, ctx: ActorContext<ValidatorMessage>): void {
    const now = this.#core.now();
    for (const { proof, origin, arrivedAt } of this.pledgeHeld.take(accuser)) {
      const since = timedFromArrival(arrivedAt, now) ? arrivedAt : undefined;
      this.onFraudProof(proof, ctx, false, origin, undefined, since);
    }
    for (const [by, subject] of this.queued.accusations()) {
      if (by === accuser) this.#takeQueued(by, subject, ctx);
    }
  }

  /**
   * Whether `accuser`'s (hex) accusation of receipt `subject` (settled here as; `id`, the
   * proof's own receipt) is in flight here: taken and not settled, held for its receipt, or
   * held for the accuser's pledge.
   */
  #accusesNow(accuser: string, subject: string, id = subject): boolean {
    return this.#core.memory.accusesNow(accuser, subject) ||
      this.pledgeHeld.accuses(accuser, id) ||
      (id !== subject && this.pledgeHeld.accuses(accuser, subject));
  }

  /**
   * `receipt` came in through the intake: the fraud proofs held for it, or for another variant
   * its worker signed for the job (they settle against it, `Ledger.fraudSubject`), are taken
   * again.
   */
  takeHeldFraudProofs(receipt: Receipt, ctx: ActorContext<ValidatorMessage>): void {
    const held = this.#core.memory.takeHeldFraudProofs(receipt.jobId, toHex(receipt.worker));
    for (const { proof, origin, waiting } of held) {
      this.onFraudProof(proof, ctx, false, origin, waiting);
    }
  }

  /**
   * The id of the receipt a fraud proof about `proof.receipt` settles here: its own, or the
   * variant its worker had recorded here for the job (`Ledger.fraudSubject`). One accusation per
   * accuser and receipt is keyed on it, or an accuser re-signing its claim against each variant
   * of one receipt has each checked again (`tests/actors/catch_up_kept_test.ts`).
   */
  #subjectId(proof: FraudProof): string {
    return this.#core.ledger().fraudSubject(proof.receipt)?.receiptId ?? receiptId(proof.receipt);
  }

  /**
   * Recompute the cited positions. Runs outside `receive`; touches no actor state. A kind
   * checked without a model is checked without one when the model fails to load: that failure
   * must not leave a conviction anyone can check undecided (review s50: the cheat kept its
   * stake, or was paid).
   */
  async #checkFraud(proof: FraudProof): Promise<FraudCheckResult> {
    const model = await this.#core.options.models.get(proof.receipt.model).catch((error) => {
      if (fraudProofNeedsModel(proof)) throw error;
      return undefined;
    });
    return await checkFraudProof(proof, model, this.#core.options.validation);
  }

  /** A checked fraud proof: settle it in the ledger. State changes only here. */
  async onFraudChecked(
    message: FraudCheckedMessage,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<void> {
    const { proof, check } = message;
    const ledger = this.#core.ledger();
    const id = receiptId(proof.receipt);
    // The accusation it settles (its receipt's subject here), for the proofs queued behind it.
    const subject = this.#subjectId(proof);
    const hash = check.proofHash || fraudProofHash(proof);
    const waiting = this.#core.memory.fraudProof(hash);
    this.#core.stats.fraudProofsChecked++;
    // This validator's own proof, from a challenge that holds the receipt `challenged`: the
    // challenge ends here, whatever the check says.
    const own = message.own === true && ledger.receipt(id)?.status === "challenged";
    /**
     * A ledger write failed: the proof stays kept (an own one in `own-fraud-proofs/`, a peer's
     * as taken and not settled, in the held evidence kept at the stop), and is settled at the
     * restart that follows.
     */
    let failed = false;
    try {
      if (UNATTRIBUTABLE.has(check.reason)) {
        // Unattributable: nothing to settle, nothing to pass on (and an own challenge is
        // undecided).
        if (own) await this.ownProofUndecided(id, `fraud_check_${check.reason}`);
        waiting?.resolve(check);
        return;
      }
      if (!message.own) {
        // Gossip: a proof from a peer goes on to the other peers (each checks it itself, and
        // takes it once), so the whole network settles the same evidence — also one this node
        // could not decide (it lacks the model or its profile): the ledgers behind it, which the
        // receipt reached through this one, may hold them.
        this.#core.tellNetwork(ctx, { type: "publish_fraud_proof", proof, except: message.origin });
      }
      if (check.inconclusive) {
        // Undecidable here: nothing to settle (and an own challenge is undecided). Taken once
        // per accuser and receipt, as a settled accusation is: the same claim re-signed is
        // neither checked nor passed on again.
        this.#core.memory.rememberUndecided(proof.validator, this.#subjectId(proof));
        if (own) await this.ownProofUndecided(id, `fraud_check_${check.reason}`);
        waiting?.resolve(check);
        return;
      }
      // Only a receipt recorded through the intake was checked (`onFraudProof` holds the
      // others; it handed the intake the receipt it carries): a proof, confirmed or refuted,
      // never records its receipt itself.
      const record = ledger.fraudSubject(proof.receipt);
      if (record !== undefined && takesFraudProofs(record.status)) {
        // Written ahead of the settlement (a `fraud` receipt takes no other conviction): a
        // process that dies right after it still has the conviction at its next start, where it
        // is read back only if the ledger settled it (`_catch_up.ts`).
        const conviction = { kind: "fraud_proof", proof } as const;
        if (check.confirmed && record.status !== "fraud") {
          await this.#core.catchUp().write(conviction, record.pendingUntil);
        }
        const settled = await ledger.settleFraud({
          receiptId: id,
          receipt: proof.receipt,
          fraudProofHash: check.proofHash,
          validator: proof.validator,
          confirmed: check.confirmed,
          reason: check.reason,
          takenAt: this.checking.get(hash)?.takenAt,
        }).catch((error) => {
          // After the window (or raced by a copy): it changes nothing, and crashes nothing.
          if (error instanceof LedgerRejectedError) return undefined;
          throw error;
        });
        // Refused (a confirmed proof about a receipt already slashed here, one past the window):
        // its accuser's claim is still taken once per receipt, as a settled one is, or each
        // re-signed copy of it would be checked, and passed on, again.
        if (settled === undefined) {
          this.#core.memory.rememberUndecided(proof.validator, record.receiptId);
          if (check.confirmed) this.#core.catchUp().discard(id);
        }
        if (settled !== undefined) {
          this.#core.tell({
            kind: "fraud",
            proof,
            confirmed: check.confirmed,
            reason: check.reason,
          });
        }
        if (settled !== undefined && check.confirmed) {
          this.#core.stats.slashes++;
          // Gossip (above, and at the verdict for an own proof) reached the peers connected
          // then: kept for those that connect while the window is open, or a ledger the receipt
          // reached through others, offline now, pays the cheat every other ledger slashed.
          await this.#core.catchUp().add(conviction, record.pendingUntil);
          // Resumed after a stop, which may have come before the proof left this node: passed
          // on now to the peers connected (at a node's first start, none may be yet).
          if (message.own && this.#core.resumed.has(id)) {
            this.#core.tellNetwork(ctx, { type: "publish_fraud_proof", proof });
          }
          // The network routes no more jobs to it.
          this.#core.tellNetwork(ctx, { type: "peer_convicted", key: toHex(proof.receipt.worker) });
          this.#core.log(
            `validator: fraud on job ${proof.receipt.jobId.slice(0, 12)} confirmed; worker ` +
              `${toHexShort(proof.receipt.worker)} slashed ${record.locked}`,
          );
        }
        if (own && ledger.receipt(id)?.status === "challenged") {
          // Our own accusation did not hold up (its false-accusation charge is booked above):
          // the work stands, and is paid when its window closes.
          if (settled !== undefined) await ledger.clearChallenge(id);
          else await this.ownProofUndecided(id, "fraud_unsettled");
        }
      }
      waiting?.resolve(check);
    } catch (error) {
      failed = true;
      waiting?.reject(error);
      throw error;
    } finally {
      this.checking.delete(hash);
      if (!failed) {
        this.#core.memory.fraudProofDone(hash);
        this.unbacked.done(hash);
        if (!message.own) this.#takeQueued(toHex(proof.validator), subject, ctx);
      }
      if (message.own) {
        this.#core.held.release(id);
        this.#core.resumed.delete(id);
        // Removed once settled; after a failed write it is what the restart settles from (the
        // ledger, poisoned, crashes this actor): removed, the receipt would end unresolved and
        // the cheat this validator caught keep its stake.
        if (!failed) await this.#core.ownProofs().remove(id);
        if (!failed) await this.#core.takenOver().remove(id);
      }
    }
  }

  /**
   * `accuser`'s (hex) accusation of `subject` is no longer in flight here: the proofs queued
   * behind it are taken again, oldest first, until one is in flight again (checked, or held for
   * its receipt or its accuser's pledge) or none is left; one skipped now (its receipt settled
   * past its window, say) has its waiter told.
   */
  #takeQueued(accuser: string, subject: string, ctx: ActorContext<ValidatorMessage>): void {
    while (!this.#accusesNow(accuser, subject)) {
      const next = this.queued.take(accuser, subject);
      if (next === undefined) return;
      // As of when it came (review s77 F4): one that came inside the window settles after it.
      this.onFraudProof(next.proof, ctx, false, next.origin, next.waiting, next.arrivedAt);
      // Queued again (its own receipt's variant is what is in flight): it waits as it did.
      if (this.queued.holds(next.hash)) return;
    }
  }

  /**
   * This validator's own fraud proof settled nothing (its check threw or was undecided, or the
   * ledger refused it): the challenge it holds ends undecided — unpaid, the lock released — or,
   * for a takeover, cleared: a peer's claim can only convict, and what this validator could not
   * decide leaves the work paid as it would have been without the claim (review s50: it was left
   * unpaid, an honest worker paying for a false claim and this validator's own gap).
   */
  async ownProofUndecided(id: string, reason: string): Promise<void> {
    const ledger = this.#core.ledger();
    if (this.#core.held.claimantOf(id) !== undefined) await ledger.clearChallenge(id);
    else await ledger.leaveUnresolved(id, reason);
  }

  /** Settle a checked training fraud proof; a conviction is told to the network and the log. */
  async onTrainingFraud(
    message: TrainingFraudLedgerMessage,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<{ settled: boolean; slashed: number }> {
    const { receipt } = message;
    const id = trainingReceiptId(receipt);
    const conviction = message.body === undefined
      ? undefined
      : { kind: "training_fraud_proof", body: message.body } as const;
    // Written ahead of the settlement, as an inference conviction is (`onFraudChecked`); a
    // receipt not recorded here yet (the proof outran it) is recorded by the settlement, and its
    // conviction written after it. The record is the one the proof settles against: the proved
    // receipt's, or, that one not recorded here, the one recorded for its trainer's round
    // (`Ledger.trainingFraudSubject`; review s63: such a conviction was kept for no peer).
    const subject = () =>
      this.#core.ledger().receipt(id) ?? this.#core.ledger().trainingFraudSubject(receipt);
    const before = subject();
    if (message.confirmed && conviction !== undefined && before?.kind === "training") {
      if (before.status !== "fraud") {
        await this.#core.catchUp().write(conviction, before.pendingUntil);
      }
    }
    // Settled or refused, its check is over: the receipt is no longer held for it.
    const checking = this.checking.get(message.fraudProofHash);
    const outcome = await settleTrainingFraud(this.#core.ledger(), {
      ...message,
      takenAt: message.takenAt ?? checking?.takenAt,
    }).finally(() => this.checking.delete(message.fraudProofHash));
    if (!outcome.settled || !message.confirmed) {
      if (message.confirmed) this.#core.catchUp().discard(id);
      return outcome;
    }
    this.#core.stats.slashes++;
    // Gossip reached the peers connected then: kept for those that connect while the window is
    // open, or a ledger the receipt reached through others, away now, pays the lazy trainer
    // every other ledger slashed (`tests/training/training_catch_up_test.ts`).
    const until = subject()?.pendingUntil;
    if (conviction !== undefined && until !== undefined) {
      await this.#core.catchUp().add(conviction, until);
    }
    this.#core.tellNetwork(ctx, { type: "peer_convicted", key: toHex(receipt.trainer) });
    this.#core.log(
      `validator: training fraud by trainer ${
        toHexShort(receipt.trainer)
      } in round ${receipt.round} ` +
        `confirmed (${message.reason}); slashed ${outcome.slashed}`,
    );
    return outcome;
  }
}

/**
 * What a check that threw (the model failed to load, an error in the pass) concluded: nothing,
 * as a check without the model (`fraud_check_error` when it ends an own challenge).
 */
function failedCheck(proofHash: string): FraudCheckResult {
  return {
    confirmed: false,
    inconclusive: true,
    reason: "error",
    proofHash,
    forwardTokens: 0,
    ms: 0,
  };
}

function toHexShort(key: Uint8Array): string {
  return Array.from(key.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}
