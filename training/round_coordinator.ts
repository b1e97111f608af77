/**
 * RoundCoordinator: runs the network's DiLoCo rounds. Trainers join it over the training
 * protocol (their shard's size and root; the data stays with them); once enough have joined it
 * announces a round to each — the start model by CID, H, a data seed of its own per trainer,
 * the hyper-parameters, a deadline — and waits for the reports until the deadline, no longer:
 * a trainer that leaves mid-round fails its own request and the round goes on with those who
 * reported.
 *
 * Each report is checked (signature, start model, delta hash, the shard it joined with), its
 * receipt recorded in the ledgers uncredited (gossip through the TrainingValidator), and handed
 * to the TrainingValidator, which challenges the receipts it samples. Deltas of trainers whose
 * challenge failed — and of trainers convicted before — are left out of the outer step; only
 * the receipts whose deltas went into the new model are credited here. The new model is written
 * by CID, published in the node's storage, served here, and its outcome, signed with the node's
 * key, spread to every node, which audit it (only a staked coordinator's) and serve it.
 *
 * ```
 * join       { connection, key, shardSize, shardRoot } → JoinedBody   (a trainer joins)
 * left       { connection }                 a trainer's connection closed
 * trainers   → the joined trainers now      (the round loop asks)
 * seated     { checked, convicted, unbacked } internal: whom a seating skipped (what `status` counts)
 * announce   { round }                      internal: a round is about to be announced (saved)
 * round_done { … }                          internal: a round finished: saved, then credited, announced
 * deliver                                   internal: what a finished round still owes (a restart)
 * status     → CoordinatorStatus
 * ```
 *
 * A round's seats go only to joined trainers this node's ledger has not convicted and whose free
 * stake there backs the round's receipt (`_round_seats.ts`, asked through the TrainingValidator:
 * `seat_stakes`); a join is looked at the same way at once. What `status` answers, and the
 * standing of the joined trainers it counts, is `coordinator_status.ts`.
 *
 * The rounds run in a loop outside the mailbox, started in `preStart`: everything they change
 * comes back by `announce` and `round_done`, so the trainer table and the round state change
 * only in `receive`. The trainer table is the node's ({@link JoinedTrainers}): a coordinator
 * restarted by its supervisor keeps its trainers, who do not join again. The loop is
 * `_round_loop.ts`, one round in it `_round_run.ts`.
 *
 * With {@link RoundCoordinatorOptions.statePath}, the round state survives a crash or a restart
 * (`coordinator_state.ts`), and `preStart` resumes from it. It is saved before each round is
 * announced (the number is taken), when the round has finished — its model, momentum and record,
 * and what it owes ({@link RoundDelivery}: the credit of the deltas in its model, its outcome) —
 * and once those are out. Nothing of a round is paid or sent before it is saved as finished, and
 * each step checks the stop signal first, so a round ends one way in every ledger:
 *
 * - Stopped before it was saved as finished, it is lost: not run again under its number, nobody
 *   credited, no outcome. The next round starts from the same model under the next number, with
 *   fresh data seeds, so a trainer that reported for the lost round signs a receipt for another
 *   ledger slot (never a second one for the same slot, which every ledger slashes as
 *   equivocation). The lost round's receipts stay recorded uncredited: its work is the trainers'
 *   loss, as a round that made no model.
 * - Stopped after, it stands: the restart sends its credit and outcome again before the next
 *   round. Again is harmless — a ledger credits a receipt once, a validator takes an outcome once —
 *   so whatever had gone out before the stop is not paid twice.
 *
 * @module
 */
