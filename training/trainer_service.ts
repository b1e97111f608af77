/**
 * TrainerService: a node's trainer role in the network round. It holds the node's private
 * shard (the data never leaves this node: only its size and Merkle root go out, at join),
 * joins every coordinator it meets, trains when a round is announced — downloading the round's
 * start model by CID when it does not hold it, so a trainer that joins late catches up — and
 * opens challenged steps of its runs for validators.
 *
 * ```
 * peer       { connection }  join through it, if it speaks training (coordinators accept)
 * round      { body, gone? } → { report: Promise<ReportBody> }  (trains outside the mailbox;
 *                              `gone`: aborted once the asker no longer waits — its connection
 *                              closed — which frees its coordinator's round slot; a round lost
 *                              for good stops at its next step, `round_abandoned`)
 * step       { coordinator, round, step, loss }  internal: one local step taken (progress,
 *                              dashboard; a lost round past its deadline is stopped here)
 * trained    { losses, receiptId, coordinator }  → { saved: Promise<void> }  internal: a round's
 *                              training ended (counted; its coordinator is owed openings of that
 *                              receipt, also after a restart: kept in `dataDir` when given)
 * challenge  { challenge }   → { openings: Promise<OpeningsBody> }: the sealed answer, encoded,
 *                              kept to be fetched; only for a challenger owed one
 * opened     { challengeId, bytes }  internal: an answer is ready
 * part       { challengeId, index }  → one piece of it (undefined: no such answer or part;
 *                              an answer is kept until its challenge's deadline)
 * stats      → TrainerStats (rounds, challenges, the run in progress, its losses)
 * ```
 *
 * It signs at most one receipt per round slot (round, start model), as every ledger counts
 * them: a second request for a slot it trained on other terms — a coordinator restarted with
 * another H, or a second one on the same seed — is refused (`slot_signed`), not signed into an
 * equivocation that would slash it. The slots are kept in `dataDir` when given.
 *
 * The compute — H steps, and the opening of challenged steps from the run's trace — runs in a
 * {@link TrainerEngine}: by default a worker of the trainer's own, so the node's event loop
 * (keepalives, other requests) never waits for tfjs. Results come back to the mailbox by
 * message (the gen_server shape). A test fixture substitutes the training function
 * ({@link TrainerServiceOptions.train}), which then runs in place.
 *
 * This file holds the service, its options and the messages it accepts; what it composes lives
 * in private modules beside it: the rounds it admits and trains (`_trainer_rounds.ts`), the
 * round slots it signed (`_signed_slots.ts`), the coordinator each receipt was trained for
 * (`_receipt_coordinators.ts`), which challenges it answers (`_challenge_admission.ts`), the
 * sealed answers kept for their validators to fetch (`_kept_answers.ts`), and the data
 * directory's small records (`_pair_files.ts`).
 *
 * @module
 */
import { join } from "node:path";
import type { Actor, ActorContext } from "../actors/actor.ts";
import { removeTemporaries } from "../proof/_durable_file.ts";
import { DEFAULT_ECONOMICS, type EconomicParams } from "../proof/economics.ts";
import type { Connection } from "../protocols/connection.ts";
import type { Identity } from "../protocols/identity.ts";
import { toHex } from "../protocols/hash.ts";
import {
  JoinMessage,
  type OpeningsBody,
  type ReportBody,
  type RoundBody,
  TRAINING_PROTOCOL,
} from "../protocols/training_messages.ts";
import type { TextShard } from "./brown_corpus.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "./hyper_params.ts";
import type { RoundModels } from "./round_models.ts";
import { TrainingError } from "./training_error.ts";
import { commitShard } from "./training_state.ts";
import type { TrainingChallenge } from "./training_challenge.ts";
import {
  InProcessTrainerEngine,
  type TrainerEngine,
  type TrainFunction,
  WorkerTrainerEngine,
} from "./trainer_engine.ts";
import { TrainerDataDir } from "./_pair_files.ts";
import { SignedSlots, SLOTS_FILE } from "./_signed_slots.ts";
import { COORDINATORS_FILE, ReceiptCoordinators } from "./_receipt_coordinators.ts";
import { ChallengeAdmission } from "./_challenge_admission.ts";
import { KeptAnswers } from "./_kept_answers.ts";
import { TrainerRounds } from "./_trainer_rounds.ts";

