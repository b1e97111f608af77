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
 * @module
 */
import { dirname, join } from "node:path";
import type { Actor, ActorContext } from "../actors/actor.ts";
import { removeTemporaries, syncDirectory, writeFileDurably } from "../proof/_durable_file.ts";
import type { Connection } from "../protocols/connection.ts";
import type { Identity } from "../protocols/identity.ts";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { encodeCanonical } from "../protocols/cbor.ts";
import {
  JoinMessage,
  MAX_OPENING_PART_BYTES,
  MAX_ROUND_STEPS,
  type OpeningsBody,
  type ReportBody,
  type RoundBody,
  TRAINING_PROTOCOL,
} from "../protocols/training_messages.ts";
import type { TextShard } from "./brown_corpus.ts";
import { KeptCborFile } from "../proof/_kept_cbor_file.ts";
import { DEFAULT_TRACE_RETAIN_MS } from "./trace_store.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "./hyper_params.ts";
import type { RoundModels } from "./round_models.ts";
import { TrainingError } from "./training_error.ts";
import { ChallengeMismatchError } from "./step_opening.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { DEFAULT_ECONOMICS } from "../proof/economics.ts";
import { commitShard } from "./training_state.ts";
import { trainingReceiptId } from "./training_receipt.ts";
import {
  TRAINING_CHALLENGE_STEPS,
  type TrainingChallenge,
  trainingChallengeId,
} from "./training_challenge.ts";
import {
  InProcessTrainerEngine,
  type TrainerEngine,
  type TrainFunction,
  WorkerTrainerEngine,
} from "./trainer_engine.ts";

export type { TrainFunction } from "./trainer_engine.ts";

/** Challenges remembered by validator and receipt (one each is answered). */
const MAX_REMEMBERED_CHALLENGES = 4096;
/**
 * Bytes of sealed answers held in memory for their validators to fetch, by default. An answer is
 * kept until its challenge's deadline passed; past this bound the fetched ones are dropped
 * first, then the oldest unfetched ones are written to the data directory ({@link ANSWERS_DIR})
 * and their parts read from there. Not dropped: an answer gone before it was fetched is
 * `unknown_opening` to its validator, which takes it as missing, and its `opening_missing`
 * slashes the honest trainer (review s45: the 9th of nine validators' answers pushed out the
 * first). 320 MiB holds one receipt's audit — nine answers of `tiny`, 29 MB each, ready within
 * seconds — with room; the count bound before it (64 answers) let them hold ~1.9 GB (review s53).
 */
const KEPT_ANSWER_BYTES = 320 * 1024 * 1024;
/**
 * Bytes of answers kept at most, in memory and on disk together (in memory alone without a data
 * directory). Each is kept only until its challenge's deadline (a minute by default), so only a
 * flood of challenges from staked validators comes near it. Past it the oldest are dropped, the
 * fetched ones first, and the trainer pays for an unfetched one (its validator's
 * `opening_missing`): the bound on the node's disk is its operator's choice to make.
 */
const KEPT_ANSWER_TOTAL_BYTES = 2 * 1024 * 1024 * 1024;
/** Where unfetched answers past the memory bound wait, under the data directory (see above). */
const ANSWERS_DIR = "answers";
/**
 * Round slots (round, start model) remembered as signed. A ledger's equivocation slot is the
 * trainer, the round and the start model; a coordinator asks each slot once, and one restarted
 * (or a second one on the same seed) asks the same low rounds again, so the latest few
 * thousand cover any restart; the file stays under a megabyte.
 */
const KEPT_SLOTS = 4096;
/** Where the signed slots are kept under {@link TrainerServiceOptions.dataDir}. */
const SLOTS_FILE = "signed-slots.json";
/**
 * Where the challenge each validator made of each receipt is kept under
 * {@link TrainerServiceOptions.dataDir}: one challenge per validator and receipt bounds the
 * batches of the shard a validator reads, and a record lost with a restart let a staked validator
 * challenge the same receipt again (review s53). Each entry is kept for
 * {@link CHALLENGED_KEPT_MS} from its challenge, at most {@link MAX_REMEMBERED_CHALLENGES}.
 */
const CHALLENGED_FILE = "challenged-by.cbor";
/**
 * How long a challenge is remembered on disk: as long as the trace of its receipt is kept
 * (`trace_store.ts`, from when the run was saved, which is before any challenge of it), so no
 * run that can still be opened after a restart is opened twice for one validator.
 */
const CHALLENGED_KEPT_MS = DEFAULT_TRACE_RETAIN_MS;
/** Where runs' traces are kept under {@link TrainerServiceOptions.dataDir} (`trace_store.ts`). */
const TRACES_DIR = "traces";
/**
 * Where the coordinator each recent receipt was trained for is kept under
 * {@link TrainerServiceOptions.dataDir}: it is owed that run's openings after a restart too, when
 * the run's trace is opened from disk (refused, its `opening_missing` slashes the trainer).
 */
