/**
 * The weights of the built-in GPT as plain named tensors, moved in and out of the ONNX model
 * that `inference/model_builder.ts` writes — so a trained model is served by the unchanged
 * inference path, under the id the inference registry gives it ({@link gptModelId}).
 *
 * The builder writes a model from a seed only. Rather than fork its graph code, a trained
 * model is made by building the seeded model of the same architecture and replacing each
 * initializer's bytes by name: the graph, I/O names, opset and constants stay exactly the
 * builder's. The names and shapes are the builder's (Hugging Face GPT-2 names, `[in, out]`
 * matrices as ONNX `MatMul` takes them).
 *
 * @module
 */
import { dirname, join } from "node:path";
import onnxProto from "onnx-proto";
import { syncDirectory, writeFileDurably } from "../proof/_durable_file.ts";
import { makeOwnerDir, OWNER_FILE_MODE } from "../protocols/owner_only.ts";
import { cidOf } from "../protocols/cid.ts";
import {
  DEFAULT_MODEL_SEED,
  type GptArchitecture,
  gptModelBytes,
  type GptSideFileName,
  gptSideFiles,
} from "../inference/model_builder.ts";
import { textModelIdFromCids } from "../inference/model_identity.ts";
import { BUILTIN_VOCAB_SIZE } from "../inference/byte_tokenizer.ts";
import { TrainingError } from "./training_error.ts";

const { onnx } = onnxProto;
const ONNX_FLOAT = 1;

/** MLP expansion factor of the built-in architecture (the builder's). */
export const GPT_MLP_RATIO = 4;

/** One named float tensor. */
export interface WeightTensor {
  /** Shape, row-major. */
  shape: number[];
  /** Values. */
  data: Float32Array;
}

/** All trainable tensors of a model, by the builder's initializer name, in a fixed order. */
export type GptWeights = Map<string, WeightTensor>;

/**
 * Names and shapes of the trainable tensors of an architecture (untied head), in the order
 * every training artefact (deltas, hashes) lists them.
 */
export function gptWeightShapes(arch: GptArchitecture): [string, number[]][] {
  const { numLayers: L, hiddenSize: C, contextLength: N } = arch;
  const V = BUILTIN_VOCAB_SIZE;
  const out: [string, number[]][] = [
    ["transformer.wte.weight", [V, C]],
    ["transformer.wpe.weight", [N, C]],
  ];
  for (let l = 0; l < L; l++) {
    const p = `transformer.h.${l}`;
    out.push(
      [`${p}.ln_1.weight`, [C]],
      [`${p}.ln_1.bias`, [C]],
      [`${p}.attn.c_attn.weight`, [C, 3 * C]],
      [`${p}.attn.c_attn.bias`, [3 * C]],
      [`${p}.attn.c_proj.weight`, [C, C]],
      [`${p}.attn.c_proj.bias`, [C]],
      [`${p}.ln_2.weight`, [C]],
      [`${p}.ln_2.bias`, [C]],
      [`${p}.mlp.c_fc.weight`, [C, GPT_MLP_RATIO * C]],
      [`${p}.mlp.c_fc.bias`, [GPT_MLP_RATIO * C]],
      [`${p}.mlp.c_proj.weight`, [GPT_MLP_RATIO * C, C]],
      [`${p}.mlp.c_proj.bias`, [C]],
    );
  }
  out.push(
    ["transformer.ln_f.weight", [C]],
    ["transformer.ln_f.bias", [C]],
    ["lm_head.weight", [C, V]],
    ["lm_head.bias", [V]],
  );
  return out;
}

/** The trainable weights stored in an ONNX model written by the builder (untied head). */
export function weightsFromOnnx(bytes: Uint8Array, arch: GptArchitecture): GptWeights {
  const model = onnx.ModelProto.decode(bytes);
  const byName = new Map(model.graph?.initializer?.map((t) => [t.name ?? "", t]) ?? []);
  const weights: GptWeights = new Map();
  for (const [name, shape] of gptWeightShapes(arch)) {
    const t = byName.get(name);
    const raw = t?.rawData;
    const size = shape.reduce((a, b) => a * b, 1);
    if (!t || t.dataType !== ONNX_FLOAT || !raw || raw.byteLength !== size * 4) {
      throw new TrainingError("weights_mismatch", `model has no float tensor ${name}${shape}`);
    }
    // Copy: protobuf's raw bytes may be unaligned views into the model buffer.
    const data = new Float32Array(size);
    new Uint8Array(data.buffer).set(raw);
    weights.set(name, { shape, data });
  }
  return weights;
}

/** The seeded built-in model's weights: the usual starting point of training. */
export function seededGptWeights(arch: GptArchitecture, seed: number): GptWeights {
  return weightsFromOnnx(gptModelBytes(arch, seed), arch);
}

/**
 * The ONNX bytes of the builder's graph for `arch` carrying `weights`: the seed-0 model is the
 * template, and every trainable initializer of it is replaced.
 */
export function gptModelBytesFromWeights(arch: GptArchitecture, weights: GptWeights): Uint8Array {
  const model = onnx.ModelProto.decode(gptModelBytes(arch, 0));
  const expected = new Map(gptWeightShapes(arch));
  let replaced = 0;
  for (const t of model.graph?.initializer ?? []) {
    const shape = expected.get(t.name ?? "");
    if (!shape) continue;
    const w = weights.get(t.name!);
    if (!w || w.data.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new TrainingError("weights_mismatch", `weights lack ${t.name}${shape}`);
    }
    t.rawData = new Uint8Array(w.data.slice().buffer);
    replaced++;
  }
  if (replaced !== expected.size) {
    throw new TrainingError(
      "weights_mismatch",
      `template has ${replaced}/${expected.size} tensors`,
    );
  }
  if (model.graph) model.graph.docString = "Veriflow GPT, trained weights";
  return onnx.ModelProto.encode(model).finish();
}

