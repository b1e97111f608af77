/**
 * The models of training rounds, by id: written as loadable model directories under the node's
 * models directory, published in the node's storage (so any node can fetch a round's model by
 * its file id), and fetched from storage by a node that does not hold one — a trainer that
 * joins late downloads the current model this way.
 *
 * A model's id (its "CID" in every training message) is the one the inference registry gives
 * its directory (`inference/model_identity.ts`): it names the `model.onnx` and the builder's
 * `config.json` and tokenizer files of the architecture, and is computed from the architecture
 * and the weights alone (`gpt_weights.ts` `gptModelId`), so the model a round made is the model
 * nodes serve under the same id. Storage holds only the `model.onnx` (its file id is the UnixFS
 * root of those bytes): the other files follow from the architecture. Every file read from
 * storage is checked against its file id ({@link RoundModels.getFile}); a model is checked
 * against the id, with the architecture's files, before it is written, so a
 * holder cannot substitute another model; a directory found on disk is checked the same way.
 *
 * A round's model is also published as its **outer update** from the round's start model
 * (`outer_step.ts`): a node holding that start model fetches the int8 update (a quarter of the
 * model's float32 weights) and rebuilds the model, checked against the same CID; a node that
 * lacks the start model, or gets an update that does not give the CID, downloads the model.
 *
 * @module
 */
import { join } from "node:path";
import type { ActorRef } from "../actors/actor_ref.ts";
import { type StorageMessage, unwrapReply } from "../actors/storage_actor_messages.ts";
import type { PutFileResult } from "../storage/file_store.ts";
import type { GptArchitecture } from "../inference/model_builder.ts";
import { readTextModelFiles, textModelId } from "../inference/model_identity.ts";
import {
  gptModelId,
  gptModelIdOfOnnx,
  type GptWeights,
  weightsFromOnnx,
  writeTrainedModel,
} from "./gpt_weights.ts";
import { applyOuterUpdate } from "./outer_step.ts";
import { TrainingError } from "./training_error.ts";
import { readWholeFile } from "../storage/read_whole_file.ts";
import { CorruptChunkError } from "../storage/errors.ts";
import { storedFileId } from "./_file_id.ts";

/** How long a model download from storage may take before the round gives up on it. */
const FETCH_TIMEOUT_MS = 60_000;

/** A round model held here. */
export interface RoundModel {
  /** The model's id (`gpt_weights.ts` `gptModelId`). */
  cid: string;
  /** The loadable model directory. */
  dir: string;
  /** Storage file id of `model.onnx` (absent: not published from this node). */
  file?: string;
  /** Its weights. */
  weights: GptWeights;
  /** Its outer update from the model before it, when published with one. */
  update?: ModelUpdate;
  /** Set when {@link RoundModels.get} fetched it: how, and how many bytes came. */
  fetched?: { via: "update" | "model"; bytes: number };
}

/** Where a model's outer update is: the model it applies to, and its storage file id. */
export interface ModelUpdate {
  /** Id of the model the update applies to (the round's start model). */
  from: string;
  /** Storage file id of the encoded int8 update. */
  file: string;
}

/** Options of {@link RoundModels}. */
export interface RoundModelsOptions {
  /** Where model directories go (`<modelsDir>/<id>`). */
  modelsDir: string;
  /** The node's StorageActor, looked up per use (absent: no storage on this node). */
  storage: () => ActorRef<StorageMessage> | undefined;
}

/** Round models by id; see the module doc. */
export class RoundModels {
  readonly #options: RoundModelsOptions;
  /** Weights by model id, most recent last (a round needs the current model and the one before). */
  readonly #held = new Map<string, RoundModel>();

  /** @param options See {@link RoundModelsOptions}. */
  constructor(options: RoundModelsOptions) {
    this.#options = options;
  }

  /**
   * Write `weights` as a model directory and publish its `model.onnx` in storage (pinned), with
   * its outer `update` from the model `from` when given.
   * @returns The model, with its file id (and its update's) when storage took them.
   */
  async publish(
    arch: GptArchitecture,
    weights: GptWeights,
    update?: { from: string; bytes: Uint8Array },
  ): Promise<RoundModel> {
    const { cid, dir } = await writeTrainedModel(this.#options.modelsDir, arch, weights);
    if (this.#options.storage() === undefined) return this.#keep({ cid, dir, weights });
    const file = await this.putFile(await readWholeFile(join(dir, "model.onnx")), `${cid}.onnx`);
    const updateFile = update === undefined
      ? undefined
      : await this.putFile(update.bytes, `update-${cid}.bin`);
    return this.#keep({
      cid,
      dir,
      file,
      weights,
      update: updateFile === undefined ? undefined : { from: update!.from, file: updateFile },
    });
  }