const COORDINATORS_FILE = "trained-for.json";

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
   * Sample length the shard is committed at (the round's `hyper.sampleBytes` must match);
   * default the local trainer's.
   */
  sampleBytes?: number;
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
   * ledger asks of a peer's accuser (`unstaked_accuser` in `training_validator.ts`): an opening
   * reveals a batch of the shard per step, so a fresh key is owed none, and its
   * `opening_missing` over one refused is not taken by any ledger.
   */
  stakeOf?: (key: Uint8Array) => Promise<number>;
  /** Where one line per join, round and challenge goes. */
  log?: (line: string) => void;
  /** Bytes of sealed answers held in memory; default {@link KEPT_ANSWER_BYTES} (tests). */
  keptAnswerBytes?: number;
  /**
   * The trainer's clock (ms since the epoch): a round's deadline is read on it (a round nobody
   * waits for any more is stopped once its deadline has passed, see `TrainerService.#admitRound`),
   * and so are its answers' deadlines and how long challenges are remembered; default `Date.now`
   * (tests inject one).
   */
  now?: () => number;
  /**
   * The most local steps (H) a round may ask of this trainer; default {@link MAX_ROUND_STEPS}.
   * A longer one is refused (`too_many_steps`).
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
  /** Bytes of sealed answers held in memory (see {@link KEPT_ANSWER_BYTES}). */
  answerBytes: number;
}

/** A node's trainer; see the module doc. */
export class TrainerService implements Actor<TrainerMessage> {
  readonly #options: TrainerServiceOptions;
  readonly #joined = new Set<string>();
  /**
   * Sealed answers by challenge id, oldest first (see {@link KEPT_ANSWER_BYTES}).
   */
  readonly #answers = new Map<string, KeptAnswer>();
  /**
   * The challenge each validator made of each receipt (`validator/receipt` → its id, until when
   * it is remembered, and the opening: none for one read back after a restart): one per validator
   * and receipt (asked again, the same one gets the same answer), oldest first.
   */
  readonly #challenged = new Map<
    string,
    { id: string; until: number; openings?: Promise<OpeningsBody> }
  >();
  /** Where {@link #challenged} is kept ({@link CHALLENGED_FILE}); absent: memory only. */
  #challengedFile: KeptCborFile | undefined;
  /** The latest write of {@link #challengedFile}, after the ones before it. */
  #savingChallenged: Promise<unknown> = Promise.resolve();
  #rounds = 0;
  #challenges = 0;
  #current?: { round: number; step: number; steps: number };
  #losses: number[] = [];
  #commitment?: { size: number; root: string };
  /** The coordinator (hex key) each recent receipt was trained for: owed its openings. */
  readonly #coordinatorOf = new Map<string, string>();
  #engine?: TrainerEngine;
  /**
   * Round slots signed here (`round ‖ start model` → the terms trained on), oldest first: a
   * second receipt for a slot is equivocation in every ledger, whoever asked for it.
   */
  readonly #signed = new Map<string, string>();
  /** The latest write of {@link #signed} (writes go one after another). */
  #saving: Promise<void> = Promise.resolve();
  /** Where the coordinators of runs kept on disk are recorded ({@link COORDINATORS_FILE}). */
  #coordinatorsFile: string | undefined;
  /** The latest write of {@link COORDINATORS_FILE}, after the ones before it. */
  #savingCoordinators: Promise<void> = Promise.resolve();
  /** Whether the slots' directory is known to exist, its entry on disk. */
  #slotsDirMade = false;
  /**
   * The round each coordinator has waiting or running here (see {@link #admitRound}): its
   * number, the request (its body but the deadline, hashed), its report, how many askers still
   * wait for it (none: its coordinator is gone, the slot is free) and whether it was abandoned.
   */
  readonly #roundOf = new Map<string, RoundInProgress>();

