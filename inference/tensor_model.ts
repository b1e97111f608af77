/**
 * One-shot tensor models: named tensors in, named tensors out, one execution. The job format
 * (`protocols/job.ts` `TensorData`: element type name, dims, raw little-endian bytes) is used on
 * both sides, so a tensor job's inputs go straight from the wire to the model and its outputs
 * straight back.
 *
 * @module
 */
import * as ort from "onnxruntime-node";
import { join } from "node:path";
import { cidOf } from "../protocols/cid.ts";
import type { TensorData } from "../protocols/job.ts";
import { createSession, type SessionOptions } from "./_session.ts";
import { InvalidTensorInputError, ModelLoadError } from "./errors.ts";
import type { BaseModelInfo } from "./text_model.ts";

/** Name, element type and shape (numbers or symbolic names) of a model input or output. */
export interface TensorSpec {
  /** Tensor name. */
  name: string;
  /** Element type name (`float32`, `int64`, ...). */
  type: string;
  /** Shape; strings are symbolic (free) dimensions. */
  shape: (number | string)[];
}

/** What the node knows about a loaded tensor model. */
export interface TensorModelInfo extends BaseModelInfo {
  /** Always `"tensor"`. */
  kind: "tensor";
  /** The inputs the model expects. */
  inputs: TensorSpec[];
  /** The outputs it produces. */
  outputs: TensorSpec[];
}

/** Options of {@link TensorModel.load}. */
export interface TensorModelOptions extends SessionOptions {
  /** Override the model name. */
  name?: string;
}

/** Options of {@link TensorModel.run}. */
export interface TensorRunOptions {
  /** Checked before the run starts. */
  signal?: AbortSignal;
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

/** Convert job tensor bytes to an onnxruntime tensor (copying into an aligned buffer). */
function toOrtTensor(name: string, tensor: TensorData): ort.Tensor {
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
  const values = new ctor(aligned.buffer, 0, count);
  if (tensor.type === "bool") {
    return new ort.Tensor("bool", values as Uint8Array, tensor.dims);
  }
  return new ort.Tensor(tensor.type as "float32", values as Float32Array, tensor.dims);
}

/** Convert an onnxruntime tensor to job tensor bytes. */
function fromOrtTensor(tensor: ort.Tensor): TensorData {
  const data = tensor.data as ArrayBufferView;
  return {
    type: tensor.type,
    dims: [...tensor.dims],
    data: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)),
  };
}

/**
 * A loaded one-shot model.
 *
 * @example
 * ```ts ignore
 * const model = await TensorModel.load("./mlp/model.onnx");
 * const out = await model.run({
 *   input: { type: "float32", dims: [1, 16], data: new Uint8Array(64) },
 * });
 * out.output.dims; // [1, 4]
 * ```
 */
export class TensorModel {
  /** Model metadata. */
  readonly info: TensorModelInfo;
  #session: ort.InferenceSession;

  private constructor(session: ort.InferenceSession, info: TensorModelInfo) {
    this.#session = session;
    this.info = info;
  }

  /** Load an `.onnx` file, or a directory holding `model.onnx`. */
  static async load(path: string, options?: TensorModelOptions): Promise<TensorModel> {
    let file = path;
    let bytes: Uint8Array;
    try {
      if ((await Deno.stat(path)).isDirectory) file = join(path, "model.onnx");
      bytes = await Deno.readFile(file);
    } catch (cause) {
      throw new ModelLoadError(`cannot read model at ${path}`, { cause });
    }
    const { session, executionProvider } = await createSession(bytes, options);
    const specs = (meta: readonly ort.InferenceSession.ValueMetadata[]): TensorSpec[] =>
      meta.map((m) => ({
        name: m.name,
        type: m.isTensor ? m.type : "non-tensor",
        shape: m.isTensor ? [...m.shape] : [],
      }));
    const info: TensorModelInfo = {
      cid: cidOf(bytes),
      name: options?.name ?? path.split(/[\\/]/).filter(Boolean).pop() ?? path,
      kind: "tensor",
      sizeBytes: bytes.byteLength,
      executionProvider,
      path,
      inputs: specs(session.inputMetadata),
      outputs: specs(session.outputMetadata),
    };
    return new TensorModel(session, info);
  }

  /**
   * Run once. Every model input must be given; unknown names are rejected. Throws
   * {@link InvalidTensorInputError} on bad inputs (names, types, byte sizes, shapes).
   */
  async run(
    inputs: Record<string, TensorData>,
    options?: TensorRunOptions,
  ): Promise<Record<string, TensorData>> {
    const expected = new Set(this.#session.inputNames);
    for (const name of Object.keys(inputs)) {
      if (!expected.has(name)) throw new InvalidTensorInputError(`unknown input ${name}`);
    }
    const feeds: Record<string, ort.Tensor> = {};
    for (const spec of this.info.inputs) {
      const tensor = inputs[spec.name];
      if (!tensor) throw new InvalidTensorInputError(`missing input ${spec.name}`);
      if (tensor.type !== spec.type) {
        throw new InvalidTensorInputError(
          `${spec.name}: expected ${spec.type}, got ${tensor.type}`,
        );
      }
      feeds[spec.name] = toOrtTensor(spec.name, tensor);
    }
    options?.signal?.throwIfAborted();
    let out: ort.InferenceSession.ReturnType;
    try {
      out = await this.#session.run(feeds);
    } catch (cause) {
      // Shape mismatches surface from onnxruntime at run time.
      throw new InvalidTensorInputError(`model rejected inputs: ${(cause as Error).message}`);
    }
    const result: Record<string, TensorData> = {};
    for (const name of this.#session.outputNames) result[name] = fromOrtTensor(out[name]);
    return result;
  }

  /** Release the onnxruntime session. */
  async dispose(): Promise<void> {
    await this.#session.release();
  }
}
