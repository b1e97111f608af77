/**
 * The coordinator (hex key) each recent receipt of a TrainerService (`trainer_service.ts`) was
 * trained for: that coordinator is owed the run's openings. With a data directory, and the
 * runs' traces kept on disk, the record is kept beside them (`<data dir>/trained-for.json`,
 * written durably before the round's report goes back), so the coordinator's challenge of a run
 * from before a restart is still answered (refused, its `opening_missing` slashes the trainer).
 * Read by the service's challenge admission (`_challenge_admission.ts`); written only inside the
 * service's mailbox (`trained`). Not part of the public API.
 *
 * @module
 */
import { readPairs, type TrainerDataDir, writePairs } from "./_pair_files.ts";
import { MAX_REMEMBERED_CHALLENGES } from "./_challenge_admission.ts";

/**
 * Where the coordinator each recent receipt was trained for is kept under the trainer's data
 * directory: it is owed that run's openings after a restart too, when the run's trace is opened
 * from disk (refused, its `opening_missing` slashes the trainer).
 */
export const COORDINATORS_FILE = "trained-for.json";

/** Options of {@link ReceiptCoordinators}. */
export interface ReceiptCoordinatorsOptions {
  /** Makes the data directory before the first write. */
  made: TrainerDataDir;
  /** The trainer's log. */
  log(line: string): void;
}

/** See the module doc. */
export class ReceiptCoordinators {
  readonly #options: ReceiptCoordinatorsOptions;
  /** The coordinator (hex key) each recent receipt was trained for: owed its openings. */
  readonly #coordinatorOf = new Map<string, string>();
  /** Where the coordinators of runs kept on disk are recorded ({@link COORDINATORS_FILE}). */
  #coordinatorsFile: string | undefined;
  /** The latest write of {@link COORDINATORS_FILE}, after the ones before it. */
  #savingCoordinators: Promise<void> = Promise.resolve();

  /** @param options See {@link ReceiptCoordinatorsOptions}. */
  constructor(options: ReceiptCoordinatorsOptions) {
    this.#options = options;
  }

  /** The coordinator (hex key) receipt `receiptId` was trained for, if it is remembered. */
  get(receiptId: string): string | undefined {
    return this.#coordinatorOf.get(receiptId);
  }

  /**
   * Record that `receiptId` was trained for `coordinator`; resolves once the record is durable
   * (at once without a file, see {@link keepIn}).
   */
  record(receiptId: string, coordinator: string): Promise<void> {
    this.#coordinatorOf.set(receiptId, coordinator);
    while (this.#coordinatorOf.size > MAX_REMEMBERED_CHALLENGES) {
      this.#coordinatorOf.delete(this.#coordinatorOf.keys().next().value!);
    }
    if (this.#coordinatorsFile !== undefined) {
      // Each write takes the table as it is then, so the last one is whole.
      const path = this.#coordinatorsFile;
      this.#savingCoordinators = this.#savingCoordinators.catch(() => {})
        .then(() => this.#saveCoordinators(path));
    }
    return this.#savingCoordinators;
  }

  /** Keep the record in the file at `path` from now on, after reading back what it holds. */
  async keepIn(path: string): Promise<void> {
    this.#coordinatorsFile = path;
    await this.#loadCoordinators(this.#coordinatorsFile);
  }

  /** Durably: a receipt leaves only once its coordinator is on record here. */
  async #saveCoordinators(path: string): Promise<void> {
    await this.#options.made.make();
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
      this.#options.log(`trainer: ${path} is not a list of receipts and coordinators; ignored`);
      return;
    }
    for (const [receiptId, coordinator] of entries) {
      this.#coordinatorOf.set(receiptId, coordinator);
    }
  }
}