  /** @param options See {@link TrainerServiceOptions}. */
  constructor(options: TrainerServiceOptions) {
    this.#options = options;
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
    await this.#loadSlots();
    await this.#loadChallenged();
    if (this.#options.dataDir !== undefined) {
      // Answers a run before this one left: nobody can fetch them now (their ids are forgotten).
      await Deno.remove(join(this.#options.dataDir, ANSWERS_DIR), { recursive: true })
        .catch((error) => {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        });
    }
    // With a data directory, runs' traces are kept on disk for the challenge window: a
    // challenge after a restart, or after more rounds than are kept in memory, is answered.
    // (A test fixture's train function keeps its runs in memory: its traces may be stand-ins.)
    // So are the coordinators they were trained for, owed those openings.
    const dataDir = this.#options.dataDir;
    const traces = dataDir === undefined ? undefined : { dir: join(dataDir, TRACES_DIR) };
    if (train === undefined && dataDir !== undefined) {
      this.#coordinatorsFile = join(dataDir, COORDINATORS_FILE);
      await this.#loadCoordinators(this.#coordinatorsFile);
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
        return this.#admitRound(message.body, message.coordinator, message.gone, ctx);
      case "step":
        if (this.#current?.round !== message.round) {
          this.#current = { round: message.round, step: 0, steps: message.steps };
          this.#losses = [];
        }
        this.#current.step = message.step + 1;
        this.#losses[message.step] = message.loss;
        this.#stopIfPastDeadline(message.coordinator, message.round);
        return;
      case "trained":
        this.#rounds++;
        this.#current = undefined;
        this.#losses = message.losses;
        this.#coordinatorOf.set(message.receiptId, message.coordinator);
        while (this.#coordinatorOf.size > MAX_REMEMBERED_CHALLENGES) {
          this.#coordinatorOf.delete(this.#coordinatorOf.keys().next().value!);
        }
        if (this.#coordinatorsFile !== undefined) {
          // Each write takes the table as it is then, so the last one is whole.
          const path = this.#coordinatorsFile;
          this.#savingCoordinators = this.#savingCoordinators.catch(() => {})
            .then(() => this.#saveCoordinators(path));
        }
        return { saved: this.#savingCoordinators } satisfies Trained;
      case "challenge":
        return this.#admit(message.challenge, message.from, ctx);
      case "opened": {
        this.#answers.delete(message.challengeId);
        this.#answers.set(message.challengeId, {
          size: message.bytes.length,
          bytes: message.bytes,
          deadline: message.deadline,
          fetched: false,
          writing: false,
        });
        this.#trimAnswers();
        return;
      }
      case "part": {
        // Undefined for no such answer or part (the peer service refuses it: `unknown_opening`);
        // not thrown: a throw here crashed this actor, and any peer could send one.
        const answer = this.#answers.get(message.challengeId);
        const from = message.index * MAX_OPENING_PART_BYTES;
        if (answer === undefined || from >= answer.size) return undefined;
        if (from + MAX_OPENING_PART_BYTES >= answer.size) answer.fetched = true;
        if (answer.bytes !== undefined) {
          return answer.bytes.subarray(from, from + MAX_OPENING_PART_BYTES);
        }
        return readPart(answer.file!, from, Math.min(MAX_OPENING_PART_BYTES, answer.size - from))
          .catch(() => undefined); // its file gone: no such answer here any more
      }
      case "stats":
        return {
          rounds: this.#rounds,
          challenges: this.#challenges,
          joined: [...this.#joined],
          current: this.#current && { ...this.#current },
          losses: [...this.#losses],
          answerBytes: [...this.#answers.values()]
            .reduce((sum, a) => sum + (a.bytes === undefined ? 0 : a.size), 0),
        } satisfies TrainerStats;
    }
  }

  /**
   * Keep the answers within their bounds ({@link KEPT_ANSWER_BYTES},
   * {@link KEPT_ANSWER_TOTAL_BYTES}): past its deadline nobody may fetch an answer; past the
   * memory bound the fetched ones leave memory first, then the oldest unfetched ones go to disk
   * (with a data directory); past the total bound the oldest are dropped, fetched ones first.
   */
  #trimAnswers(): void {
    const now = this.#now();
    for (const [id, answer] of this.#answers) {
      if (answer.deadline < now) this.#dropAnswer(id);
    }
    const bound = this.#options.keptAnswerBytes ?? KEPT_ANSWER_BYTES;
    const dir = this.#options.dataDir;
    // In memory and staying there (one being written leaves it once written).
    let held = 0;
    for (const a of this.#answers.values()) if (a.bytes && !a.writing) held += a.size;
    for (const [id, answer] of this.#answers) {
      if (held <= bound) break;
      if (answer.fetched && answer.bytes && !answer.writing) {
        held -= answer.size;
        this.#dropAnswer(id);
      }
    }
    if (dir !== undefined) {
      for (const [id, answer] of this.#answers) {
        if (held <= bound) break;
        if (answer.bytes && !answer.writing) {
          held -= answer.size;
          this.#writeAnswer(join(dir, ANSWERS_DIR), id, answer);
        }
      }
    }
    let total = 0;
    for (const a of this.#answers.values()) total += a.size;
    for (const fetchedOnly of [true, false]) {
      for (const [id, answer] of this.#answers) {
        if (total <= KEPT_ANSWER_TOTAL_BYTES) return;
        if (fetchedOnly && !answer.fetched) continue;
        total -= answer.size;
        this.#dropAnswer(id);
      }
    }
  }

  /** Move `answer` to a file of `dir` (kept in memory if that fails). */
  #writeAnswer(dir: string, id: string, answer: KeptAnswer): void {
    const path = join(dir, id);
    answer.writing = true;
    answer.written = Deno.mkdir(dir, { recursive: true })
      .then(() => Deno.writeFile(path, answer.bytes!))
      .then(
        () => {
          answer.file = path;
          answer.bytes = undefined;
        },
        (error) => {
          this.#log(`trainer: answer ${id.slice(0, 12)} kept in memory: ${error.message}`);
        },
      )
      .finally(() => (answer.writing = false));
  }

  /** Forget answer `id`, and remove its file if it has one (once written). */
  #dropAnswer(id: string): void {
    const answer = this.#answers.get(id);
    if (answer === undefined) return;
    this.#answers.delete(id);
    if (answer.written === undefined) return;
    void answer.written.then(() => answer.file === undefined ? undefined : Deno.remove(answer.file))
      .catch(() => {});
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

  /**
   * Train a round for `coordinator`, or refuse it at once. Rounds run one after another, so any
   * peer that can ask for one could hold this trainer's real coordinators' rounds behind its own
   * past their deadlines (the review of stop 49 found it): a round of more than
   * {@link TrainerServiceOptions.maxRoundSteps} steps is refused (`too_many_steps`), and so is a
   * second round from a coordinator while one of its rounds waits or runs here
   * (`round_in_progress`) — the same request again (a coordinator that lost its connection and
   * asks again) gets the running round's report instead. Decided in the mailbox, before any
   * await: two requests cannot both pass, however close together they come.
   *
   * A round nobody waits for any more (`gone` aborted: the connection that asked closed — a
   * coordinator restarted, or cut off) no longer holds its coordinator's slot: the restarted
   * coordinator's next round was refused until the lost one ended (review s53). If it has not
   * started training it is abandoned (`round_abandoned`): nothing is signed for it, so no ledger
   * pays or slashes anything. One already training goes on while the same request may still
   * come again (a coordinator whose connection blipped asks again, and shares its report), and
   * stops before its next step (`round_abandoned`, nothing signed) once it is lost for good:
   * its coordinator asked for another round, or its deadline passed
   * ({@link TrainerServiceOptions.now}). Before review s54 it ran all its H steps, and the
   * rounds after it in the engine — the restarted coordinator's, other coordinators' — waited
   * behind work nobody reads, past their deadlines; and one key could queue round after round
   * there, closing its connection once each had started.
   */
  #admitRound(
    body: RoundBody,
    coordinator: string,
    gone: AbortSignal | undefined,
    ctx: ActorContext<TrainerMessage>,
  ): RoundAccepted {
    const refused = (error: TrainingError): RoundAccepted => {
      const report = Promise.reject(error);
      report.catch(() => {}); // the asker awaits it; a refusal is its answer, not a crash
      return { report };
    };
    const maxSteps = this.#options.maxRoundSteps ?? MAX_ROUND_STEPS;
    if (body.steps > maxSteps) {
      this.#log(
        `trainer: round ${body.round} refused for ${coordinator.slice(0, 16)}: H = ` +
          `${body.steps} is more than ${maxSteps}`,
      );
      return refused(
        new TrainingError(
          "too_many_steps",
          `this trainer takes rounds of at most ${maxSteps} local steps, not ${body.steps}`,
        ),
      );
    }
    const request = sha256Hex(encodeCanonical({ ...body, deadline: 0 }));
    const running = this.#roundOf.get(coordinator);
    if (running !== undefined && !running.abandoned) {
      if (running.request === request) {
        waitFor(running, gone, () => this.#stopIfPastDeadline(coordinator, running.round));
        return { report: running.report };
      }
      if (running.waiting === 0) {
        this.#log(
          `trainer: round ${running.round} of ${coordinator.slice(0, 16)} lost with its ` +
            `connection: stopped; round ${body.round} taken`,
        );
        running.abandoned = true;
        running.stop.abort();
      } else {
        return refused(
          new TrainingError(
            "round_in_progress",
            `round ${running.round} of this coordinator is still waiting or running here: ` +
              `one round at a time per coordinator`,
          ),
        );
      }
    }
    const refusal = this.#claimSlot(body, coordinator);
    if (refusal !== undefined) return refused(refusal);
    const stop = new AbortController();
    // Called once the training's first awaits are past, `entry` set by then.
    const report = this.#train(body, coordinator, ctx, () => {
      if (entry.waiting > 0) return false;
      entry.abandoned = true;
      return true;
    }, stop.signal);
    report.catch(() => {}); // the asker awaits it; a failure is its answer, not a crash
    const entry: RoundInProgress = {
      round: body.round,
      request,
      report,
      waiting: 0,
      abandoned: false,
      deadline: body.deadline,
      stop,
    };
    waitFor(entry, gone, () => this.#stopIfPastDeadline(coordinator, entry.round));
    this.#roundOf.set(coordinator, entry);
    const done = () => {
      if (this.#roundOf.get(coordinator) === entry) this.#roundOf.delete(coordinator);
    };
    report.then(done, done);
    return { report };
  }

  /**
   * Stop `coordinator`'s round `round` if it is lost for good: nobody waits for its report and
   * its deadline has passed, so no coordinator could take it (see {@link #admitRound}). Looked
   * at when an asker leaves and on each step the round takes: it stops before its next one.
   */
  #stopIfPastDeadline(coordinator: string, round: number): void {
    const entry = this.#roundOf.get(coordinator);
    if (entry === undefined || entry.round !== round || entry.stop.signal.aborted) return;
    if (entry.waiting > 0 || this.#now() <= entry.deadline) return;
    this.#log(
      `trainer: round ${round} of ${coordinator.slice(0, 16)} stopped: nobody waits for it ` +
        `and its deadline has passed`,
    );
    entry.abandoned = true;
    entry.stop.abort();
  }

  /**
   * Take the round's slot (round, start model) for these terms, or say why not: a slot signed
   * before on other terms — another coordinator, or the same one restarted with another H —
   * would be a second receipt for one round, which every ledger slashes as equivocation. The
   * same terms again are allowed: training is deterministic, so the receipt is the same one.
   */
  #claimSlot(body: RoundBody, coordinator: string): TrainingError | undefined {
    const slot = `${body.round}\n${body.startModel}`;
    const terms = sha256Hex(encodeCanonical({
      arch: body.arch,
      steps: body.steps,
      dataSeed: body.dataSeed,
      hyper: body.hyper,
    }));
    const signed = this.#signed.get(slot);
    if (signed === terms) return undefined;
    if (signed !== undefined) {
      this.#log(
        `trainer: round ${body.round} from ${body.startModel.slice(0, 16)}… refused for ` +
          `${coordinator.slice(0, 16)}: already trained on other terms`,
      );
      return new TrainingError(
        "slot_signed",
        `round ${body.round} from ${body.startModel} was already trained here on other terms ` +
          `(another coordinator, or one restarted): a second receipt for it would be equivocation`,
      );
    }
    this.#signed.set(slot, terms);
    while (this.#signed.size > KEPT_SLOTS) this.#signed.delete(this.#signed.keys().next().value!);
    if (this.#options.dataDir !== undefined) {
      // Written before training starts (`#train` waits for it): a slot is on disk before its
      // receipt is signed. Each write takes the table as it is then, so the last one is whole.
      this.#saving = this.#saving.catch(() => {}).then(() => this.#saveSlots());
    }
    return undefined;
  }

  async #loadSlots(): Promise<void> {
    const dir = this.#options.dataDir;
    if (dir === undefined) return;
    // Slot and coordinator writes a crash interrupted: never read, they would only pile up.
    await removeTemporaries(dir, (name) => name === SLOTS_FILE || name === COORDINATORS_FILE);
    const entries = await readPairs(join(dir, SLOTS_FILE));
    if (entries === undefined) return;
    if (entries === "damaged") {
      // Not dropped: forgetting which slots were signed could make this trainer sign one twice,
      // an equivocation that slashes it in every ledger. The operator decides.
      const path = join(dir, SLOTS_FILE);
      throw new TrainingError(
        "signed_slots_unreadable",
        `${path} is not the list of round slots this trainer signed; restore it from a backup, ` +
          `or move it aside to start anew (any slot signed before may then be signed twice, ` +
          `which slashes the trainer if its coordinator asks again on other terms)`,
      );
    }
    for (const [slot, terms] of entries.slice(-KEPT_SLOTS)) {
      this.#signed.set(slot, terms);
    }
  }

