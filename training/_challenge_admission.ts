/**
 * Which challenges a TrainerService (`trainer_service.ts`) answers, and the opening of those it
 * does. An opening reveals a batch of the trainer's private shard per step, and runs a few steps
 * of training in the engine, so one is owed only to the receipt's coordinator
 * (`_receipt_coordinators.ts`) or to a validator staked in this node's ledger, one per validator
 * and receipt (asked again, the same one gets the same answer). Which validator challenged which
 * receipt is remembered in memory and, with a data directory, in `<data dir>/challenged-by.cbor`
 * (written before the opening starts), so a restart does not let a validator read a second
 * opening of one receipt. The sealed answer goes back to the service by its `opened` message,
 * and waits there to be fetched (`_kept_answers.ts`).
 *
 * Decided in the service's mailbox (the stake is awaited there); the opening runs outside it.
 * Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import type { ActorContext } from "../actors/actor.ts";
import { KeptCborFile } from "../proof/_kept_cbor_file.ts";
import { sha256Hex, toHex } from "../protocols/hash.ts";
import { encodeCanonical } from "../protocols/cbor.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { MAX_OPENING_PART_BYTES, type OpeningsBody } from "../protocols/training_messages.ts";
import type { EconomicParams } from "../proof/economics.ts";
import { DEFAULT_TRACE_RETAIN_MS } from "./trace_store.ts";
import { ChallengeMismatchError } from "./step_opening.ts";
import {
  TRAINING_CHALLENGE_STEPS,
  type TrainingChallenge,
  trainingChallengeId,
} from "./training_challenge.ts";
import type { TrainerEngine } from "./trainer_engine.ts";
import type { ReceiptCoordinators } from "./_receipt_coordinators.ts";
import type { ChallengeAccepted, TrainerMessage } from "./trainer_service.ts";

/** Challenges remembered by validator and receipt (one each is answered). */
export const MAX_REMEMBERED_CHALLENGES = 4096;
/**
 * Where the challenge each validator made of each receipt is kept under the trainer's data
 * directory: one challenge per validator and receipt bounds the batches of the shard a validator
 * reads, and a record lost with a restart let a staked validator challenge the same receipt again
 * (review s53). Each entry is kept for {@link CHALLENGED_KEPT_MS} from its challenge, at most
 * {@link MAX_REMEMBERED_CHALLENGES}.
 */
const CHALLENGED_FILE = "challenged-by.cbor";
/**
 * How long a challenge is remembered on disk: as long as the trace of its receipt is kept
 * (`trace_store.ts`, from when the run was saved, which is before any challenge of it), so no
 * run that can still be opened after a restart is opened twice for one validator.
 */
const CHALLENGED_KEPT_MS = DEFAULT_TRACE_RETAIN_MS;

/** Options of {@link ChallengeAdmission}. */
export interface ChallengeAdmissionOptions {
  /** The trainer's data directory; absent: the record is kept in memory only. */
  dataDir?: string;
  /**
   * The stake this node's ledger holds for a key (absent: this node keeps no ledger); see
   * `TrainerServiceOptions.stakeOf`.
   */
  stakeOf?: (key: Uint8Array) => Promise<number>;
  /**
   * The economics the ledger `stakeOf` reads runs with (the service's, defaults merged): a
   * challenger is owed an opening with its `falseAccusationPenalty` of stake there.
   */
  economics: EconomicParams;
  /** The coordinator each recent receipt was trained for (owed its openings). */
  coordinators: ReceiptCoordinators;
  /** The trainer's engine, which opens the challenged steps (set once the service started). */
  engine(): TrainerEngine | undefined;
  /** The trainer's clock (ms since the epoch). */
  now(): number;
  /** The trainer's log. */
  log(line: string): void;
}

/** See the module doc. */
export class ChallengeAdmission {
  readonly #options: ChallengeAdmissionOptions;
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
  #challenges = 0;

  /** @param options See {@link ChallengeAdmissionOptions}. */
  constructor(options: ChallengeAdmissionOptions) {
    this.#options = options;
  }

  /** Challenges answered (openings started). */
  get challenges(): number {
    return this.#challenges;
  }

  /**
   * The challenges made before a restart (see {@link CHALLENGED_FILE}). What is read back is
   * untrusted: entries that are not a key, an id and a time, or past their time, are skipped; a
   * file that is not CBOR is removed. Losing the record costs at most one more challenge per
   * validator and receipt, never an answer owed (refused, it would slash this trainer).
   */
  async load(): Promise<void> {
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
   * The opening of `challenge`, or a refusal (`challenge_mismatch`) for one this trainer does not
   * owe: not from its validator's own connection, more steps than a challenge draws
   * ({@link TRAINING_CHALLENGE_STEPS}), another challenge of a receipt its validator challenged
   * already, or from a validator that is neither the receipt's coordinator nor staked in this
   * node's ledger ({@link ChallengeAdmissionOptions.stakeOf}). Openings run one after another,
   * each a few steps of training: junk challenges from any key, of up to 1024 steps each, queued
   * ahead of a real one made it miss its deadline, and be slashed (a review found it at stop
   * 33). And each opening reveals a batch of the shard per step, sealed to its validator: any
   * fresh key that named itself as the validator of a gossiped receipt read 9 batches, and the
   * next key 9 more (a review found it). Decided in the mailbox (the stake is awaited there).
   */
  async admit(
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
    if (this.#options.coordinators.get(challenge.receiptId) === toHex(challenge.validator)) {
      return true;
    }
    const stakeOf = this.#options.stakeOf;
    if (stakeOf === undefined) return false;
    const stake = await stakeOf(challenge.validator).catch(() => 0);
    return stake >= this.#options.economics.falseAccusationPenalty;
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
    const sealed = await this.#options.engine()!.open(challenge);
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

  /** The trainer's clock. */
  #now(): number {
    return this.#options.now();
  }

  #log(line: string): void {
    this.#options.log(line);
  }
}
