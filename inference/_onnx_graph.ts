/**
 * A tiny graph builder over `onnx-proto`: just enough to write the built-in models by hand
 * (initializers, nodes with attributes, typed graph I/O with symbolic dimensions).
 *
 * Private to `inference/`: the public surface is `model_builder.ts`.
 *
 * @module
 */
import onnxProto from "onnx-proto";

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