import type { Actor, ActorContext } from "../actors/actor.ts";
import type { ActorRef } from "../actors/actor_ref.ts";
import { sleep } from "../actors/_common.ts";
import type { Connection } from "../protocols/connection.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import type { Identity } from "../protocols/identity.ts";
import { toHex } from "../protocols/hash.ts";
import type { JoinedBody, TrainingGossip } from "../protocols/training_messages.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import type { TextShard } from "./brown_corpus.ts";
import { type GptWeights, seededGptWeights } from "./gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS, type LocalHyperParams } from "./hyper_params.ts";
import type { RoundModel, RoundModels } from "./round_models.ts";
import { DEFAULT_OUTER_HYPER_PARAMS } from "./outer_step.ts";
import { type CoordinatorSnapshot, CoordinatorState } from "./coordinator_state.ts";
import { JoinedTrainers } from "./joined_trainers.ts";
import type { RoundDelivery } from "./round_delivery.ts";
import { TrainingError } from "./training_error.ts";
import { signOutcome } from "./signed_outcome.ts";
import type { TrainingValidatorMessage } from "./training_validator.ts";
import { RoundRun } from "./_round_run.ts";
import { RoundLoop } from "./_round_loop.ts";
import { roundPaceMs } from "./training_stake.ts";
import { gptDeltaBytes } from "./delta_bytes.ts";
import type { SeatStakes } from "./_seat_stakes.ts";
import { type RoundRecord, TrainerStandings } from "./coordinator_status.ts";
import type { HeldOutSource } from "./held_out_text.ts";
import { heldOutSamples, heldOutSamplesDigest } from "./held_out_samples.ts";
import { type HeldOutEvaluator, WorkerHeldOutEvaluator } from "./held_out_evaluator.ts";

// The round's rules a validator checks again, named here as before they moved with the round.
export { dataSeedOf, sameHyperParams } from "./_round_run.ts";
// What `status` answers, named here as before it moved beside the coordinator.
export type { CoordinatorStatus, RoundRecord } from "./coordinator_status.ts";

/**
 * Longest wait for this node's validator to pass a finished round's outcome on (it audits it
 * first: the outer step again, seconds); past it the coordinator sends the outcome itself.
 */
const OUTCOME_PASS_ON_MS = 120_000;
/**
 * Round records kept by default (in memory, in `status`, in the state file): the dashboard shows
 * the latest 200, and a record lists up to `MAX_OUTCOME_TRAINERS` (`training_messages.ts`) keys
 * (~17 KB), so a run of `--rounds 0` kept without bound was copied by every `status` and
 * rewritten twice a round (review s54). Older rounds are still counted
 * (`CoordinatorStatus.finished`, `coordinator_status.ts`).
 */
const DEFAULT_KEPT_ROUND_RECORDS = 1000;

/** Options of {@link RoundCoordinator}. */
export interface RoundCoordinatorOptions {
  /** The coordinator's key. */
  identity: Identity;
  /** The model's architecture. */
  arch: GptArchitecture;
  /** Seed of the first round's start model (the builder's seeded weights). */
  seed: number;
  /**
   * Rounds to finish; 0: run until stopped. Counted over the run: the rounds finished before a
   * restart count (a lost round does not).
   */
  rounds: number;
  /** Local steps H per round. */
  steps: number;
  /** Inner hyper-parameters (defaults: the local trainer's). */
  hyper?: Partial<LocalHyperParams>;
  /** How long a round waits for reports, ms. */
  roundDeadlineMs: number;
  /** Trainers that must have joined before the first round starts (later rounds: one). */
  minTrainers: number;
  /** Round models: written, published in storage, fetched. */
  models: RoundModels;
  /** Held-out text to evaluate each new model on (absent: not evaluated). */
  heldOut?: TextShard;
  /**
   * Which text `heldOut` is, as `status` reports it (kind and size only: the text never leaves
   * this node). Absent: not reported.
   */
  heldOutSource?: HeldOutSource;
  /** Registry name of the TrainingValidator (challenges, ledger records); absent: none. */
  validator?: string;
  /** Registry name of the NetworkActor (outcome gossip). */
  network?: string;
  /** Whether this node's ledger convicted a trainer (hex key); absent: only this coordinator's own convictions count. */
  convicted?: (trainer: string) => Promise<boolean>;
  /** Serve a new model's directory here (register it with the node's models). */
  serve?: (dir: string) => Promise<void>;
  /**
   * The state file (`<dataDir>/training/coordinator.json`): saved every round and resumed from
   * on start (`coordinator_state.ts`); absent: kept in memory only, a restart starts at round 0.
   */
  statePath?: string;
  /**
   * The joined trainers, kept across this coordinator's incarnations: created once by the node,
   * outside the actor's factory. Absent: a table of this incarnation's own (a restart by the
   * supervisor forgets every trainer, and trainers join only when a connection opens).
   */
  trainers?: JoinedTrainers;
  /** Where one line per round goes. */
  log?: (line: string) => void;
  /** Finished rounds' records kept (the latest); default {@link DEFAULT_KEPT_ROUND_RECORDS}. */
  keptRoundRecords?: number;
  /**
   * The stake each trainer is assumed to hold (a node passes its own `selfStake`, as its start
   * check assumes): rounds are paced so that no challenge window holds more of their receipts'
   * locks than it backs (`roundPaceMs`, `training_stake.ts`). Absent: not paced.
   */
  trainerStake?: number;
  /** The clock and timers the pace is measured and waited on; default the real ones. */
  timers?: ConnectionTimers;
}