  /**
   * Durably (`_durable_file.ts`): the record exists so that a trainer never signs a slot twice,
   * and a power cut that loses it after a receipt went out would let a restarted node sign an
   * equivocation that slashes it.
   */
  async #saveSlots(): Promise<void> {
    await writePairs(join(await this.#makeDataDir(), SLOTS_FILE), this.#signed);
  }

  /** The data directory, made (with its entry on disk) if it was not. */
  async #makeDataDir(): Promise<string> {
    const dir = this.#options.dataDir!;
    if (!this.#slotsDirMade) {
      await Deno.mkdir(dir, { recursive: true });
      await syncDirectory(dirname(dir)); // the directory's own entry, if this made it
      this.#slotsDirMade = true;
    }
    return dir;
  }

  /** Durably: a receipt leaves only once its coordinator is on record here. */
  async #saveCoordinators(path: string): Promise<void> {
    await this.#makeDataDir();
    await writePairs(path, this.#coordinatorOf);
  }

  /**
   * The coordinators of the receipts trained before a restart. A damaged file is skipped, not
   * fatal: losing it costs only openings owed to a coordinator, never a second signature.
   */
  async #loadCoordinators(path: string): Promise<void> {
    const entries = await readPairs(path);
    if (entries === undefined) return;
    if (entries === "damaged") {
      this.#log(`trainer: ${path} is not a list of receipts and coordinators; ignored`);
      return;
    }
    for (const [receiptId, coordinator] of entries) {
      this.#coordinatorOf.set(receiptId, coordinator);
    }
  }

  /**
   * The challenges made before a restart (see {@link CHALLENGED_FILE}). What is read back is
   * untrusted: entries that are not a key, an id and a time, or past their time, are skipped; a
   * file that is not CBOR is removed. Losing the record costs at most one more challenge per
   * validator and receipt, never an answer owed (refused, it would slash this trainer).
   */
  async #loadChallenged(): Promise<void> {
    const dir = this.#options.dataDir;
    if (dir === undefined) return;
    this.#challengedFile = new KeptCborFile(join(dir, CHALLENGED_FILE));
    const value = await this.#challengedFile.read();
    if (value === undefined) return;
    if (!Array.isArray(value)) {
      this.#log(`trainer: ${join(dir, CHALLENGED_FILE)} is not a list of challenges; ignored`);
      return;
    }
    const now = this.#now();
    for (const entry of value.slice(-MAX_REMEMBERED_CHALLENGES)) {
      const [key, id, until] = Array.isArray(entry) ? entry : [];
      if (typeof key !== "string" || typeof id !== "string") continue;
      if (typeof until !== "number" || !Number.isFinite(until) || until < now) continue;
      this.#challenged.delete(key);
      this.#challenged.set(key, { id, until });
    }
  }

  /** Write {@link #challenged} as it is now, after the writes before (durably). */
  #saveChallenged(): Promise<unknown> {
    const file = this.#challengedFile;
    if (file === undefined) return Promise.resolve();
    // Memory keeps the latest MAX_REMEMBERED_CHALLENGES whatever their age (a run kept in
    // memory may be opened later than its trace on disk); the file, only those a restarted
    // trainer could still open a run for.
    this.#savingChallenged = this.#savingChallenged.catch(() => {}).then(() => {
      const now = this.#now();
      const live = [...this.#challenged].filter(([, { until }]) => until >= now);
      return file.keep(live.length === 0 ? undefined : live.map(([k, e]) => [k, e.id, e.until]));
    });
    return this.#savingChallenged;
  }

  /**
   * Train one round outside the mailbox (in the engine); counted by `trained`. `lost` says
   * (and marks) that nobody waits for it any more: it is then not started. `stop` aborts once
   * it is lost for good while it trains: the engine stops it at its next step.
   */
  async #train(
    body: RoundBody,
    coordinator: string,
    ctx: ActorContext<TrainerMessage>,
    lost: () => boolean,
    stop: AbortSignal,
  ): Promise<ReportBody> {
    const started = performance.now();
    await this.#saving; // the slot is on disk before anything is signed for it
    const refused = await this.#options.refusedModel?.(body.startModel);
    if (refused) {
      this.#log(
        `trainer: round ${body.round} refused: its start model failed the audit (${refused})`,
      );
      throw new TrainingError(
        "start_model_refused",
        `start model ${body.startModel} is not what its round's deltas give (${refused})`,
      );
    }
    const start = await this.#options.models.get(
      body.startModel,
      body.arch,
      body.startFile,
      body.startUpdate,
    );
    if (start.fetched !== undefined) {
      this.#log(
        `trainer: round ${body.round}: start model ${body.startModel.slice(0, 16)}… ` +
          (start.fetched.via === "update"
            ? `rebuilt from its outer update (${start.fetched.bytes} bytes)`
            : `downloaded (${start.fetched.bytes} bytes)`),
      );
    }
    if (lost()) {
      this.#log(
        `trainer: round ${body.round} for ${coordinator.slice(0, 16)} abandoned: nobody waits ` +
          `for it (its connection closed)`,
      );
      throw new TrainingError(
        "round_abandoned",
        `round ${body.round}'s coordinator is gone: not trained, nothing signed`,
      );
    }
    const { round, steps } = body;
    const report = await this.#engine!.train(
      {
        arch: body.arch,
        round,
        startModel: body.startModel,
        start: start.weights,
        steps,
        dataSeed: body.dataSeed,
        hyper: body.hyper,
      },
      (step, loss) =>
        void ctx.self.tell({ type: "step", coordinator, round, steps, step, loss })
          .catch(() => {}),
      stop,
    );
    // Before the report goes back: the coordinator's challenge of it finds it owed, also after
    // a restart (the record is on disk, as the run's trace is).
    const { saved } = await ctx.self.ask<Trained>({
      type: "trained",
      losses: report.receipt.losses,
      receiptId: trainingReceiptId(report.receipt),
      coordinator,
    });
    await saved;
    const losses = report.receipt.losses;
    this.#log(
      `trainer: round ${body.round} for ${coordinator.slice(0, 16)}: ${body.steps} steps in ${
        Math.round(performance.now() - started)
      } ms, loss ${losses[0]?.toFixed(3)} → ${
        losses.at(-1)?.toFixed(3)
      }, delta ${report.delta.length} bytes`,
    );
    return { receipt: report.receipt, delta: report.delta };
  }

  /**
   * The opening of `challenge`, or a refusal (`challenge_mismatch`) for one this trainer does not
   * owe: not from its validator's own connection, more steps than a challenge draws
   * ({@link TRAINING_CHALLENGE_STEPS}), another challenge of a receipt its validator challenged
   * already, or from a validator that is neither the receipt's coordinator nor staked in this
   * node's ledger ({@link TrainerServiceOptions.stakeOf}). Openings run one after another, each
   * a few steps of training: junk challenges from any key, of up to 1024 steps each, queued
   * ahead of a real one made it miss its deadline, and be slashed (a review found it at stop
   * 33). And each opening reveals a batch of the shard per step, sealed to its validator: any
   * fresh key that named itself as the validator of a gossiped receipt read 9 batches, and the
   * next key 9 more (a review found it). Decided in the mailbox (the stake is awaited there).
   */
  async #admit(
    challenge: TrainingChallenge,
    from: Uint8Array | undefined,
    ctx: ActorContext<TrainerMessage>,
  ): Promise<ChallengeAccepted> {
    const refuse = (why: string): ChallengeAccepted => {
      const openings = Promise.reject(new ChallengeMismatchError(why));
      openings.catch(() => {}); // the asker awaits it; a refusal is its answer
      return { openings };
    };
    if (from !== undefined && !bytesEqual(from, challenge.validator)) {
      return refuse("a challenge is answered only to its validator, over its own connection");
    }
    if (challenge.steps.length > TRAINING_CHALLENGE_STEPS) {
      return refuse(`a challenge names at most ${TRAINING_CHALLENGE_STEPS} steps`);
    }
    const key = `${toHex(challenge.validator)}/${challenge.receiptId}`;
    const id = trainingChallengeId(challenge);
    const earlier = this.#challenged.get(key);
    if (earlier !== undefined) {
      if (earlier.id !== id) return refuse("this validator has challenged this receipt already");
      if (earlier.openings !== undefined) return { openings: earlier.openings };
      // Read back after a restart, its answer lost: the same steps are opened again (nothing
      // more of the shard), or its validator's opening_missing would slash this trainer.
      const openings = this.#open(challenge, ctx);
      openings.catch(() => {}); // the asker awaits it; a failure is its answer
      earlier.openings = openings;
      return { openings };
    }
    if (!await this.#owed(challenge)) {
      this.#log(
        `trainer: challenge of receipt ${challenge.receiptId.slice(0, 12)} by ` +
          `${toHex(challenge.validator).slice(0, 16)} refused: not its coordinator, no stake here`,
      );
      return refuse(
        "openings are owed to the receipt's coordinator and to validators with stake in this " +
          "node's ledger only",
      );
    }
    // Marked now (a second challenge in the next message sees it), and on disk before the
    // opening starts: no answer leaves that a restart could let its validator ask past.
    const entry: { id: string; until: number; openings?: Promise<OpeningsBody> } = {
      id,
      until: this.#now() + CHALLENGED_KEPT_MS,
    };
    this.#challenged.delete(key);
    this.#challenged.set(key, entry);
    while (this.#challenged.size > MAX_REMEMBERED_CHALLENGES) {
      this.#challenged.delete(this.#challenged.keys().next().value!);
    }
    const saved = this.#saveChallenged().catch((error) => {
      // Still answered: refused, its validator's opening_missing would slash this trainer; the
      // record is then only in memory until the next write.
      this.#log(`trainer: challenges not recorded on disk (${(error as Error).message})`);
    });
    const openings = saved.then(() => this.#open(challenge, ctx));
    openings.catch(() => {}); // the asker awaits it; a failure is its answer
    entry.openings = openings;
    return { openings };
  }

  /**
   * Whether `challenge`'s validator may see a batch of the shard: the coordinator this receipt
   * was trained for, or a key with the stake every ledger asks of a peer's accuser before it
   * takes its fraud proof. Refusing anyone else costs the trainer nothing: an `opening_missing`
   * from a key without that stake is not taken by a ledger (`unstaked_accuser`).
   */
  async #owed(challenge: TrainingChallenge): Promise<boolean> {
    if (this.#coordinatorOf.get(challenge.receiptId) === toHex(challenge.validator)) return true;
    const stakeOf = this.#options.stakeOf;
    if (stakeOf === undefined) return false;
    const stake = await stakeOf(challenge.validator).catch(() => 0);
    return stake >= DEFAULT_ECONOMICS.falseAccusationPenalty;
  }

  /** Open and seal the challenged steps outside the mailbox; the bytes come back by `opened`. */
  async #open(
    challenge: TrainingChallenge,
    ctx: ActorContext<TrainerMessage>,
  ): Promise<OpeningsBody> {
    this.#challenges++;
    this.#log(
      `trainer: opening steps ${challenge.steps.join(",")} of receipt ${
        challenge.receiptId.slice(0, 12)
      } for validator ${toHex(challenge.validator).slice(0, 16)}`,
    );
    const sealed = await this.#engine!.open(challenge);
    const bytes = encodeCanonical(sealed);
    await ctx.self.tell({
      type: "opened",
      challengeId: trainingChallengeId(challenge),
      bytes,
      deadline: challenge.deadline,
    });
    return {
      size: bytes.length,
      parts: Math.ceil(bytes.length / MAX_OPENING_PART_BYTES),
      sha256: sha256Hex(bytes),
    };
  }

  /** The trainer's clock ({@link TrainerServiceOptions.now}). */
  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }
}

