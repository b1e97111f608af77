/**
 * The ValidatorActor's messages and answers: what a node's other actors, its network edge and
 * library users say to its ledger-keeping validator, and what it says back. The actor itself is
 * in `validator_actor.ts`.
 *
 * @module
 */
import type { Job, TensorData, TextJob } from "../protocols/job.ts";
import type { Receipt } from "../protocols/receipt.ts";
import type { JobAssignment } from "../protocols/assignment.ts";
import type { Verdict } from "../protocols/verdict.ts";
import type { FraudProof } from "../protocols/fraud_proof.ts";
import type { StakePledge } from "../protocols/stake_pledge.ts";
import type { ServedProof } from "../proof/served_proof.ts";
import type { ValidationResult } from "../proof/validation.ts";
import type { FraudCheckResult } from "../proof/fraud_check.ts";
import type { StreamCheckResult } from "../proof/stream_check.ts";
import type { StreamClaim } from "../protocols/stream_commitment.ts";
import type { StreamProof } from "../protocols/stream_proof.ts";
import type { ProofModel, ProofTensorModel } from "../proof/_common.ts";
import type { TrainingReceipt } from "../training/training_receipt.ts";
import type { TrainingRoundTerms } from "../proof/ledger.ts";
import type { TrainingFraudProofBody } from "../protocols/training_messages.ts";
import type { ClaimEvidence } from "../network/network_actor.ts";

/** What a "proof withheld" claim travels after (see `network/_accusations.ts`). */
export type { ClaimEvidence };

/** Where a validator gets what a challenge needs beyond the announcement. */
export interface ChallengeSource {
  /** The job a receipt is for, when the announcement did not carry it. */
  job?(receipt: Receipt): Promise<Job | undefined>;
  /**
   * The worker's proof data (text jobs) as it served it, signed; default: fetched from the
   * worker over the network. Undefined, or not signed by the worker: withheld. A throw is this
   * node's failure, not the worker's: `inconclusive / worker_unreachable` (unpaid, not slashed).
   */
  proof?(receipt: Receipt): Promise<ServedProof | undefined>;
  /** The output as delivered (needed for tensor jobs; optional for text). */
  output?(receipt: Receipt): Promise<string | Record<string, TensorData> | undefined>;
}

/** Where a validator finds models by CID. */
export interface ValidatorModelSource {
  /** The model, or undefined when this node does not hold it. */
  get(cid: string): Promise<ProofModel | ProofTensorModel | undefined>;
  /**
   * Whether this node holds the model, without loading it: asked for every receipt at intake
   * (a receipt on a model not held here earns no credit here, as nothing here can check it).
   * Absent: `get` answers it (loading the model, and holding the validator's mailbox while it
   * loads: give `has` where loading is slow), and a `get` that throws counts as held (a model
   * that fails to load is the validator's gap, judged in the challenge).
   */
  has?(cid: string): boolean | Promise<boolean>;
  /**
   * The model's tokenizer and window alone, for the intake's re-count of a receipt's prompt
   * tokens (`promptTokensAtIntake`): loading no session. Absent: `get` gives them (loading the
   * model in the mailbox at the first receipt that signs a count).
   */
  promptCounting?(cid: string): Promise<
    {
      readonly info: { readonly contextLength: number };
      readonly tokenizer: { encode(text: string): number[] };
    } | undefined
  >;
}

/** Where a receipt, verdict or fraud proof came from: this node, or a peer's hex key. */
export type Origin = "local" | string;