/** Messages the RoundCoordinator accepts. */
export type CoordinatorMessage =
  | { type: "join"; connection: Connection; shardSize: number; shardRoot: string }
  | { type: "left"; connection: Connection }
  | { type: "trainers" }
  | {
    type: "seated";
    /** The trainers the seating looked at (hex keys): what it says is about them only. */
    checked: string[];
    /** Joined trainers this node's ledger convicted, skipped. */
    convicted: string[];
    /** Joined trainers whose free stake there cannot back a round's receipt, skipped. */
    unbacked: string[];
  }
  | { type: "announce"; round: number }
  | {
    type: "round_done";
    record: RoundRecord;
    model: RoundModel;
    momentum?: GptWeights;
    /**
     * Drop the momentum: the round made no model and its outer step was not finite, or it was
     * refused for its held-out loss or dropped the momentum for it (`_round_run.ts`). Absent
     * `momentum` keeps it.
     */
    resetMomentum?: boolean;
    convicted: string[];
    /** What the round owes (absent: it made no model, it owes nothing). */
    delivery?: RoundDelivery;
  }
  | { type: "deliver" }
  | { type: "status" };

/** See the module doc. */
export class RoundCoordinator implements Actor<CoordinatorMessage> {
  readonly #options: RoundCoordinatorOptions;
  /** The inner hyper-parameters every round announces. */
  readonly #hyper: LocalHyperParams;
  readonly #state?: CoordinatorState;
  readonly #trainers: JoinedTrainers;
  readonly #convicted = new Set<string>();
  /** Whom the last seating skipped, for `status` to count (`coordinator_status.ts`). */
  readonly #standings: TrainerStandings;
  readonly #history: RoundRecord[] = [];
  /** Rounds finished over the run (`#history` keeps only the latest). */
  #finished = 0;
  #round = 0;
  #model?: RoundModel;
  #momentum?: GptWeights;
  /** The last finished round's credit and outcome, until they are out. */
  #delivery?: RoundDelivery;
  #initialLoss?: number;
  /**
   * The lowest held-out loss of a model this run published (the first included): the loss gate's
   * reference (`_round_run.ts`), saved with the state so a restart keeps it.
   */
  #bestLoss?: number;
  /** sha256 of the held-out samples evaluated (`#heldOutDigest`). */
  #digest?: string;
  /**
   * Where held-out loss is measured: a worker, started at the first evaluation, so a round's
   * evaluations do not hold the node's event loop (`held_out_evaluator.ts`).
   */
  #evaluator?: HeldOutEvaluator;
  /** The held-out windows every evaluation reads (`held_out_samples.ts`), cut once. */
  #samples?: TextShard;

  /** The rounds, run in a loop outside the mailbox (`_round_loop.ts`). */
  readonly #loop: RoundLoop;

