/**
 * The check, at load, that a text model's graph follows the decoder-with-past convention with the
 * dimensions its `config.json` gives ({@link checkDecoderGraph}), and the tensor types and cache
 * layout it holds the graph to. Used by `TextModel.load` (`text_model.ts`) once the session exists,
 * in-thread or in the workers. Not part of the public API.
 *
 * @module
 */
import { hasFixedCache } from "./_decoder_session.ts";
import type { ModelConfig } from "./_model_config.ts";
import type { LoadedEngine } from "./_text_engine.ts";
import { ModelLoadError } from "./errors.ts";

/** Element type of every cache tensor and of the logits: what the runtime allocates and reads. */
const FLOAT_TENSOR = "float32";
/** Element type of the token, mask and position inputs the runtime feeds. */
const INDEX_TENSOR = "int64";
/** Rank of a cache tensor: `[batch, heads, positions, head width]`. */
const CACHE_RANK = 4;
/** Where a cache tensor's shape gives its heads and its per-head width. */
const CACHE_HEADS_AXIS = 1;
const CACHE_HEAD_DIM_AXIS = 3;

/**
 * Throws {@link ModelLoadError} unless the graph follows the decoder-with-past convention with
 * the dimensions `config.json` gives. The config sizes every cache tensor the runtime feeds and
 * cuts the logits into rows, and nothing else checks that it fits `model.onnx` (the model's id
 * names both files, a config that contradicts the graph as faithfully as one that fits it): such
 * a config would load under its id and then sample from the wrong row, or fail mid-generation.
 * So each cache tensor the runtime names must be declared, float32, `[batch, heads, positions,
 * head width]`, `logits` float32 with rows of the vocabulary's length, and the index inputs
 * int64. A dimension the graph declares symbolic is
 * not checked here: nothing can know it short of running the graph, so each run checks its
 * outputs' shapes against the config (`DecoderSession`), and fails the job on a contradiction.
 */
export function checkDecoderGraph(
  graph: Pick<LoadedEngine, "inputNames" | "outputNames" | "inputMetadata" | "outputMetadata">,
  config: ModelConfig,
  dir: string,
): void {
  const { inputNames, outputNames } = graph;
  for (const name of ["input_ids", "logits"]) {
    if (!inputNames.includes(name) && !outputNames.includes(name)) {
      throw new ModelLoadError(`model in ${dir} has no "${name}" input/output`);
    }
  }
  // Either cache convention (`_decoder_session.ts`): a Hugging Face export's past/present, or
  // the built-in models' fixed-capacity cache.
  const fixed = hasFixedCache(inputNames);
  const perLayer = (names: readonly string[], prefix: string, what: string, hint = "") => {
    const found = names.filter((n) => n.startsWith(prefix)).length;
    if (found !== 2 * config.numLayers) {
      throw new ModelLoadError(
        `model in ${dir} has ${found} ${prefix.slice(0, -1)} ${what}, expected ${
          2 * config.numLayers
        }${hint}`,
      );
    }
  };
  const pastPrefix = fixed ? "kv_cache." : "past_key_values.";
  const newPrefix = fixed ? "kv_new." : "present.";
  perLayer(inputNames, pastPrefix, "inputs", ' (use an export "with past")');
  perLayer(outputNames, newPrefix, "outputs");

  const declared = new Map(
    [...graph.inputMetadata, ...graph.outputMetadata].map((m) => [m.name, m]),
  );
  const tensor = (name: string, type: string) => {
    const meta = declared.get(name);
    if (!meta) throw new ModelLoadError(`model in ${dir} has no "${name}" input/output`);
    if (!meta.isTensor || meta.type !== type) {
      throw new ModelLoadError(
        `model in ${dir}: "${name}" is ${meta.isTensor ? meta.type : "not a tensor"}, ` +
          `expected ${type}`,
      );
    }
    return meta.shape;
  };
  const mismatch = (name: string, graphSays: string, configSays: string) =>
    new ModelLoadError(
      `config.json in ${dir} contradicts model.onnx: "${name}" has ${graphSays}, ` +
        `config.json says ${configSays}`,
    );
  for (const name of ["input_ids", "attention_mask", "position_ids"]) {
    if (name === "input_ids" || inputNames.includes(name)) tensor(name, INDEX_TENSOR);
  }
  const logits = tensor("logits", FLOAT_TENSOR);
  const rowLength = logits.at(-1);
  if (typeof rowLength === "number" && rowLength !== config.vocabSize) {
    throw mismatch("logits", `rows of ${rowLength} tokens`, `${config.vocabSize}`);
  }
  for (let l = 0; l < config.numLayers; l++) {
    for (const kv of ["key", "value"]) {
      for (const name of [`${pastPrefix}${l}.${kv}`, `${newPrefix}${l}.${kv}`]) {
        const shape = tensor(name, FLOAT_TENSOR);
        // An empty shape is one the graph does not declare at all.
        if (shape.length === 0) continue;
        if (shape.length !== CACHE_RANK) {
          throw new ModelLoadError(
            `model in ${dir}: "${name}" has ${shape.length} dimensions, expected ${CACHE_RANK}`,
          );
        }
        const heads = shape[CACHE_HEADS_AXIS];
        if (typeof heads === "number" && heads !== config.numKeyValueHeads) {
          throw mismatch(name, `${heads} heads`, `${config.numKeyValueHeads}`);
        }
        const width = shape[CACHE_HEAD_DIM_AXIS];
        if (typeof width === "number" && width !== config.headDim) {
          throw mismatch(name, `heads of width ${width}`, `${config.headDim}`);
        }
      }
    }
  }
}
