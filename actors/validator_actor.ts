/**
 * ValidatorActor: samples receipts, challenges them, signs verdicts, settles fraud proofs and
 * owns the ledger.
 *
 * Every receipt it hears about is recorded in the ledger as pending (if its worker has stake
 * to back it). The validator's coin (`proof/challenge.ts`) decides whether to challenge it; a
 * challenge gathers the material through {@link ChallengeSource} (the job, the worker's proof
 * data, the output — in-process in tests, over the wire in a node) and the model through
 * {@link ValidatorModelSource}, validates on a serial work queue (one forward pass at a time,
 * so challenges never starve inference of CPU), records the verdict and, for a fraud, checks
 * its own proof and settles it. Fraud proofs from other validators are checked and settled the
 * same way. A timer finalizes receipts whose challenge window has closed.
 *
 * The `receipt` message answers at once with whether it will be challenged and a promise of
 * the result, so the mailbox is never held for a forward pass.
 *
 * @module
 */
import type { Actor, ActorContext } from "./actor.ts";
import type { Identity } from "../protocols/identity.ts";
import type { Job, TensorData } from "../protocols/job.ts";
import { parseReceipt, type Receipt, receiptId } from "../protocols/receipt.ts";
import { signVerdict, type Verdict } from "../protocols/verdict.ts";
import type { FraudProof } from "../protocols/fraud_proof.ts";
import type { ProofData } from "../proof/commitment.ts";
import { challengeTicket } from "../proof/challenge.ts";
import {
  emptyValidationStats,
  validateReceipt,
  type ValidationOptions,
  type ValidationResult,
} from "../proof/validation.ts";
import { checkFraudProof, type FraudCheckResult } from "../proof/fraud_check.ts";
import type { ProofModel, ProofTensorModel } from "../proof/_common.ts";
import { type Account, Ledger, type LedgerOptions, type ReceiptRecord } from "../proof/ledger.ts";

/** Where a validator gets what a challenge needs. */
export interface ChallengeSource {
  /** The job a receipt is for (for private jobs: with the sealed input opened). */
  job(receipt: Receipt): Promise<Job | undefined>;
  /** The worker's proof data (text jobs). */
  proof(receipt: Receipt): Promise<ProofData | undefined>;
  /** The output as delivered (needed for tensor jobs; optional for text). */
  output?(receipt: Receipt): Promise<string | Record<string, TensorData> | undefined>;
}

/** Where a validator finds models by CID. */
export interface ValidatorModelSource {
  /** The model, or undefined when this node does not hold it. */
  get(cid: string): Promise<ProofModel | ProofTensorModel | undefined>;
}

/** A receipt to record and maybe challenge. Answers {@link ReceiptHandled}. */
export interface ReceiptMessage {
  /** Message tag. */
  type: "receipt";
  /** The receipt (untrusted). */
  receipt: unknown;
}

/** A fraud proof from anyone. Answers {@link FraudCheckResult}. */
export interface FraudProofMessage {
  /** Message tag. */
  type: "fraud_proof";
  /** The proof (untrusted). */
  proof: unknown;
}

/** A verdict from elsewhere (storage audits). Answers the verdict id. */
export interface VerdictMessage {
  /** Message tag. */
  type: "verdict";
  /** The signed verdict. */
  verdict: Verdict;
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

/** Look up an account. Answers {@link Account}. */
export interface AccountMessage {
  /** Message tag. */
  type: "account";
  /** The key. */
  key: Uint8Array;
}

/** Look up a receipt's ledger record. Answers {@link ReceiptRecord} or undefined. */
export interface ReceiptStatusMessage {
  /** Message tag. */
  type: "receipt_status";
  /** Receipt id. */
  receiptId: string;
}

/** Every message the ValidatorActor accepts. */
export type ValidatorMessage =
  | ReceiptMessage
  | FraudProofMessage
  | VerdictMessage
  | DepositMessage
  | FinalizeMessage
  | AccountMessage
  | ReceiptStatusMessage;

/** The answer to a `receipt` message. */
export interface ReceiptHandled {
  /** Receipt id. */
  receiptId: string;
  /** Whether it entered the ledger as pending (false: refused, see `refusal`). */
  recorded: boolean;
  /** Why the ledger refused it (error code). */
  refusal?: string;
  /** Whether this validator challenges it. */
  challenged: boolean;
  /** The validator's coin (for audit by others). */
  draw: number;
  /** The validation, for challenged receipts. */
  result?: Promise<ValidationResult>;
}

/** Options of {@link ValidatorActor}. */
export interface ValidatorActorOptions {
  /** The validator identity (signs verdicts, fraud proofs and the ledger). */
  identity: Identity;
  /** Ledger directory (for example `.veriflow/ledger`). */
  ledgerDir: string;
  /** Ledger economics and pricing. */
  ledger?: LedgerOptions;
  /** Challenge material. */
  source: ChallengeSource;
  /** Models. */
  models: ValidatorModelSource;
  /** Challenge probability; default the ledger economics' `challengeProbability`. */
  challengeProbability?: number;
  /** Tolerances for validation and checking. */
  validation?: ValidationOptions;
  /** How often to finalize due receipts, ms; default 10 s; 0 disables the timer. */
  finalizeIntervalMs?: number;
}

/** Default finalize timer period: a fraction of the default 10-minute window. */
export const DEFAULT_FINALIZE_INTERVAL_MS = 10_000;

/** The validator actor. */
export class ValidatorActor implements Actor<ValidatorMessage> {
  readonly #options: ValidatorActorOptions;
  #ledger?: Ledger;
  #work: Promise<unknown> = Promise.resolve();