/** The file a model directory's graph and weights are in. */
const MODEL_FILE = "model.onnx";

/**
 * What a trained model's `config.json` records beyond its architecture: the builder's defaults
 * (the seed-0 template's, untied head, fixed KV cache, no size name). Its config and tokenizer
 * files are then a pure function of the architecture, so its id is one of (arch, weights).
 */
const TRAINED_BUILD = Object.freeze({ seed: DEFAULT_MODEL_SEED, tiedEmbeddings: false });

/** A trained model's files besides `model.onnx`, and the CID of each. */
interface TrainedSideFiles {
  bytes: Readonly<Record<GptSideFileName, Uint8Array>>;
  cids: Readonly<Record<GptSideFileName, string>>;
}

/**
 * Side files by architecture: built and hashed once, as every id check of a round (each
 * report's start model, each outcome's audit) asks for the same few architectures.
 */
const sideFilesByArch = new Map<string, TrainedSideFiles>();
/** Architectures whose side files are kept: a network trains a few. */
const KEPT_SIDE_FILES = 8;

/** The `config.json` and tokenizer files of a trained model of `arch` (see {@link TRAINED_BUILD}). */
function trainedSideFiles(arch: GptArchitecture): TrainedSideFiles {
  const key = JSON.stringify([arch.numLayers, arch.hiddenSize, arch.numHeads, arch.contextLength]);
  let side = sideFilesByArch.get(key);
  if (side === undefined) {
    const bytes = gptSideFiles(arch, TRAINED_BUILD);
    const cids = Object.fromEntries(
      Object.entries(bytes).map(([name, file]) => [name, cidOf(file)]),
    ) as Record<GptSideFileName, string>;
    side = { bytes, cids };
    sideFilesByArch.set(key, side);
    if (sideFilesByArch.size > KEPT_SIDE_FILES) {
      sideFilesByArch.delete(sideFilesByArch.keys().next().value!);
    }
  }
  return side;
}

/**
 * The id of the trained model of `arch` carrying `weights`: the id the inference registry gives
 * the directory {@link writeTrainedModel} writes for them (`inference/model_identity.ts`: its
 * `model.onnx` with the builder's `config.json` and tokenizer files of `arch`), computed without
 * writing anything. Every model CID of training (rounds, receipts, outcomes, audits) is this.
 */
export function gptModelId(arch: GptArchitecture, weights: GptWeights): string {
  return gptModelIdOfOnnx(arch, gptModelBytesFromWeights(arch, weights));
}

/**
 * The id of the trained model of `arch` whose `model.onnx` is `onnx` (see {@link gptModelId}):
 * what checks a model file fetched from storage, which holds only the `model.onnx`.
 */
export function gptModelIdOfOnnx(arch: GptArchitecture, onnx: Uint8Array): string {
  return textModelIdFromCids({ [MODEL_FILE]: cidOf(onnx), ...trainedSideFiles(arch).cids });
}

/** What {@link writeTrainedModel} wrote. */
export interface TrainedModelFiles {
  /** The model directory, `<modelsDir>/<id>`. */
  dir: string;
  /** The model's id ({@link gptModelId}). */
  cid: string;
}

/**
 * Write a loadable model directory (`model.onnx`, `config.json`, tokenizer files) for trained
 * weights under `modelsDir/<id>`, content-addressed by the model's id ({@link gptModelId}).
 *
 * Durably: once it returns, the directory survives a power cut whole. A coordinator's state
 * names its current model by id and is itself fsynced (`coordinator_state.ts`), so the model
 * must be on disk first: `model.onnx` goes through the atomic, durable writer (temporary file,
 * fsync, rename, fsync of the directory), the config and tokenizer files are fsynced, and so are
 * the directories holding the model's entry (`modelsDir`, and its parent, which may have just
 * made it).
 */
export async function writeTrainedModel(
  modelsDir: string,
  arch: GptArchitecture,
  weights: GptWeights,
): Promise<TrainedModelFiles> {
  const bytes = gptModelBytesFromWeights(arch, weights);
  const side = trainedSideFiles(arch);
  const cid = textModelIdFromCids({ [MODEL_FILE]: cidOf(bytes), ...side.cids });
  const dir = join(modelsDir, cid);
  // The model's own directory only: `modelsDir` may be one the operator chose (`train --out`),
  // whose mode is theirs; one this makes is its owner's only, as every folder it creates.
  await makeOwnerDir(dir);
  for (const [name, file] of Object.entries(side.bytes)) {
    // The mode is set on a file an earlier version wrote with the umask too.
    await Deno.writeFile(join(dir, name), file, { mode: OWNER_FILE_MODE });
    await syncFile(join(dir, name));
  }
  await writeFileDurably(join(dir, MODEL_FILE), bytes);
  await syncDirectory(modelsDir);
  await syncDirectory(dirname(modelsDir));
  return { dir, cid };
}

/** `fsync` a file written without it. */
async function syncFile(path: string): Promise<void> {
  const file = await Deno.open(path, { read: true });
  try {
    await file.sync();
  } finally {
    file.close();
  }
}

/** A deep copy of `weights`. */
export function cloneWeights(weights: GptWeights): GptWeights {
  return new Map([...weights].map(([k, w]) => [k, { shape: w.shape, data: w.data.slice() }]));
}