export type { TrainFunction } from "./trainer_engine.ts";

/** Where runs' traces are kept under {@link TrainerServiceOptions.dataDir} (`trace_store.ts`). */
const TRACES_DIR = "traces";

/** Options of {@link TrainerService}. */
export interface TrainerServiceOptions {
  /** The node's key: signs receipts, proves the connection. */
  identity: Identity;
  /** This node's private shard (as dealt; see {@link TrainerServiceOptions.keepShard}). */
  shard: TextShard;
  /**
   * Keep the shard in the node's private storage tier and train on what is read back from
   * there (`private_shard.ts`); absent: train on `shard` as given (a node without storage).
   */
  keepShard?: (shard: TextShard) => Promise<TextShard>;
  /** Where round models are found, fetched and written. */
  models: RoundModels;
  /**
   * Train one round in place with this function (a test fixture's) instead of the honest
   * `trainAndSign` in a worker of the trainer's own ({@link WorkerTrainerEngine}).
   */
  train?: TrainFunction;
  /**
   * Sample length the shard is committed at (the round's `hyper.sampleBytes` must match, or the
   * round is refused: `round_terms_refused`); default the local trainer's.
   */
  sampleBytes?: number;
  /**
   * Samples a step of this trainer takes (the round's `hyper.batchSize` must match, or the round
   * is refused: `round_terms_refused`); default the local trainer's. It bounds what one challenge
   * opens of the shard and how long a round holds the engine (see `_trainer_rounds.ts`).
   */
  batchSize?: number;
  /**
   * Why this node refused a round model (its audit did not reproduce it; see
   * `round_audit.ts`), or null: a round that starts from a refused model is not trained.
   */
  refusedModel?: (cid: string) => Promise<string | null>;
  /**
   * Directory where the round slots this trainer signed are kept (`signed-slots.json`), so a
   * restarted node still refuses a second request for one, and its runs' traces (`traces/`) with
   * the coordinator each was trained for (`trained-for.json`), so it still answers that
   * coordinator's challenge of a run from before the restart, and which validator challenged
   * which receipt (`challenged-by.cbor`), so none reads a second opening of one after a restart;
   * absent: in memory only.
   */
  dataDir?: string;
  /**
   * The stake this node's ledger holds for a key (absent: this node keeps no ledger). A challenge
   * is opened for its coordinator's receipt, or for a challenger with at least the stake a
   * ledger asks of a peer's accuser (`unstaked_accuser` in `_training_proof_intake.ts`): an opening
   * reveals a batch of the shard per step, so a fresh key is owed none, and its
   * `opening_missing` over one refused is not taken by any ledger.
   */
  stakeOf?: (key: Uint8Array) => Promise<number>;
  /**
   * The economics the ledger {@link TrainerServiceOptions.stakeOf} reads runs with (the
   * ValidatorActor's `ledger.economics`); default `DEFAULT_ECONOMICS`. A challenger is owed an
   * opening with its `falseAccusationPenalty` of stake there: the bar that ledger sets for a peer's
   * accuser, whose `opening_missing` it would take.
   */
  economics?: Partial<EconomicParams>;
  /** Where one line per join, round and challenge goes. */
  log?: (line: string) => void;
  /**
   * Bytes of sealed answers held in memory; default `KEPT_ANSWER_BYTES` (`_kept_answers.ts`;
   * tests).
   */
  keptAnswerBytes?: number;
  /**
   * The trainer's clock (ms since the epoch): a round's deadline is read on it (a round nobody
   * waits for any more is stopped once its deadline has passed, see `TrainerRounds.admit`),
   * and so are its answers' deadlines and how long challenges are remembered; default `Date.now`
   * (tests inject one).
   */
  now?: () => number;
  /**
   * The most local steps (H) a round may ask of this trainer; default `MAX_ROUND_STEPS`
   * (`protocols/training_messages.ts`). A longer one is refused (`too_many_steps`).
   */
  maxRoundSteps?: number;
}