  /**
   * The model `cid`: held, on disk, rebuilt from its outer `update` when this node holds the
   * model the update applies to, or downloaded from storage by `file` (its `model.onnx`, checked
   * against the id with `arch`'s config and tokenizer, then written as a model directory). An
   * update that is unavailable, malformed or does not give `cid` falls back to the download.
   * @throws {TrainingError} `model_unavailable` when none of these has it, `model_mismatch` when
   *   the downloaded bytes are another model.
   */
  async get(
    cid: string,
    arch: GptArchitecture,
    file?: string,
    update?: ModelUpdate,
  ): Promise<RoundModel> {
    const held = this.#held.get(cid) ?? await this.#fromDisk(cid, arch, file);
    if (held !== undefined) return held;
    const storage = this.#options.storage();
    if (update !== undefined && storage !== undefined) {
      const rebuilt = await this.#fromUpdate(cid, arch, file, update).catch(() => undefined);
      if (rebuilt !== undefined) return rebuilt;
    }
    if (file === undefined || storage === undefined) {
      throw new TrainingError("model_unavailable", `model ${cid} is not here and not fetchable`);
    }
    const bytes = await this.getFile(file);
    if (gptModelIdOfOnnx(arch, bytes) !== cid) {
      throw new TrainingError(
        "model_mismatch",
        `file ${file} is not model ${cid} of this architecture`,
      );
    }
    const weights = weightsFromOnnx(bytes, arch);
    const written = await writeTrainedModel(this.#options.modelsDir, arch, weights);
    if (written.cid !== cid) {
      // The builder's graph around these weights is another model: not the builder's file.
      throw new TrainingError("model_mismatch", `model ${cid} is not the builder's graph`);
    }
    const model = this.#keep({ cid, dir: written.dir, file, weights });
    return { ...model, fetched: { via: "model", bytes: bytes.length } };
  }

  /**
   * The model `cid` from its directory here, when it is there and is that model of `arch`: its
   * files (as the registry would read them) have that id, and so do its `model.onnx` and
   * `arch`'s config and tokenizer.
   */
  async #fromDisk(
    cid: string,
    arch: GptArchitecture,
    file?: string,
  ): Promise<RoundModel | undefined> {
    const dir = join(this.#options.modelsDir, cid);
    const local = await readTextModelFiles(dir).catch(() => undefined);
    if (local === undefined) return undefined;
    const onnx = local["model.onnx"];
    if (textModelId(local) !== cid || gptModelIdOfOnnx(arch, onnx) !== cid) return undefined;
    return this.#keep({ cid, dir, file, weights: weightsFromOnnx(onnx, arch) });
  }

  /** The model `cid` rebuilt from `update`; undefined when its base is not here or not `cid`. */
  async #fromUpdate(
    cid: string,
    arch: GptArchitecture,
    file: string | undefined,
    update: ModelUpdate,
  ): Promise<RoundModel | undefined> {
    const base = this.#held.get(update.from) ?? await this.#fromDisk(update.from, arch);
    if (base === undefined) return undefined;
    const bytes = await this.getFile(update.file);
    const weights = applyOuterUpdate(base.weights, bytes);
    // Checked before anything is written: an update that gives another model leaves no trace.
    if (RoundModels.cidOf(arch, weights) !== cid) return undefined;
    const written = await writeTrainedModel(this.#options.modelsDir, arch, weights);
    const model = this.#keep({ cid, dir: written.dir, file, weights, update });
    return { ...model, fetched: { via: "update", bytes: bytes.length } };
  }

  /**
   * Put other bytes of a round (a trainer's delta, which an outcome names so any node can redo
   * the outer step) in storage, pinned.
   * @returns Its file id; undefined when this node has no storage.
   */
  async putFile(bytes: Uint8Array, name: string): Promise<string | undefined> {
    const storage = this.#options.storage();
    if (storage === undefined) return undefined;
    const put = unwrapReply<PutFileResult>(
      await storage.ask({ type: "put_bytes", bytes, name }, { timeoutMs: FETCH_TIMEOUT_MS }),
    );
    return put.cid;
  }

  /**
   * The bytes of a file {@link putFile} stored (here or on a peer), checked against the file id
   * (`_file_id.ts`): bytes storage returns that are not the file are storage's failure, never
   * read as the file (an audit read them as the coordinator's delta, and benched an honest
   * coordinator for a broken storage).
   * @throws {TrainingError} `file_unavailable` when this node has no storage.
   * @throws {CorruptChunkError} (`corrupt_chunk`, a storage error) when the bytes storage
   *   returned are not the file `file`; any other storage error as storage threw it.
   */
  async getFile(file: string): Promise<Uint8Array> {
    const storage = this.#options.storage();
    if (storage === undefined) {
      throw new TrainingError("file_unavailable", `file ${file} is not fetchable from here`);
    }
    const bytes = unwrapReply<Uint8Array>(
      await storage.ask({ type: "get_bytes", cid: file }, { timeoutMs: FETCH_TIMEOUT_MS }),
    );
    if (await storedFileId(bytes) !== file) throw new CorruptChunkError(file, "storage");
    return bytes;
  }

  /** Where model directories go. */
  get modelsDir(): string {
    return this.#options.modelsDir;
  }

  /** The id `weights` would have as a model of `arch` (`gpt_weights.ts` `gptModelId`). */
  static cidOf(arch: GptArchitecture, weights: GptWeights): string {
    return gptModelId(arch, weights);
  }

  #keep(model: RoundModel): RoundModel {
    this.#held.delete(model.cid);
    this.#held.set(model.cid, model);
    // Rounds move on: the current model and the one before are enough to train and check.
    while (this.#held.size > HELD_MODELS) this.#held.delete(this.#held.keys().next().value!);
    return model;
  }
}

/** Round models kept in memory: the current one, the previous, and one in flight. */
const HELD_MODELS = 3;