/** A receipt to record and maybe challenge. Answers {@link ReceiptHandled}. */
export interface ReceiptMessage {
  /** Message tag. */
  type: "receipt";
  /** The receipt (untrusted). */
  receipt: unknown;
  /** The job it is for (checked against the receipt's job id). */
  job?: TextJob;
  /**
   * The requester's signed assignment of the job to the receipt's worker (untrusted): without
   * a valid one the receipt is recorded but earns nothing (see `protocols/assignment.ts`).
   */
  assignment?: unknown;
  /** `local` for this node's own worker; the hex key of the peer that sent it otherwise. */
  origin?: Origin;
  /**
   * Have the NetworkActor announce it (with its job and assignment) to other nodes' validators
   * when it is new here and assigned: set for receipts of jobs this node relayed (it signed
   * their assignment), so a worker that announces nothing is announced all the same.
   */
  announce?: boolean;
  /**
   * Challenge it whatever the coin, when new here and its model is held: set in-process only, by
   * this node's router for a receipt whose worker's word blames another (a takeover that says
   * the ids it took over decode to other text than was relayed: `RelayedOutput.disputed`), which
   * acts on it only once the challenge's `result` says `valid`. A peer's announcement never sets
   * it (`peer_services.ts` builds the message field by field).
   */
  challenge?: boolean;
}
/** A fraud proof from anyone. Answers {@link FraudProofHandled}. */
export interface FraudProofMessage {
  /** Message tag. */
  type: "fraud_proof";
  /** The proof (untrusted). */
  proof: unknown;
  /** Who sent it. */
  origin?: Origin;
}
/**
 * A signed verdict from elsewhere (a peer's validator, a storage audit). Answers its id once
 * recorded, undefined when not, or {@link ForgedEvidence} for a peer's whose signature does not
 * verify.
 */
export interface VerdictMessage {
  /** Message tag. */
  type: "verdict";
  /** The signed verdict (checked before it is recorded). */
  verdict: Verdict;
  /** Who sent it. */
  origin?: Origin;
}
/**
 * The answer to a peer's `verdict` that fails a check its sender could have made itself: its
 * signature does not verify. An honest peer passes on only evidence its own ledger checked, so
 * the connection it came on is charged a refusal for it (`network/peer_services.ts`), as for a
 * fraud proof or a stream proof answered `skipped` `bad_signature` or `malformed` (review s80,
 * F2: 2,000 forged claims cost 2,000 signature checks and the connection nothing).
 */
export interface ForgedEvidence {
  /** Nothing was taken. */
  queued: false;
  /** Why. */
  skipped: "bad_signature";
}
/** A peer's stake pledge. Answers whether it was recorded. */
export interface PledgeMessage {
  /** Message tag. */
  type: "pledge";
  /** The pledge (checked before it is recorded). */
  pledge: StakePledge;
  /** Who sent it (a pledge new here from a peer is passed on to the other peers). */
  origin?: Origin;
  /**
   * A peer's pledge: the room its connection's address group has for a key this ledger has never
   * seen (`network/address_budget.ts`); such a pledge is recorded only if it takes one.
   */
  newKeys?: { take(): boolean };
}
/**
 * Signed stake pledges the ledger recorded (`Ledger.pledges`). Answers `StakePledge[]`: every
 * one in the order recorded, or the few the NetworkActor sends a peer (on connect: `limit`;
 * when the peer lacks a worker's stake: `key`).
 */
export interface PledgesMessage {
  /** Message tag. */
  type: "pledges";
  /** Only this key's pledge. */
  key?: Uint8Array;
  /** At most this many: the keys active in the ledger first, then the newest. */
  limit?: number;
}
/** Credit stake (bookkeeping). Answers nothing. */
export interface DepositMessage {
  /** Message tag. */
  type: "deposit";
  /** Key to credit. */
  key: Uint8Array;
  /** Amount. */
  amount: number;
}
/** Finalize receipts whose window closed. Answers their ids. */
export interface FinalizeMessage {
  /** Message tag. */
  type: "finalize";
}
/**
 * The validator's own timer after a ledger write failed: reopen the poisoned ledger from disk
 * (`_ledger_reopen.ts`). Answers nothing.
 */
export interface LedgerReopenMessage {
  /** Message tag. */
  type: "ledger_reopen";
}
/** Look up an account. Answers `Account` (proof/ledger.ts). */
export interface AccountMessage {
  /** Message tag. */
  type: "account";
  /** The key. */
  key: Uint8Array;
}
/**
 * Look up a receipt's ledger record. Answers `ReceiptRecord` (proof/ledger.ts) or undefined; with
 * `trainingReceipt`, the record a fraud proof about that receipt settles (`Ledger.trainingFraudSubject`:
 * its own, or the one its trainer had recorded for the round).
 */
