/**
 * The weights of the built-in GPT as plain named tensors, moved in and out of the ONNX model
 * that `inference/model_builder.ts` writes — so a trained model is served by the unchanged
 * inference path.
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
import { cidOf } from "../protocols/cid.ts";
import { buildGptModel, type GptArchitecture, gptModelBytes } from "../inference/model_builder.ts";
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

/** The file a model directory's graph and weights are in (the CID is this file's). */
const MODEL_FILE = "model.onnx";

/** What {@link writeTrainedModel} wrote. */
export interface TrainedModelFiles {
  /** The model directory, `<modelsDir>/<cid>`. */
  dir: string;
  /** CID of `model.onnx`. */
  cid: string;
}

/**
 * Write a loadable model directory (`model.onnx`, `config.json`, tokenizer files) for trained
 * weights under `modelsDir/<cid>`, content-addressed as the built-in models are.
 *
 * Durably: once it returns, the directory survives a power cut whole. A coordinator's state
 * names its current model by CID and is itself fsynced (`coordinator_state.ts`), so the model
 * must be on disk first: `model.onnx` goes through the atomic, durable writer (temporary file,
 * fsync, rename, fsync of the directory), the builder's other files are fsynced, and so are the
 * directories holding the model's entry (`modelsDir`, and its parent, which may have just made
 * it).
 */
export async function writeTrainedModel(
  modelsDir: string,
  arch: GptArchitecture,
  weights: GptWeights,
): Promise<TrainedModelFiles> {
  const bytes = gptModelBytesFromWeights(arch, weights);
  const cid = cidOf(bytes);
  const dir = join(modelsDir, cid);
  // The builder writes config and tokenizer files (and its seeded model.onnx, replaced below).
  await buildGptModel({ ...arch, outDir: dir });
  for await (const entry of Deno.readDir(dir)) {
    // Not another writer's temporary file (the same model, fetched twice at once).
    if (entry.isFile && entry.name !== MODEL_FILE && !entry.name.endsWith(".tmp")) {
      await syncFile(join(dir, entry.name));
    }
  }
  await writeFileDurably(join(dir, MODEL_FILE), bytes);
  await syncDirectory(modelsDir);
  await syncDirectory(dirname(modelsDir));
  return { dir, cid };
}

/** `fsync` a file written without it (the builder's). */
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
