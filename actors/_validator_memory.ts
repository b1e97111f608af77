/**
 * The ValidatorActor's bounded memories (`validator_actor.ts`): receipts refused for a worker
 * whose pledge has not arrived yet, peers' receipts not challenged here yet (with their jobs),
 * whose verdict about which receipt was taken from a peer, the fraud proofs taken, and fraud proofs
 * about receipts not recorded here yet (held until the receipt comes in through the intake). Each
 * is bounded and forgets its oldest entry first, so no peer can grow the validator's memory
 * without bound. Owned by the actor, read and written only inside its `receive`. Not part of
 * the public API.
 *
 * @module
 */
import type { Job } from "../protocols/job.ts";
import { type Receipt, receiptId } from "../protocols/receipt.ts";
import type { Verdict } from "../protocols/verdict.ts";
import { toHex } from "../protocols/hash.ts";
import type { FraudCheckResult } from "../proof/fraud_check.ts";
import type { FraudProof } from "../protocols/fraud_proof.ts";
import type { ReceiptMessage } from "./validator_messages.ts";

/** Receipts kept per worker whose pledge has not arrived yet, and workers kept at once. */
const MAX_AWAITING_STAKE_PER_WORKER = 16;
const MAX_AWAITING_STAKE_WORKERS = 256;
/**
 * Peers' receipts not challenged here yet, remembered with their jobs for taking over a
 * withheld-proof challenge (once: a receipt leaves when its challenge opens).
 */
const MAX_REMEMBERED_RECEIPTS = 4096;
/** Peers' verdicts remembered by (validator, receipt): one is taken per validator per receipt. */
const MAX_REMEMBERED_VERDICT_AUTHORS = 16_384;
/** Fraud proofs remembered by hash, so a copy (from another peer, or replayed) costs nothing. */
const MAX_REMEMBERED_FRAUD_PROOFS = 4096;

/**
 * Fraud proofs held for a receipt not recorded here yet, per receipt and in all. A proof is
 * checked only once its receipt came in through the intake (bound to its job, the contradiction
 * check, the coin), so one that outran the announcement waits; each is at most a frame (1 MiB),
 * so 64 bound the memory a flood of staked keys can take, and 4 per receipt leave room for more
 * than one honest accuser of one receipt.
 */
const MAX_HELD_FRAUD_PROOFS = 64;
const MAX_HELD_FRAUD_PROOFS_PER_RECEIPT = 4;

/** A fraud proof held until its receipt is recorded here ({@link ValidatorMemory.holdFraudProof}). */
export interface HeldFraudProof {
  /** The proof (parsed, its signature verified, its accuser staked when it was held). */
  proof: FraudProof;
  /** Who sent it (the peer it is not passed back to). */
  origin?: string;
  /** The in-process resolver: the check's result once checked, rejected if never taken. */
  waiting: PromiseWithResolvers<FraudCheckResult>;
}

/** Who judged what: a verdict's validator and subject (checked by the actor's `#worthRecording`). */
export function judgedKey(verdict: Verdict): string {
  return `${toHex(verdict.validator)}/${verdict.subjectId}`;
}

/** The validator's bounded memories, each forgetting its oldest entry first. */
export class ValidatorMemory {
  /** Receipts refused for a worker with no stake here yet, by worker, until its pledge comes. */
  readonly #awaitingStake = new Map<string, ReceiptMessage[]>();
  /** Peers' receipts not challenged here yet, with their jobs (see the actor's `#takeOverWithheld`). */
  readonly #recent = new Map<string, { receipt: Receipt; job: Job }>();
  /** Whose verdict about which receipt was taken from a peer: `validator/receiptId` (bounded). */
  readonly #judged = new Set<string>();
  /** Fraud proofs taken, by hash (oldest evicted first), with their in-process resolvers. */
  readonly #fraudProofs = new Map<string, PromiseWithResolvers<FraudCheckResult> | null>();
  /** Fraud proofs about receipts not recorded here yet, by receipt id, then by proof hash. */
  readonly #held = new Map<string, Map<string, HeldFraudProof>>();
  /** How many proofs {@link #held} holds in all. */
  #heldCount = 0;

  /** Keep `message` until `worker` pledges stake here (bounded per worker and in workers). */
  awaitStake(worker: string, message: ReceiptMessage): void {
    const waiting = this.#awaitingStake.get(worker) ?? [];
    if (waiting.length >= MAX_AWAITING_STAKE_PER_WORKER) return;
    waiting.push(message);
    this.#awaitingStake.delete(worker); // re-inserted last: the oldest worker is dropped first
    this.#awaitingStake.set(worker, waiting);
    while (this.#awaitingStake.size > MAX_AWAITING_STAKE_WORKERS) {
      this.#awaitingStake.delete(this.#awaitingStake.keys().next().value!);
    }
  }

