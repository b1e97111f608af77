/**
 * A tiny graph builder over `onnx-proto`: just enough to write the built-in models by hand
 * (initializers, nodes with attributes, typed graph I/O with symbolic dimensions); and the check
 * every model loader makes that a model keeps all its tensors' data in itself
 * ({@link refuseExternalData}).
 *
 * Private to `inference/`: the public surface is `model_builder.ts`.
 *
 * @module
 */
import onnxProto from "onnx-proto";
import { ModelLoadError } from "./errors.ts";

const { onnx } = onnxProto;

/** ONNX element type codes used by the builders (TensorProto.DataType). */
export const ONNX_FLOAT = 1;
/** ONNX int64 element type code. */
export const ONNX_INT64 = 7;
/** ONNX bool element type code. */
export const ONNX_BOOL = 9;

/** IR version 8 is the first that carries opset 17 (LayerNormalization). */
const IR_VERSION = 8;

/** An attribute value: a number is an INT unless it is not an integer or `float` is forced. */
export type AttributeValue =
  | { int: number }
  | { float: number }
  | { ints: number[] }
  | { string: string };

/** A dimension: a fixed size or a symbolic name (`batch_size`). */
export type Dim = number | string;

/** Accumulates the nodes, initializers and I/O of one ONNX graph. */
export class GraphBuilder {
  #nodes: onnxProto.onnx.INodeProto[] = [];
  #initializers: onnxProto.onnx.ITensorProto[] = [];
  #inputs: onnxProto.onnx.IValueInfoProto[] = [];
  #outputs: onnxProto.onnx.IValueInfoProto[] = [];
  #counter = 0;

  /** Declare a graph input. */
  input(name: string, elemType: number, dims: Dim[]): string {
    this.#inputs.push(valueInfo(name, elemType, dims));
    return name;
  }

  /** Declare a graph output (the value named `name` must be produced by a node). */
  output(name: string, elemType: number, dims: Dim[]): void {
    this.#outputs.push(valueInfo(name, elemType, dims));
  }

  /** Add a float32 initializer. */
  floatTensor(name: string, dims: number[], data: Float32Array): string {
    this.#initializers.push({
      name,
      dims,
      dataType: ONNX_FLOAT,
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** Add an int64 initializer (values must be safe integers). */
  int64Tensor(name: string, dims: number[], values: number[]): string {
    const data = new BigInt64Array(values.map((v) => BigInt(v)));
    this.#initializers.push({
      name,
      dims,
      dataType: ONNX_INT64,
      rawData: new Uint8Array(data.buffer),
    });
    return name;
  }

  /**
   * Add a node. Returns its output names; pass `outputs` to name them, else they are
   * generated from the op type.
   */
  node(
    opType: string,
    inputs: string[],
    attributes: Record<string, AttributeValue> = {},
    outputs?: string[] | number,
  ): string[] {
    const count = typeof outputs === "number" ? outputs : outputs?.length ?? 1;
    const names = Array.isArray(outputs)
      ? outputs
      : Array.from({ length: count }, (_, i) => `${opType.toLowerCase()}_${this.#counter}_${i}`);
    this.#counter++;
    this.#nodes.push({
      opType,
      input: inputs,
      output: names,
      name: `${opType}_${this.#counter}`,
      attribute: Object.entries(attributes).map(([name, value]) => attribute(name, value)),
    });
    return names;
  }

  /** Shorthand for a one-output node. */
  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue> = {}): string {
    return this.node(opType, inputs, attributes)[0];
  }

  /** Serialize as a ModelProto with the default-domain opset `opset`. */
  encode(graphName: string, opset: number, producer: string, docString: string): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: IR_VERSION,
      opsetImport: [{ domain: "", version: opset }],
      producerName: producer,
      producerVersion: "1",
      docString,
      graph: {
        name: graphName,
        node: this.#nodes,
        initializer: this.#initializers,
        input: this.#inputs,
        output: this.#outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, elemType: number, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: {
          dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  };
}

function attribute(name: string, value: AttributeValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if ("int" in value) return { name, type: T.INT, i: value.int };
  if ("float" in value) return { name, type: T.FLOAT, f: value.float };
  if ("ints" in value) return { name, type: T.INTS, ints: value.ints };
  return { name, type: T.STRING, s: new TextEncoder().encode(value.string) };
}

/** `TensorProto.DataLocation.EXTERNAL`: the tensor's data is in another file. */
const EXTERNAL_DATA = 1;

/**
 * The name of a tensor of the ONNX model `bytes` whose data is kept in another file ("external
 * data"), or `undefined` when every tensor's data is in the model: initializers, sparse ones,
 * node attributes (a `Constant`'s value), in subgraphs, functions and training info alike.
 *
 * @throws {Error} `bytes` is not a protobuf ModelProto.
 */
export function externalDataTensor(bytes: Uint8Array): string | undefined {
  const model = onnx.ModelProto.decode(bytes);
  const tensors: (onnxProto.onnx.ITensorProto | null | undefined)[] = [];
  const sparse = (s: onnxProto.onnx.ISparseTensorProto | null | undefined) => {
    if (s) tensors.push(s.values, s.indices);
  };
  const nodes = (list: onnxProto.onnx.INodeProto[] | null | undefined) => {
    for (const node of list ?? []) {
      for (const a of node.attribute ?? []) {
        tensors.push(a.t, ...(a.tensors ?? []));
        sparse(a.sparseTensor);
        for (const s of a.sparseTensors ?? []) sparse(s);
        graph(a.g);
        for (const g of a.graphs ?? []) graph(g);
      }
    }
  };
  const graph = (g: onnxProto.onnx.IGraphProto | null | undefined) => {
    if (!g) return;
    tensors.push(...(g.initializer ?? []));
    for (const s of g.sparseInitializer ?? []) sparse(s);
    nodes(g.node);
  };
  graph(model.graph);
  for (const f of model.functions ?? []) nodes(f.node);
  for (const t of model.trainingInfo ?? []) {
    graph(t.initialization);
    graph(t.algorithm);
  }
  const external = tensors.find((t) =>
    t && (t.dataLocation === EXTERNAL_DATA || (t.externalData?.length ?? 0) > 0)
  );
  return external ? external.name || "(unnamed)" : undefined;
}

/**
 * Throws {@link ModelLoadError} unless every tensor of the ONNX model `bytes` holds its data in
 * the model itself (see {@link externalDataTensor}), or when the bytes are not an ONNX model.
 *
 * A model is handed to onnxruntime as bytes, so external data would be read from the process's
 * working directory when a session is created (onnxruntime's graph optimizer refuses it, but not
 * at `graphOptimizationLevel: "disabled"`): what runs would not be what the model's id names
 * (`model_identity.ts`: the bytes of `model.onnx`), two nodes could run other weights under one
 * id, and a worker restarted after a crash could read other data. Every loader calls this before
 * it creates a session.
 *
 * @param bytes The model's `model.onnx`.
 * @param where Where it is from, for the message.
 */
export function refuseExternalData(bytes: Uint8Array, where: string): void {
  let external: string | undefined;
  try {
    external = externalDataTensor(bytes);
  } catch (cause) {
    throw new ModelLoadError(`${where} is not an ONNX model`, { cause });
  }
  if (external !== undefined) {
    throw new ModelLoadError(
      `${where}: tensor ${external} keeps its data in another file; a model's id names the ` +
        `bytes of its model.onnx only, so every tensor must be in it`,
    );
  }
}
