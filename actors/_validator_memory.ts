/**
 * The ValidatorActor's bounded memories (`validator_actor.ts`): receipts refused for a worker
 * whose pledge has not arrived yet, peers' receipts not challenged here yet (with their jobs),
 * whose verdict about which receipt was taken from a peer, the fraud proofs taken (one accusation
 * per accuser and receipt at a time), the accusations left undecided here, fraud proofs about
 * receipts not recorded here yet (held until the receipt comes in through the intake), and
 * "proof withheld" claims that outran their receipt or their author's pledge, or that came without
 * the evidence of a receipt forgotten here. Each is bounded and forgets its oldest entry first
 * (the held claims: the least backed, {@link MAX_HELD_CLAIMS_PER_CLAIMANT}), so no
 * peer can grow the validator's memory without bound; what of it is kept across a stop
 * ({@link ValidatorMemory.waiting}) is bounded apart, by what a durable write at each finalize
 * tick may cost. Owned by the actor, read and written only inside its `receive`. Not part of the
 * public API.
 *
 * @module
 */
import type { Job } from "../protocols/job.ts";
import { type Receipt, receiptId } from "../protocols/receipt.ts";
import type { Verdict } from "../protocols/verdict.ts";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { encodeCanonical, encodeCbor } from "../protocols/cbor.ts";
import type { FraudCheckResult } from "../proof/fraud_check.ts";
import type { FraudProof } from "../protocols/fraud_proof.ts";
import type { ReceiptMessage } from "./validator_messages.ts";
import type { HeldEvidence, KeptProof } from "./_held_evidence.ts";
import { CLOCK_SKEW_MS, STALE_RECEIPT_AGE_MS } from "../proof/challenge_timing.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";

/**
 * Receipts kept per worker whose pledge has not arrived yet (it has no stake here), and workers
 * kept at once: anyone can sign receipts of fresh keys that never pledge, so what waits is
 * bounded. Past either bound a receipt is not kept, and none kept is evicted for it: its refusal
 * says so (`INSUFFICIENT_STAKE_NOT_KEPT`, `validator_messages.ts`), and its sender, which recorded
 * it and holds the worker's pledge, sends the pledge and then the receipt again
 * (`network/_peer_gossip.ts`). Refused alike and dropped unsaid (or an older worker's evicted
 * unsaid, past the workers), an honest worker that served more than 16 jobs before its pledge
 * reached this ledger went unpaid here for the rest (review s62,
 * `tests/network/catch_up_receipts_test.ts`). Who pays for a flood of fresh keys that
 * fills the workers: every later worker's early receipts, which are no longer kept here for a
 * pledge that comes another way (the worker's own connection), only sent again by their senders.
 */
export const MAX_AWAITING_STAKE_PER_WORKER = 16;
/** See {@link MAX_AWAITING_STAKE_PER_WORKER}. */
export const MAX_AWAITING_STAKE_WORKERS = 256;
/**
 * Peers' receipts not challenged here yet, remembered with their jobs for taking over a
 * withheld-proof challenge (once: a receipt leaves when its challenge opens, or when it is no
 * longer pending). The actor keeps each on disk too while it is remembered
 * (`PENDING_RECEIPTS_DIR`), so this bounds that folder as well, with
 * {@link MAX_REMEMBERED_RECEIPT_BYTES}.
 */
export const MAX_REMEMBERED_RECEIPTS = 4096;
/**
 * The remembered receipts' bytes in all (each counted as the canonical CBOR of its receipt and
 * job: the record the actor keeps on disk for it), besides their count. A job crossing nodes may
 * take `MAX_NETWORK_JOB_BYTES` (448 KiB), and a receipt locks only its token count times the slash
 * multiplier (a default self-stake backs thousands), so by count alone one staked key filled the
 * memory, and the folder, with about 1.8 GB (review s56). Honest jobs are a few KiB, and 4096 of
 * them averaging under 16 KiB fit, so the count is the bound that binds; 64 MiB is what the validator's
 * other floods may add (64 frames: {@link MAX_HELD_FRAUD_PROOFS},
 * {@link MAX_KEPT_TAKEN_FRAUD_PROOFS}), about 146 receipts of the largest jobs. Past it the oldest
 * are forgotten, as past the count: a claim about one that comes alone is no longer taken over
 * here. There is no share per worker, by count or by bytes: one key's flood pushes out everyone's
 * oldest receipts (a share would not help: the flooder's own oldest is the one it withheld). So a
 * claim comes after its receipt and job (`ClaimEvidence`, review s57), and a copy of one recorded
 * here, still pending, forgotten and never challenged here, is remembered again (the intake's
 * `#forgottenPending`, `_receipt_intake.ts`), as the newest, within these same bounds.
 */
export const MAX_REMEMBERED_RECEIPT_BYTES = 64 * 1024 * 1024;
/**
 * Receipts challenged here (drawn or taken over), remembered so that a copy that comes after (a
 * claim's evidence, `ClaimEvidence`) does not have the memory of recent receipts take them again:
 * challenged here once, a worker is not asked again on a peer's claim. Only a challenge opened
 * here adds one (the coin's draws, the takeover budget), not a receipt that comes; past the bound
 * the oldest is forgotten, and a copy of it may be taken over once more (as after a restart: kept
 * in memory only). 16,384, as the verdict authors: far more challenges than a window opens here.
 */