  /** The receipts that waited for `worker`'s pledge, in order, forgotten here. */
  takeAwaitingStake(worker: string): ReceiptMessage[] | undefined {
    const waiting = this.#awaitingStake.get(worker);
    if (waiting === undefined) return undefined;
    this.#awaitingStake.delete(worker);
    return waiting;
  }

  /** Peers' recorded receipts with their jobs, for taking over a challenge (bounded). */
  remember(receipt: Receipt, job: Job): void {
    this.#recent.set(receiptId(receipt), { receipt, job });
    while (this.#recent.size > MAX_REMEMBERED_RECEIPTS) {
      this.#recent.delete(this.#recent.keys().next().value!);
    }
  }

  /** A remembered peer's receipt not challenged here yet, with its job. */
  recent(id: string): { receipt: Receipt; job: Job } | undefined {
    return this.#recent.get(id);
  }

  /** Challenged here once: the receipt is not taken over again. */
  forgetRecent(id: string): void {
    this.#recent.delete(id);
  }

  /** Whether a verdict by this author (see {@link judgedKey}) was taken already. */
  hasJudged(author: string): boolean {
    return this.#judged.has(author);
  }

  /** A peer's verdict taken (see {@link judgedKey}), oldest forgotten first. */
  rememberJudged(author: string): void {
    this.#judged.add(author);
    while (this.#judged.size > MAX_REMEMBERED_VERDICT_AUTHORS) {
      this.#judged.delete(this.#judged.values().next().value!);
    }
  }

  /** Whether the fraud proof with this hash was taken already. */
  hasFraudProof(hash: string): boolean {
    return this.#fraudProofs.has(hash);
  }

  /** The in-process resolver of a fraud proof taken and not settled yet. */
  fraudProof(hash: string): PromiseWithResolvers<FraudCheckResult> | null | undefined {
    return this.#fraudProofs.get(hash);
  }

  /** A fraud proof taken, with its in-process resolver (oldest forgotten first). */
  takeFraudProof(hash: string, waiting: PromiseWithResolvers<FraudCheckResult>): void {
    this.#fraudProofs.set(hash, waiting);
    while (this.#fraudProofs.size > MAX_REMEMBERED_FRAUD_PROOFS) {
      this.#fraudProofs.delete(this.#fraudProofs.keys().next().value!);
    }
  }

  /** A fraud proof settled (or its check failed): still remembered, nobody waits on it. */
  fraudProofDone(hash: string): void {
    this.#fraudProofs.set(hash, null);
  }

  /** Whether the fraud proof with this hash, about receipt `id`, is held for its receipt. */
  holdsFraudProof(id: string, hash: string): boolean {
    return this.#held.get(id)?.has(hash) === true;
  }

  /**
   * Hold a fraud proof about receipt `id`, not recorded here yet, until the receipt comes in.
   * Bounded: past {@link MAX_HELD_FRAUD_PROOFS_PER_RECEIPT} for this receipt it is not held
   * (false); past {@link MAX_HELD_FRAUD_PROOFS} in all, the oldest receipt's proofs are dropped
   * (their in-process resolvers rejected).
   */
  holdFraudProof(id: string, hash: string, held: HeldFraudProof): boolean {
    const proofs = this.#held.get(id) ?? new Map<string, HeldFraudProof>();
    if (proofs.size >= MAX_HELD_FRAUD_PROOFS_PER_RECEIPT) return false;
    proofs.set(hash, held);
    this.#held.set(id, proofs);
    this.#heldCount++;
    while (this.#heldCount > MAX_HELD_FRAUD_PROOFS) {
      const oldest = this.#held.keys().next().value!;
      for (const dropped of this.#held.get(oldest)!.values()) {
        dropped.waiting.reject(new Error("fraud proof dropped: its receipt never came"));
        this.#heldCount--;
      }
      this.#held.delete(oldest);
    }
    return true;
  }

  /** The proofs held for receipt `id` (now recorded here), in arrival order, forgotten here. */
  takeHeldFraudProofs(id: string): HeldFraudProof[] {
    const proofs = this.#held.get(id);
    if (proofs === undefined) return [];
    this.#held.delete(id);
    this.#heldCount -= proofs.size;
    return [...proofs.values()];
  }
}
