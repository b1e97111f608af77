/**
 * Builds Veriflow's own models as ONNX, by hand, with `onnx-proto`: no model can be downloaded
 * here, so every test and the default node run on a real GPT-2-style transformer generated from
 * a seed, with a Hugging Face decoder export's `config.json`, `tokenizer.json` and input names
 * (`input_ids`, `attention_mask`, `position_ids`).
 *
 * Architecture (per block, pre-LN): `x += Attn(LN(x))`, `x += MLP(LN(x))`; token + learned
 * position embeddings in; final LN; LM head untied (or tied to the token embedding) plus an
 * output bias initialised to a byte unigram prior. Multi-head causal self-attention with a KV
 * cache; exact GELU (`0.5·x·(1 + erf(x/√2))`). Opset 17, the first with LayerNormalization.
 *
 * Two KV-cache conventions (b = batch, s = new tokens, h = heads, d = head dim, V = vocab):
 *
 * - **`fixed`** (the default; {@link KvCacheConvention}): the caller owns a cache of `cap` slots
 *   per row and writes each step's new keys and values into it in place.
 *   in: `input_ids` [b,s], `attention_mask` [b,cap+s] (the cache's slots, 1 where in use, then
 *   the new tokens), `position_ids` [b,s], `kv_cache.N.key|value` [b,h,cap,d];
 *   out: `logits` [b,s,V], `kv_new.N.key|value` [b,h,s,d] (the new positions only).
 *   Attention scores the cache and the new tokens separately and joins the scores (s × (cap+s)
 *   per head), so no step copies the cache, and its cost no longer grows with the cache's
 *   length through copies (on `small`: 1.38× the tokens/s of the same weights as `concat` for
 *   one stream, 1.85× for 8 concurrent ones; `docs/MODELS.md`).
 * - **`concat`**: a Hugging Face decoder export's, `past_key_values.N.key|value` [b,h,p,d] in,
 *   `present.N.key|value` [b,h,p+s,d] out (`present = Concat(past, new)`), `attention_mask`
 *   [b,p+s]. The runtime serves both (`inference/_decoder_session.ts`).
 *
 * Mask: the query at sequence index i sits at key index P+i (P = `cap` or `p`) and may attend to
 * keys 0..P+i whose `attention_mask` is 1.
 *
 * @module
 */
import { join } from "node:path";
import { cidOf } from "../protocols/cid.ts";
import { tensorModelId, textModelId } from "./model_identity.ts";
import { SeededRandom } from "./_seeded_random.ts";
import { GraphBuilder, ONNX_BOOL, ONNX_FLOAT, ONNX_INT64 } from "./_onnx_graph.ts";
import {
  BUILTIN_EOS_TOKEN_ID,
  BUILTIN_PAD_TOKEN_ID,
  BUILTIN_SPECIAL_TOKENS,
  BUILTIN_VOCAB_SIZE,
  BYTE_VOCAB,
  byteLevelTokenizerJson,
} from "./byte_tokenizer.ts";

/** Named model sizes. */
export type GptModelSize = "tiny" | "small" | "brown";

/** Architecture of a built GPT model. */
export interface GptArchitecture {
  /** Transformer blocks. */
  numLayers: number;
  /** Model width (embedding size); a multiple of `numHeads`. */
  hiddenSize: number;
  /** Attention heads. */
  numHeads: number;
  /** Maximum positions (learned position table length). */
  contextLength: number;
}

/**
 * The named sizes. `tiny` builds in well under a second and runs the tests; `small` (~19 M
 * parameters) is for benchmarks; `brown` (~140 k parameters, 128-byte context) is the node's
 * default model: its weights are not built from a seed but trained by `cli.ts train` on the
 * Brown corpus and checked in (`inference/builtin_model.ts`, `docs/MODELS.md`); built from a
 * seed, it is the random starting point of that training.
 */