const MAX_REMEMBERED_CHALLENGED = 16_384;
/** Peers' verdicts remembered by (validator, receipt): one is taken per validator per receipt. */
const MAX_REMEMBERED_VERDICT_AUTHORS = 16_384;
/** Fraud proofs remembered by hash, so a copy (from another peer, or replayed) costs nothing. */
const MAX_REMEMBERED_FRAUD_PROOFS = 4096;
/**
 * Peers' fraud proofs taken and not settled (queued, being checked, or their settlement's write
 * the one that failed) kept across a stop in the held evidence ({@link ValidatorMemory.waiting},
 * `_held_evidence.ts`), which is re-encoded and written durably at each finalize tick where it
 * changed. The proofs taken are bounded only by their accusers' stake (one per false-accusation
 * penalty: a default self-stake backs 10,000) and by {@link MAX_REMEMBERED_FRAUD_PROOFS}, each up
 * to a frame (1 MiB): kept whole, one staked key made every tick write gigabytes. 64, as for the
 * proofs held for their receipt ({@link MAX_HELD_FRAUD_PROOFS}): the checks run one at a time and
 * honest traffic has a handful in flight, so every one is kept, and a flood adds at most 64 MiB to
 * the file. Past it, those kept are chosen by rounds — each accuser's oldest, then each one's
 * second oldest, and so on, oldest first within a round — so the one whose settlement's write
 * failed (the oldest, checks running in the order taken) is kept.
 *
 * Who pays: a proof not kept is lost only if the process stops before it settles; after the
 * restart this ledger settles it only if it comes again (gossip, a peer's catch-up of the
 * convictions it confirmed, `_catch_up.ts`), else the cheat it caught is paid here. The newest
 * proofs of the accusers with the most in flight go first: a key that floods loses its own, and an
 * honest accuser's one proof is dropped only behind 64 other accusers' older ones, each backed by
 * a penalty's stake.
 */
export const MAX_KEPT_TAKEN_FRAUD_PROOFS = 64;
/**
 * Accusations this validator could not decide (it lacks the model or its profile), by accuser
 * and receipt: a ledger settles one accusation per accuser and receipt, and one left undecided
 * here is passed on once, not again for each re-signed copy.
 */
const MAX_REMEMBERED_UNDECIDED = 16_384;

/**
 * Fraud proofs held for a receipt not recorded here yet, in all. A proof is checked only once its
 * receipt came in through the intake (bound to its job, the contradiction check, the coin), so one
 * that outran the announcement waits; each is at most a frame (1 MiB), so 64 bound the memory a
 * flood of pledged keys can take. There is no bound per receipt (review s45: with 4 per receipt,
 * four staked colluders' false proofs, sent first, had an honest finder's true one refused, never
 * taken again, and the cheat paid; the four penalties were less than the slash it kept): a receipt
 * that arrives takes every proof held for it, each backed by its accuser's stake.
 */
const MAX_HELD_FRAUD_PROOFS = 64;
/**
 * Held proofs per accuser: its fifth pushes out its own longest held (a proof whose receipt never
 * came here — an announcement lost, or a flood — must not stop its accuser's next one). With the
 * space full, the proof dropped is one of the accuser holding the most (the longest held of its
 * proofs): a key that floods proofs about receipts that never come (they cost it nothing)
 * pushes out its own, not an honest finder's, unless it brings as many staked keys as the space
 * has proofs.
 */
const MAX_HELD_FRAUD_PROOFS_PER_ACCUSER = 4;

/**
 * Peers' "proof withheld" claims (`invalid / proof_unavailable` verdicts) held for what they lack
 * here, in all: their receipt (not recorded here yet), or their author's pledge; or, recorded
 * here about a receipt this validator had forgotten, a copy of the receipt to take them over on
 * ({@link HeldClaim.recorded}: a staked author's, about a receipt pending here, one per claimant
 * and receipt, dropped at the tick the receipt closes). Gossip order is not guaranteed (the
 * claim comes on its author's connection or through any peer, the receipt on the requester's):
 * refused, a claim that outran its receipt left the worker that withheld paid here and slashed in
 * the ledgers that saw the receipt first (review s56). A claim is a verdict (its details at most
 * `MAX_VERDICT_DETAILS_BYTES`, about 1.3 KiB in all), kept across a stop with the other held
 * evidence (`_held_evidence.ts`): 256 bound both the memory and the file's write at a tick to
 * about 330 KiB. Honest claims outrun their receipt by moments, a handful at a time; a claim held
 * costs no takeover budget (spent only once it is taken, within the same budget and caps as a
 * claim that came after its receipt).
 */
