/**
 * The last opened steps a TrainingValidator's takeovers keep (`_training_challenge_run.ts`) until
 * their receipt's delta comes, in memory and, when the validator has a ledger directory, on disk
 * (`<ledger dir>/takeover-last-steps/<until>-<receipt id>.cbor`, one file per receipt).
 *
 * A takeover of a peer's `opening_missing` claim takes this validator's one challenge of the
 * receipt, and a claim carries no delta: the kept step (step H − 1's opening, whose state H is the
 * trainer's committed end state) is the only check this ledger makes of the delta when it comes
 * (the coordinator's report, the round's outcome), since the coin refuses a receipt challenged here
 * and the trainer refuses a second challenge. Until review s53 the steps were kept in memory only,
 * at most 8: one lost with a restart of the training validator, or pushed out by 8 later takeovers
 * before its round's outcome came, left the delta unchecked here, and a lazy trainer whose delta is
 * not its trained end state was paid (`tests/training/ tests/training/takeover_kept_step_test.ts`).
 * On disk, a step is kept until it is checked or its receipt's window here closes (`until`, the
 * ledger's clock); memory holds the latest {@link MAX_KEPT_LAST_STEPS_IN_MEMORY} (3.6 MB each for
 * `tiny`), the rest are read back when their delta comes. Without a directory, memory alone, as
 * before.
 *
 * Written durably before the takeover ends `passed`, so a stop after that finds it. What is read
 * back is checked for its form (a damaged file is treated as absent); the proof it may give is
 * re-checked by every ledger that takes it. Owned by the challenge run. Not part of the public
 * API.
 *
 * @module
 */
import { join } from "node:path";
import { decodeCbor, encodeCbor } from "../protocols/cbor.ts";
import { removeTemporaries, writeFileDurably } from "../proof/_durable_file.ts";
import { makeOwnerDir } from "../protocols/owner_only.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import type { GptWeights } from "./gpt_weights.ts";
import { type StepOpening, StepOpeningSchema } from "./step_opening.ts";
import { type TrainingChallenge, TrainingChallengeSchema } from "./training_challenge.ts";
import { decodeTrainingState } from "./training_state.ts";

/** The folder under the ledger's directory. */
export const TAKEOVER_LAST_STEPS_DIR = "takeover-last-steps";
/**
 * Kept steps held in memory, the oldest dropped first (from memory only: on disk it stays until
 * checked or past its window). Without a directory, all that is kept.
 */
export const MAX_KEPT_LAST_STEPS_IN_MEMORY = 8;

/** Version of the file format. */
const FILE_VERSION = 1;
/** A kept step's file name: `<until>-<receipt id>.cbor`. */
const FILE_NAME = /^(\d{1,16})-([0-9a-f]{64})\.cbor$/;
/** Largest architecture dimension read back (a damaged file must not allocate without bound). */
const MAX_ARCH_DIMENSION = 1 << 16;

/** A takeover's last opened step, kept until the delta comes. */
export interface KeptLastStep {
  /** The takeover's challenge (a delta proof rests on it). */
  challenge: TrainingChallenge;
  /** The opening of step H − 1. */
  opening: StepOpening;
  /** State H's weights. */
  endWeights: GptWeights;
  /** The start model's architecture and file. */
  arch: GptArchitecture;
  startFile?: string;
}

/** What a file holds (`endWeights` are state H's, decoded again from the opening). */
interface KeptFile {
  v: number;
  challenge: unknown;
  opening: unknown;
  arch: unknown;
  startFile?: unknown;
}

/** See the module doc. */
export class KeptLastSteps {
  readonly #dir: string | undefined;
  readonly #now: () => number;
  readonly #log: (line: string) => void;
  /** The latest kept steps, oldest first. */
  readonly #memory = new Map<string, KeptLastStep>();
  /** The files on disk by receipt id (read once from the directory, then kept in step). */
  #files?: Promise<Map<string, string> | undefined>;
  /** Files of steps taken for their check and not forgotten yet, by receipt id. */
  readonly #taken = new Map<string, string>();

  /**
   * @param dir Where the steps are kept on disk; absent: memory only.
   * @param now The ledger's clock (ms): a step is kept until its receipt's window closes.
   * @param log Where a failed write or removal is told.
   */
  constructor(dir: string | undefined, now: () => number, log: (line: string) => void) {
    this.#dir = dir;
    this.#now = now;
    this.#log = log;
  }