export interface ReceiptStatusMessage {
  /** Message tag. */
  type: "receipt_status";
  /** Receipt id. */
  receiptId: string;
  /** The training receipt `receiptId` names, as its trainer signed it (a fraud proof carries it). */
  trainingReceipt?: TrainingReceipt;
}
/**
 * The verdicts this validator's ledger holds about a receipt (inference or training), in the order
 * recorded: its own challenge's and the peers' it recorded. Answers `Verdict[]` (empty when none
 * judged it here). What a program reads to learn how a receipt was judged; the ledger's outcome
 * (credited, slashed) is `receipt_status` and `account`. It reads every verdict the ledger holds
 * (the ledger keeps no index by receipt): a call for a program or an audit, not for a hot path.
 */
export interface VerdictsMessage {
  /** Message tag. */
  type: "verdicts";
  /** Receipt id (the verdicts' `subjectId`). */
  receiptId: string;
}
/** Ask for the validator's {@link ValidatorStats}. */
export interface ValidatorStatsMessage {
  /** Message tag. */
  type: "stats";
}
/** Whether `key` has ever been slashed in this ledger. Answers a boolean. */
export interface ConvictedMessage {
  /** Message tag. */
  type: "convicted";
  /** The worker's key. */
  key: Uint8Array;
}
/**
 * What a ledger-keeping peer that connects is sent to catch up, whose receipt's window is still
 * open: every fraud proof this validator settled as confirmed (its own, a peer's it confirmed;
 * inference and training), then the verdict of each challenge ending its start applied and of each
 * fault it decided (a "proof withheld" one with its receipt and job, while kept: `_catch_up.ts`),
 * then the receipts it assigned that are pending here (`_catch_up_receipts.ts`). Answers
 * `CatchUpItem[]`.
 */
export interface CatchUpMessage {
  /** Message tag. */
  type: "catch_up";
}
/**
 * One thing a connecting peer is sent to catch up: a confirmed fraud proof (of an inference
 * receipt, or of a training receipt as training gossip carries it), a confirmed stream proof (a
 * lost worker's wrong tokens, `protocols/stream_proof.ts`), a verdict — a "proof
 * withheld" fault with the receipt and job it is about (`evidence`, sent ahead of it, as a claim
 * passed on is: `ClaimEvidence`) while this validator keeps them (bounded, `_catch_up.ts`) — or
 * the announcement of a receipt this node assigned, pending here (`_catch_up_receipts.ts`).
 */
export type CatchUpItem =
  | { kind: "verdict"; verdict: Verdict; evidence?: ClaimEvidence }
  | { kind: "fraud_proof"; proof: FraudProof }
  | { kind: "training_fraud_proof"; body: TrainingFraudProofBody }
  | { kind: "stream_proof"; proof: StreamProof }
  | AssignedReceiptItem;
/**
 * The announcement of a receipt this node assigned: the worker's receipt, its job and this node's
 * signed assignment, as `validation.receipt` carries them.
 */
export interface AssignedReceiptItem {
  /** Item tag. */
  kind: "assigned_receipt";
  /** The worker's signed receipt. */
  receipt: Receipt;
  /** Its job. */
  job: TextJob;
  /** This node's assignment of the job to the receipt's worker. */
  assignment: JobAssignment;
}
/**
 * Whether a receipt for job `jobId` is recorded here (signed by `worker`, when given: a worker
 * asks about its own, since a receipt any other key signed for the job says nothing of whether
 * it ran the job). Answers a boolean.
 */
export interface JobRecordedMessage {
  /** Message tag. */
  type: "job_recorded";
  /** Hex job id. */
  jobId: string;
  /** The receipt's signer; default any. */
  worker?: Uint8Array;
}
/** Whether `key` has stake recorded here. Answers a boolean. */
export interface HasStakedMessage {
  /** Message tag. */
  type: "has_staked";
  /** The key. */
  key: Uint8Array;
}
/**
 * Whether `validator` has accused receipt `receiptId` in this ledger (a settled accusation: one
 * is taken per accuser and receipt). Answers a boolean.
 */