  /** @param options See {@link RoundCoordinatorOptions}. */
  constructor(options: RoundCoordinatorOptions) {
    this.#options = options;
    this.#hyper = { ...DEFAULT_LOCAL_HYPER_PARAMS, ...options.hyper };
    this.#trainers = options.trainers ?? new JoinedTrainers();
    this.#standings = new TrainerStandings(this.#trainers);
    if (options.statePath !== undefined) {
      this.#state = new CoordinatorState(options.statePath, {
        arch: options.arch,
        seed: options.seed,
        steps: options.steps,
        hyper: this.#hyper,
        outer: { ...DEFAULT_OUTER_HYPER_PARAMS },
      });
    }
    this.#loop = new RoundLoop({
      settings: options,
      rounds: new RoundRun({
        settings: options,
        hyper: this.#hyper,
        model: () => this.#model,
        momentum: () => this.#momentum,
        referenceLoss: () => this.#bestLoss,
        validator: (ctx) => this.#validator(ctx),
        evaluate: (weights) => this.#evaluate(weights),
        log: (line) => this.#log(line),
      }),
      stakes: (keys, ctx) => this.#seatStakes(keys, ctx),
      log: (line) => this.#log(line),
      paceMs: options.trainerStake === undefined ? 0 : roundPaceMs({
        arch: options.arch,
        steps: options.steps,
        roundMs: options.roundDeadlineMs,
        batch: this.#hyper,
      }, options.trainerStake),
      timers: options.timers,
    });
  }

  /**
   * Resume from the saved state, or publish the first start model; then run the rounds in the
   * background.
   * @throws {TrainingError} `coordinator_state_mismatch` or `coordinator_state_unreadable` (the
   *   saved state is another run's, or cannot be read): the operator decides, nothing restarts
   *   from round 0 on its own.
   */
  async preStart(ctx: ActorContext<CoordinatorMessage>): Promise<void> {
    const saved = await this.#state?.load();
    if (saved !== undefined) await this.#resume(saved);
    else await this.#begin();
    void this.#loop.run(ctx).catch((error) => {
      if (!ctx.signal.aborted) this.#log(`training: rounds stopped: ${(error as Error).message}`);
    });
  }

  /** A new run: publish and serve the seeded start model. */
  async #begin(): Promise<void> {
    const { arch, seed } = this.#options;
    this.#model = await this.#options.models.publish(arch, seededGptWeights(arch, seed));
    await this.#options.serve?.(this.#model.dir);
    this.#initialLoss = await this.#evaluate(this.#model.weights);
    this.#bestLoss = this.#initialLoss;
    this.#log(
      `training: coordinating ${roundsText(this.#options.rounds)} of H = ${this.#options.steps} ` +
        `from model ${this.#model.cid}` +
        (this.#initialLoss === undefined ? "" : ` (held-out loss ${this.#initialLoss.toFixed(3)})`),
    );
  }

  /** Take the saved state back: its model (loaded by CID, checked), momentum and history. */
  async #resume(saved: CoordinatorSnapshot): Promise<void> {
    const { arch } = this.#options;
    const { cid, file, update } = saved.model;
    const model = await this.#options.models.get(cid, arch, file).catch((error) => {
      throw new TrainingError(
        "coordinator_state_unreadable",
        `coordinator state ${this.#state!.path} names model ${cid}, which cannot be loaded ` +
          `(${(error as Error).message}). Restore it, or move the state aside to start a new ` +
          `run from round 0: rename it where it is (mv ${this.#state!.path} ` +
          `${this.#state!.path}.old); a new run never removes another state's files`,
      );
    });
    this.#model = { ...model, file: file ?? model.file, update };
    this.#momentum = saved.momentum;
    this.#delivery = saved.delivery;
    this.#history.push(...saved.history);
    this.#finished = saved.finished ?? saved.history.length;
    this.#trimHistory();
    for (const key of saved.convicted) this.#convicted.add(key);
    this.#initialLoss = saved.initialLoss;
    // A state that knows none (saved without held-out text) is held to its current model's.
    this.#bestLoss = saved.bestLoss ?? await this.#evaluate(this.#model.weights);
    if (saved.bestLoss !== undefined && this.#heldOutChanged(saved)) {
      // Losses on two texts are not comparable: held to the old text's best, a harder private
      // text refused every round (`loss_regression`), an easier one let any delta through.
      this.#bestLoss = await this.#evaluate(this.#model.weights);
      this.#log(
        `training: the held-out text differs from the one the saved state measured: the loss ` +
          `gate's reference is measured again on it` +
          (this.#bestLoss === undefined ? "" : ` (${this.#bestLoss.toFixed(3)} nats/byte)`) +
          `; earlier rounds' losses are on the old text`,
      );
    }
    this.#round = saved.round;
    await this.#options.serve?.(this.#model.dir);
    const last = saved.history.at(-1)?.round ?? -1;
    const lost = saved.round - 1 > last ? saved.round - 1 : undefined;
    const joined = this.#trainers.open().length;
    this.#log(
      `training: resuming at round ${saved.round} from model ${cid}` +
        ` (${this.#finished} of ${roundsText(this.#options.rounds)} finished)` +
        (lost === undefined
          ? ""
          : `; round ${lost} was in flight at the stop and is not run again: its reports ` +
            `earn nothing, the trainers answer round ${saved.round} from the same model`) +
        (saved.delivery === undefined
          ? ""
          : `; round ${saved.delivery.terms.round} had finished: its credit and outcome go out ` +
            `again (none is taken twice)`) +
        (joined === 0 ? "" : `; ${joined} trainer${joined === 1 ? "" : "s"} still joined`),
    );
  }

  /** sha256 of the held-out samples evaluated (undefined: none), computed once. */
  #heldOutDigest(): string | undefined {
    const heldOut = this.#options.heldOut;
    if (heldOut === undefined) return undefined;
    this.#digest ??= heldOutSamplesDigest(this.#heldOutSamples(heldOut));
    return this.#digest;
  }

  /**
   * Whether `saved`'s loss reference was measured on other held-out samples than this run's: the
   * digest covers the windows read, so another text or other positions in it both count. A state
   * written before the digest was saved was measured on the text's first windows, before the
   * evaluation spread its samples over the text (`held_out_samples.ts`): changed whenever this run
   * evaluates.
   */
  #heldOutChanged(saved: CoordinatorSnapshot): boolean {
    const digest = this.#heldOutDigest();
    if (saved.heldOutDigest !== undefined) return saved.heldOutDigest !== digest;
    return digest !== undefined;
  }

  /** The windows of `heldOut` every evaluation reads, cut once (`held_out_samples.ts`). */
  #heldOutSamples(heldOut: TextShard): TextShard {
    this.#samples ??= heldOutSamples(heldOut, this.#hyper.sampleBytes);
    return this.#samples;
  }

  /** The round state as saved, with `round` the next number to announce. */
  #snapshot(round: number): CoordinatorSnapshot {
    const model = this.#model!;
    return {
      round,
      model: { cid: model.cid, file: model.file, update: model.update },
      momentum: this.#momentum,
      delivery: this.#delivery,
      history: [...this.#history],
      finished: this.#finished,
      convicted: [...this.#convicted],
      initialLoss: this.#initialLoss,
      bestLoss: this.#bestLoss,
      heldOutDigest: this.#heldOutDigest(),
    };
  }

  /** Keep the latest {@link RoundCoordinatorOptions.keptRoundRecords} round records. */
  #trimHistory(): void {
    const kept = this.#options.keptRoundRecords ?? DEFAULT_KEPT_ROUND_RECORDS;
    if (this.#history.length > kept) this.#history.splice(0, this.#history.length - kept);
  }

  /** Handle one message; see {@link CoordinatorMessage}. */
  receive(message: CoordinatorMessage, ctx: ActorContext<CoordinatorMessage>): unknown {
    switch (message.type) {
      case "join":
        return this.#join(message, ctx);
      case "left": {
        const key = toHex(message.connection.peerKey!);
        if (this.#trainers.leave(key, message.connection) !== undefined) {
          this.#log(`training: trainer ${key.slice(0, 16)} left`);
        }
        return;
      }
      case "trainers":
        return this.#trainers.open().filter((t) => !this.#convicted.has(t.key));
      case "seated":
        // Only the trainers it looked at: one that joined meanwhile was looked at on its join.
        this.#standings.mark(message.checked, message.convicted, message.unbacked);
        return;
      case "announce":
        // Saved before anyone is asked: a restart never announces this number again.
        return this.#state?.save(this.#snapshot(message.round + 1));
      case "round_done":
        this.#history.push(message.record);
        this.#finished++;
        this.#trimHistory();
        this.#model = message.model;
        // Only a published model's loss lowers the reference (a round on its start has none).
        if (
          message.record.heldOutLoss !== undefined &&
          message.record.model !== message.record.startModel
        ) {
          this.#bestLoss = Math.min(this.#bestLoss ?? Infinity, message.record.heldOutLoss);
        }
        this.#momentum = message.resetMomentum ? undefined : message.momentum ?? this.#momentum;
        for (const key of message.convicted) this.#convicted.add(key);
        this.#round = message.record.round + 1;
        this.#delivery = message.delivery;
        return this.#finish(ctx);
      case "deliver":
        return this.#deliver(ctx);
      case "status": {
        const status = this.#standings.status({
          round: this.#round,
          model: this.#model!.cid,
          initialLoss: this.#initialLoss,
          history: this.#history,
          finished: this.#finished,
          convicted: this.#convicted,
        });
        const source = this.#options.heldOutSource;
        const evaluator = this.#evaluator?.state();
        return {
          ...status,
          ...(source === undefined ? {} : { heldOut: { ...source } }),
          // Said only once a worker failed: a resting evaluator is why rounds publish nothing.
          ...(evaluator === undefined || evaluator.failuresInARow === 0 ? {} : { evaluator }),
        };
      }
    }
  }

  /**
   * The lock of a round's receipt and `keys`' free stake, from this node's TrainingValidator (the
   * one that records the rounds' receipts in the ledger); undefined without one (nothing is
   * recorded, no stake checked).
   */
  async #seatStakes(
    keys: string[],
    ctx: ActorContext<CoordinatorMessage>,
  ): Promise<SeatStakes | undefined> {
    const validator = this.#validator(ctx);
    if (validator === undefined) return undefined;
    const { arch, steps } = this.#options;
    const { batchSize, sampleBytes } = this.#hyper;
    return await validator.ask<SeatStakes | undefined>({
      type: "seat_stakes",
      keys,
      work: { steps, deltaBytes: gptDeltaBytes(arch), hyper: { batchSize, sampleBytes } },
    });
  }

  async #join(
    message: Extract<CoordinatorMessage, { type: "join" }>,
    ctx: ActorContext<CoordinatorMessage>,
  ): Promise<JoinedBody> {
    const { connection } = message;
    const key = toHex(connection.peerKey!);
    const trainer = {
      key,
      connection,
      shardSize: message.shardSize,
      shardRoot: message.shardRoot,
    };
    this.#trainers.join(trainer);
    connection.closed.then(() => ctx.self.tell({ type: "left", connection }).catch(() => {}));
    this.#log(
      `training: trainer ${key.slice(0, 16)} joined (${message.shardSize} samples, root ${
        message.shardRoot.slice(0, 12)
      })`,
    );
    const model = this.#model!;
    const joined = { round: this.#round, model: model.cid, file: model.file ?? model.cid };
    await this.#standings.lookAtJoin(this.#round, trainer, {
      convicted: this.#options.convicted,
      stakes: (keys) => this.#seatStakes(keys, ctx),
    }, (line) => this.#log(line));
    return joined;
  }

  /**
   * A round has finished (its record, model, momentum and what it owes are in place): save it,
   * then send what it owes. Saved first, the round stands from here on, whatever stops this
   * incarnation; a save that fails crashes it, and the restart resumes from the last save, with
   * this round lost and nothing of it sent.
   */
  async #finish(ctx: ActorContext<CoordinatorMessage>): Promise<void> {
    await this.#state?.save(this.#snapshot(this.#round));
    await this.#deliver(ctx);
  }

  /**
   * Send what the last finished round owes, saved with it: the credit of its receipts in this
   * node's ledger, then its outcome to every node; then save the state without it. In `receive`,
   * so `status` shows a finished round once this is done. Each step first checks the stop
   * signal: a stopped incarnation sends nothing more, and its restart sends it all again (a
   * ledger credits a receipt once, a validator takes an outcome once, so nothing that had gone
   * out counts twice).
   */
  async #deliver(ctx: ActorContext<CoordinatorMessage>): Promise<void> {
    const delivery = this.#delivery;
    if (delivery === undefined) return;
    const validator = this.#validator(ctx);
    if (ctx.signal.aborted) return;
    if (validator !== undefined) {
      await validator.ask({ type: "credit", receipts: delivery.credit, terms: delivery.terms });
    }
    if (ctx.signal.aborted) return;
    // Signed with this node's key: nodes audit only a staked coordinator's outcomes, charged to
    // it (`signed_outcome.ts`). Signed here, not where the round is saved, so a delivery saved
    // before outcomes were signed goes out signed too; the signature is deterministic, so the
    // same outcome sent again after a restart is the copy validators already took.
    const outcome = signOutcome(delivery.outcome, this.#options.identity);
    // Through the validator side when there is one: it marks the outcome seen, so the copy
    // that gossip brings back is not taken again. It audits the outcome before it passes it
    // on (seconds, outside its mailbox), so the outcome stays in the state until the validator
    // says it went out: told and forgotten, a crash meanwhile lost it for every node, and every
    // later round with it (no node could audit them without this one's momentum). A validator
    // that stopped before passing it on leaves it to be gossiped from here.
    if (validator !== undefined) {
      const { result } = await validator.ask<{ result: Promise<void> }>({
        type: "outcome",
        body: outcome,
        origin: "local",
      });
      // Bounded: an audit that never ends must not hold this mailbox (and the next round) for
      // good; past the bound the outcome goes out from here, and a later copy from the
      // validator is one every node has taken already.
      const gaveUp = new AbortController();
      const passedOn = await Promise.race([
        result.then(() => true, () => false),
        sleep(OUTCOME_PASS_ON_MS, AbortSignal.any([ctx.signal, gaveUp.signal]))
          .then(() => false, () => false),
      ]).finally(() => gaveUp.abort());
      if (ctx.signal.aborted) return;
      if (!passedOn) this.#publish(ctx, { kind: "outcome", body: outcome });
    } else this.#publish(ctx, { kind: "outcome", body: outcome });
    if (ctx.signal.aborted) return;
    this.#delivery = undefined;
    await this.#state?.save(this.#snapshot(this.#round));
  }

  /** This node's TrainingValidator, when the coordinator has one. */
  #validator(
    ctx: ActorContext<CoordinatorMessage>,
  ): ActorRef<TrainingValidatorMessage> | undefined {
    const name = this.#options.validator;
    return name === undefined ? undefined : ctx.system.lookup<TrainingValidatorMessage>(name);
  }

  /** Stop the evaluator's worker: an evaluation in flight fails (its round is lost anyway). */
  postStop(): void {
    this.#evaluator?.close();
  }

  async #evaluate(weights: GptWeights): Promise<number | undefined> {
    const heldOut = this.#options.heldOut;
    if (heldOut === undefined) return undefined;
    const evaluator = this.#evaluator ??= new WorkerHeldOutEvaluator({
      arch: this.#options.arch,
      samples: this.#heldOutSamples(heldOut),
      sampleBytes: this.#hyper.sampleBytes,
    }, {
      // A worker silent for a whole round's deadline is dead, not slow (`EVALUATOR_SILENCE_MS`).
      silenceMs: this.#options.roundDeadlineMs,
      log: (line) => this.#log(line),
    });
    let loss: number;
    try {
      loss = await evaluator.evaluate(weights);
    } catch (error) {
      // A failed worker is the coordinator's fault, not the model's: asked once more, on the
      // fresh worker the evaluator starts (review s75 vtrain F3). A second failure goes to the
      // round, which then publishes nothing and blames no trainer (`_round_run.ts`).
      if ((error as { code?: string }).code !== "evaluator_worker_failed") throw error;
      loss = await evaluator.evaluate(weights);
    }
    // Not a number (a held-out set with no whole sample: 0 / 0) is no measurement: in an
    // outcome it made every node refuse the outcome as malformed (its schema takes finite
    // numbers), and in the saved delivery the restart refuse the state as unreadable.
    if (Number.isFinite(loss)) return loss;
    this.#log(`training: held-out loss not measured (${loss}: no whole held-out sample?)`);
    return undefined;
  }

  #publish(ctx: ActorContext<CoordinatorMessage>, gossip: TrainingGossip): void {
    const name = this.#options.network;
    if (name === undefined) return;
    ctx.system.lookup<{ type: "publish_training"; gossip: TrainingGossip }>(name)
      ?.tell({ type: "publish_training", gossip }).catch(() => {});
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }
}

function roundsText(rounds: number): string {
  return rounds === 0 ? "rounds until stopped" : rounds === 1 ? "1 round" : `${rounds} rounds`;
}
