/**
 * The round slots (round, start model) a TrainerService (`trainer_service.ts`) signed, and the
 * terms it trained each on: it signs at most one receipt per slot, as every ledger counts them,
 * so a second request for a slot on other terms is refused (`slot_signed`) rather than signed
 * into an equivocation that would slash it. Kept in `<data dir>/signed-slots.json` when the
 * trainer has a data directory, written durably before a slot's receipt is signed. Owned by the
 * service's round admission (`_trainer_rounds.ts`), read and written only inside its mailbox.
 * The slot names no coordinator (nor does the receipt, nor the ledger's slot), so the first to ask
 * takes it: a node with a ledger lets only coordinators staked there ask at all
 * (`unstaked_coordinator`, `network/peer_services.ts`; review s79 F2), and a staked key that asks
 * first still takes another coordinator's slot (docs/TRAINING.md). Not part of the public API.
 *
 * @module
 */
import { join } from "node:path";
import type { RoundBody } from "../protocols/training_messages.ts";
import { sha256Hex } from "../protocols/hash.ts";
import { encodeCanonical } from "../protocols/cbor.ts";
import { TrainingError } from "./training_error.ts";
import { readPairs, type TrainerDataDir, writePairs } from "./_pair_files.ts";

/**
 * Round slots (round, start model) remembered as signed. A ledger's equivocation slot is the
 * trainer, the round and the start model; a coordinator asks each slot once, and one restarted
 * (or a second one on the same seed) asks the same low rounds again, so the latest few
 * thousand cover any restart; the file stays under a megabyte.
 */
const KEPT_SLOTS = 4096;
/** Where the signed slots are kept under the trainer's data directory. */
export const SLOTS_FILE = "signed-slots.json";

/** Options of {@link SignedSlots}. */
export interface SignedSlotsOptions {
  /** The trainer's data directory; absent: in memory only. */
  dataDir?: string;
  /** Makes the data directory before the first write. */
  made: TrainerDataDir;
  /** The trainer's log. */
  log(line: string): void;
}

/** See the module doc. */
export class SignedSlots {
  readonly #options: SignedSlotsOptions;
  /**
   * Round slots signed here (`round ‖ start model` → the terms trained on), oldest first: a
   * second receipt for a slot is equivocation in every ledger, whoever asked for it.
   */
  readonly #signed = new Map<string, string>();
  /** The latest write of {@link #signed} (writes go one after another). */
  #saving: Promise<void> = Promise.resolve();

  /** @param options See {@link SignedSlotsOptions}. */
  constructor(options: SignedSlotsOptions) {
    this.#options = options;
  }

  /** The latest write of the slots: a slot is on disk before anything is signed for it. */
  get saving(): Promise<void> {
    return this.#saving;
  }

  /**
   * Take the round's slot (round, start model) for these terms, or say why not: a slot signed
   * before on other terms — another coordinator, or the same one restarted with another H —
   * would be a second receipt for one round, which every ledger slashes as equivocation. The
   * same terms again are allowed: training is deterministic, so the receipt is the same one.
   */
  claim(body: RoundBody, coordinator: string): TrainingError | undefined {
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
      // Written before training starts (`TrainerRounds.#train` waits for it): a slot is on disk
      // before its receipt is signed. Each write takes the table as it is then, so the last one
      // is whole.
      this.#saving = this.#saving.catch(() => {}).then(() => this.#save());
    }
    return undefined;
  }

  /** Read back the slots signed before a restart (call once, at the start). */
  async load(): Promise<void> {
    const dir = this.#options.dataDir;
    if (dir === undefined) return;
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
  async #save(): Promise<void> {
    await writePairs(join(await this.#options.made.make(), SLOTS_FILE), this.#signed);
  }

  #log(line: string): void {
    this.#options.log(line);
  }
}
