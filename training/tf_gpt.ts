/**
 * The built-in GPT's forward pass and loss in tfjs, for training: the same computation as the
 * ONNX graph `inference/model_builder.ts` writes (pre-LN blocks, multi-head causal attention,
 * exact GELU, untied LM head with bias), over full sequences without a KV cache.
 *
 * Shapes are kept 2-D around every weight matmul (tfjs 4.22's broadcasting matmul gradient
 * returns the wrong shape), and token embeddings are a one-hot matmul (the wasm backend has no
 * `UnsortedSegmentSum`, the gradient of `gather`).
 *
 * @module
 */
import type { GptArchitecture } from "../inference/model_builder.ts";
import { BUILTIN_VOCAB_SIZE } from "../inference/byte_tokenizer.ts";
import { tf } from "./tf_backend.ts";
import { GPT_MLP_RATIO, type GptWeights } from "./gpt_weights.ts";

/** LayerNorm epsilon: the builder's (GPT-2's). */
const LN_EPSILON = 1e-5;
/** Additive mask for future keys; exp() of it underflows to 0 as in the ONNX graph. */
const MASK_VALUE = -1e9;

/** Trainable tensors by builder name. */
export type TfWeights = Record<string, tf.Tensor>;

/**
 * Mean next-byte cross-entropy (nats) of `tokens` ([batch, seq+1] int32: inputs are the first
 * `seq`, targets the last `seq`).
 */
export function gptLoss(arch: GptArchitecture, w: TfWeights, tokens: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [B, S1] = tokens.shape;
    const S = S1 - 1;
    const inputs = tokens.slice([0, 0], [B, S]).reshape([B * S]) as tf.Tensor1D;
    const targets = tokens.slice([0, 1], [B, S]).reshape([B * S]) as tf.Tensor1D;
    const logits = gptLogits(arch, w, inputs, B, S);
    const logProbs = tf.logSoftmax(logits);
    const picked = tf.mul(logProbs, tf.oneHot(targets, BUILTIN_VOCAB_SIZE)).sum(-1);
    return picked.mean().neg() as tf.Scalar;
  });
}

/** Logits [batch·seq, vocab] of flattened input ids [batch·seq]. */
export function gptLogits(
  arch: GptArchitecture,
  w: TfWeights,
  ids: tf.Tensor1D,
  B: number,
  S: number,
): tf.Tensor2D {
  const { numLayers: L, hiddenSize: C, numHeads: H } = arch;
  const D = C / H;
  const V = BUILTIN_VOCAB_SIZE;
  if (S > arch.contextLength) throw new RangeError(`sequence ${S} > context ${arch.contextLength}`);
  const linear = (x: tf.Tensor2D, p: string) =>
    tf.add(tf.matMul(x, w[`${p}.weight`] as tf.Tensor2D), w[`${p}.bias`]) as tf.Tensor2D;
  const layerNorm = (x: tf.Tensor2D, p: string) => {
    const { mean, variance } = tf.moments(x, -1, true);
    const norm = tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, LN_EPSILON)));
    return tf.add(tf.mul(norm, w[`${p}.weight`]), w[`${p}.bias`]) as tf.Tensor2D;
  };
  // Causal mask [S, S]: 0 on and below the diagonal, MASK_VALUE above.
  const causal = tf.linalg.bandPart(tf.ones([S, S]), -1, 0);
  const maskBias = tf.mul(tf.sub(1, causal), MASK_VALUE);
  const toHeads = (t: tf.Tensor2D) => t.reshape([B, S, H, D]).transpose([0, 2, 1, 3]);

  const tokEmb = tf.matMul(tf.oneHot(ids, V).toFloat(), w["transformer.wte.weight"] as tf.Tensor2D);
  const posEmb = w["transformer.wpe.weight"].slice([0, 0], [S, C]);
  let x = tf.add(tokEmb.reshape([B, S, C]), posEmb).reshape([B * S, C]) as tf.Tensor2D;
  for (let l = 0; l < L; l++) {
    const p = `transformer.h.${l}`;
    const qkv = linear(layerNorm(x, `${p}.ln_1`), `${p}.attn.c_attn`);
    const [q, k, v] = tf.split(qkv, 3, -1) as tf.Tensor2D[];
    const scores = tf.add(
      tf.matMul(tf.mul(toHeads(q), 1 / Math.sqrt(D)), toHeads(k), false, true),
      maskBias,
    );
    const context = tf.matMul(tf.softmax(scores), toHeads(v))
      .transpose([0, 2, 1, 3]).reshape([B * S, C]) as tf.Tensor2D;
    x = tf.add(x, linear(context, `${p}.attn.c_proj`));
    const f = linear(layerNorm(x, `${p}.ln_2`), `${p}.mlp.c_fc`);
    const gelu = tf.mul(tf.mul(f, 0.5), tf.add(tf.erf(tf.mul(f, Math.SQRT1_2)), 1)) as tf.Tensor2D;
    x = tf.add(x, linear(gelu, `${p}.mlp.c_proj`));
  }
  return linear(layerNorm(x, "transformer.ln_f"), "lm_head");
}

/** FLOPs of one forward pass over `tokens` positions with sequence length `seq` (matmuls only). */
export function gptForwardFlops(arch: GptArchitecture, tokens: number, seq: number): number {
  const { numLayers: L, hiddenSize: C } = arch;
  const V = BUILTIN_VOCAB_SIZE;
  const perBlock = 2 * C * 3 * C + 2 * C * C + 2 * 2 * C * GPT_MLP_RATIO * C + 2 * 2 * seq * C;
  return tokens * (2 * V * C + L * perBlock + 2 * C * V);
}

/** Upload weights as tfjs tensors (trainable variables when `trainable`). */
export function toTfWeights(weights: GptWeights, trainable: boolean): TfWeights {
  const out: TfWeights = {};
  for (const [name, w] of weights) {
    const t = tf.tensor(w.data, w.shape, "float32");
    out[name] = trainable ? tf.variable(t, true) : t;
    if (trainable) t.dispose();
  }
  return out;
}