export interface HasAccusedMessage {
  /** Message tag. */
  type: "has_accused";
  /** The accuser's key. */
  validator: Uint8Array;
  /** Receipt id. */
  receiptId: string;
}
/** Internal: a fraud proof's check finished; it is settled here. */
export interface FraudCheckedMessage {
  /** Message tag. */
  type: "fraud_checked";
  /** The checked proof. */
  proof: FraudProof;
  /** What the check concluded. */
  check: FraudCheckResult;
  /** Whether the proof is this validator's own, from its own (ledger-held) challenge. */
  own?: boolean;
  /** The peer it came from (not sent back there). */
  origin?: Origin;
}
/**
 * A stream claim from this node's router (`network/failover.ts`): a worker it lost streamed
 * tokens the takeovers refused, signed. In-process only: a peer's claim comes as a stream proof
 * its accuser signed ({@link StreamProofMessage}), whose stake answers for it. Answers
 * {@link StreamClaimHandled}.
 */
export interface StreamClaimMessage {
  /** Message tag. */
  type: "stream_claim";
  /** The claim (checked before anything is done with it). */
  claim: unknown;
}
/** The answer to a `stream_claim` message. */
export interface StreamClaimHandled {
  /** Whether it was taken for a check. */
  queued: boolean;
  /** Why not: `malformed`, `duplicate`, `already_settled`, `self_accusation`, `busy`. */
  skipped?: string;
  /** In-process only: resolves with the check once the claim is settled (or refuted). */
  result?: Promise<StreamCheckResult>;
}
/**
 * A peer's stream proof (`validation.stream_proof`, `protocols/stream_proof.ts`): a claim its
 * accuser checked and signed. Answers {@link StreamProofHandled}.
 */
export interface StreamProofMessage {
  /** Message tag. */
  type: "stream_proof";
  /** The proof (untrusted). */
  proof: unknown;
  /** Who sent it (not sent back there). */
  origin?: Origin;
}
/** The answer to a `stream_proof` message. */
export interface StreamProofHandled {
  /** Whether it was taken for a check. */
  queued: boolean;
  /**
   * Why not: `malformed` (or a job past one frame), `bad_signature`, `duplicate`,
   * `already_settled`, `own_proof` (signed with this node's key), `self_accusation`,
   * `not_requester` (its accuser is not the job's requester), `repeated_accusation` (its accuser
   * accused the stream here before), `unstaked_worker` (the worker has no stake here),
   * `unstaked_accuser` (its free stake here does not cover the penalty), `busy` (its accuser holds
   * the most of the proofs being checked, and they fill the bound).
   */
  skipped?: string;
  /** In-process only: resolves with the check once the proof is settled. */
  result?: Promise<StreamCheckResult>;
  /**
   * Held for the worker's or the accuser's pledge (`skipped` says whose), and taken again when it
   * is recorded here.
   */
  awaitingPledge?: boolean;
}
/** Internal: a stream claim was checked; settle it. */
export interface StreamCheckedMessage {
  /** Message tag. */
  type: "stream_checked";
  /** The checked claim. */
  claim: StreamClaim;
  /** What names it among the claims taken: the claim's hash, or its peer's proof's. */
  hash?: string;
  /** What the check concluded. */
  check: StreamCheckResult;
}
/** Internal: a challenge ended without a result (the actor stopping, an error). */
export interface ChallengeFailedMessage {
  /** Message tag. */
  type: "challenge_failed";
  /** The challenged receipt. */
  receipt: Receipt;
  /** What went wrong. */
  reason: string;
}
/** Internal: a challenge finished; its verdict is recorded, settled and spread here. */
export interface ChallengedMessage {
  /** Message tag. */
  type: "challenged";
  /** The challenged receipt. */
  receipt: Receipt;
  /**
   * Its job, when the challenge had it: a "proof withheld" verdict is passed on after the receipt
   * and job (the evidence a ledger that forgot them takes it over with, `ClaimEvidence`).
   */
  job?: Job;
  /** What the validation concluded. */
  result: ValidationResult;
}

