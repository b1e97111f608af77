/**
 * Peers' verdicts at the ValidatorActor (`validator_actor.ts`, the `verdict` message): a verdict
 * is recorded only if it concerns this ledger (`#worthRecording`), one verdict per validator per
 * receipt; new here, it is passed on to every other peer (a "proof withheld" claim after the
 * receipt and job it is about, `ClaimEvidence`), and a staked peer's claim is taken over within
 * the takeover budget (`#takeOverWithheld`, `_takeover_budget.ts`). A claim that outran its
 * receipt or its author's pledge is held, bounded (`_validator_memory.ts`), and taken again when
 * what it lacks comes (`takeHeldClaims`, `takeClaimsOf`); one recorded about a receipt this
 * validator had forgotten is held for the receipt's evidence, and taken over when a copy of it
 * is remembered again (`takeRecordedClaims`, review s58). A verdict signed by the worker it
 * judges (its own "proof withheld" claim) is refused outright, as its fraud proof is
 * (`self_accusation`, review s76). Owned by the actor, built in its
 * constructor on its {@link ValidatorCore}; read and written only inside its `receive` (and its
 * start). Not part of the public API.
 *
 * One receipt collects at most {@link MAX_UNPROVEN_VERDICTS_PER_RECEIPT} "proof withheld" claims,
 * and as many other verdicts, from keys with no settled work in this ledger (no balance: no final
 * work credited, no validator reward); past that such a verdict is refused (counted in
 * `refusedVerdicts`), neither recorded nor passed on nor taken over. Review s71: a key with stake
 * costs a self-pledge, and a pledge a fresh key, so one host put 1,024 padded claims about one
 * honest receipt in a ledger's append-only log (8.4 MB) in 7 s. Keys with settled work here are
 * never refused for it (one verdict each per receipt, as before). Who pays for a refused claim:
 * nobody, in money. A claim is only an accusation: it moves no balance, and what it can make this
 * ledger do — take the receipt over, once per receipt (`#takeOverWithheld`) — the claims kept can
 * do as well; the worker's outcome here is the same whichever keys claimed and how many
 * (`tests/actors/verdict_flood_test.ts`). What is lost is the word of an honest claimant that is
 * new here and came after the bound was reached: this ledger does not pass it on, and its
 * author's own ledger and the ledgers it reaches directly still hear it. Counted in memory only
 * (a restart of the validator counts afresh), for the receipts claimed about most lately
 * ({@link MAX_COUNTED_RECEIPTS}).
 *
 * @module
 */
import type { ActorContext } from "./actor.ts";
import { type Verdict, verdictId, verifyVerdict } from "../protocols/verdict.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { freeStake } from "../proof/ledger.ts";
import { type ClaimBacking, heldClaimMaxAgeMs, judgedKey } from "./_validator_memory.ts";
import { type Challenges, claimEvidence } from "./_challenges.ts";
import { MAX_OPEN_CHALLENGES_PER_WORKER } from "./_receipt_intake.ts";
import type { ValidatorCore } from "./_validator_core.ts";
import { isLedgerRefusal, ledgerWriteFailed, observedLedgerWrite } from "./_ledger_write_faults.ts";
import type { ForgedEvidence, ValidatorMessage, VerdictMessage } from "./validator_messages.ts";
import { LedgerRejectedError } from "../proof/ledger_errors.ts";
import { HeldClaimRank } from "./_held_claim_rank.ts";

/**
 * Verdicts recorded per receipt and kind ("proof withheld", other) from keys with no settled work
 * here. Eight: more than the challengers an honest network sends one receipt (each of `n`
 * validators challenges it with probability p, a few at most), and each kept one can open the one
 * takeover a receipt gets here; the log grows at most 2 × 8 × 1.5 KiB per receipt for them.
 */
export const MAX_UNPROVEN_VERDICTS_PER_RECEIPT = 8;
/**
 * Counts kept (one per receipt and kind; the one counted longest ago forgotten first, and a
 * receipt forgotten counts afresh): about 100 bytes each, 400 KB at most.
 */
export const MAX_COUNTED_RECEIPTS = 4_096;

/** The answer to a peer's verdict whose signature does not verify (`ForgedEvidence`). */
const FORGED: ForgedEvidence = { queued: false, skipped: "bad_signature" };