/** A sealed answer kept for its validator to fetch (see `KEPT_ANSWER_BYTES`). */
interface KeptAnswer {
  /** Its length in bytes. */
  size: number;
  /** Its bytes, while held in memory. */
  bytes?: Uint8Array;
  /** Its file, once written there (then not in memory). */
  file?: string;
  /** Set while it is being written to its file. */
  writing: boolean;
  /** Its write to the file, once started. */
  written?: Promise<void>;
  /** Its challenge's deadline (ms since the epoch). */
  deadline: number;
  /** Whether its last part was fetched. */
  fetched: boolean;
}

/** `length` bytes of the file at `path` from `from`. */
async function readPart(path: string, from: number, length: number): Promise<Uint8Array> {
  const file = await Deno.open(path);
  try {
    await file.seek(from, Deno.SeekMode.Start);
    const bytes = new Uint8Array(length);
    for (let at = 0; at < length;) {
      const n = await file.read(bytes.subarray(at));
      if (n === null) throw new Error("answer file shorter than its answer");
      at += n;
    }
    return bytes;
  } finally {
    file.close();
  }
}

/** A round waiting or running for a coordinator (see `TrainerService.#admitRound`). */
interface RoundInProgress {
  round: number;
  /** The request, its body but the deadline, hashed. */
  request: string;
  report: Promise<ReportBody>;
  /** How many askers wait for its report (Infinity: one without a signal, waited on to its end). */
  waiting: number;
  /** Set when it was not started, or stopped, because nobody waited for it any more. */
  abandoned: boolean;
  /** Its deadline (the coordinator's, ms since the epoch): lost for good past it. */
  deadline: number;
  /** Aborted to stop it while it trains (lost for good; see `TrainerService.#admitRound`). */
  stop: AbortController;
}