export const GPT_MODEL_SIZES: Readonly<Record<GptModelSize, Readonly<GptArchitecture>>> = Object
  .freeze({
    tiny: Object.freeze({ numLayers: 2, hiddenSize: 64, numHeads: 4, contextLength: 256 }),
    small: Object.freeze({ numLayers: 6, hiddenSize: 512, numHeads: 8, contextLength: 512 }),
    brown: Object.freeze({ numLayers: 2, hiddenSize: 64, numHeads: 4, contextLength: 128 }),
  });

/** Default weight seed of the built-in model. */
export const DEFAULT_MODEL_SEED = 0;

/** Opset of the built models: 17 introduced LayerNormalization; ORT 1.30 CPU runs all ops used. */
export const GPT_OPSET = 17;

/** Bumped whenever the builder's output for a given (size, seed) changes. */
export const BUILDER_VERSION = 2;

/**
 * How a built model's KV cache crosses the graph's boundary (see the module doc): `fixed`, a
 * cache of fixed capacity the caller updates in place (the default), or `concat`, a Hugging
 * Face export's `past_key_values` in and `present` out.
 */
export type KvCacheConvention = "fixed" | "concat";

/** Options of {@link buildGptModel}. */
export interface BuildGptModelOptions extends Partial<GptArchitecture> {
  /** Directory to write `model.onnx`, `config.json`, `tokenizer.json` into (created). */
  outDir: string;
  /** Named size; explicit architecture fields override it. Default `"tiny"`. */
  size?: GptModelSize;
  /** Weight seed. Default {@link DEFAULT_MODEL_SEED}. */
  seed?: number;
  /**
   * Tie the LM head to the token embedding (GPT-2 style). Default `false`: with random weights a
   * tied head scores the current token highest (its own embedding dominates the residual
   * stream), so greedy output repeats one byte; an untied head gives varied text.
   */
  tiedEmbeddings?: boolean;
  /** The KV-cache convention of the graph. Default `"fixed"`. */
  kvCache?: KvCacheConvention;
}

/** What {@link buildGptModel} (or {@link buildMlpModel}) wrote. */
export interface BuiltModel {
  /** The directory written. */
  dir: string;
  /**
   * The model's id (`model_identity.ts`): a GPT's names its `model.onnx`, `config.json` and
   * tokenizer files; an MLP's (a tensor model) is {@link BuiltModel.onnxCid}.
   */
  cid: string;
  /** CID of `model.onnx` alone: the file's content address, not the model's id. */
  onnxCid: string;
  /** Size of `model.onnx` in bytes. */
  sizeBytes: number;
  /** The architecture built. */
  architecture: GptArchitecture;
}

/** LayerNorm epsilon (GPT-2's). */
const LN_EPSILON = 1e-5;
/**
 * Additive mask value for disallowed keys: large enough that exp() underflows to exactly 0
 * after max-subtraction in Softmax, small enough to stay finite when added to scores.
 */
const MASK_VALUE = -1e9;
/** MLP expansion factor (GPT-2's 4·d inner width). */
const MLP_RATIO = 4;
/** Std of the small random biases: breaks symmetry without dominating the products. */
const BIAS_STD = 0.02;
/** Std of the LayerNorm gain around 1, so blocks differ from each other. */
const LN_GAIN_STD = 0.1;
/**
 * Target std of the LM-head logits: untrained GPT-2 init (0.02) gives logits of std ≈ 0.2, a
 * near-uniform distribution whose greedy output loops on one byte; ≈ 2 gives peaked but varied
 * distributions.
 */
const LOGIT_STD = 2;

/** Std of untied token embeddings (unit scale, like the LayerNorm outputs the blocks add to). */
const EMBED_STD = 1;
/** Position embeddings relative to token embeddings: present, but not dominating. */
const POSITION_SCALE = 0.5;

/**
 * Output bias initialised to a crude byte unigram prior, so that an untrained model emits
 * text-like bytes (letters, spaces, some punctuation) rather than control bytes and invalid
 * UTF-8. Values are log-odds offsets added to the logits.
 */