/** Peers' verdicts and claims (see the module doc). */
export class PeerVerdicts {
  readonly #core: ValidatorCore;
  readonly #challenges: Challenges;
  /** Per receipt and kind (`id kind`), verdicts recorded from keys with no settled work here. */
  readonly #unproven = new Map<string, number>();
  /** Ranks equally backed claimants by this validator's secret (`_held_claim_rank.ts`). */
  readonly #rank: HeldClaimRank;

  /**
   * Create the part (the actor's constructor calls this).
   * @param core What the actor's parts share.
   * @param challenges Where a peer's claim is taken over.
   */
  constructor(core: ValidatorCore, challenges: Challenges) {
    this.#core = core;
    this.#challenges = challenges;
    this.#rank = new HeldClaimRank(core.options.identity);
  }

  /**
   * A verdict from elsewhere (the `verdict` message): answers its id once recorded, and
   * {@link FORGED} for a peer's whose signature does not verify (its connection is charged a
   * refusal for it: an honest peer passes on only verdicts it checked itself).
   */
  async onVerdict(
    message: VerdictMessage,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<string | ForgedEvidence | undefined> {
    const ledger = this.#core.ledger();
    const fromPeer = message.origin !== undefined && message.origin !== "local";
    if (fromPeer && selfAccusation(message.verdict)) {
      // The accused worker's word about its own receipt is evidence against nobody else, and
      // each one would cost every ledger it reaches a takeover from the shared budget and a
      // challenge (review s76, F5): refused, as its fraud proof is (`self_accusation`,
      // `_fraud_proofs.ts`), neither recorded, nor held, nor passed on, nor taken over.
      this.#core.stats.refusedVerdicts++;
      return undefined;
    }
    if (fromPeer && !this.#worthRecording(message.verdict)) {
      if (this.#awaitsEvidence(message.verdict)) {
        // Checked last, the costly one: a forged copy must not take the genuine claim's place.
        if (!verifyVerdict(message.verdict)) {
          this.#core.stats.refusedVerdicts++;
          return FORGED;
        }
        // A claim that outran its receipt or its author's pledge: held, taken again when
        // what it lacks comes.
        this.#core.memory.holdClaim(message.verdict, message.origin, this.#claimBacking());
        return undefined;
      }
      this.#core.stats.refusedVerdicts++;
      return undefined;
    }
    try {
      const known = ledger.hasVerdict(verdictId(message.verdict));
      // One verdict per validator per receipt: the same claim re-signed (a new timestamp,
      // other details) is neither recorded, nor passed on, nor taken over again. An
      // honest validator signs one per receipt (one challenge each).
      const author = fromPeer ? judgedKey(message.verdict) : undefined;
      if (!known && author !== undefined && this.#core.memory.hasJudged(author)) {
        this.#core.stats.refusedVerdicts++;
        return undefined;
      }
      // Keys with no settled work here: a bounded few per receipt (see the module doc).
      const slot = !known && fromPeer ? this.#unprovenSlot(message.verdict) : undefined;
      if (
        slot !== undefined && (this.#unproven.get(slot) ?? 0) >= MAX_UNPROVEN_VERDICTS_PER_RECEIPT
      ) {
        this.#core.stats.refusedVerdicts++;
        return undefined;
      }
      // A peer's verdict the ledger could not write is lost here as a refused one is (its sender
      // never learns), but it is the ledger's condition, logged and on `/healthz`.
      const id = await observedLedgerWrite(
        this.#core,
        () => ledger.recordVerdict(message.verdict),
      );
      // Only once it verified: a forged copy must not take the genuine verdict's place.
      if (author !== undefined) this.#core.memory.rememberJudged(author);
      if (slot !== undefined) this.#countUnproven(slot);
      if (!known) this.#core.tell({ kind: "verdict", verdict: message.verdict, own: false });
      if (fromPeer) {
        this.#core.stats.peerVerdicts++;
        if (!known) {
          // Gossip: new here, so passed on to every peer but the one it came from (who
          // pass it on in turn, once each): it reaches nodes not connected to its author.
          // A claim goes after the receipt and job it is about, as this validator remembers
          // them (before its takeover below forgets them): a ledger that forgot them takes
          // it over all the same (`ClaimEvidence`).
          const recent = this.#core.memory.recent(message.verdict.subjectId);
          this.#core.tellNetwork(ctx, {
            type: "publish_verdict",
            verdict: message.verdict,
            except: message.origin,
            evidence: claimEvidence(message.verdict, recent?.receipt, recent?.job),
          });
        }
        // Once per verdict: a replay of one already recorded (by anyone, any number of
        // times) must not make this validator challenge the receipt again.
        if (!known) await this.#takeOverWithheld(message.verdict, ctx, message.origin);
      }
      return id;
    } catch (error) {
      // A peer's forged verdict is refused, not a reason to crash the ledger's owner.
      if (!fromPeer) throw error;
      this.#core.stats.refusedVerdicts++;
      const forged = error instanceof LedgerRejectedError && error.code === "verdict_rejected";
      return forged ? FORGED : undefined;
    }
  }

