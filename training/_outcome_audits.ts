/**
 * The round outcomes a TrainingValidator (`training_validator.ts`) audits. An outcome the outcome
 * gate lets through (`_outcome_gate.ts`: new, signed by a coordinator staked here, within its and
 * its relay's budgets) is audited outside the mailbox (the outer step redone); one that holds, or
 * could not be checked here, comes back as the validator's `audited` message: its receipts are
 * credited (`_receipt_credits.ts`), it is passed on, its trainers are sampled on this node's own
 * coin (`TrainingChallengeRun.afterRound`), and its model is fetched by CID and served. One that
 * does not hold is refused by the gate.
 *
 * Holds no state of its own (what is kept of each audit is the gate's). Owned by the validator,
 * whose `outcome` and `audited` messages it handles. Not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import type { OutcomeBody, TrainingGossip } from "../protocols/training_messages.ts";
import type { AccountMessage, ReceiptStatusMessage } from "../actors/validator_messages.ts";
import type { RoundAudit } from "./round_audit.ts";
import type { OutcomeGate } from "./_outcome_gate.ts";
import type { TrainingChallengeRun } from "./_training_challenge_run.ts";
import type { ReceiptCredits } from "./_receipt_credits.ts";
import type { TrainingValidatorMessage, TrainingValidatorOptions } from "./training_validator.ts";

/** What {@link OutcomeAudits} needs from the validator. */
export interface OutcomeAuditsOptions {
  /** The validator's options, read at each use (`models`, `serve`). */
  settings: Pick<TrainingValidatorOptions, "models" | "serve">;
  /** Which outcomes are audited, and what is kept of each audit. */
  gate: OutcomeGate;
  /** The receipts credited once a round is reproduced. */
  credits: ReceiptCredits;
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

  /** @param options See {@link OutcomeAuditsOptions}. */
  constructor(options: OutcomeAuditsOptions) {
    this.#options = options.settings;
    this.#parts = options;
    this.#outcomes = options.gate;
    this.#challenges = options.challenges;
  }

  /**
   * Take an outcome (the `outcome` message): audit it outside the mailbox when the gate lets it
   * through. From this node's coordinator (`origin: "local"`): `{ result }`, settled once it was
   * passed on or its audit ended without; rejected when this actor stopped first.
   */
  async take(
    message: Extract<TrainingValidatorMessage, { type: "outcome" }>,
    ctx: ActorContext<TrainingValidatorMessage>,
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
    if (!await this.#outcomes.mayAudit(message.body, message.origin, this.#stakeOf(ctx))) {
      ended.resolve();
      return answer;
    }
    // Audited outside the mailbox; served and passed on only when it holds (`audited`).
    void this.#outcomes.audit(message.body, this.#convicted(ctx)).then(
      (audit) =>
        ctx.self.tell({
          type: "audited",
          body: message.body,
          audit,
          origin: message.origin,
          ended: ended.resolve,
        }),
      (error) => {
        this.#parts.log(
          `training: model ${message.body.model.slice(0, 16)} not adopted: ${
            (error as Error).message
          }`,
        );
        ended.resolve();
      },
    ).catch((error) => ended.reject(error)); // this actor stopped meanwhile
    return answer;
  }

  /** Serve and pass on an outcome that holds (or could not be checked here); refuse one that does not. */
  audited(
    body: OutcomeBody,
    audit: RoundAudit,
    origin: string,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): void {
    if (!audit.ok) return this.#outcomes.auditFailed(body, audit, origin);
    if (!this.#outcomes.auditHeld(body, audit)) return; // another copy proved it first
    const name = `round ${body.round} model ${body.model.slice(0, 16)}…`;
    // Its receipts are recorded before this node challenges any: a challenge holds its receipt
    // in the ledger, which it can only once the receipt is there.
    const credited = audit.verified ? this.#creditRound(body, ctx) : Promise.resolve();
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

  async #adopt(body: OutcomeBody, how: string): Promise<void> {
    const model = await this.#options.models.get(body.model, body.arch, body.file);
    await this.#options.serve?.(model.dir);
    this.#parts.log(
      `training: round ${body.round} model ${body.model.slice(0, 16)}… ${how}, served` +
        (body.heldOutLoss === undefined ? "" : ` (held-out loss ${body.heldOutLoss.toFixed(3)})`),
    );
  }
  /** The outcome gate's question: the stake a key holds in the ledger (0: no answer). */
  #stakeOf(ctx: ActorContext<TrainingValidatorMessage>): (key: Uint8Array) => Promise<number> {
    return async (key) =>
      (await this.#ledger<{ stake: number }>(ctx, { type: "account", key })
        .catch(() => ({ stake: 0 }))).stake;
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

  #creditRound(
    body: OutcomeBody,
    ctx: ActorContext<TrainingValidatorMessage>,
  ): Promise<void> {
    return this.#parts.credits.creditRound(body, ctx);
  }

  #ledger<R>(
    ctx: ActorContext<TrainingValidatorMessage>,
    message: AccountMessage | ReceiptStatusMessage,
  ): Promise<R> {
    return this.#parts.ask<R>(ctx, message);
  }
}