  /**
   * Create the actor (the factory of its ChildSpec calls this).
   * @param options Identity, ledger, sources.
   */
  constructor(options: ValidatorActorOptions) {
    this.#options = options;
  }

  /** Opens the ledger (verifying it) and starts the finalize timer. */
  async preStart(ctx: ActorContext<ValidatorMessage>): Promise<void> {
    this.#ledger = await Ledger.open(
      this.#options.ledgerDir,
      this.#options.identity,
      this.#options.ledger,
    );
    const every = this.#options.finalizeIntervalMs ?? DEFAULT_FINALIZE_INTERVAL_MS;
    if (every > 0) {
      const timer = setInterval(() => {
        ctx.self.tell({ type: "finalize" }).catch(() => {});
      }, every);
      ctx.signal.addEventListener("abort", () => clearInterval(timer), { once: true });
    }
  }

  /** Waits for queued validations and closes the ledger. */
  async postStop(): Promise<void> {
    await this.#work.catch(() => {});
    await this.#ledger?.close();
  }

  /** Handle one message (see {@link ValidatorMessage}). */
  async receive(message: ValidatorMessage, ctx: ActorContext<ValidatorMessage>): Promise<unknown> {
    const ledger = this.#ledger!;
    switch (message.type) {
      case "receipt":
        return await this.#onReceipt(message.receipt, ctx);
      case "fraud_proof":
        return await this.#settle(message.proof as FraudProof);
      case "verdict":
        return await ledger.recordVerdict(message.verdict);
      case "deposit":
        return await ledger.deposit(message.key, message.amount);
      case "finalize":
        return await ledger.finalizeDue();
      case "account":
        return ledger.account(message.key);
      case "receipt_status":
        return ledger.receipt(message.receiptId);
    }
  }

  async #onReceipt(value: unknown, ctx: ActorContext<ValidatorMessage>): Promise<ReceiptHandled> {
    const ledger = this.#ledger!;
    let receipt: Receipt;
    try {
      receipt = parseReceipt(value);
    } catch {
      // Garbage from a peer is a normal outcome, not a reason to crash the validator.
      return {
        receiptId: "",
        recorded: false,
        refusal: "malformed_receipt",
        challenged: false,
        draw: 1,
      };
    }
    const id = receiptId(receipt);
    let recorded = true;
    let refusal: string | undefined;
    try {
      if (!ledger.receipt(id)) await ledger.recordReceipt(receipt);
    } catch (e) {
      recorded = false;
      refusal = (e as { code?: string }).code ?? "refused";
    }
    const p = this.#options.challengeProbability ?? ledger.economics.challengeProbability;
    const { draw } = challengeTicket(this.#options.identity, receipt.jobId);
    const challenged = draw < p;
    const handled: ReceiptHandled = { receiptId: id, recorded, refusal, challenged, draw };
    if (challenged) {
      const result = this.#enqueue(() => this.#challenge(receipt, ctx.signal));
      result.catch(() => {});
      handled.result = result;
    }
    return handled;
  }

  /** Serial work queue: one validation (one forward pass) at a time. */
  #enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#work.then(task, task);
    this.#work = run.catch(() => {});
    return run;
  }

  async #challenge(receipt: Receipt, signal: AbortSignal): Promise<ValidationResult> {
    const { source, models, identity, validation } = this.#options;
    const job = await source.job(receipt);
    const model = await models.get(receipt.model);
    const ledger = this.#ledger!;
    if (!job || !model) {
      // Without the job or the model nothing can be concluded; nothing is recorded against anyone.
      const verdict = signVerdict({
        v: 1,
        subject: "inference",
        subjectId: receiptId(receipt),
        target: receipt.worker,
        outcome: "inconclusive",
        reason: job ? "model_unavailable" : "job_unavailable",
        issuedAt: Date.now(),
      }, identity);
      return { verdict, stats: emptyValidationStats() };
    }
    const proof = receipt.kind === "text" ? await source.proof(receipt) : undefined;
    const output = await source.output?.(receipt);
    const result = await validateReceipt(
      { job, receipt, proof, output },
      model,
      identity,
      { ...validation, signal },
    );
    await ledger.recordVerdict(result.verdict);
    if (result.fraudProof) await this.#settle(result.fraudProof);
    return result;
  }

  async #settle(proof: FraudProof): Promise<FraudCheckResult> {
    const ledger = this.#ledger!;
    const cid = (proof as { receipt?: { model?: unknown } })?.receipt?.model;
    const model = typeof cid === "string" ? await this.#options.models.get(cid) : undefined;
    const check = await checkFraudProof(proof, model, this.#options.validation);
    if (check.inconclusive || check.reason === "malformed" || check.reason === "bad_signature") {
      // Unattributable or undecidable: nothing to settle.
      return check;
    }
    const id = receiptId(proof.receipt);
    const record = ledger.receipt(id);
    if (record?.status === "pending") {
      await ledger.settleFraud({
        receiptId: id,
        fraudProofHash: check.proofHash,
        validator: proof.validator,
        confirmed: check.confirmed,
        reason: check.reason,
      });
    }
    return check;
  }
}

export type { Account, ReceiptRecord };