/** Messages the TrainerService accepts. */
export type TrainerMessage =
  | { type: "peer"; connection: Connection }
  | {
    type: "round";
    body: RoundBody;
    coordinator: string;
    /**
     * Aborted once the asker no longer waits for the report (the peer service's request
     * signal: its connection closed, or it cancelled); absent: waited on to its end.
     */
    gone?: AbortSignal;
  }
  | {
    type: "step";
    coordinator: string;
    round: number;
    steps: number;
    step: number;
    loss: number;
  }
  | { type: "trained"; losses: number[]; receiptId: string; coordinator: string }
  | {
    type: "challenge";
    challenge: TrainingChallenge;
    /** The key of the peer it came from: it must be the challenge's validator. */
    from?: Uint8Array;
  }
  | { type: "opened"; challengeId: string; bytes: Uint8Array; deadline: number }
  | { type: "part"; challengeId: string; index: number }
  | { type: "stats" };

/** The answer to a `challenge` message (in-process). */
export interface ChallengeAccepted {
  /** Resolves once the answer is sealed and ready to be fetched. */
  openings: Promise<OpeningsBody>;
}

/** The answer to a `round` message (in-process). */
export interface RoundAccepted {
  /** Resolves with the report once trained; rejects if training fails. */
  report: Promise<ReportBody>;
}

/** The answer to a `trained` message: `saved` resolves once its coordinator is on disk. */
export interface Trained {
  /** Resolves once the record is durable (at once without a data directory). */
  saved: Promise<void>;
}

/** What {@link TrainerService} has done (tests, logs). */
export interface TrainerStats {
  /** Rounds trained. */
  rounds: number;
  /** Challenges answered. */
  challenges: number;
  /** Coordinators joined (hex keys). */
  joined: string[];
  /** The round being trained now, and how far it is. */
  current?: { round: number; step: number; steps: number };
  /** Training loss (nats per byte) of each step of the current or latest run. */
  losses: number[];
  /** Bytes of sealed answers held in memory (see `KEPT_ANSWER_BYTES` in `_kept_answers.ts`). */
  answerBytes: number;
}

/** A node's trainer; see the module doc. */
export class TrainerService implements Actor<TrainerMessage> {
  readonly #options: TrainerServiceOptions;
  readonly #joined = new Set<string>();
  /** Sealed answers kept for their validators to fetch (`_kept_answers.ts`). */
  readonly #answers: KeptAnswers;
  /** Which challenges are answered, and the openings of those that are. */
  readonly #challengeAdmission: ChallengeAdmission;
  #rounds = 0;
  #current?: { round: number; step: number; steps: number };
  #losses: number[] = [];
  #commitment?: { size: number; root: string };
  /** The coordinator (hex key) each recent receipt was trained for: owed its openings. */
  readonly #coordinators: ReceiptCoordinators;
  #engine?: TrainerEngine;
  /**
   * Round slots signed here: a second receipt for a slot is equivocation in every ledger,
   * whoever asked for it.
   */
  readonly #slots: SignedSlots;
  /** The rounds waiting or running here, one per coordinator (`_trainer_rounds.ts`). */
  readonly #trainerRounds: TrainerRounds;