/**
 * A training receipt to record as pending against its round's terms (`Ledger.
 * recordTrainingReceipt`). Answers {@link TrainingReceiptRecorded}; never throws for a refusal.
 */
export interface TrainingReceiptLedgerMessage {
  /** Message tag. */
  type: "training_receipt";
  /** The trainer's signed receipt (checked by the ledger). */
  receipt: TrainingReceipt;
  /** The round it is recorded against, as the coordinator announced it. */
  terms: TrainingRoundTerms;
  /**
   * Whether this ledger pays it: its round was coordinated here, or its outcome was audited
   * here. Gossip alone records it (slashable) without credit; a later `credited` message for a
   * receipt already recorded adds the credit.
   */
  credited?: boolean;
}
/**
 * A training fraud proof checked by the caller (`training/training_validator.ts`), to settle
 * (`Ledger.settleTrainingFraud`); its receipt is recorded first when this ledger lacks it.
 * Answers `{ settled, slashed }`.
 */
export interface TrainingFraudLedgerMessage {
  /** Message tag. */
  type: "training_fraud";
  /** The receipt the proof is about (signed by the trainer). */
  receipt: TrainingReceipt;
  /** Hex hash of the proof. */
  fraudProofHash: string;
  /** The validator who signed it. */
  validator: Uint8Array;
  /** Whether the check confirmed it. */
  confirmed: boolean;
  /** The check's reason code. */
  reason: string;
  /**
   * The proof as training gossip carries it: kept for the catch-up of the peers that connect
   * later when it settles as confirmed (`_catch_up.ts`). Absent: settled, not kept.
   */
  body?: TrainingFraudProofBody;
  /**
   * When the training validator took the proof for checking (unix ms, the ledger's clock; kept
   * across its restart): one taken inside the receipt's window settles after it, as an
   * inference proof does. Absent: when it took it, as told by `training_checking`, else now.
   */
  takenAt?: number;
}
/**
 * A peer's training fraud proof is being checked by the training validator (a re-run of training
 * steps, slow), or no longer is: while it is, its receipt is not finalized here (paid at the
 * tick, the lazy trainer the proof catches would keep the pay), as for a peer's inference proof
 * being checked. Its settlement (`training_fraud`) ends the hold too. Answers nothing.
 */
export interface TrainingCheckingMessage {
  /** Message tag. */
  type: "training_checking";
  /** Hex hash of the proof. */
  fraudProofHash: string;
  /**
   * The receipt it accuses and when it was taken (unix ms, the ledger's clock): held. Absent:
   * its check ended unsettled, or the proof was not taken again: released.
   */
  hold?: { receiptId: string; takenAt: number };
}
/**
 * This ledger's owner opens or ends its challenge of a recorded training receipt
 * (`training/training_validator.ts`): `open` holds it `challenged` (not paid until the challenge
 * ends; a restart before that leaves it unresolved, as an inference challenge), `passed` makes
 * it pending again (paid when its window closes), `undecided` leaves it unpaid with `reason`. A
 * fraud proof's settlement ends it too. Answers whether the ledger changed (false: the receipt is
 * not here, not open, past its window, or not a training receipt).
 */
export interface TrainingChallengeLedgerMessage {
  /** Message tag. */
  type: "training_challenge";
  /** The training receipt's id. */
  receiptId: string;
  /** What happens to the challenge. */
  step: "open" | "passed" | "undecided";
  /** Why it ended undecided (a stable code). */
  reason?: string;
}
/**
 * The training receipts this ledger holds `challenged` (its training validator's open
 * challenges), for a training validator that starts while the ledger runs on. Answers `string[]`.
 */