export const MAX_HELD_CLAIMS = 256;
/**
 * Held claims per claimant: its next pushes out its own longest held (a claim about a receipt that
 * never comes here costs its author nothing). A worker's cap of open challenges
 * (`MAX_OPEN_CHALLENGES_PER_WORKER`, 16): more claims than that about one withholding worker's
 * receipts could not all be taken over at once.
 *
 * With the space ({@link MAX_HELD_CLAIMS}) full, one claim of the least backed class goes
 * ({@link ClaimBacking}): each held claim reserves one false-accusation penalty of its author's
 * free stake (what a fraud proof of it must have free: `_fraud_proofs.ts`), a claimant's claims in
 * the order held, so a claim its author's stake does not cover (no pledge here yet, a 1-unit
 * pledge, stake spent or reserved by its other claims) goes before any covered one; within each,
 * a claim about a receipt unknown here before one about a receipt known here (recorded: signed by
 * its worker and backed by its stake, where an unknown id may be made up; one claim per receipt
 * counts as known, review s77 F1);
 * within the class, the newest claim of the claimant holding the most claims, and among
 * claimants holding as many, the one ranked highest by this validator's secret
 * (`_held_claim_rank.ts`). Review s76 (gossip F1): every staked claimant counted alike and the
 * longest held went, so 256 claims from fresh keys pledging 1 unit each, about made-up receipt
 * ids, pushed out an honest staked claim that had outrun its receipt, and the worker that
 * withheld was paid here and kept its stake. Review s76 (vroute F1): with the newest covered
 * claim dropped whoever held it, 16 keys pledging 16 penalties each (a pledge's amount is
 * self-declared and costs a signature) whose 16 claims each filled the space before the honest
 * one had it dropped. Stop 77 (G1): with the newest of equals dropped, 256 keys pledging a
 * penalty each, one claim each, sent before the honest claim, had it dropped. Why the claimant
 * holding the most: a key gains no place by holding more claims, so pushing out a claimant's one
 * claim takes as many keys as the space has places. Why a secret rank and not arrival: claims of
 * equals look alike here, so a rule on order drops the claim at some place in it and the flood
 * puts its claims on the losing side of the honest one (before it where the newest goes, after
 * it where the oldest goes); ranked by a secret, the flood must bring as many keys ranking above
 * the honest claimant as the space has places, which it cannot see. What is left: against `k`
 * equally backed flooding keys an honest claim of its class is kept with probability
 * (256 − m) / (k + 1) at the least, where `m` is the flood's claims of a higher class — a known
 * one needs a receipt recorded here, one per receipt, each signed by a worker whose stake backs
 * it (with none such, m = 0: every one of {@link MAX_HELD_CLAIMS} keys, 0.996), in any order;
 * past {@link MAX_HELD_CLAIM_AGE_MS} the flood's claims expire and it must send them again.
 *
 * Who pays for a reservation: nobody. A claim moves no balance (`_peer_verdicts.ts`); a held
 * claim is released — its reservation with it — when it is taken (its receipt or its author's
 * pledge came: through the verdict intake, where a takeover that finds the worker serving counts
 * against the claimant's takeover budget, not its stake), when it is dropped as above, and when it
 * expires.
 */
export const MAX_HELD_CLAIMS_PER_CLAIMANT = 16;

/**
 * How long a held claim waits (ledger clock) at most on a ledger whose challenge window is
 * `challengeWindowMs`: see {@link MAX_HELD_CLAIM_AGE_MS}.
 */
export function heldClaimMaxAgeMs(challengeWindowMs: number): number {
  return STALE_RECEIPT_AGE_MS + 2 * CLOCK_SKEW_MS + challengeWindowMs;
}

/**
 * How long a held claim waits (ledger clock) at most, the age past which it is forgotten at the
 * next claim held, its reservation released: {@link STALE_RECEIPT_AGE_MS} plus two clock skews,
 * then the receipt a claim waits for can no longer be recorded here (the intake refuses it as
 * stale: it was signed before the claim was, by a clock up to a skew off, and the claim came here
 * later still), plus a challenge window for a claim held for its author's pledge (its receipt,
 * recorded here before the claim came, closes within one). Without an end, claims about receipts
 * that never come sat covered for good, and with the newest among equals dropped, every
 * later claim of their class was refused. The caller gives its ledger's
 * ({@link ClaimBacking.maxAgeMs}, {@link heldClaimMaxAgeMs}); this is the default window's.
 */
export const MAX_HELD_CLAIM_AGE_MS: number = heldClaimMaxAgeMs(DEFAULT_ECONOMICS.challengeWindowMs);

/**
 * What backs the claims held ({@link ValidatorMemory.holdClaim}), asked when one is held: how
 * many held claims a claimant's free stake covers now, and the ledger clock for their age. `true`
 * (every claim covered) and `false` (none) hold without a clock, for the memory's own tests.
 */
export interface ClaimBacking {
  /**
   * How many claims `claimant` (hex) may hold covered: its free stake, less what its fraud proofs
   * in flight reserve, in false-accusation penalties (0 with no pledge here).
   */
  covers(claimant: string): number;
  /** The ledger clock (unix ms). */
  now: number;
  /** Age past which a held claim is forgotten (ms; {@link MAX_HELD_CLAIM_AGE_MS}). */
  maxAgeMs: number;
  /** Whether receipt `id` is recorded here (a claim about it is about a real receipt). */
  recorded?(id: string): boolean;
  /**
   * Where `claimant` (hex) ranks among claimants holding as many claims of one class: the
   * highest goes first. A value no peer can compute (`_held_claim_rank.ts`), so a flood cannot
   * choose whose claim of equals goes; absent, the newest goes.
   */
  rank?(claimant: string): string;
}

/**
 * A peer's "proof withheld" claim held until its receipt (or its author's pledge) is here, or,
 * `recorded`, until the receipt's evidence is.
 */
export interface HeldClaim {
  /** The claim (its signature verified when it was held). */
  verdict: Verdict;
  /** Who sent it (the peer it is not passed back to). */
  origin?: string;
  /**
   * Recorded here already, about a receipt pending here that this validator had forgotten (review
   * s58): held for a copy of the receipt and its job, taken over when the intake remembers it
   * again ({@link ValidatorMemory.takeRecordedClaims}), never through the verdict intake again (it
   * is the same verdict there: known, not taken over). Absent for a claim held for its receipt
   * or its author's pledge.
   */
  recorded?: true;
}

