/**
 * A text model's `config.json` read into the numbers that size it: layers, cache heads and their
 * width, vocabulary, context window, its end tokens and its name, with every dimension checked to
 * be a positive integer ({@link parseConfig}). Used by `TextModel.load` (`text_model.ts`), whose
 * dimensions then size the KV caches, cut the logits rows and are held to the graph
 * (`_decoder_graph_check.ts`). Not part of the public API.
 *
 * @module
 */
import { ModelLoadError } from "./errors.ts";

/** What `config.json` says of a text model, as {@link parseConfig} reads it. */
export interface ModelConfig {
  numLayers: number;
  numKeyValueHeads: number;
  headDim: number;
  hiddenSize: number;
  vocabSize: number;
  contextLength: number;
  eosTokenId: number | undefined;
  eosTokenIds: readonly number[];
  name: string | undefined;
}

/** Whether a parsed JSON value is an object with fields (not `null`, an array or a scalar). */
function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Hugging Face configs spell the same fields differently across architectures. Throws
 * {@link ModelLoadError} on a config that is not an object, lacks a dimension, or gives one that
 * is not a positive integer — the per-head width included when it is derived (width / heads):
 * these numbers size the KV cache and cut the logits rows, so a fraction, 0 or `1e300` would
 * otherwise surface mid-generation as an untyped onnxruntime or typed-array error.
 */
export function parseConfig(config: unknown, dir: string): ModelConfig {
  if (!isJsonObject(config)) throw new ModelLoadError(`config.json in ${dir} is not a JSON object`);
  const text = isJsonObject(config.text_config) ? config.text_config : undefined;
  const dimension = (...keys: string[]): number | undefined => {
    for (const scope of [config, text]) {
      for (const k of keys) {
        const value = scope?.[k];
        if (typeof value !== "number") continue;
        if (!Number.isSafeInteger(value) || value <= 0) {
          throw new ModelLoadError(
            `config.json in ${dir}: ${k} must be a positive integer, got ${value}`,
          );
        }
        return value;
      }
    }
    return undefined;
  };
  const numLayers = dimension("n_layer", "num_hidden_layers", "num_layers");
  const numHeads = dimension("n_head", "num_attention_heads");
  const hiddenSize = dimension("n_embd", "hidden_size", "d_model");
  const vocabSize = dimension("vocab_size");
  const contextLength = dimension("n_positions", "max_position_embeddings", "n_ctx", "seq_length");
  if (!numLayers || !numHeads || !hiddenSize || !vocabSize || !contextLength) {
    throw new ModelLoadError(
      `config.json in ${dir} lacks layers/heads/width/vocab/context fields`,
    );
  }
  const headDim = dimension("head_dim") ?? hiddenSize / numHeads;
  if (!Number.isSafeInteger(headDim)) {
    throw new ModelLoadError(
      `config.json in ${dir}: width ${hiddenSize} is not a multiple of ${numHeads} heads, and ` +
        `no head_dim says the per-head width`,
    );
  }
  // One id or a list, every one an end: keeping only the first ran a model that ends its turn at
  // a later one (Llama 3 Instruct's `<|eot_id|>`) on to `maxTokens`, billed. Not numbers are
  // skipped, as a non-number `eos_token_id` always was; a repeated id is kept once. Looked up
  // where the dimensions are: at the top, else under `text_config` (a multimodal export's).
  const eos = config.eos_token_id ?? text?.eos_token_id;
  const eosTokenIds = [
    ...new Set(
      (Array.isArray(eos) ? eos : [eos]).filter((id): id is number => typeof id === "number"),
    ),
  ];
  const veriflow = isJsonObject(config.veriflow) ? config.veriflow : undefined;
  const name = [veriflow?.name, config._name_or_path].find((n): n is string =>
    typeof n === "string"
  );
  return {
    numLayers,
    numKeyValueHeads: dimension("num_key_value_heads", "n_head_kv") ?? numHeads,
    headDim,
    hiddenSize,
    vocabSize,
    contextLength,
    eosTokenId: eosTokenIds[0],
    eosTokenIds,
    name,
  };
}