export interface TrainingChallengedMessage {
  /** Message tag. */
  type: "training_challenged";
}
/** The answer to `training_receipt`. */
export interface TrainingReceiptRecorded {
  /** Whether it is pending (or settled) in the ledger now. */
  recorded: boolean;
  /** Whether it was new here (gossip passes on only what is new). */
  fresh: boolean;
  /** Why the ledger refused it (error code). */
  refusal?: string;
}

/** Every message the ValidatorActor accepts. */
export type ValidatorMessage =
  | ReceiptMessage
  | FraudProofMessage
  | VerdictMessage
  | PledgeMessage
  | PledgesMessage
  | DepositMessage
  | FinalizeMessage
  | LedgerReopenMessage
  | AccountMessage
  | ReceiptStatusMessage
  | VerdictsMessage
  | ValidatorStatsMessage
  | HasStakedMessage
  | HasAccusedMessage
  | JobRecordedMessage
  | ConvictedMessage
  | CatchUpMessage
  | ChallengedMessage
  | ChallengeFailedMessage
  | FraudCheckedMessage
  | StreamClaimMessage
  | StreamProofMessage
  | StreamCheckedMessage
  | TrainingReceiptLedgerMessage
  | TrainingFraudLedgerMessage
  | TrainingCheckingMessage
  | TrainingChallengeLedgerMessage
  | TrainingChallengedMessage;

/**
 * A receipt's refusal for want of its worker's stake, when the validator did not keep it for the
 * worker's pledge: the worker has no stake here yet, as for `insufficient_stake` (which says the
 * receipt is kept, and taken again once the pledge comes), but the validator already keeps as many
 * receipts as it keeps waiting, for that worker or for as many workers
 * (`actors/_validator_memory.ts`). Answered so that its sender, which holds it, sends the pledge
 * and then the receipt again (`network/_peer_gossip.ts`): refused like the others, it was dropped
 * unsaid, and an honest worker that served more jobs than that before its pledge reached this
 * ledger went unpaid here for the rest (review s62).
 */
export const INSUFFICIENT_STAKE_NOT_KEPT = "insufficient_stake_not_kept";

/** The answer to a `receipt` message. */
export interface ReceiptHandled {
  /** Receipt id. */
  receiptId: string;
  /** Whether it is pending in the ledger (false: refused, see `refusal`). */
  recorded: boolean;
  /**
   * Why the ledger refused it (error code); for want of its worker's stake, `insufficient_stake`
   * when it is kept for the worker's pledge, {@link INSUFFICIENT_STAKE_NOT_KEPT} when it is not.
   */
  refusal?: string;
  /**
   * Why it was recorded without credit here, though assigned: `model_unavailable` (this
   * validator does not hold its model, so nothing here can check it: the ledgers of validators
   * that hold it pay it).
   */
  uncredited?: "model_unavailable";
  /** Whether this validator challenges it (never sent to the worker). */
  challenged: boolean;
  /** The validator's coin (1 for receipts it never draws for: its own, malformed ones). */
  draw: number;
  /** In-process only: resolves once the challenge's verdict is recorded and settled. */
  result?: Promise<ValidationResult>;
}

/** The answer to a `fraud_proof` message. */
export interface FraudProofHandled {
  /** Whether it was queued to be checked (one forward pass up to the cited positions). */
  queued: boolean;
  /**
   * Why not: `malformed`, `bad_signature` (the proof's, or the receipt's, checked whether or not
   * the receipt is recorded here), `duplicate` (this proof was already taken), `not_pending` (its receipt is
   * already final or settled here), `unstaked_accuser` (its signer's stake here does not cover
   * the false-accusation penalty of this proof and of its others still being checked or held,
   * so checking it would be free work: held for the pledge when the signer has none here yet,
   * `awaitingPledge`; from a signer that pledged, skipped only once its receipt's unbacked checks
   * are spent, or past its window, `actors/_unbacked_checks.ts`), `repeated_accusation` (its
   * signer's accusation of this receipt was left undecided here; one still being checked, held
   * for the receipt, or held for its signer's pledge (review s77) queues the next,
   * `awaitingAccusation`, stop 77; one that settled does not block its next, review s76),
   * `self_accusation` (signed by the receipt's own worker).
   */
  skipped?:
    | "malformed"
    | "bad_signature"
    | "duplicate"
    | "not_pending"
    | "unstaked_accuser"
    | "repeated_accusation"
    | "self_accusation";
  /**
   * Its receipt is not recorded here yet: the proof is held (bounded) and checked once the
   * receipt comes in through the intake; it never records the receipt itself.
   */
  awaitingReceipt?: boolean;
  /**
   * Its signer's accusation of this receipt is still in flight here (being checked, or held for
   * the receipt): the proof is queued behind it (bounded, `_queued_accusations.ts`) and taken
   * again once that one settles; `result` settles with its own check.
   */
  awaitingAccusation?: boolean;
  /**
   * Skipped as `unstaked_accuser` for now: its signer has no stake pledged here yet, so the proof
   * is held (bounded, `_pledge_held_proofs.ts`) and taken again when the pledge comes in.
   */
  awaitingPledge?: boolean;
  /** In-process only: resolves once the proof is checked and settled. */
  result?: Promise<FraudCheckResult>;
}

