/**
 * Conversions between job tensors (`protocols/job.ts` `TensorData`: element type name, dims,
 * raw little-endian bytes) and onnxruntime tensors, shared by `TensorModel` and the model
 * workers: the main side validates and aligns the inputs once ({@link prepareTensor}), and
 * whichever thread runs the session wraps them without another copy ({@link toOrtTensor}).
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import type { TensorData } from "../protocols/job.ts";
import { InvalidTensorInputError } from "./errors.ts";

/** A validated tensor input: element type, shape and an aligned typed array of its values. */
export interface PreparedTensor {
  /** Element type name (`float32`, `int64`, `bool`, …). */
  type: string;
  /** Shape. */
  dims: number[];
  /** Values, in a buffer of their own (so it can be transferred to a worker). */
  values: ArrayBufferView<ArrayBuffer>;
}

type NumericArrayCtor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

/** Element types a tensor job may carry, with their typed-array views. */
const ELEMENT_TYPES: Record<string, NumericArrayCtor> = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  bool: Uint8Array,
};

/** Validate job tensor bytes and copy them into an aligned typed array. */
export function prepareTensor(name: string, tensor: TensorData): PreparedTensor {
  const ctor = ELEMENT_TYPES[tensor.type];
  if (!ctor) throw new InvalidTensorInputError(`${name}: unsupported element type ${tensor.type}`);
  if (!tensor.dims.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new InvalidTensorInputError(`${name}: dims must be non-negative integers`);
  }
  const count = tensor.dims.reduce((a, b) => a * b, 1);
  if (tensor.data.byteLength !== count * ctor.BYTES_PER_ELEMENT) {
    throw new InvalidTensorInputError(
      `${name}: ${tensor.data.byteLength} bytes do not hold ${count} ${tensor.type} values`,
    );
  }
  // Host order is little-endian on every platform onnxruntime-node ships for.
  const aligned = new Uint8Array(tensor.data); // copy: the source may be unaligned
  return { type: tensor.type, dims: [...tensor.dims], values: new ctor(aligned.buffer, 0, count) };
}

/** Wrap a prepared tensor as an onnxruntime tensor (no copy). */
export function toOrtTensor(tensor: PreparedTensor): ort.Tensor {
  if (tensor.type === "bool") {
    return new ort.Tensor("bool", tensor.values as Uint8Array, tensor.dims);
  }
  return new ort.Tensor(tensor.type as "float32", tensor.values as Float32Array, tensor.dims);
}

/** Convert an onnxruntime tensor to job tensor bytes (in a buffer of their own). */
export function fromOrtTensor(tensor: ort.Tensor): TensorData {
  const data = tensor.data as ArrayBufferView;
  return {
    type: tensor.type,
    dims: [...tensor.dims],
    data: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  };
}

/**
 * Run a one-shot session on prepared tensors and read every output back, in whichever thread the
 * session lives. Shape mismatches only surface from onnxruntime at run time; they become
 * {@link InvalidTensorInputError} like every other bad input.
 */
export async function runTensorSession(
  session: ort.InferenceSession,
  feeds: Record<string, PreparedTensor>,
): Promise<Record<string, TensorData>> {
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, tensor] of Object.entries(feeds)) ortFeeds[name] = toOrtTensor(tensor);
  let out: ort.InferenceSession.ReturnType;
  try {
    out = await session.run(ortFeeds);
  } catch (cause) {
    throw new InvalidTensorInputError(`model rejected inputs: ${(cause as Error).message}`);
  }
  const result: Record<string, TensorData> = {};
  for (const name of session.outputNames) result[name] = fromOrtTensor(out[name]);
  return result;
}