  /** @param options See {@link TrainerServiceOptions}. */
  constructor(options: TrainerServiceOptions) {
    this.#options = options;
    const now = () => this.#now();
    const log = (line: string) => this.#log(line);
    const engine = () => this.#engine;
    const made = new TrainerDataDir(options.dataDir);
    this.#slots = new SignedSlots({ dataDir: options.dataDir, made, log });
    this.#coordinators = new ReceiptCoordinators({ made, log });
    this.#answers = new KeptAnswers({
      keptAnswerBytes: options.keptAnswerBytes,
      dataDir: options.dataDir,
      now,
      log,
    });
    this.#challengeAdmission = new ChallengeAdmission({
      dataDir: options.dataDir,
      stakeOf: options.stakeOf,
      economics: { ...DEFAULT_ECONOMICS, ...options.economics },
      coordinators: this.#coordinators,
      engine,
      now,
      log,
    });
    this.#trainerRounds = new TrainerRounds({
      models: options.models,
      refusedModel: options.refusedModel,
      maxRoundSteps: options.maxRoundSteps,
      batch: {
        batchSize: options.batchSize ?? DEFAULT_LOCAL_HYPER_PARAMS.batchSize,
        sampleBytes: options.sampleBytes ?? DEFAULT_LOCAL_HYPER_PARAMS.sampleBytes,
      },
      slots: this.#slots,
      engine,
      now,
      log,
    });
  }

  /**
   * Put the shard in the private storage tier (or find it there), then commit to it once (the
   * root every receipt and the join carry).
   */
  async preStart(): Promise<void> {
    const { identity, train, keepShard } = this.#options;
    const shard = keepShard ? await keepShard(this.#options.shard) : this.#options.shard;
    const sampleBytes = this.#options.sampleBytes ?? DEFAULT_LOCAL_HYPER_PARAMS.sampleBytes;
    const { size, root } = commitShard(shard, sampleBytes);
    if (size === 0) throw new TrainingError("empty_shard", "the trainer's shard has no sample");
    this.#commitment = { size, root };
    if (this.#options.dataDir !== undefined) {
      // Slot and coordinator writes a crash interrupted: never read, they would only pile up.
      await removeTemporaries(
        this.#options.dataDir,
        (name) => name === SLOTS_FILE || name === COORDINATORS_FILE,
      );
    }
    await this.#slots.load();
    await this.#challengeAdmission.load();
    await this.#answers.removeLeftovers();
    // With a data directory, runs' traces are kept on disk for the challenge window: a
    // challenge after a restart, or after more rounds than are kept in memory, is answered.
    // (A test fixture's train function keeps its runs in memory: its traces may be stand-ins.)
    // So are the coordinators they were trained for, owed those openings.
    const dataDir = this.#options.dataDir;
    const traces = dataDir === undefined ? undefined : { dir: join(dataDir, TRACES_DIR) };
    if (train === undefined && dataDir !== undefined) {
      await this.#coordinators.keepIn(join(dataDir, COORDINATORS_FILE));
    }
    this.#engine = train === undefined
      ? new WorkerTrainerEngine(identity, shard, traces)
      : new InProcessTrainerEngine(identity, shard, train);
    this.#log(`trainer: shard of ${size} samples, root ${root.slice(0, 12)} (kept here)`);
  }

  /** Stop the engine (its worker and the traces it keeps). */
  async postStop(): Promise<void> {
    await this.#engine?.close();
  }

  /** Handle one message; see {@link TrainerMessage}. */
  receive(message: TrainerMessage, ctx: ActorContext<TrainerMessage>): unknown {
    switch (message.type) {
      case "peer":
        return this.#join(message.connection);
      case "round":
        return this.#trainerRounds.admit(message.body, message.coordinator, message.gone, ctx);
      case "step":
        if (this.#current?.round !== message.round) {
          this.#current = { round: message.round, step: 0, steps: message.steps };
          this.#losses = [];
        }
        this.#current.step = message.step + 1;
        this.#losses[message.step] = message.loss;
        this.#trainerRounds.stopIfPastDeadline(message.coordinator, message.round);
        return;
      case "trained":
        this.#rounds++;
        this.#current = undefined;
        this.#losses = message.losses;
        return {
          saved: this.#coordinators.record(message.receiptId, message.coordinator),
        } satisfies Trained;
      case "challenge":
        return this.#challengeAdmission.admit(message.challenge, message.from, ctx);
      case "opened": {
        this.#answers.keep(message.challengeId, message.bytes, message.deadline);
        return;
      }
      case "part": {
        return this.#answers.part(message.challengeId, message.index);
      }
      case "stats":
        return {
          rounds: this.#rounds,
          challenges: this.#challengeAdmission.challenges,
          joined: [...this.#joined],
          current: this.#current && { ...this.#current },
          losses: [...this.#losses],
          answerBytes: this.#answers.heldBytes,
        } satisfies TrainerStats;
    }
  }

  /** Offer this trainer to the peer; only a coordinator accepts (outside the mailbox). */
  #join(connection: Connection): void {
    if (!connection.supports(TRAINING_PROTOCOL.name)) return;
    const peer = toHex(connection.peerKey!);
    const { size, root } = this.#commitment!;
    connection.request(JoinMessage, { shardSize: size, shardRoot: root }).then(
      (joined) => {
        this.#joined.add(peer);
        this.#log(
          `trainer: joined coordinator ${peer.slice(0, 16)} at round ${joined.round} ` +
            `(model ${joined.model.slice(0, 16)}…)`,
        );
      },
      () => {}, // not a coordinator, or gone: nothing to join there
    );
  }

  /** The trainer's clock ({@link TrainerServiceOptions.now}). */
  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }
}