/**
 * A ledger write that failed for a cause other than the ledger's refusal
 * ({@link ValidatorStats.ledgerWriteFault}; `_ledger_write_faults.ts`).
 */
export interface LedgerWriteFault {
  /** The cause's code as the OS gives it (`EIO`, `ENOSPC`, `EPERM`), else the error's name. */
  cause: string;
  /** What failed and what to do: the ledger's directory and the cause's message. */
  message: string;
  /** Ledger-clock ms of the first failure since the last write that succeeded. */
  since: number;
  /** Writes (and reopens from disk) that failed since then. */
  failures: number;
  /** Reopens from disk tried since then (`_ledger_reopen.ts`): one per backoff delay at most. */
  reopens: number;
  /**
   * Ledger-clock ms of the reopen from disk that succeeded after the last failure, if one did:
   * the ledger takes writes again, so `/healthz` no longer shows the condition (the counters stay
   * until a write succeeds, for the line that says so); a write that fails after it clears this.
   */
  reopenedAt?: number;
}

/**
 * Whether `fault` still stands: writes failed, and no reopen from disk has succeeded since
 * ({@link LedgerWriteFault.reopenedAt}). What `/healthz`, the heartbeat and `status` say alike.
 */
export function ledgerWritesFailing(
  fault: LedgerWriteFault | undefined,
): fault is LedgerWriteFault {
  return fault !== undefined && fault.reopenedAt === undefined;
}

