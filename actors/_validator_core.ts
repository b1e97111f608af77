/**
 * What the ValidatorActor's parts share (`validator_actor.ts`): its options, its ledger and the
 * files kept beside it, its bounded memories and open-challenge holds, its stats, and the few
 * calls every part makes (the ledger's clock, the log, the watcher, the NetworkActor, the serial
 * work queue). The actor builds one {@link ValidatorCore} in its constructor and hands it to its
 * parts: the challenges (`_challenges.ts`), the fraud proofs (`_fraud_proofs.ts`), the receipt
 * intake (`_receipt_intake.ts`), peers' verdicts (`_peer_verdicts.ts`) and what the start resumes
 * (`_validator_restart.ts`). What the actor opens at its start (the ledger, the files) is
 * read through a call, at each use, as the actor's own fields were. Read and written only inside
 * the actor's `receive` (and its start). Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "./actor.ts";
import type { ActorSystem } from "./actor_system.ts";
import type { Ledger, ReceiptRecord } from "../proof/ledger.ts";
import type { NetworkMessage } from "../network/network_actor.ts";
import type { CatchUp } from "./_catch_up.ts";
import type { ChallengeEndings } from "./_challenge_endings.ts";
import type { ChallengeHolds } from "./_challenge_holds.ts";
import type { ReceiptFiles } from "./_receipt_files.ts";
import type { TakeoverBudget } from "./_takeover_budget.ts";
import type { ValidatorMemory } from "./_validator_memory.ts";
import type { LedgerReopen } from "./_ledger_reopen.ts";
import type { ValidatorActorOptions } from "./validator_actor.ts";
import type { ValidatorActivity, ValidatorMessage, ValidatorStats } from "./validator_messages.ts";

/** The ValidatorActor's state and calls its parts share (see the module doc). */
export interface ValidatorCore {
  /** The actor's options. */
  readonly options: ValidatorActorOptions;
  /** The ledger, open from the actor's start. */
  ledger(): Ledger;
  /** What a ledger-keeping peer that connects later is sent (`_catch_up.ts`). */
  catchUp(): CatchUp;
  /** This validator's own fraud proofs between verdict and settlement, on disk. */
  ownProofs(): ReceiptFiles;
  /** How challenges without a fraud proof ended, on disk until the ledger has it. */
  endings(): ChallengeEndings;
  /** Receipts drawn for a challenge, with their jobs, on disk until the challenge ends. */
  drawn(): ReceiptFiles;
  /** Peers' receipts recorded and not drawn, with their jobs, on disk while remembered. */
  pending(): ReceiptFiles;
  /** This node's own receipts its ledger refused, each with its job id, on disk for good. */
  ownRefused(): ReceiptFiles;
  /** The claims open takeovers were opened on, on disk until the challenge ends. */
  takenOver(): ReceiptFiles;
  /** The jobs of the receipts in `ownRefused`. */
  readonly ownRefusedJobs: Set<string>;
  /** Receipts whose own proof was resumed at start: passed on once it is confirmed here. */
  readonly resumed: Set<string>;
  /** The system, for looking up the NetworkActor by name when work runs outside `receive`. */
  system(): ActorSystem | undefined;
  /** Receipts with an open challenge here (not to be finalized), counted per worker. */
  readonly held: ChallengeHolds;
  /** Receipts awaiting stake, peers' receipts, verdict authors and fraud proofs (bounded). */
  readonly memory: ValidatorMemory;
  /** Credit for taking over peers' "proof withheld" claims, and false claimants held back. */
  readonly takeovers: TakeoverBudget;
  /** The ledger's reopen after a failed write (`_ledger_reopen.ts`). */
  ledgerReopen(): LedgerReopen;
  /** The counters the `stats` message reports. */
  readonly stats: ValidatorStats;
  /** The ledger's clock (ms). */
  now(): number;
  /** One line to the actor's log. */
  log(line: string): void;
  /** Tell the watcher what happened. */
  tell(activity: ValidatorActivity): void;
  /** Tell the NetworkActor, if there is one. */
  tellNetwork(ctx: ActorContext<ValidatorMessage>, message: NetworkMessage): void;
  /** The serial work queue: one validation (one forward pass) at a time. */
  enqueue<T>(task: () => Promise<T>): Promise<T>;
  /** Whether `record` is pending inside its window. */
  inWindow(record: ReceiptRecord | undefined): record is ReceiptRecord;
}