/** A fraud proof held until its receipt is recorded here ({@link ValidatorMemory.holdFraudProof}). */
export interface HeldFraudProof {
  /**
   * The proof (parsed, its signature verified, its accuser pledged here when it was held: backed
   * by its stake, or to be checked unbacked, `_unbacked_checks.ts`).
   */
  proof: FraudProof;
  /** Who sent it (the peer it is not passed back to). */
  origin?: string;
  /** The in-process resolver: the check's result once checked, rejected if never taken. */
  waiting: PromiseWithResolvers<FraudCheckResult>;
}

/** A fraud proof taken and not settled yet ({@link ValidatorMemory.takeFraudProof}). */
export interface TakenFraudProof {
  /** The in-process resolver: the check's result once settled. */
  waiting: PromiseWithResolvers<FraudCheckResult>;
  /** The proof (parsed, its signature verified). */
  proof: FraudProof;
  /** Who sent it (the peer it is not passed back to). */
  origin?: string;
  /** This validator's own (kept on disk by the actor, `_receipt_files.ts`), not a peer's. */
  own: boolean;
  /** When it was first taken (unix ms, ledger clock): kept across a stop with it. */
  takenAt?: number;
}

/** What {@link ValidatorMemory.waiting} keeps across a stop. */
export interface Waiting extends Omit<HeldEvidence, "unbacked"> {
  /**
   * The hashes of the proofs taken and not settled among `proofs` (their unbacked checks are
   * spent again when they are taken up after the stop; the others' stay spent).
   */
  keptTaken: ReadonlySet<string>;
}

/**
 * The bytes a remembered receipt counts against {@link MAX_REMEMBERED_RECEIPT_BYTES}: the canonical
 * CBOR of `{ receipt, job }`, the record the actor keeps on disk for it (`_receipt_files.ts`).
 */
function keptRecordBytes(receipt: Receipt, job: Job): number {
  return encodeCanonical({ receipt, job }).length;
}

/** Who judged what: a verdict's validator and subject (checked by `_peer_verdicts.ts`'s `#worthRecording`). */
export function judgedKey(verdict: Verdict): string {
  return `${toHex(verdict.validator)}/${verdict.subjectId}`;
}

/** The validator's bounded memories, each forgetting its oldest entry first. */
export class ValidatorMemory {
  /**
   * Receipts refused for a worker with no stake here yet, by worker, then by receipt id (and
   * assignment: {@link awaitStake}), until its pledge comes.
   */
  readonly #awaitingStake = new Map<string, Map<string, ReceiptMessage>>();
  /**
   * Peers' receipts not challenged here yet, with their jobs (see `_peer_verdicts.ts`'s
   * `#takeOverWithheld`), oldest first, each with its bytes (see
   * {@link MAX_REMEMBERED_RECEIPT_BYTES}).
   */
  readonly #recent = new Map<string, { receipt: Receipt; job: Job; bytes: number }>();
  /** The bytes of {@link #recent} in all. */
  #recentBytes = 0;
  /** Receipts challenged here, oldest first (see {@link MAX_REMEMBERED_CHALLENGED}). */
  readonly #challenged = new Set<string>();
  /** Whose verdict about which receipt was taken from a peer: `validator/receiptId` (bounded). */
  readonly #judged = new Set<string>();
  /** Fraud proofs taken, by hash (oldest evicted first): null once settled. */
  readonly #fraudProofs = new Map<string, TakenFraudProof | null>();
  /** Accusations checked here and left undecided: `accuser/receiptId` (bounded). */
  readonly #undecided = new Set<string>();
  /** Fraud proofs about receipts not recorded here yet, by receipt id, then by proof hash. */
  readonly #held = new Map<string, Map<string, HeldFraudProof>>();
  /** How many proofs {@link #held} holds in all. */
  #heldCount = 0;
  /** Held proofs by accuser (hex key). */
  readonly #heldBy = new Map<string, number>();
  /** Accusations taken and not settled (checking, or held), by accuser (hex key). */
  readonly #accusing = new Map<string, number>();
  /** Accusations taken and not settled (checking, or held), by `accuser/receiptId`. */
  readonly #accusations = new Map<string, number>();
  /** `accuser/receiptId` of each fraud proof taken and not settled, by proof hash. */
  readonly #accusationOf = new Map<string, string>();
  /**
   * Claims held for their receipt or their author's pledge, by {@link judgedKey} (one per
   * claimant and receipt), oldest first, each with its claimant (hex) and when it was held
   * (ledger clock; absent when held without one).
   */
  readonly #claims = new Map<string, HeldClaim & { claimant: string; heldAt?: number }>();
  /** Held claims by claimant (hex key). */
  readonly #claimsBy = new Map<string, number>();