  /** Whether a step may be kept (so a delta that comes must be looked up). */
  async any(): Promise<boolean> {
    if (this.#memory.size > 0) return true;
    const files = await this.#index();
    return files !== undefined && files.size > 0;
  }

  /** Whether a step is kept for receipt `id`. */
  async has(id: string): Promise<boolean> {
    return this.#memory.has(id) || ((await this.#index())?.has(id) ?? false);
  }

  /**
   * Keep `kept` for receipt `id` until `until` (the ledger's clock): in memory at once, then on
   * disk (durably). A write that fails is told and leaves it in memory alone.
   */
  async keep(id: string, kept: KeptLastStep, until: number): Promise<void> {
    this.#memory.delete(id);
    this.#memory.set(id, kept);
    while (this.#memory.size > MAX_KEPT_LAST_STEPS_IN_MEMORY) {
      this.#memory.delete(this.#memory.keys().next().value!);
    }
    const files = await this.#index();
    if (files === undefined) return;
    const name = `${Math.max(0, Math.floor(until))}-${id}.cbor`;
    const file: KeptFile = {
      v: FILE_VERSION,
      challenge: kept.challenge,
      opening: kept.opening,
      arch: kept.arch,
      ...(kept.startFile === undefined ? {} : { startFile: kept.startFile }),
    };
    try {
      await writeFileDurably(join(this.#dir!, name), encodeCbor(file));
      const before = files.get(id);
      files.set(id, name);
      if (before !== undefined && before !== name) await this.#remove(before);
    } catch (error) {
      this.#log(
        `training validator: last step of ${id.slice(0, 12)} not kept on disk: ` +
          (error as Error).message,
      );
    }
    await this.#sweep(files);
  }

  /**
   * The step kept for receipt `id`, taken out of the memory (a second delta finds none), its
   * file left until {@link forget}: a stop before its check ends finds it again.
   */
  async take(id: string): Promise<KeptLastStep | undefined> {
    const inMemory = this.#memory.get(id);
    this.#memory.delete(id);
    // Out of the index too: a delta that comes meanwhile finds no step, never checks it twice.
    const files = await this.#index();
    const name = files?.get(id);
    if (name !== undefined) {
      files!.delete(id);
      this.#taken.set(id, name);
    }
    if (inMemory !== undefined) return inMemory;
    if (name === undefined) return undefined;
    if (Number(FILE_NAME.exec(name)![1]) < this.#now()) {
      await this.forget(id);
      return undefined;
    }
    const kept = await Deno.readFile(join(this.#dir!, name)).then(
      (bytes) => this.#decode(decodeCbor(bytes) as KeptFile),
      () => undefined,
    ).catch(() => undefined);
    if (kept === undefined) await this.forget(id); // damaged: treated as absent
    return kept;
  }

  /** Receipt `id`'s step was checked (or cannot be): no longer kept, on disk either. */
  async forget(id: string): Promise<void> {
    this.#memory.delete(id);
    const files = await this.#index();
    const name = files?.get(id) ?? this.#taken.get(id);
    this.#taken.delete(id);
    if (files === undefined || name === undefined) return;
    files.delete(id);
    await this.#remove(name);
  }

  /** A file read back as a kept step; undefined when it is not one. */
  #decode(file: KeptFile): KeptLastStep | undefined {
    if (file?.v !== FILE_VERSION) return undefined;
    const challenge = TrainingChallengeSchema.safeParse(file.challenge);
    const opening = StepOpeningSchema.safeParse(file.opening);
    const arch = file.arch as GptArchitecture;
    const dimensions = [arch?.numLayers, arch?.hiddenSize, arch?.numHeads, arch?.contextLength];
    const archOk = dimensions.every((d) =>
      Number.isSafeInteger(d) && d > 0 && d <= MAX_ARCH_DIMENSION
    );
    if (!challenge.success || !opening.success || !archOk) return undefined;
    if (file.startFile !== undefined && typeof file.startFile !== "string") return undefined;
    const endWeights = decodeTrainingState(arch, opening.data.after).weights;
    return {
      challenge: challenge.data,
      opening: opening.data,
      endWeights,
      arch: {
        numLayers: arch.numLayers,
        hiddenSize: arch.hiddenSize,
        numHeads: arch.numHeads,
        contextLength: arch.contextLength,
      },
      ...(file.startFile === undefined ? {} : { startFile: file.startFile }),
    };
  }

  /**
   * The files on disk by receipt id, read from the directory once (made if missing; the
   * temporary files of writes a stop cut off removed first, before this instance writes any).
   * Undefined without a directory.
   */
  #index(): Promise<Map<string, string> | undefined> {
    const dir = this.#dir;
    if (dir === undefined) return Promise.resolve(undefined);
    this.#files ??= (async () => {
      await makeOwnerDir(dir);
      await removeTemporaries(dir);
      const files = new Map<string, string>();
      for await (const entry of Deno.readDir(dir)) {
        const match = entry.isFile ? FILE_NAME.exec(entry.name) : null;
        if (match !== null) files.set(match[2], entry.name);
      }
      await this.#sweep(files);
      return files;
    })().catch((error) => {
      // A directory that cannot be used leaves memory alone, as without one: every challenge
      // looks here first, and a throw would stop them all.
      this.#log(`training validator: ${dir} not usable: ${(error as Error).message}`);
      return undefined;
    });
    return this.#files;
  }

  /** Remove the files past their receipt's window. */
  async #sweep(files: Map<string, string>): Promise<void> {
    const now = this.#now();
    for (const [id, name] of [...files]) {
      if (Number(FILE_NAME.exec(name)![1]) >= now) continue;
      files.delete(id);
      await this.#remove(name);
    }
  }

  async #remove(name: string): Promise<void> {
    await Deno.remove(join(this.#dir!, name)).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) {
        this.#log(`training validator: ${name} not removed: ${(error as Error).message}`);
      }
    });
  }
}