/** Counters of the validator (served on `/metrics` and in the heartbeat). */
export interface ValidatorStats {
  /**
   * Receipts handed to the validator (local and from peers), copies included: a job's receipt
   * comes once from the router that checked it and again in each announcement of it.
   */
  received: number;
  /** Receipts from peers among them. */
  fromPeers: number;
  /** Receipts among {@link received} that this ledger already held (copies of one job's). */
  copies: number;
  /** Copies among {@link fromPeers}. */
  copiesFromPeers: number;
  /**
   * Receipts not recorded, copies aside: refused by the intake or the ledger (malformed, bad
   * signature, not enough stake, stale) or lost to a ledger write that failed
   * (`ledger_write_failed`, {@link ledgerWriteFault}).
   */
  refused: number;
  /** Refused receipts from peers among them. */
  refusedFromPeers: number;
  /**
   * The ledger's last write that failed for a cause other than the ledger's refusal (a disk error,
   * a file that cannot be written), while no write has succeeded since; absent while the ledger
   * writes. `/healthz` shows it as the `ledger_write_failed` condition (`ledger_conditions.ts`)
   * until the ledger is reopened from disk ({@link LedgerWriteFault.reopenedAt}).
   */
  ledgerWriteFault?: LedgerWriteFault;
  /** Own receipts: recorded and announced, never challenged here. */
  own: number;
  /** Receipts this validator challenged. */
  challenged: number;
  /** Verdicts this validator signed, by outcome. */
  verdicts: Record<"valid" | "fraud" | "invalid" | "inconclusive", number>;
  /** Verdicts received from peers and recorded. */
  peerVerdicts: number;
  /** Verdicts from peers refused (bad signature). */
  refusedVerdicts: number;
  /** Fraud proofs checked (own and from peers). */
  fraudProofsChecked: number;
  /** Fraud proofs not checked (malformed, a copy, nothing pending, an accuser without stake). */
  fraudProofsSkipped: number;
  /** Fraud proofs, faults (proof data withheld) and pledge equivocations that slashed a key here. */
  slashes: number;
  /** Challenges that ended undecided here (the job is not paid). */
  unresolved: number;
  /** Challenges open now (queued or running): the depth of the validation queue. */
  openChallenges: number;
  /** Fraud proofs taken and being checked now (queued or running; not those held). */
  fraudProofsChecking: number;
  /**
   * Stream claims from this node's router checked here (`_stream_claims.ts`), by outcome:
   * confirmed (the worker convicted, counted in `slashes` too), refuted, or undecided (no model,
   * no input, uncalibrated).
   */
  streamClaims: Record<"confirmed" | "refuted" | "undecided", number>;
  /**
   * Peers' stream proofs (`_stream_claims.ts`): checked here, by outcome (a confirmed one
   * convicted the worker, a refuted one charged its accuser), or skipped at intake.
   */
  streamProofs: Record<"confirmed" | "refuted" | "undecided" | "skipped", number>;
  /**
   * Peers' pledges of keys this ledger has never seen, not recorded for want of room in their
   * address group's or the node's budget (`network/address_budget.ts`); the sender sends it
   * again on its next connect (its own) or when this ledger needs the key's stake.
   */
  newKeyPledgesRefused: number;
}

/** The stats of a validator that has taken nothing yet: every counter at 0. */
export function emptyValidatorStats(): ValidatorStats {
  return {
    received: 0,
    fromPeers: 0,
    copies: 0,
    copiesFromPeers: 0,
    refused: 0,
    refusedFromPeers: 0,
    own: 0,
    challenged: 0,
    verdicts: { valid: 0, fraud: 0, invalid: 0, inconclusive: 0 },
    peerVerdicts: 0,
    refusedVerdicts: 0,
    fraudProofsChecked: 0,
    fraudProofsSkipped: 0,
    slashes: 0,
    unresolved: 0,
    openChallenges: 0,
    fraudProofsChecking: 0,
    streamClaims: { confirmed: 0, refuted: 0, undecided: 0 },
    streamProofs: { confirmed: 0, refuted: 0, undecided: 0, skipped: 0 },
    newKeyPledgesRefused: 0,
  };
}

/**
 * What a validator did, as it happens, for watchers (the dashboard, `/metrics`): read-only, one
 * call per receipt recorded, verdict recorded (its own, with how long the validation took, or a
 * peer's, or a storage audit's) and fraud proof settled. See `ValidatorActorOptions.onActivity`.
 */
export type ValidatorActivity =
  | {
    /** A receipt was handed to this validator. */
    kind: "receipt";
    /** Its id. */
    receiptId: string;
    /** Its job. */
    jobId: string;
    /** Hex key of the worker that signed it. */
    worker: string;
    /** Where it came from. */
    origin: Origin;
    /** Whether the ledger recorded it. */
    recorded: boolean;
    /** Whether this validator challenges it. */
    challenged: boolean;
    /** Tokens it claims. */
    tokens: number;
  }
  | {
    /** A verdict was recorded in this ledger. */
    kind: "verdict";
    /** The signed verdict. */
    verdict: Verdict;
    /** Whether this validator signed it (after its own challenge). */
    own: boolean;
    /** How long the validation took (own verdicts), ms. */
    validationMs?: number;
    /** The fraud proof behind an own `fraud` verdict. */
    fraudProof?: FraudProof;
  }
  | {
    /** A fraud proof was checked and settled here. */
    kind: "fraud";
    /** The proof. */
    proof: FraudProof;
    /** Whether the check confirmed it (the worker is slashed). */
    confirmed: boolean;
    /** The check's reason code. */
    reason: string;
  };