function bytePriorBias(vocabSize: number): Float32Array {
  const bias = new Float32Array(vocabSize);
  for (let b = 0; b < vocabSize; b++) {
    let v: number;
    if (b >= BYTE_VOCAB) v = b === BUILTIN_EOS_TOKEN_ID ? -4 : -12;
    else if (b === 0x20) v = 2.5;
    else if (b >= 0x61 && b <= 0x7a) v = 2; // a-z
    else if ((b >= 0x41 && b <= 0x5a) || (b >= 0x30 && b <= 0x39)) v = 0.5; // A-Z 0-9
    else if (b === 0x0a || (b > 0x20 && b < 0x7f)) v = 0; // newline, punctuation
    else v = -6; // other control bytes, bytes ≥ 0x80 (alone they are invalid UTF-8)
    bias[b] = v;
  }
  return bias;
}

/** Resolve the architecture of a build from a size name and overrides; validates it. */
export function resolveArchitecture(
  options: Partial<GptArchitecture> & { size?: GptModelSize },
): GptArchitecture {
  const base = GPT_MODEL_SIZES[options.size ?? "tiny"];
  if (!base) throw new RangeError(`unknown model size ${options.size}`);
  const arch: GptArchitecture = {
    numLayers: options.numLayers ?? base.numLayers,
    hiddenSize: options.hiddenSize ?? base.hiddenSize,
    numHeads: options.numHeads ?? base.numHeads,
    contextLength: options.contextLength ?? base.contextLength,
  };
  for (const [k, v] of Object.entries(arch)) {
    if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${k} must be a positive integer`);
  }
  if (arch.hiddenSize % arch.numHeads !== 0) {
    throw new RangeError(`hiddenSize ${arch.hiddenSize} is not a multiple of ${arch.numHeads}`);
  }
  return arch;
}

/**
 * The ONNX bytes of a seeded GPT model (a pure function of architecture, seed and tying).
 */
export function gptModelBytes(
  arch: GptArchitecture,
  seed: number = DEFAULT_MODEL_SEED,
  tiedEmbeddings = false,
  kvCache: KvCacheConvention = "fixed",
): Uint8Array {
  const fixed = kvCache === "fixed";
  const { numLayers: L, hiddenSize: C, numHeads: H, contextLength: N } = arch;
  const D = C / H;
  const V = BUILTIN_VOCAB_SIZE;
  const rng = new SeededRandom(seed);
  const g = new GraphBuilder();
  const widthStd = 1 / Math.sqrt(C);
  // GPT-2's residual scaling: each block adds two projections, so shrink them by √(2L).
  const residualStd = widthStd / Math.sqrt(2 * L);
  const normal = (name: string, dims: number[], std: number) =>
    g.floatTensor(name, dims, rng.normals(dims.reduce((a, b) => a * b, 1), std));
  const filled = (name: string, dims: number[], value: number) =>
    g.floatTensor(name, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)).fill(value));
  const layerNorm = (x: string, prefix: string) => {
    const gain = rng.normals(C, LN_GAIN_STD).map((v) => 1 + v);
    g.floatTensor(`${prefix}.weight`, [C], gain);
    filled(`${prefix}.bias`, [C], 0);
    return g.op("LayerNormalization", [x, `${prefix}.weight`, `${prefix}.bias`], {
      axis: { int: -1 },
      epsilon: { float: LN_EPSILON },
    });
  };
  const linear = (x: string, prefix: string, inDim: number, outDim: number, std: number) => {
    normal(`${prefix}.weight`, [inDim, outDim], std);
    normal(`${prefix}.bias`, [outDim], BIAS_STD);
    return g.op("Add", [g.op("MatMul", [x, `${prefix}.weight`]), `${prefix}.bias`]);
  };

  // Graph inputs.
  g.input("input_ids", ONNX_INT64, ["batch_size", "sequence_length"]);
  g.input("attention_mask", ONNX_INT64, ["batch_size", "total_sequence_length"]);
  g.input("position_ids", ONNX_INT64, ["batch_size", "sequence_length"]);
  for (let l = 0; l < L; l++) {
    for (const kv of ["key", "value"]) {
      g.input(fixed ? `kv_cache.${l}.${kv}` : `past_key_values.${l}.${kv}`, ONNX_FLOAT, [
        "batch_size",
        H,
        fixed ? "cache_capacity" : "past_sequence_length",
        D,
      ]);
    }
  }

  // Constants.
  g.int64Tensor("const_zero_i", [], [0]);
  g.int64Tensor("const_one_i", [], [1]);
  g.int64Tensor("const_two_i", [], [2]);
  g.int64Tensor("const_axes_0", [1], [0]);
  g.int64Tensor("const_starts_0", [1], [0]);
  g.int64Tensor("const_axes_last", [1], [-1]);
  g.int64Tensor("const_axes_1", [1], [1]);
  g.int64Tensor("const_axes_1_2", [2], [1, 2]);
  g.int64Tensor("const_split_qkv", [3], [C, C, C]);
  g.int64Tensor("const_heads_shape", [4], [0, 0, H, D]);
  g.int64Tensor("const_merge_shape", [3], [0, 0, C]);
  filled("const_zero_f", [], 0);
  filled("const_mask_value", [], MASK_VALUE);
  filled("const_half", [], 0.5);
  filled("const_one_f", [], 1);
  filled("const_inv_sqrt2", [], Math.SQRT1_2);
  filled("const_attn_scale", [], 1 / Math.sqrt(D));

  // Additive attention bias [b,1,s,p+s] shared by all layers: causal on absolute key index,
  // and padded keys (attention_mask 0) excluded.
  const seq = g.op("Gather", [g.op("Shape", ["input_ids"]), "const_one_i"]);
  const total = g.op("Gather", [g.op("Shape", ["attention_mask"]), "const_one_i"]);
  const past = g.op("Sub", [total, seq]);
  const keyIndex = g.op("Range", ["const_zero_i", total, "const_one_i"]);
  const queryIndex = g.op("Unsqueeze", [
    g.op("Range", [past, total, "const_one_i"]),
    "const_axes_1",
  ]);
  const causal = g.op("LessOrEqual", [keyIndex, queryIndex]);
  const keep = g.op("Unsqueeze", [
    g.op("Cast", ["attention_mask"], { to: { int: ONNX_BOOL } }),
    "const_axes_1_2",
  ]);
  const allowed = g.op("And", [causal, keep]);
  const attnBias = g.op("Where", [allowed, "const_zero_f", "const_mask_value"]);

  // Embeddings. With an untied head they are unit-scale so the token and its position stay
  // visible in the residual stream next to the blocks' outputs (else deep random blocks wash
  // them out and every position predicts the same few bytes). A tied head reuses them as output
  // weights, so there they take the head's scale: std·√C = LOGIT_STD.
  const headStd = LOGIT_STD / Math.sqrt(C);
  const embedStd = tiedEmbeddings ? headStd : EMBED_STD;
  normal("transformer.wte.weight", [V, C], embedStd);
  normal("transformer.wpe.weight", [N, C], embedStd * POSITION_SCALE);
  let x = g.op("Add", [
    g.op("Gather", ["transformer.wte.weight", "input_ids"]),
    g.op("Gather", ["transformer.wpe.weight", "position_ids"]),
  ]);

  for (let l = 0; l < L; l++) {
    const p = `transformer.h.${l}`;
    const h = layerNorm(x, `${p}.ln_1`);
    const qkv = linear(h, `${p}.attn.c_attn`, C, 3 * C, widthStd);
    const [q, k, v] = g.node("Split", [qkv, "const_split_qkv"], { axis: { int: -1 } }, 3);
    const toHeads = (t: string) =>
      g.op("Transpose", [g.op("Reshape", [t, "const_heads_shape"])], {
        perm: { ints: [0, 2, 1, 3] },
      });
    const scaledQ = g.op("Mul", [toHeads(q), "const_attn_scale"]);
    const keyT = (key: string) => g.op("Transpose", [key], { perm: { ints: [0, 1, 3, 2] } });
    let attended: string;
    if (fixed) {
      // Scores against the cache and against the new tokens, joined; the cache is only read.
      const newKey = g.node("Identity", [toHeads(k)], {}, [`kv_new.${l}.key`])[0];
      const newValue = g.node("Identity", [toHeads(v)], {}, [`kv_new.${l}.value`])[0];
      const cacheScores = g.op("MatMul", [scaledQ, keyT(`kv_cache.${l}.key`)]);
      const newScores = g.op("MatMul", [scaledQ, keyT(newKey)]);
      const scores = g.op("Add", [
        g.op("Concat", [cacheScores, newScores], { axis: { int: -1 } }),
        attnBias,
      ]);
      const probs = g.op("Softmax", [scores], { axis: { int: -1 } });
      const capacity = g.op("Unsqueeze", [
        g.op("Gather", [g.op("Shape", [`kv_cache.${l}.value`]), "const_two_i"]),
        "const_axes_0",
      ]);
      const end = g.op("Unsqueeze", [total, "const_axes_0"]);
      const cacheProbs = g.op("Slice", [probs, "const_starts_0", capacity, "const_axes_last"]);
      const newProbs = g.op("Slice", [probs, capacity, end, "const_axes_last"]);
      attended = g.op("Add", [
        g.op("MatMul", [cacheProbs, `kv_cache.${l}.value`]),
        g.op("MatMul", [newProbs, newValue]),
      ]);
    } else {
      const presentKey = g.node("Concat", [`past_key_values.${l}.key`, toHeads(k)], {
        axis: { int: 2 },
      }, [`present.${l}.key`])[0];
      const presentValue = g.node("Concat", [`past_key_values.${l}.value`, toHeads(v)], {
        axis: { int: 2 },
      }, [`present.${l}.value`])[0];
      const scores = g.op("Add", [g.op("MatMul", [scaledQ, keyT(presentKey)]), attnBias]);
      const probs = g.op("Softmax", [scores], { axis: { int: -1 } });
      attended = g.op("MatMul", [probs, presentValue]);
    }
    const context = g.op("Reshape", [
      g.op("Transpose", [attended], { perm: { ints: [0, 2, 1, 3] } }),
      "const_merge_shape",
    ]);
    x = g.op("Add", [x, linear(context, `${p}.attn.c_proj`, C, C, residualStd)]);

    const h2 = layerNorm(x, `${p}.ln_2`);
    const f = linear(h2, `${p}.mlp.c_fc`, C, MLP_RATIO * C, widthStd);
    const erf = g.op("Erf", [g.op("Mul", [f, "const_inv_sqrt2"])]);
    const gelu = g.op("Mul", [g.op("Mul", [f, "const_half"]), g.op("Add", [erf, "const_one_f"])]);
    x = g.op("Add", [x, linear(gelu, `${p}.mlp.c_proj`, MLP_RATIO * C, C, residualStd)]);
  }

  const final = layerNorm(x, "transformer.ln_f");
  let head: string;
  if (tiedEmbeddings) {
    head = g.op("Transpose", ["transformer.wte.weight"], { perm: { ints: [1, 0] } });
  } else {
    head = normal("lm_head.weight", [C, V], headStd);
  }
  g.floatTensor("lm_head.bias", [V], bytePriorBias(V));
  g.node("Add", [g.op("MatMul", [final, head]), "lm_head.bias"], {}, ["logits"]);

  g.output("logits", ONNX_FLOAT, ["batch_size", "sequence_length", V]);
  for (let l = 0; l < L; l++) {
    for (const kv of ["key", "value"]) {
      if (fixed) g.output(`kv_new.${l}.${kv}`, ONNX_FLOAT, ["batch_size", H, "sequence_length", D]);
      else {
        g.output(`present.${l}.${kv}`, ONNX_FLOAT, ["batch_size", H, "total_sequence_length", D]);
      }
    }
  }
  return g.encode(
    "veriflow_gpt",
    GPT_OPSET,
    "veriflow-model-builder",
    `Veriflow built-in GPT (L=${L}, d=${C}, h=${H}, n=${N}, seed=${seed})`,
  );
}

/** What a GPT model is built with besides its architecture: what its `config.json` records. */
export interface GptBuildExtra {
  /** Weight seed. */
  seed: number;
  /** Named size, when built as one. */
  size?: GptModelSize;
  /** Whether the LM head is tied to the token embedding. */
  tiedEmbeddings: boolean;
  /** The KV-cache convention (default `"fixed"`). */
  kvCache?: KvCacheConvention;
}

/** The files of a built GPT model besides `model.onnx`. */
export type GptSideFileName = "config.json" | "tokenizer.json" | "tokenizer_config.json";

/** The Hugging Face GPT-2 style `config.json` of a built model. */
export function gptConfigJson(
  arch: GptArchitecture,
  extra: GptBuildExtra,
): Record<string, unknown> {
  return {
    model_type: "gpt2",
    architectures: ["GPT2LMHeadModel"],
    vocab_size: BUILTIN_VOCAB_SIZE,
    n_positions: arch.contextLength,
    n_ctx: arch.contextLength,
    n_embd: arch.hiddenSize,
    n_layer: arch.numLayers,
    n_head: arch.numHeads,
    n_inner: MLP_RATIO * arch.hiddenSize,
    activation_function: "gelu",
    layer_norm_epsilon: LN_EPSILON,
    bos_token_id: BUILTIN_EOS_TOKEN_ID,
    eos_token_id: BUILTIN_EOS_TOKEN_ID,
    pad_token_id: BUILTIN_PAD_TOKEN_ID,
    tie_word_embeddings: extra.tiedEmbeddings,
    use_cache: true,
    veriflow: {
      builder: "veriflow-model-builder",
      builder_version: BUILDER_VERSION,
      name: `veriflow-gpt-${extra.size ?? "custom"}`,
      size: extra.size ?? null,
      seed: extra.seed,
      opset: GPT_OPSET,
      kv_cache: extra.kvCache ?? "fixed",
    },
  };
}

/**
 * The bytes of a built GPT model's files besides `model.onnx`, exactly as {@link buildGptModel}
 * writes them: a pure function of the architecture and `extra`, so a model's id can be computed
 * from its weights without writing anything (`training/gpt_weights.ts` `gptModelId`).
 */
export function gptSideFiles(
  arch: GptArchitecture,
  extra: GptBuildExtra,
): Record<GptSideFileName, Uint8Array> {
  return {
    "config.json": jsonFile(gptConfigJson(arch, extra)),
    "tokenizer.json": jsonFile(byteLevelTokenizerJson()),
    "tokenizer_config.json": jsonFile({
      tokenizer_class: "GPT2Tokenizer",
      model_max_length: arch.contextLength,
      bos_token: BUILTIN_SPECIAL_TOKENS[0],
      eos_token: BUILTIN_SPECIAL_TOKENS[0],
      pad_token: BUILTIN_SPECIAL_TOKENS[1],
      add_prefix_space: false,
      clean_up_tokenization_spaces: false,
    }),
  };
}

/**
 * Build a seeded GPT model directory (`model.onnx`, `config.json`, `tokenizer.json`,
 * `tokenizer_config.json`).
 *
 * @example
 * ```ts ignore
 * const built = await buildGptModel({ size: "tiny", seed: 0, outDir: "/tmp/tiny" });
 * const model = await TextModel.load(built.dir);
 * ```
 */
export async function buildGptModel(options: BuildGptModelOptions): Promise<BuiltModel> {
  const architecture = resolveArchitecture(options);
  const seed = options.seed ?? DEFAULT_MODEL_SEED;
  const tiedEmbeddings = options.tiedEmbeddings ?? false;
  const kvCache = options.kvCache ?? "fixed";
  const bytes = gptModelBytes(architecture, seed, tiedEmbeddings, kvCache);
  const dir = options.outDir;
  await Deno.mkdir(dir, { recursive: true });
  const side = gptSideFiles(architecture, { seed, size: options.size, tiedEmbeddings, kvCache });
  await Deno.writeFile(join(dir, "model.onnx"), bytes);
  for (const [name, file] of Object.entries(side)) await Deno.writeFile(join(dir, name), file);
  return {
    dir,
    cid: textModelId({ "model.onnx": bytes, ...side }),
    onnxCid: cidOf(bytes),
    sizeBytes: bytes.byteLength,
    architecture,
  };
}

/** The bytes of a JSON file as the builder writes it: two-space indent, a final newline. */
function jsonFile(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n");
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await Deno.writeFile(path, jsonFile(value));
}

/** Options of {@link buildMlpModel}. */
export interface BuildMlpModelOptions {
  /** Where to write `model.onnx` (and `config.json`); created. */
  outDir: string;
  /** Input features. Default 16. */
  inputSize?: number;
  /** Hidden width. Default 32. */
  hiddenSize?: number;
  /** Output features. Default 4. */
  outputSize?: number;
  /** Weight seed. Default {@link DEFAULT_MODEL_SEED}. */
  seed?: number;
}

/**
 * Build a one-shot tensor model: a two-layer MLP `output = W2·relu(W1·input + b1) + b2`,
 * input `input` [batch, inputSize] float32 → output `output` [batch, outputSize] float32.
 * Used by tests and as the reference tensor job.
 */
export async function buildMlpModel(options: BuildMlpModelOptions): Promise<BuiltModel> {
  const inputSize = options.inputSize ?? 16;
  const hiddenSize = options.hiddenSize ?? 32;
  const outputSize = options.outputSize ?? 4;
  const seed = options.seed ?? DEFAULT_MODEL_SEED;
  const rng = new SeededRandom(seed);
  const g = new GraphBuilder();
  g.input("input", ONNX_FLOAT, ["batch_size", inputSize]);
  g.floatTensor(
    "fc1.weight",
    [inputSize, hiddenSize],
    rng.normals(inputSize * hiddenSize, 1 / Math.sqrt(inputSize)),
  );
  g.floatTensor("fc1.bias", [hiddenSize], rng.normals(hiddenSize, BIAS_STD));
  g.floatTensor(
    "fc2.weight",
    [hiddenSize, outputSize],
    rng.normals(hiddenSize * outputSize, 1 / Math.sqrt(hiddenSize)),
  );
  g.floatTensor("fc2.bias", [outputSize], rng.normals(outputSize, BIAS_STD));
  const hidden = g.op("Relu", [g.op("Add", [g.op("MatMul", ["input", "fc1.weight"]), "fc1.bias"])]);
  g.node("Add", [g.op("MatMul", [hidden, "fc2.weight"]), "fc2.bias"], {}, ["output"]);
  g.output("output", ONNX_FLOAT, ["batch_size", outputSize]);
  const bytes = g.encode(
    "veriflow_mlp",
    GPT_OPSET,
    "veriflow-model-builder",
    `MLP ${inputSize}-${hiddenSize}-${outputSize}, seed=${seed}`,
  );
  await Deno.mkdir(options.outDir, { recursive: true });
  await Deno.writeFile(join(options.outDir, "model.onnx"), bytes);
  await writeJson(join(options.outDir, "config.json"), {
    model_type: "mlp",
    veriflow: {
      builder: "veriflow-model-builder",
      builder_version: BUILDER_VERSION,
      name: "veriflow-mlp",
      kind: "tensor",
      seed,
    },
  });
  // A tensor model: its id is the CID of `model.onnx` (`model_identity.ts`).
  const cid = tensorModelId(bytes);
  return {
    dir: options.outDir,
    cid,
    onnxCid: cid,
    sizeBytes: bytes.byteLength,
    architecture: { numLayers: 2, hiddenSize, numHeads: 1, contextLength: 1 },
  };
}
