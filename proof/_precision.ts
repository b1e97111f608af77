/**
 * Lower-precision copies of a model, for calibration: the weights of an ONNX model rounded to
 * fp16 or bf16 (stored as float32 again, so the same runtime runs them) and logits rounded to
 * fp16. A job that declares `precision: "bf16"` pays for a worker that may run bf16 weights;
 * the validator then needs to know how far such a worker's fingerprints land from its own
 * fp32 recomputation, and measures it by running these copies (`calibration.ts`).
 *
 * @module
 */
import onnxProto from "onnx-proto";
import type { JobPrecision } from "../protocols/job.ts";

const { onnx } = onnxProto;
/** ONNX `TensorProto.DataType.FLOAT`. */
const ONNX_FLOAT = 1;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** `x` rounded to the nearest bfloat16 (8-bit exponent, 7-bit mantissa), ties to even. */
export function roundToBf16(x: number): number {
  f32[0] = x;
  if (!Number.isFinite(f32[0])) return f32[0];
  const bits = u32[0];
  u32[0] = (((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16) >>> 0;
  return f32[0];
}

/** `x` rounded to the nearest IEEE half (10-bit mantissa), ties to even; overflow to ±∞. */
export function roundToFp16(x: number): number {
  return Math.f16round(x);
}

/** The rounding a precision applies to each weight, or null for fp32 (none). */
export function weightRounding(precision: JobPrecision): ((x: number) => number) | null {
  return precision === "bf16" ? roundToBf16 : precision === "fp16" ? roundToFp16 : null;
}

/**
 * The model bytes with every float32 initializer passed through `round` (in place in a decoded
 * copy). Graph constants are weights too: a runtime that stores the model in a lower precision
 * stores them that way.
 */
export function mapModelWeights(bytes: Uint8Array, round: (x: number) => number): Uint8Array {
  const model = onnx.ModelProto.decode(bytes);
  for (const init of model.graph?.initializer ?? []) {
    if (init.dataType !== ONNX_FLOAT) continue;
    if (init.rawData && init.rawData.length > 0) {
      const raw = new Uint8Array(init.rawData); // a copy, aligned
      const f = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
      for (let i = 0; i < f.length; i++) f[i] = round(f[i]);
      init.rawData = raw;
    } else if (init.floatData && init.floatData.length > 0) {
      init.floatData = init.floatData.map(round);
    }
  }
  return onnx.ModelProto.encode(model).finish();
}

/** Round each element of a logits row to fp16 (what a runtime with fp16 outputs returns). */
export function fp16Logits(row: Float32Array): Float32Array {
  // A bulk conversion through Float16Array: about 20 ns per logit, a third of a per-element call.
  return new Float32Array(new Float16Array(row));
}
