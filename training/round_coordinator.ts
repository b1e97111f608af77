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
 * announce   { round }                      internal: a round is about to be announced (saved)
 * round_done { … }                          internal: a round finished: saved, then credited, announced
 * deliver                                   internal: what a finished round still owes (a restart)
 * status     → CoordinatorStatus
 * ```
 *
 * The rounds run in a loop outside the mailbox, started in `preStart`: everything they change
 * comes back by `announce` and `round_done`, so the trainer table and the round state change
 * only in `receive`. The trainer table is the node's ({@link JoinedTrainers}): a coordinator
 * restarted by its supervisor keeps its trainers, who do not join again.
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
import type { Identity } from "../protocols/identity.ts";
import { sha256, toHex } from "../protocols/hash.ts";
import {
  type JoinedBody,
  MAX_OUTCOME_TRAINERS,
  type ReportBody,
  RoundMessage,
  type RoundTerms,
  type TrainingGossip,
} from "../protocols/training_messages.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import type { TextShard } from "./brown_corpus.ts";
import { type GptWeights, seededGptWeights } from "./gpt_weights.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS, type LocalHyperParams } from "./hyper_params.ts";
import type { RoundModel, RoundModels } from "./round_models.ts";
import { aggregateRound } from "./training_round.ts";
import { DEFAULT_OUTER_HYPER_PARAMS } from "./outer_step.ts";
import { type CoordinatorSnapshot, CoordinatorState } from "./coordinator_state.ts";
import { type JoinedTrainer, JoinedTrainers } from "./joined_trainers.ts";
import type { RoundDelivery } from "./round_delivery.ts";
import { TrainingError } from "./training_error.ts";
import { decodeFittingDelta } from "./int8_delta.ts";
import { loadTrainingEngine } from "./training_engine.ts";
import { verifyTrainingReceipt } from "./training_receipt.ts";
import { signOutcome } from "./signed_outcome.ts";
import type { ChallengeOutcome, TrainingValidatorMessage } from "./training_validator.ts";
import type { TrainingReceiptRecorded } from "../actors/validator_messages.ts";

/** Held-out samples the coordinator evaluates each new model on (64 bytes each). */
const EVAL_SAMPLES = 64;
/** How often the loop looks for enough trainers before a round. */
const TRAINER_POLL_MS = 200;
/**
 * Longest wait for this node's validator to pass a finished round's outcome on (it audits it
 * first: the outer step again, seconds); past it the coordinator sends the outcome itself.
 */
const OUTCOME_PASS_ON_MS = 120_000;
/**
 * Longest pause after rounds that failed, or that no trainer reported for, in a row (it doubles
 * from {@link TRAINER_POLL_MS}).
 */
const MAX_FAILURE_PAUSE_MS = 60_000;
/**
 * Round records kept by default (in memory, in `status`, in the state file): the dashboard shows
 * the latest 200, and a record lists up to {@link MAX_OUTCOME_TRAINERS} keys (~17 KB), so a run
 * of `--rounds 0` kept without bound was copied by every `status` and rewritten twice a round
 * (review s54). Older rounds are still counted ({@link CoordinatorStatus.finished}).
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
}

/** One finished round, as the status shows it. */
export interface RoundRecord {
  /** Round number. */
  round: number;
  /** Its start model. */
  startModel: string;
  /** The model it produced (the start model again when no report was accepted). */
  model: string;
  /** Hex keys whose deltas went in. */
  accepted: string[];
  /** Hex keys whose deltas were dropped, with why. */
  excluded: { key: string; reason: string }[];
  /** Held-out loss of the new model, nats per byte. */
  heldOutLoss?: number;
}

/** What `status` answers. */
export interface CoordinatorStatus {
  /** The next round's number. */
  round: number;
  /** The current model's CID. */
  model: string;
  /** Held-out loss of the first start model. */
  initialLoss?: number;
  /**
   * The latest finished rounds, oldest first (at most
   * {@link RoundCoordinatorOptions.keptRoundRecords}).
   */
  history: RoundRecord[];
  /**
   * Rounds finished over the run, those no longer in `history` too (set by the coordinator;
   * absent: `history.length`).
   */
  finished?: number;
  /** Hex keys of joined trainers. */
  trainers: string[];
  /** Hex keys of trainers convicted (never asked again). */
  convicted: string[];
}

/** Messages the RoundCoordinator accepts. */
export type CoordinatorMessage =
  | { type: "join"; connection: Connection; shardSize: number; shardRoot: string }
  | { type: "left"; connection: Connection }
  | { type: "trainers" }
  | { type: "announce"; round: number }
  | {
    type: "round_done";
    record: RoundRecord;
    model: RoundModel;
    momentum?: GptWeights;
    /** The outer step was not finite: drop the momentum (absent `momentum` keeps it). */
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
  readonly #history: RoundRecord[] = [];
  /** Rounds finished over the run (`#history` keeps only the latest). */
  #finished = 0;
  #round = 0;
  #model?: RoundModel;
  #momentum?: GptWeights;
  /** The last finished round's credit and outcome, until they are out. */
  #delivery?: RoundDelivery;
  #initialLoss?: number;

  /** @param options See {@link RoundCoordinatorOptions}. */
  constructor(options: RoundCoordinatorOptions) {
    this.#options = options;
    this.#hyper = { ...DEFAULT_LOCAL_HYPER_PARAMS, ...options.hyper };
    this.#trainers = options.trainers ?? new JoinedTrainers();
    if (options.statePath !== undefined) {
      this.#state = new CoordinatorState(options.statePath, {
        arch: options.arch,
        seed: options.seed,
        steps: options.steps,
        hyper: this.#hyper,
        outer: { ...DEFAULT_OUTER_HYPER_PARAMS },
      });
    }
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
    void this.#loop(ctx).catch((error) => {
      if (!ctx.signal.aborted) this.#log(`training: rounds stopped: ${(error as Error).message}`);
    });
  }

  /** A new run: publish and serve the seeded start model. */
  async #begin(): Promise<void> {
    const { arch, seed } = this.#options;
    this.#model = await this.#options.models.publish(arch, seededGptWeights(arch, seed));
    await this.#options.serve?.(this.#model.dir);
    this.#initialLoss = await this.#evaluate(this.#model.weights);
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
      case "announce":
        // Saved before anyone is asked: a restart never announces this number again.
        return this.#state?.save(this.#snapshot(message.round + 1));
      case "round_done":
        this.#history.push(message.record);
        this.#finished++;
        this.#trimHistory();
        this.#model = message.model;
        this.#momentum = message.resetMomentum ? undefined : message.momentum ?? this.#momentum;
        for (const key of message.convicted) this.#convicted.add(key);
        this.#round = message.record.round + 1;
        this.#delivery = message.delivery;
        return this.#finish(ctx);
      case "deliver":
        return this.#deliver(ctx);
      case "status":
        return {
          round: this.#round,
          model: this.#model!.cid,
          initialLoss: this.#initialLoss,
          history: [...this.#history],
          finished: this.#finished,
          trainers: this.#trainers.open().map((t) => t.key),
          convicted: [...this.#convicted],
        } satisfies CoordinatorStatus;
    }
  }

  #join(
    message: Extract<CoordinatorMessage, { type: "join" }>,
    ctx: ActorContext<CoordinatorMessage>,
  ): JoinedBody {
    const { connection } = message;
    const key = toHex(connection.peerKey!);
    this.#trainers.join({
      key,
      connection,
      shardSize: message.shardSize,
      shardRoot: message.shardRoot,
    });
    connection.closed.then(() => ctx.self.tell({ type: "left", connection }).catch(() => {}));
    this.#log(
      `training: trainer ${key.slice(0, 16)} joined (${message.shardSize} samples, root ${
        message.shardRoot.slice(0, 12)
      })`,
    );
    const model = this.#model!;
    return { round: this.#round, model: model.cid, file: model.file ?? model.cid };
  }

  async #loop(ctx: ActorContext<CoordinatorMessage>): Promise<void> {
    const { rounds } = this.#options;
    // What a round that finished before a restart still owes goes out before anything else.
    await ctx.self.ask({ type: "deliver" });
    const state = { first: true, next: 0 };
    let failures = 0;
    while (!ctx.signal.aborted) {
      // One iteration's failure (a conviction lookup to an actor that is restarting, a storage
      // write that times out, an evaluation that throws) is not the end of the run: the round
      // it was in is lost, as at a crash (its number was saved as taken), and the next goes on
      // after a pause that doubles while failures repeat. Before, it ended this loop for good
      // while the actor lived on: no round ever again.
      const pause = async (why: string) => {
        const pauseMs = Math.min(TRAINER_POLL_MS * 2 ** failures++, MAX_FAILURE_PAUSE_MS);
        this.#log(`training: ${why}; going on in ${pauseMs} ms`);
        await sleep(pauseMs, ctx.signal).catch(() => {});
        return true;
      };
      // A round no trainer reported for is followed by a pause too. After a restart of this
      // coordinator its trainers trained the round it lost to its end and refused its next
      // rounds (`round_in_progress`, one at a time per coordinator) within a round trip:
      // announced at once, round after round ended empty, each saved and counted among the
      // run's rounds, until the lost round was done (review s53). Trainers now take the next
      // round and stop the lost one at its next step (review s54); the pause stays for any
      // round nobody answers.
      const go = await this.#iteration(rounds, state, ctx).then(
        (go) => go === "unheard" ? pause("no trainer reported for the round") : (failures = 0, go),
        async (error) => {
          if (ctx.signal.aborted) return false;
          return await pause(`round failed (${(error as Error).message})`);
        },
      );
      if (!go) return;
    }
  }

  /**
   * One pass of the loop: false when the run is over, "unheard" when it ran a round no trainer
   * reported for.
   */
  async #iteration(
    rounds: number,
    state: { first: boolean; next: number },
    ctx: ActorContext<CoordinatorMessage>,
  ): Promise<boolean | "unheard"> {
    // Rounds finished before a restart count: `rounds` is the run's, not this start's.
    const finished = (await ctx.self.ask<CoordinatorStatus>({ type: "status" })).finished!;
    if (rounds !== 0 && finished >= rounds) return false;
    // The first round of a start waits for `minTrainers` (after a node restart they join
    // again; after a restart of this actor alone they are still joined); later ones go on
    // with whoever is joined (and not convicted): a trainer that left, or cheated, does not
    // hold the network up.
    const needed = state.first ? this.#options.minTrainers : 1;
    let trainers: JoinedTrainer[];
    for (;;) {
      trainers = await ctx.self.ask<JoinedTrainer[]>({ type: "trainers" });
      if (trainers.length >= needed || ctx.signal.aborted) break;
      await sleep(TRAINER_POLL_MS, ctx.signal);
    }
    if (ctx.signal.aborted) return false;
    // A trainer convicted by another validator (its proof gossiped and settled in this
    // node's ledger) is not asked either: every node would refuse an outcome that averages it.
    const convicted = this.#options.convicted;
    if (convicted !== undefined) {
      const flags = await Promise.all(trainers.map((t) => convicted(t.key)));
      trainers = trainers.filter((_, i) => !flags[i]);
      if (trainers.length === 0) {
        await sleep(TRAINER_POLL_MS, ctx.signal);
        return true;
      }
    }
    const status = await ctx.self.ask<CoordinatorStatus>({ type: "status" });
    if (ctx.signal.aborted) return false;
    // A number once announced is never announced again, by this incarnation either: a round
    // that failed (lost) leaves the status at its number, the next takes the one after.
    const round = Math.max(status.round, state.next);
    if (trainers.length > MAX_OUTCOME_TRAINERS) {
      // An outcome lists at most this many trainers (accepted, and excluded): one over it is
      // refused by every node as malformed, and a restart could not read it back from the state.
      // A round asks no more, chosen afresh each round (by the data seed's hash), so none is
      // always left out.
      const rank = new Map(trainers.map((t) => [t.key, dataSeedOf(round, t.key)]));
      trainers = trainers.toSorted((a, b) => rank.get(a.key)! - rank.get(b.key)!)
        .slice(0, MAX_OUTCOME_TRAINERS);
      this.#log(
        `training: round ${round} asks ${MAX_OUTCOME_TRAINERS} of ${rank.size} trainers ` +
          `(an outcome lists at most ${MAX_OUTCOME_TRAINERS})`,
      );
    }
    await ctx.self.ask({ type: "announce", round });
    state.next = round + 1;
    state.first = false;
    return await this.#runRound(round, trainers, ctx) ? true : "unheard";
  }

  /**
   * One round: announce, collect until the deadline, check, aggregate, publish. False when no
   * trainer reported (every request refused, failed or timed out).
   */
  async #runRound(
    round: number,
    trainers: JoinedTrainer[],
    ctx: ActorContext<CoordinatorMessage>,
  ): Promise<boolean> {
    const { arch, steps } = this.#options;
    const start = this.#model!;
    const hyper = this.#hyper;
    const deadline = Date.now() + this.#options.roundDeadlineMs;
    const terms: RoundTerms = { round, startModel: start.cid, steps };
    this.#log(
      `training: round ${round} starts with ${trainers.length} trainers from ${
        start.cid.slice(0, 16)
      }…` +
        ` (H = ${steps}, deadline in ${this.#options.roundDeadlineMs} ms)`,
    );
    const settled = await Promise.allSettled(
      trainers.map((t) =>
        t.connection.request(RoundMessage, {
          round,
          startModel: start.cid,
          startFile: start.file ?? start.cid,
          startUpdate: start.update,
          arch,
          steps,
          dataSeed: dataSeedOf(round, t.key),
          hyper,
          deadline,
        }, { timeoutMs: Math.max(1, deadline - Date.now()), signal: ctx.signal })
      ),
    );
    // Stopped (a crash, a restart): this incarnation's round is lost, whatever came back. The
    // restart goes on from the saved state; nothing of this round may reach it.
    if (ctx.signal.aborted) return true;
    const heard = settled.some((result) => result.status === "fulfilled");
    const excluded = new Map<string, string>();
    const reports: { trainer: JoinedTrainer; report: ReportBody }[] = [];
    settled.forEach((result, i) => {
      const trainer = trainers[i];
      if (result.status === "rejected") {
        const why = (result.reason as { code?: string }).code ?? String(result.reason);
        this.#log(`training: round ${round}: no report from ${trainer.key.slice(0, 16)} (${why})`);
        return;
      }
      const report = result.value;
      const problem = this.#reportProblem(report, trainer, { ...terms, hyper }, start.weights);
      if (problem !== undefined) {
        excluded.set(trainer.key, problem);
        this.#log(
          `training: round ${round}: report of ${trainer.key.slice(0, 16)} refused (${problem})`,
        );
        return;
      }
      // One piece of work is paid once: a report whose trajectory (checkpoints root) or delta
      // another report of the round already has is a copy signed under a second key (a shard of
      // one repeated sample makes the batches independent of the data seed, so every challenge
      // of the copy passes), and its delta would weigh twice in the mean (review s54).
      const { checkpointsRoot, deltaHash } = report.receipt;
      const original = reports.find(({ report: r }) =>
        r.receipt.checkpointsRoot === checkpointsRoot || r.receipt.deltaHash === deltaHash
      );
      if (original !== undefined) {
        const why = `duplicate_work: the same training as ${original.trainer.key.slice(0, 16)}'s`;
        excluded.set(trainer.key, why);
        this.#log(
          `training: round ${round}: report of ${trainer.key.slice(0, 16)} refused (${why})`,
        );
        return;
      }
      reports.push({ trainer, report });
    });
    // Every receipt goes to the ledgers before any challenge of it can settle there.
    const validator = this.#validator(ctx);
    const outcomes = await Promise.all(
      reports.map(async ({ trainer, report }) => {
        if (validator === undefined) return { challenged: false } as ChallengeOutcome;
        const recorded = await validator.ask<TrainingReceiptRecorded>({
          type: "receipt",
          body: { receipt: report.receipt, terms },
          origin: "local",
        });
        // A receipt the ledger refused (no stake to lock, a convicted trainer) puts nothing at
        // risk: a fraud proof against it would settle nowhere, so its delta stays out.
        if (!recorded.recorded) {
          return {
            challenged: true,
            ok: false,
            reason: `receipt not recorded (${recorded.refusal ?? "refused"}): nothing at stake`,
          } as ChallengeOutcome;
        }
        const { result } = await validator.ask<{ result: Promise<ChallengeOutcome> }>({
          type: "challenge",
          report,
          connection: trainer.connection,
          terms,
          arch,
          startFile: start.file,
          shardSize: trainer.shardSize,
          shardRoot: trainer.shardRoot,
        });
        return await result;
      }).map((outcome) =>
        // The validator's own failure (no start model, an exception) blames nobody, but an
        // unchecked delta does not go in either.
        outcome.catch((error): ChallengeOutcome => ({
          challenged: true,
          ok: false,
          reason: `unchecked: ${(error as Error).message}`.slice(0, 120),
        }))
      ),
    );
    if (ctx.signal.aborted) return true; // nothing aggregated, nobody credited: the round is lost
    const convicted: string[] = [];
    outcomes.forEach((outcome, i) => {
      if (outcome.challenged && !outcome.ok) {
        const key = reports[i].trainer.key;
        excluded.set(key, outcome.reason);
        if (outcome.proof !== undefined) convicted.push(key);
      }
    });
    let accepted = reports.filter((r) => !excluded.has(r.trainer.key));
    let model = start;
    let momentum: GptWeights | undefined;
    let resetMomentum = false;
    if (accepted.length > 0) {
      try {
        const result = await aggregateRound(accepted.map((r) => r.report), {
          arch,
          startModel: start.cid,
          start: start.weights,
          momentum: this.#momentum,
          modelsDir: this.#options.models.modelsDir,
          excluded,
        });
        // What the outer step refused (a delta that does not fit the start weights) is left
        // out alone: the round, its record and its outcome name only the deltas averaged.
        for (const { report, reason } of result.refused) {
          const key = toHex(report.receipt.trainer);
          excluded.set(key, reason);
          this.#log(`training: round ${round}: delta of ${key.slice(0, 16)} refused (${reason})`);
        }
        accepted = accepted.filter((r) => !excluded.has(r.trainer.key));
        if (result.momentumReset) {
          this.#log(
            `training: round ${round}: aggregation fault: the outer step with the carried ` +
              `momentum is not finite; momentum reset`,
          );
        }
        model = await this.#options.models.publish(arch, result.weights, {
          from: start.cid,
          bytes: result.update,
        });
        momentum = result.momentum;
        await this.#options.serve?.(model.dir);
      } catch (error) {
        // No usable delta after all (`no_reports`), or the model could not be stored: the
        // round ends on its start model, with nothing accepted, and the next one tries again.
        // An outer step that is not finite (`aggregate_fault`) is no trainer's doing: reported
        // as a fault of the aggregation, and the momentum goes, so the next round can succeed.
        const fault = (error as { code?: string }).code === "aggregate_fault";
        this.#log(
          `training: round ${round}: ${fault ? "aggregation fault" : "no new model"} (${
            (error as Error).message
          })` + (fault ? "; momentum reset" : ""),
        );
        model = start;
        momentum = undefined;
        resetMomentum = fault;
        accepted = [];
      }
    }
    const heldOutLoss = model === start ? undefined : await this.#evaluate(model.weights);
    const record: RoundRecord = {
      round,
      startModel: start.cid,
      model: model.cid,
      accepted: accepted.map((r) => r.trainer.key),
      excluded: [...excluded].map(([key, reason]) => ({ key, reason })),
      // Absent rather than undefined: the record reads the same once saved and read back.
      ...(heldOutLoss === undefined ? {} : { heldOutLoss }),
    };
    let delivery: RoundDelivery | undefined;
    if (model !== start) {
      // Each delta that went in, stored, so any node can redo the outer step (round_audit.ts).
      const reports = await Promise.all(accepted.map(async ({ report }) => ({
        receipt: report.receipt,
        deltaFile: await this.#options.models.putFile(
          report.delta,
          `delta-${report.receipt.deltaHash}.bin`,
        ),
      })));
      delivery = {
        terms,
        // Paid are the reports whose deltas are in the model, and no other: the receipts were
        // recorded uncredited before their challenge, so one left out for any reason — a
        // challenge failed without a proof, a check this node could not run, a delta the outer
        // step refused — earns nothing in this ledger.
        credit: accepted.map((r) => r.report.receipt),
        outcome: {
          round,
          startModel: start.cid,
          ...(start.file === undefined ? {} : { startFile: start.file }),
          model: model.cid,
          file: model.file ?? model.cid,
          arch,
          accepted: record.accepted,
          reports: reports.flatMap((r) =>
            r.deltaFile === undefined ? [] : [{ receipt: r.receipt, deltaFile: r.deltaFile }]
          ),
          excluded: record.excluded.map((e) => e.key),
          ...(heldOutLoss === undefined ? {} : { heldOutLoss }),
        },
      };
    }
    // Stopped before the round is saved as finished: it is lost, and nothing of it went out —
    // no credit, no outcome — so no ledger pays for it and every node runs on without it.
    if (ctx.signal.aborted) return true;
    await ctx.self.ask({
      type: "round_done",
      record,
      model,
      momentum,
      resetMomentum,
      convicted,
      delivery,
    });
    this.#log(
      `training: round ${round} done: model ${model.cid} from ${accepted.length} of ${trainers.length} ` +
        `trainers` +
        (excluded.size > 0
          ? `, excluded ${[...excluded].map(([k, r]) => `${k.slice(0, 16)} (${r})`).join(", ")}`
          : "") +
        (heldOutLoss === undefined ? "" : `, held-out loss ${heldOutLoss.toFixed(3)} nats/byte`),
    );
    return heard;
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

  /** Why a report cannot enter the round (undefined: it can). */
  #reportProblem(
    report: ReportBody,
    trainer: JoinedTrainer,
    terms: RoundTerms & { hyper: LocalHyperParams },
    start: GptWeights,
  ): string | undefined {
    const check = verifyTrainingReceipt(report.receipt, {
      startModel: terms.startModel,
      delta: report.delta,
    });
    if (!check.ok) return check.reason;
    const r = check.receipt;
    if (toHex(r.trainer) !== trainer.key) return "not_its_receipt";
    if (r.round !== terms.round) return "round_mismatch";
    if (r.steps !== terms.steps) return "steps_mismatch";
    // The batches and the work are the coordinator's to choose: a seed of the trainer's own
    // picks the batches that suit it, a smaller batch or a larger learning rate is less work or
    // a scaled delta — each one a receipt that opens consistently and passes its challenge.
    if (r.dataSeed !== dataSeedOf(terms.round, trainer.key)) return "seed_mismatch";
    if (!sameHyperParams(r.hyper, terms.hyper)) return "hyper_mismatch";
    if (r.shardRoot !== trainer.shardRoot || r.shardSize !== trainer.shardSize) {
      return "shard_mismatch";
    }
    // Refused here, before a challenge is spent on it; `aggregateRound` applies the same rule.
    try {
      decodeFittingDelta(report.delta, start);
    } catch (error) {
      return (error as { code?: string }).code ?? "bad_delta";
    }
    return undefined;
  }

  async #evaluate(weights: GptWeights): Promise<number | undefined> {
    const heldOut = this.#options.heldOut;
    if (heldOut === undefined) return undefined;
    const sampleBytes = this.#hyper.sampleBytes;
    const { evaluateLoss, useTrainingBackend } = await loadTrainingEngine();
    await useTrainingBackend("wasm");
    const loss = await evaluateLoss(this.#options.arch, weights, heldOut, {
      sampleBytes,
      maxSamples: EVAL_SAMPLES,
    });
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

/**
 * A trainer's data seed for a round: drawn by the coordinator, not the trainer, so a trainer
 * cannot pick batches that suit it; a hash of the round and the trainer's key (stable, so a
 * validator can see it is the one announced).
 */
export function dataSeedOf(round: number, trainerKey: string): number {
  const digest = sha256(
    new TextEncoder().encode(`veriflow/training-seed/v1\n${round}\n${trainerKey}`),
  );
  return new DataView(digest.buffer, digest.byteOffset).getUint32(0);
}

/**
 * Whether two sets of inner hyper-parameters are the same, every field exactly: a receipt's
 * against the ones its round announced.
 */
export function sameHyperParams(a: LocalHyperParams, b: LocalHyperParams): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof LocalHyperParams>;
  return [...keys].every((key) => a[key] === b[key]);
}

function roundsText(rounds: number): string {
  return rounds === 0 ? "rounds until stopped" : rounds === 1 ? "1 round" : `${rounds} rounds`;
}
