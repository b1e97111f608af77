/**
 * The sealed answers (openings) a TrainerService (`trainer_service.ts`) keeps for its
 * validators to fetch in parts: each is kept until its challenge's deadline, in memory up to
 * {@link KEPT_ANSWER_BYTES}, past that on disk under the data directory ({@link ANSWERS_DIR}),
 * and {@link KEPT_ANSWER_TOTAL_BYTES} in all. An answer gone before it was fetched is
 * `unknown_opening` to its validator, whose `opening_missing` slashes the honest trainer, so
 * the fetched ones leave first. Filled by the service's `opened` message
 * (`_challenge_admission.ts` opens them), read by its `part` message; owned by the service, read
 * and written only inside its mailbox. Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import { MAX_OPENING_PART_BYTES } from "../protocols/training_messages.ts";
import { makeOwnerDir, OWNER_FILE_MODE } from "../protocols/owner_only.ts";

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

/** Options of {@link KeptAnswers}. */
export interface KeptAnswersOptions {
  /** Bytes of sealed answers held in memory; default {@link KEPT_ANSWER_BYTES} (tests). */
  keptAnswerBytes?: number;
  /** The trainer's data directory; absent: answers are kept in memory only. */
  dataDir?: string;
  /** The trainer's clock (ms since the epoch): answers' deadlines are read on it. */
  now(): number;
  /** The trainer's log. */
  log(line: string): void;
}

/** See the module doc. */
export class KeptAnswers {
  readonly #options: KeptAnswersOptions;
  /**
   * Sealed answers by challenge id, oldest first (see {@link KEPT_ANSWER_BYTES}).
   */
  readonly #answers = new Map<string, KeptAnswer>();

  /** @param options See {@link KeptAnswersOptions}. */
  constructor(options: KeptAnswersOptions) {
    this.#options = options;
  }

  /** Remove the answers a run before this one left: nobody can fetch them now. */
  async removeLeftovers(): Promise<void> {
    if (this.#options.dataDir !== undefined) {
      // Answers a run before this one left: nobody can fetch them now (their ids are forgotten).
      await Deno.remove(join(this.#options.dataDir, ANSWERS_DIR), { recursive: true })
        .catch((error) => {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
        });
    }
  }

  /** Keep the sealed answer to challenge `challengeId` until `deadline` (the `opened` message). */
  keep(challengeId: string, bytes: Uint8Array, deadline: number): void {
    this.#answers.delete(challengeId);
    this.#answers.set(challengeId, {
      size: bytes.length,
      bytes,
      deadline,
      fetched: false,
      writing: false,
    });
    this.#trimAnswers();
  }

  /**
   * Part `index` of the answer to `challengeId` (the `part` message); undefined for no such
   * answer or part.
   */
  part(
    challengeId: string,
    index: number,
  ): Uint8Array | Promise<Uint8Array | undefined> | undefined {
    // Undefined for no such answer or part (the peer service refuses it: `unknown_opening`);
    // not thrown: a throw here crashed this actor, and any peer could send one.
    const answer = this.#answers.get(challengeId);
    const from = index * MAX_OPENING_PART_BYTES;
    if (answer === undefined || from >= answer.size) return undefined;
    if (from + MAX_OPENING_PART_BYTES >= answer.size) answer.fetched = true;
    if (answer.bytes !== undefined) {
      return answer.bytes.subarray(from, from + MAX_OPENING_PART_BYTES);
    }
    return readPart(answer.file!, from, Math.min(MAX_OPENING_PART_BYTES, answer.size - from))
      .catch(() => undefined); // its file gone: no such answer here any more
  }

  /** Bytes of sealed answers held in memory (see {@link KEPT_ANSWER_BYTES}). */
  get heldBytes(): number {
    return [...this.#answers.values()]
      .reduce((sum, a) => sum + (a.bytes === undefined ? 0 : a.size), 0);
  }

  /**
   * Keep the answers within their bounds ({@link KEPT_ANSWER_BYTES},
   * {@link KEPT_ANSWER_TOTAL_BYTES}): past its deadline nobody may fetch an answer; past the
   * memory bound the fetched ones leave memory first, then the oldest unfetched ones go to disk
   * (with a data directory); past the total bound the oldest are dropped, fetched ones first.
   */
  #trimAnswers(): void {
    const now = this.#options.now();
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
    answer.written = makeOwnerDir(dir)
      .then(() => Deno.writeFile(path, answer.bytes!, { mode: OWNER_FILE_MODE }))
      .then(
        () => {
          answer.file = path;
          answer.bytes = undefined;
        },
        (error) => {
          this.#options.log(`trainer: answer ${id.slice(0, 12)} kept in memory: ${error.message}`);
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