  /**
   * Keep `message`, receipt `id` of `worker`, until `worker` pledges stake here; whether it is
   * kept. Not past {@link MAX_AWAITING_STAKE_PER_WORKER} for the worker, nor for a worker new
   * here past {@link MAX_AWAITING_STAKE_WORKERS}: nothing kept is evicted, so the refusal of every
   * receipt not kept can say so. A copy of one kept with the same assignment (or none: passed on
   * by another peer) takes no more room; one with another assignment is kept beside it (which of
   * them is valid is the ledger's to decide when they are taken again: a copy without one, or
   * with a forged one, must not stand in for the requester's).
   */
  awaitStake(worker: string, id: string, message: ReceiptMessage): boolean {
    const copy = message.assignment === undefined
      ? id
      : `${id}/${sha256Hex(encodeCbor(message.assignment))}`;
    let waiting = this.#awaitingStake.get(worker);
    if (waiting?.has(copy)) return true;
    if (waiting === undefined) {
      if (this.#awaitingStake.size >= MAX_AWAITING_STAKE_WORKERS) return false;
      this.#awaitingStake.set(worker, waiting = new Map());
    }
    if (waiting.size >= MAX_AWAITING_STAKE_PER_WORKER) return false;
    waiting.set(copy, message);
    return true;
  }

  /** The receipts that waited for `worker`'s pledge, in order, forgotten here. */
  takeAwaitingStake(worker: string): ReceiptMessage[] | undefined {
    const waiting = this.#awaitingStake.get(worker);
    if (waiting === undefined) return undefined;
    this.#awaitingStake.delete(worker);
    return [...waiting.values()];
  }

  /**
   * Peers' recorded receipts with their jobs, for taking over a challenge (bounded by
   * {@link MAX_REMEMBERED_RECEIPTS} and {@link MAX_REMEMBERED_RECEIPT_BYTES}): returns the ids of
   * those forgotten to make room (the oldest), whose kept copies the actor removes.
   */
  remember(receipt: Receipt, job: Job): string[] {
    const id = receiptId(receipt);
    const bytes = keptRecordBytes(receipt, job);
    this.forgetRecent(id); // remembered again: counted once, as the newest
    this.#recent.set(id, { receipt, job, bytes });
    this.#recentBytes += bytes;
    const forgotten: string[] = [];
    while (
      this.#recent.size > MAX_REMEMBERED_RECEIPTS ||
      this.#recentBytes > MAX_REMEMBERED_RECEIPT_BYTES
    ) {
      const oldest = this.#recent.keys().next().value!;
      this.forgetRecent(oldest);
      forgotten.push(oldest);
    }
    return forgotten;
  }

  /**
   * Forget the remembered receipts `open` says no longer are (paid, slashed, left unpaid: no
   * claim can be taken over on them): returns their ids.
   */
  forgetRecentUnless(open: (id: string) => boolean): string[] {
    const closed = [...this.#recent.keys()].filter((id) => !open(id));
    for (const id of closed) this.forgetRecent(id);
    return closed;
  }

  /** A remembered peer's receipt not challenged here yet, with its job. */
  recent(id: string): { receipt: Receipt; job: Job } | undefined {
    return this.#recent.get(id);
  }

  /**
   * Receipt `id` is challenged here: forgotten from the recent receipts, and remembered as
   * challenged (oldest forgotten first), so no copy of it makes it recent again
   * ({@link wasChallenged}).
   */
  challenged(id: string): void {
    this.forgetRecent(id);
    this.#challenged.delete(id);
    this.#challenged.add(id);
    while (this.#challenged.size > MAX_REMEMBERED_CHALLENGED) {
      this.#challenged.delete(this.#challenged.values().next().value!);
    }
  }

  /** Whether receipt `id` was challenged here (see {@link challenged}; bounded, in memory). */
  wasChallenged(id: string): boolean {
    return this.#challenged.has(id);
  }

  /** No longer remembered as a recent receipt (forgotten, or no longer open). */
  forgetRecent(id: string): void {
    const remembered = this.#recent.get(id);
    if (remembered === undefined) return;
    this.#recent.delete(id);
    this.#recentBytes -= remembered.bytes;
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

  /** Whether `accuser`'s accusation of receipt `id` was checked here and left undecided. */
  undecided(accuser: Uint8Array, id: string): boolean {
    return this.#undecided.has(`${toHex(accuser)}/${id}`);
  }

  /** `accuser`'s accusation of receipt `id` could not be decided here (oldest forgotten first). */
  rememberUndecided(accuser: Uint8Array, id: string): void {
    this.#undecided.add(`${toHex(accuser)}/${id}`);
    while (this.#undecided.size > MAX_REMEMBERED_UNDECIDED) {
      this.#undecided.delete(this.#undecided.values().next().value!);
    }
  }

  /** Whether the fraud proof with this hash was taken already. */
  hasFraudProof(hash: string): boolean {
    return this.#fraudProofs.has(hash);
  }

  /** The in-process resolver of a fraud proof taken and not settled yet. */
  fraudProof(hash: string): PromiseWithResolvers<FraudCheckResult> | null | undefined {
    const taken = this.#fraudProofs.get(hash);
    return taken === undefined ? undefined : taken?.waiting ?? null;
  }

  /**
   * A fraud proof taken, with its in-process resolver (oldest forgotten first); it counts
   * against its accuser ({@link accusing}), and a peer's is kept across a stop ({@link waiting}),
   * until {@link fraudProofDone}. `subject`: the id of the receipt it settles (the one its
   * worker had recorded here, for a proof about another variant of it), what
   * {@link accusesNow} is asked about; by default the proof's own.
   */
  takeFraudProof(
    hash: string,
    taken: TakenFraudProof,
    subject = receiptId(taken.proof.receipt),
  ): void {
    this.#fraudProofs.set(hash, taken);
    while (this.#fraudProofs.size > MAX_REMEMBERED_FRAUD_PROOFS) {
      this.#fraudProofs.delete(this.#fraudProofs.keys().next().value!);
    }
    const key = toHex(taken.proof.validator);
    if (!this.#accusationOf.has(hash)) {
      const accusation = `${key}/${subject}`;
      this.#accusationOf.set(hash, accusation);
      this.#count(this.#accusing, key, 1);
      this.#count(this.#accusations, accusation, 1);
    }
  }

  /** Fraud proofs taken and not settled yet (queued or being checked; not those held). */
  checking(): number {
    let n = 0;
    for (const waiting of this.#fraudProofs.values()) if (waiting !== null) n++;
    return n;
  }

  /** A fraud proof settled (or its check failed): still remembered, nobody waits on it. */
  fraudProofDone(hash: string): void {
    this.#fraudProofs.set(hash, null);
    const accusation = this.#accusationOf.get(hash);
    if (accusation === undefined) return;
    this.#accusationOf.delete(hash);
    this.#count(this.#accusing, accusation.slice(0, accusation.indexOf("/")), -1);
    this.#count(this.#accusations, accusation, -1);
  }

  /**
   * Accusations by `accuser` taken here and not settled yet (being checked, or held for their
   * receipt): each may cost it the false-accusation penalty, so its stake must cover them all.
   */
  accusing(accuser: Uint8Array): number {
    return this.#accusing.get(toHex(accuser)) ?? 0;
  }

  /**
   * A peer's stream proof by `accuser` (hex) held (`delta` 1: being checked, or left undecided and
   * remembered) or let go (-1): it counts in {@link accusing} as a fraud proof does, so one stake
   * backs the penalties of both kinds at once (`_stream_proof_bounds.ts`).
   */
  countAccusation(accuser: string, delta: 1 | -1): void {
    this.#count(this.#accusing, accuser, delta);
  }

  /**
   * Whether `accuser` (hex) has an accusation of receipt `id` taken here and not settled yet
   * (being checked, or held for the receipt): the intake takes one per accuser and receipt at a
   * time.
   */
  accusesNow(accuser: string, id: string): boolean {
    return this.#accusations.has(`${accuser}/${id}`);
  }

  #count(counts: Map<string, number>, key: string, delta: number): void {
    const n = (counts.get(key) ?? 0) + delta;
    if (n > 0) counts.set(key, n);
    else counts.delete(key);
  }

  /** Whether the fraud proof with this hash, about receipt `id`, is held for its receipt. */
  holdsFraudProof(id: string, hash: string): boolean {
    return this.#held.get(id)?.has(hash) === true;
  }

  /**
   * Hold a fraud proof about receipt `id`, not recorded here yet, until the receipt comes in.
   * Bounded: past {@link MAX_HELD_FRAUD_PROOFS_PER_ACCUSER} for its accuser, that accuser's
   * longest held proof is dropped; past {@link MAX_HELD_FRAUD_PROOFS} in all, the longest held
   * proof of the accuser holding the most is. A dropped proof's in-process resolver is rejected.
   */
  holdFraudProof(id: string, hash: string, held: HeldFraudProof): void {
    const proofs = this.#held.get(id) ?? new Map<string, HeldFraudProof>();
    const accuser = toHex(held.proof.validator);
    if ((this.#heldBy.get(accuser) ?? 0) >= MAX_HELD_FRAUD_PROOFS_PER_ACCUSER) {
      this.#dropHeld(accuser);
    }
    proofs.set(hash, held);
    this.#held.set(id, proofs);
    this.#heldCount++;
    this.#count(this.#heldBy, accuser, 1);
    this.#count(this.#accusing, accuser, 1);
    this.#count(this.#accusations, `${accuser}/${id}`, 1);
    while (this.#heldCount > MAX_HELD_FRAUD_PROOFS) this.#dropHeld();
  }

  /** Drop the longest held proof of `of`, or by default of the accuser holding the most. */
  #dropHeld(of?: string): void {
    let most = 0;
    for (const n of this.#heldBy.values()) most = Math.max(most, n);
    for (const [id, proofs] of this.#held) {
      for (const [hash, held] of proofs) {
        const accuser = toHex(held.proof.validator);
        if (of !== undefined ? accuser !== of : this.#heldBy.get(accuser) !== most) continue;
        held.waiting.reject(new Error("fraud proof dropped: its receipt never came"));
        this.#forgetHeld(id, proofs, hash, accuser);
        return;
      }
    }
  }

  #forgetHeld(id: string, proofs: Map<string, HeldFraudProof>, hash: string, accuser: string) {
    proofs.delete(hash);
    if (proofs.size === 0) this.#held.delete(id);
    this.#heldCount--;
    this.#count(this.#heldBy, accuser, -1);
    this.#count(this.#accusing, accuser, -1);
    this.#count(this.#accusations, `${accuser}/${id}`, -1);
  }

  /**
   * Hold a peer's "proof withheld" claim until what it lacks comes in: its receipt
   * ({@link takeHeldClaims}) or its author's stake ({@link takeHeldClaimsBy}); or, `recorded` (see
   * {@link HeldClaim.recorded}), the evidence of a receipt recorded here and forgotten
   * ({@link takeRecordedClaims}). One per claimant and receipt (a re-signed copy holds nothing
   * more). Claims past `backing`'s age are forgotten first. Bounded: past
   * {@link MAX_HELD_CLAIMS_PER_CLAIMANT} for its claimant, that claimant's longest held claim is
   * dropped; past {@link MAX_HELD_CLAIMS} in all, one of the least backed (see
   * {@link MAX_HELD_CLAIMS_PER_CLAIMANT}).
   */
  holdClaim(
    verdict: Verdict,
    origin: string | undefined,
    backing: ClaimBacking | boolean,
    recorded = false,
  ): void {
    const key = judgedKey(verdict);
    if (this.#claims.has(key)) return;
    if (typeof backing !== "boolean") this.#expireClaims(backing.now - backing.maxAgeMs);
    const claimant = toHex(verdict.validator);
    if ((this.#claimsBy.get(claimant) ?? 0) >= MAX_HELD_CLAIMS_PER_CLAIMANT) {
      this.#dropOwnClaim(claimant);
    }
    const heldAt = typeof backing === "boolean" ? {} : { heldAt: backing.now };
    const held = { verdict, origin, claimant, ...heldAt };
    this.#claims.set(key, recorded ? { ...held, recorded } : held);
    this.#count(this.#claimsBy, claimant, 1);
    while (this.#claims.size > MAX_HELD_CLAIMS) this.#dropLeastBacked(backing);
  }

  /** Forget the claims held before `before` (ledger clock): see {@link MAX_HELD_CLAIM_AGE_MS}. */
  #expireClaims(before: number): void {
    this.#takeClaims((held) => held.heldAt !== undefined && held.heldAt < before);
  }

  /** Drop the longest held claim of `claimant` (hex). */
  #dropOwnClaim(claimant: string): void {
    this.#takeClaims((held) => held.claimant === claimant, 1);
  }

  /**
   * Drop one claim of the least backed class (see {@link MAX_HELD_CLAIMS_PER_CLAIMANT}): a claim
   * its author's stake does not cover (a claimant's claims covered in the order held) before a
   * covered one, and within each, one about a receipt unknown here before one about a receipt
   * known here ({@link #knownClaims}: one per receipt). In the class, the claimant holding the
   * most claims here gives its newest; among claimants holding as many, the one `backing` ranks
   * highest ({@link ClaimBacking.rank}), or without a rank the one whose newest is newest.
   */
  #dropLeastBacked(backing: ClaimBacking | boolean): void {
    const covers = (claimant: string) =>
      typeof backing === "boolean" ? (backing ? Infinity : 0) : backing.covers(claimant);
    const rank = typeof backing === "boolean" ? undefined : backing.rank;
    const known = this.#knownClaims(typeof backing === "boolean" ? undefined : backing);
    const cover = new Map<string, number>();
    const seen = new Map<string, number>();
    // Per class (2 × covered + known: 0 goes first), each claimant's newest claim in it; the map
    // iterates in the order held, so a later key is newer, and claimants end in the order of
    // their newest.
    const newest: Map<string, string>[] = [new Map(), new Map(), new Map(), new Map()];
    for (const [key, held] of this.#claims) {
      const { claimant } = held;
      if (!cover.has(claimant)) cover.set(claimant, covers(claimant));
      const n = seen.get(claimant) ?? 0;
      seen.set(claimant, n + 1);
      const cls = (n < cover.get(claimant)! ? 2 : 0) + (known.has(key) ? 1 : 0);
      newest[cls].delete(claimant);
      newest[cls].set(claimant, key);
    }
    const least = newest.find((cls) => cls.size > 0);
    if (least === undefined) return;
    let dropped: string | undefined;
    let dropper: string | undefined;
    let most = 0;
    for (const [claimant, key] of least) {
      const held = seen.get(claimant)!;
      const tie = held === most && dropper !== undefined;
      // At a tie the rank decides when there is one; else the later claimant (newest) goes.
      const later = tie && rank !== undefined ? rank(claimant) > rank(dropper!) : true;
      if (held > most || (held === most && later)) [dropped, dropper, most] = [key, claimant, held];
    }
    if (dropped !== undefined) this.#takeClaims((_, key) => key === dropped, 1);
  }

  /**
   * The held claims (keys) about a receipt known here to exist, signed by its worker and backed
   * by its stake — recorded here (a claim held for its author's pledge, or
   * {@link HeldClaim.recorded}) — one per receipt: of several claims about one receipt, the one
   * whose claimant `backing` ranks lowest (kept longest), or without a rank the oldest. A claim
   * about a receipt nobody here has seen may be about a made-up id, which costs its author
   * nothing. Review s77 F1: a receipt waiting here for its worker's pledge counted as known too,
   * and any key can put one there (an unpledged worker's signed receipt is kept for its pledge,
   * `_receipt_intake.ts`), so 256 pledged keys claiming about such receipts — or all about one —
   * outranked the honest claim that had outrun its receipt, whatever the rank, and the worker
   * that withheld was paid; 256 claims about one recorded receipt, each counted known, would have
   * done the same.
   */
  #knownClaims(backing: ClaimBacking | undefined): Set<string> {
    const rank = backing?.rank;
    const byReceipt = new Map<string, { key: string; claimant: string }>();
    for (const [key, held] of this.#claims) {
      const id = held.verdict.subjectId;
      if (!held.recorded && backing?.recorded?.(id) !== true) continue;
      const before = byReceipt.get(id);
      const lower = before !== undefined && rank !== undefined &&
        rank(held.claimant) < rank(before.claimant);
      if (before === undefined || lower) byReceipt.set(id, { key, claimant: held.claimant });
    }
    return new Set([...byReceipt.values()].map(({ key }) => key));
  }

  /**
   * The claims held for receipt `id`, now that it is recorded here, oldest first, forgotten here
   * (not those {@link HeldClaim.recorded}: {@link takeRecordedClaims}). A scan of at most
   * {@link MAX_HELD_CLAIMS}.
   */
  takeHeldClaims(id: string): HeldClaim[] {
    return this.#takeClaims((held) => !held.recorded && held.verdict.subjectId === id);
  }

  /**
   * The claims recorded here and held for the evidence of receipt `id` (see
   * {@link HeldClaim.recorded}), now that this validator remembers it again, oldest first,
   * forgotten here. A scan of at most {@link MAX_HELD_CLAIMS}.
   */
  takeRecordedClaims(id: string): HeldClaim[] {
    return this.#takeClaims((held) => held.recorded === true && held.verdict.subjectId === id);
  }

  /**
   * The claims `claimant` (hex) made that are held, now that its stake is here, oldest first,
   * forgotten here (not those {@link HeldClaim.recorded}: recorded, its stake was here). A scan of
   * at most {@link MAX_HELD_CLAIMS}.
   */
  takeHeldClaimsBy(claimant: string): HeldClaim[] {
    return this.#takeClaims((held) => !held.recorded && held.claimant === claimant);
  }

  /**
   * Forget the claims recorded here and held for their evidence (see {@link HeldClaim.recorded})
   * whose receipt `open` says no longer is (paid, slashed, challenged, past its window): no
   * takeover could be opened on them.
   */
  forgetRecordedClaimsUnless(open: (id: string) => boolean): void {
    this.#takeClaims((held) => held.recorded === true && !open(held.verdict.subjectId));
  }

  /** The held claims `which` picks (at most `limit`), oldest first, forgotten here. */
  #takeClaims(
    which: (held: HeldClaim & { claimant: string; heldAt?: number }, key: string) => boolean,
    limit = Infinity,
  ): HeldClaim[] {
    const taken: HeldClaim[] = [];
    for (const [key, held] of [...this.#claims]) {
      if (taken.length >= limit) break;
      if (!which(held, key)) continue;
      this.#claims.delete(key);
      this.#count(this.#claimsBy, held.claimant, -1);
      taken.push({ verdict: held.verdict, origin: held.origin });
    }
    return taken;
  }

  /** The claims held, oldest first (kept across a stop, {@link waiting}). */
  heldClaims(): HeldClaim[] {
    return [...this.#claims.values()].map(({ verdict, origin, recorded }) =>
      recorded ? { verdict, origin, recorded } : { verdict, origin }
    );
  }

  /**
   * What waits here for something else to arrive, oldest first, for keeping across a stop
   * (`_held_evidence.ts`): receipts waiting for their worker's pledge, peers' fraud proofs taken
   * and not settled yet (queued, being checked, or their settlement cut off by a failed ledger
   * write: at most {@link MAX_KEPT_TAKEN_FRAUD_PROOFS}, chosen as its doc says), fraud proofs
   * held for their receipt, and peers' "proof withheld" claims held ({@link holdClaim}).
   */
  waiting(): Waiting {
    const receipts = [...this.#awaitingStake.values()].flatMap((waiting) => [...waiting.values()]);
    const taken = this.#keptTaken();
    const held = [...this.#held.values()].flatMap((proofs) => [...proofs.values()]);
    const proofs: KeptProof[] = [
      ...taken.map(([, { proof, origin, takenAt }]) => ({ proof, origin, takenAt })),
      ...held.map(({ proof, origin }) => ({ proof, origin })),
    ];
    const claims = this.heldClaims();
    return { receipts, proofs, claims, keptTaken: new Set(taken.map(([hash]) => hash)) };
  }

  /**
   * Peers' fraud proofs taken and not settled yet that are kept across a stop, by hash, oldest
   * first: all of them up to {@link MAX_KEPT_TAKEN_FRAUD_PROOFS}, past it those the rounds choose
   * (each accuser's oldest, then each one's second oldest, ...).
   */
  #keptTaken(): [string, TakenFraudProof][] {
    // Peers' proofs only: this validator's own are kept in `own-fraud-proofs/`.
    const taken: [string, TakenFraudProof][] = [];
    for (const [hash, t] of this.#fraudProofs) if (t !== null && !t.own) taken.push([hash, t]);
    if (taken.length <= MAX_KEPT_TAKEN_FRAUD_PROOFS) return taken;
    const seen = new Map<string, number>();
    const round = taken.map(([, { proof }]) => {
      const accuser = toHex(proof.validator);
      const n = seen.get(accuser) ?? 0;
      seen.set(accuser, n + 1);
      return n;
    });
    return taken.map((_, i) => i)
      .sort((a, b) => round[a] - round[b] || a - b)
      .slice(0, MAX_KEPT_TAKEN_FRAUD_PROOFS)
      .sort((a, b) => a - b)
      .map((i) => taken[i]);
  }

  /**
   * The proofs held for a receipt `worker` (hex) signed for job `jobId`, now that one of its
   * receipts for the job is recorded here, in arrival order, forgotten here: those about the
   * receipt recorded, and those about another variant of it the worker signed (each settles
   * against the one recorded, `Ledger.fraudSubject`). A scan of at most
   * {@link MAX_HELD_FRAUD_PROOFS}.
   */
  takeHeldFraudProofs(jobId: string, worker: string): HeldFraudProof[] {
    const taken: HeldFraudProof[] = [];
    for (const [id, proofs] of [...this.#held]) {
      for (const [hash, held] of [...proofs]) {
        const { receipt } = held.proof;
        if (receipt.jobId !== jobId || toHex(receipt.worker) !== worker) continue;
        taken.push(held);
        this.#forgetHeld(id, proofs, hash, toHex(held.proof.validator));
      }
    }
    return taken;
  }
}