  /**
   * What backs the claims held here now (`_validator_memory.ts`, `MAX_HELD_CLAIMS_PER_CLAIMANT`):
   * a claimant's free stake, less one false-accusation penalty for each of its fraud proofs in
   * flight here (they are backed first: a refuted one is charged, a claim never is), covers one
   * held claim per penalty left; a key with no pledge here covers none. A claim about a receipt
   * recorded here is about a real one; equally backed claimants rank by this validator's secret.
   */
  #claimBacking(): ClaimBacking {
    const ledger = this.#core.ledger();
    const penalty = ledger.economics.falseAccusationPenalty;
    return {
      covers: (claimant) => {
        const key = fromHex(claimant);
        if (!ledger.hasStaked(key)) return 0;
        const free = freeStake(ledger.account(key)) - penalty * this.#core.memory.accusing(key);
        return penalty > 0 ? Math.max(0, Math.floor(free / penalty)) : Infinity;
      },
      now: this.#core.now(),
      maxAgeMs: heldClaimMaxAgeMs(ledger.economics.challengeWindowMs),
      recorded: (id) => ledger.receipt(id) !== undefined,
      rank: (claimant) => this.#rank.of(claimant),
    };
  }

  /**
   * The count a peer's verdict goes in when its author has no settled work here (no balance):
   * its receipt and kind; undefined for an author with settled work.
   */
  #unprovenSlot(verdict: Verdict): string | undefined {
    if (this.#core.ledger().account(verdict.validator).balance > 0) return undefined;
    const withheld = verdict.outcome === "invalid" && verdict.reason === "proof_unavailable";
    return `${verdict.subjectId} ${withheld ? "withheld" : "other"}`;
  }

  /** One more verdict recorded in `slot`, which moves to the back (the newest). */
  #countUnproven(slot: string): void {
    const count = (this.#unproven.get(slot) ?? 0) + 1;
    this.#unproven.delete(slot);
    this.#unproven.set(slot, count);
    while (this.#unproven.size > MAX_COUNTED_RECEIPTS) {
      this.#unproven.delete(this.#unproven.keys().next().value!);
    }
  }

  /**
   * Whether a peer's verdict, refused for now, is a claim to hold until what it lacks comes in
   * once its signature verifies (checked by the caller, last): a "proof withheld" claim (what a
   * takeover acts on), the first of its author about its
   * receipt, about a receipt this ledger has not recorded, or about one pending here (inside its
   * window) by a validator whose pledge has not reached this ledger yet. Gossip order is not
   * guaranteed (the claim comes on its author's connection or through any peer, the receipt on
   * the requester's, the pledge on whichever connection pushed it; a receipt may wait here for
   * its worker's pledge): refused, a claim that outran either left the worker that withheld paid
   * here, slashed by the ledgers that saw the claim last (review s56). Bounded per claimant and in
   * all (`_validator_memory.ts`), as fraud proofs waiting for their receipt or their accuser's
   * pledge are; no takeover budget is spent until the claim is taken.
   */
  #awaitsEvidence(verdict: Verdict): boolean {
    const ledger = this.#core.ledger();
    if (verdict?.subject !== "inference" || typeof verdict.subjectId !== "string") return false;
    if (verdict.outcome !== "invalid" || verdict.reason !== "proof_unavailable") return false;
    if (!(verdict.validator instanceof Uint8Array)) return false;
    const record = ledger.receipt(verdict.subjectId);
    if (record !== undefined) {
      // Recorded here: it waits only for its author's stake, while it could still be taken.
      const open = record.status !== "final" && this.#core.now() <= record.pendingUntil;
      if (!open || ledger.hasStaked(verdict.validator)) return false;
    }
    // Its signature is checked by the caller, last (the costly check).
    return !this.#core.memory.hasJudged(judgedKey(verdict));
  }

  /**
   * Receipt `id` came in through the intake: the claims held for it go through the verdict intake
   * again, in order, after this message (as a claim that came after the receipt: recorded, passed
   * on, and taken over within the takeover budget and caps).
   */
  takeHeldClaims(id: string, ctx: ActorContext<ValidatorMessage>): void {
    for (const { verdict, origin } of this.#core.memory.takeHeldClaims(id)) {
      ctx.self.tell({ type: "verdict", verdict, origin }).catch(() => {});
    }
  }

  /**
   * `claimant` (hex) has stake here now: the claims it made that were held go through the
   * verdict intake again, in order (held again if their receipt is still to come).
   */
  takeClaimsOf(claimant: string, ctx: ActorContext<ValidatorMessage>): void {
    for (const { verdict, origin } of this.#core.memory.takeHeldClaimsBy(claimant)) {
      ctx.self.tell({ type: "verdict", verdict, origin }).catch(() => {});
    }
  }

  /**
   * Receipt `id`, recorded here and forgotten, is remembered again (a copy of it came:
   * `ClaimEvidence`, `_receipt_intake.ts`): the claims recorded about it meanwhile, held for it
   * (`HeldClaim.recorded`), are taken over now, in order, as a claim that came after it is (the
   * first the budget and caps allow opens the one takeover; the others find it open).
   */
  async takeRecordedClaims(id: string, ctx: ActorContext<ValidatorMessage>): Promise<void> {
    for (const { verdict, origin } of this.#core.memory.takeRecordedClaims(id)) {
      await this.#takeOverWithheld(verdict, ctx, origin);
    }
  }

  /**
   * At the start: a claim kept across the stop as recorded and held for its receipt's evidence
   * (`_held_evidence.ts`, untrusted): held again (or taken over, if the receipt is remembered
   * now) if it is a signed "proof withheld" claim this ledger recorded, still open here; else
   * dropped. Not through the verdict intake, where it is known: recorded, never taken over.
   */
  async restoreRecordedClaim(
    verdict: Verdict,
    origin: string,
    ctx: ActorContext<ValidatorMessage>,
  ): Promise<void> {
    if (verdict?.subject !== "inference" || typeof verdict.subjectId !== "string") return;
    if (verdict.outcome !== "invalid" || verdict.reason !== "proof_unavailable") return;
    if (!(verdict.validator instanceof Uint8Array)) return;
    const author = judgedKey(verdict);
    if (this.#core.memory.hasJudged(author)) return;
    try {
      if (!this.#core.ledger().hasVerdict(verdictId(verdict)) || !verifyVerdict(verdict)) return;
    } catch {
      return; // not a verdict
    }
    this.#core.memory.rememberJudged(author);
    await this.#takeOverWithheld(verdict, ctx, origin);
  }

  /**
   * A staked peer's verdict says the worker withheld its proof data from it. That cannot be
   * proven to a third party, so this validator asks for the data itself: a challenge passes on,
   * and the worker that withholds from this node too is slashed here; one that serves is judged
   * on what it served — with the model, fully; without it, on whether the data it served opens
   * its commitment (cleared if it does: the claim, not the inference, is what is checked).
   *
   * The claim costs its author nothing, so it is taken over only within this ledger's takeover
   * budget (`_takeover_budget.ts`: bounded, fair between claimants, none for a claimant found
   * false twice lately), and never at the worker's expense: a takeover that would take the
   * worker past its open-challenge cap is dropped, not the worker's receipts. A dropped claim
   * is still recorded and passed on; only this validator does not ask on its word.
   *
   * A claim about a receipt pending here that this validator no longer remembers (pushed out of
   * its bounded memory, `_validator_memory.ts`; not this node's own receipts, never remembered
   * here) cannot be taken over yet: it is held for the receipt's evidence, with the
   * claims held for what they lack (bounded, kept across a stop; `HeldClaim.recorded`), and taken
   * over when a copy of the receipt is remembered again (`takeRecordedClaims`). Until review s58
   * it was not: a claim that reached a ledger first without its evidence (passed on by a node
   * where the receipt was settled or forgotten, or a fault a peer's start applied, sent in its
   * catch-up) was recorded, and the copy that came later with the evidence was the same verdict,
   * never taken over: the worker that withheld was paid here, slashed in the claimant's ledger.
   * No budget is spent on a claim held; once per receipt, as any takeover (a receipt challenged
   * here is never remembered again).
   */
  async #takeOverWithheld(
    verdict: Verdict,
    ctx: ActorContext<ValidatorMessage>,
    origin?: string,
  ): Promise<void> {
    if (verdict.outcome !== "invalid" || verdict.reason !== "proof_unavailable") return;
    const id = verdict.subjectId;
    const record = this.#core.ledger().receipt(id);
    const recent = this.#core.memory.recent(id);
    if (recent === undefined && this.#awaitsReceiptEvidence(id)) {
      this.#core.memory.holdClaim(verdict, origin, this.#claimBacking(), true);
      return;
    }
    if (record?.status !== "pending" || recent === undefined || this.#core.held.has(id)) return;
    if (this.#core.held.openOf(record.worker) >= MAX_OPEN_CHALLENGES_PER_WORKER) return;
    const claimant = toHex(verdict.validator);
    const open = this.#core.held.takenOverFor(claimant);
    if (this.#core.takeovers.refusal(claimant, this.#core.now(), open) !== undefined) return;
    this.#core.takeovers.spend();
    // Refused (settled meanwhile), it is not taken over; a write that failed (the ledger's, or a
    // file kept beside it) is the ledger's condition, logged and on `/healthz`.
    await this.#challenges.open(recent.receipt, recent.job, ctx, verdict).catch((error) => {
      if (!isLedgerRefusal(error)) ledgerWriteFailed(this.#core, error);
    });
  }

  /**
   * Whether receipt `id`, not remembered here, is one whose evidence (a copy of it) the intake
   * would remember again (`_receipt_intake.ts`'s `#forgottenPending`): a peer's inference receipt
   * pending here inside its window, never challenged here.
   */
  #awaitsReceiptEvidence(id: string): boolean {
    const record = this.#core.ledger().receipt(id);
    if (!this.#core.inWindow(record) || record.kind !== "inference") return false;
    if (this.#core.held.has(id) || this.#core.memory.wasChallenged(id)) return false;
    return record.worker !== toHex(this.#core.options.identity.publicKey);
  }

  /**
   * Whether a peer's verdict concerns this ledger: an inference verdict about a receipt it
   * holds, inside the receipt's window here (not final), by a validator with stake here. A
   * peer's verdict moves no balance; what it can do — a takeover here, a takeover on the ledgers
   * it is passed on to — ends with the receipt's window. Anything else would be free disk and
   * memory, in every ledger, for anyone with a key. A receipt this ledger has already settled
   * (its own challenge ended undecided, or slashed) takes no takeover here, but the verdict is
   * still passed on: the ledgers behind this one may hold the receipt pending, and hear the
   * claim only through it (review s47: one verdict reached 1 of 20 ledgers, and a ledger behind
   * one that had settled paid the worker that withheld).
   */
  #worthRecording(verdict: Verdict): boolean {
    const ledger = this.#core.ledger();
    if (verdict?.subject !== "inference" || typeof verdict.subjectId !== "string") return false;
    const record = ledger.receipt(verdict.subjectId);
    if (record === undefined || record.status === "final") return false;
    if (this.#core.now() > record.pendingUntil) return false;
    return verdict.validator instanceof Uint8Array && ledger.hasStaked(verdict.validator);
  }
}

/**
 * Whether `verdict` is signed by the very worker it judges (its `target`): a worker's own "proof
 * withheld" claim, or any verdict, about its own receipt.
 */
function selfAccusation(verdict: Verdict): boolean {
  return verdict?.validator instanceof Uint8Array && verdict.target instanceof Uint8Array &&
    bytesEqual(verdict.validator, verdict.target);
}