/**
 * Count one more asker of `entry` waiting, until `gone` aborts (absent: to the end); `left` is
 * called when it does (the coordinator's request timed out at the round's deadline: a round still
 * queued in the engine then never starts).
 */
function waitFor(
  entry: RoundInProgress,
  gone: AbortSignal | undefined,
  left: () => void,
): void {
  if (gone === undefined) {
    entry.waiting = Infinity;
    return;
  }
  if (gone.aborted) return;
  entry.waiting++;
  gone.addEventListener("abort", () => {
    entry.waiting--;
    left();
  }, { once: true });
}

/**
 * The JSON list of string pairs at `path` (the signed slots, the coordinators of receipts):
 * undefined when there is no file, "damaged" when it is not such a list.
 */
async function readPairs(path: string): Promise<[string, string][] | "damaged" | undefined> {
  const text = await Deno.readTextFile(path).catch((error) => {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  });
  if (text === undefined) return undefined;
  let entries: unknown;
  try {
    entries = JSON.parse(text);
  } catch {
    return "damaged";
  }
  const valid = Array.isArray(entries) &&
    entries.every((e) =>
      Array.isArray(e) && e.length === 2 && typeof e[0] === "string" && typeof e[1] === "string"
    );
  return valid ? entries as [string, string][] : "damaged";
}

/** Write `pairs` as {@link readPairs} reads them, durably (`_durable_file.ts`). */
async function writePairs(path: string, pairs: Iterable<[string, string]>): Promise<void> {
  await writeFileDurably(path, new TextEncoder().encode(JSON.stringify([...pairs])));
}
