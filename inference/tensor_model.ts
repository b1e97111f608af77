/**
 * One-shot tensor models: named tensors in, named tensors out, one execution. The job format
 * (`protocols/job.ts` `TensorData`: element type name, dims, raw little-endian bytes) is used on
 * both sides, so a tensor job's inputs go straight from the wire to the model and its outputs
 * straight back.
 *
 * With `worker: true` the session runs in a pool of workers (see `text_model.ts`): the inputs
 * are validated here and their buffers moved to the worker, the outputs moved back.
 *
 * @module
 */
import type * as ort from "onnxruntime-node";
import { join } from "node:path";
import type { TensorData } from "../protocols/job.ts";
import { ModelWorkerPool, poolSizing } from "./_model_worker_pool.ts";
import { createSession, type SessionOptions } from "./_session.ts";
import { type PreparedTensor, prepareTensor, runTensorSession } from "./_tensor_data.ts";
import { InvalidTensorInputError, ModelDisposedError, ModelLoadError } from "./errors.ts";
import type { BaseModelInfo, ModelWorkerOptions } from "./text_model.ts";
import { IN_THREAD_HEALTH, type ModelHealth } from "./model_health.ts";
import { tensorModelId } from "./model_identity.ts";
import { refuseExternalData } from "./_onnx_graph.ts";
import { readWholeFile } from "../storage/read_whole_file.ts";

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
export interface TensorModelOptions extends SessionOptions, ModelWorkerOptions {
  /** Override the model name. */
  name?: string;
}

/** Options of {@link TensorModel.run}. */
export interface TensorRunOptions {
  /** Checked before the run starts. */
  signal?: AbortSignal;
}

/** Where the model runs: this thread's session, or a pool of workers. */
interface TensorEngine {
  run(feeds: Record<string, PreparedTensor>): Promise<Record<string, TensorData>>;
  health(): ModelHealth;
  dispose(): Promise<void>;
}

/** The in-thread engine: runs the session on the calling thread. */
function inThreadEngine(session: ort.InferenceSession): TensorEngine {
  return {
    run: (feeds) => runTensorSession(session, feeds),
    health: () => structuredClone(IN_THREAD_HEALTH),
    dispose: () => session.release(),
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
  #engine: TensorEngine;
  #disposing: Promise<void> | undefined;

  private constructor(engine: TensorEngine, info: TensorModelInfo) {
    this.#engine = engine;
    this.info = info;
  }

  /** Load an `.onnx` file, or a directory holding `model.onnx`. */
  static async load(path: string, options?: TensorModelOptions): Promise<TensorModel> {
    let file = path;
    let bytes: Uint8Array;
    try {
      if ((await Deno.stat(path)).isDirectory) file = join(path, "model.onnx");
      bytes = await readWholeFile(file);
    } catch (cause) {
      throw new ModelLoadError(`cannot read model at ${path}`, { cause });
    }
    refuseExternalData(bytes, file);
    let engine: TensorEngine;
    let executionProvider: TensorModelInfo["executionProvider"];
    let fallbackReason: string | undefined;
    let inputMetadata: readonly ort.InferenceSession.ValueMetadata[];
    let outputMetadata: readonly ort.InferenceSession.ValueMetadata[];
    if (options?.worker) {
      // A tensor model has no forward passes, so no validation lane.
      const { workerCount, session } = poolSizing(options);
      const { pool, loaded } = await ModelWorkerPool.start(bytes, {
        workerCount,
        session,
        restart: options.restart,
        loadTimeoutMs: options.loadTimeoutMs,
        signal: options.loadSignal,
        model: `model ${path}`,
        onEvent: options.onWorkerEvent,
        workerUrl: options.workerUrl,
        supervisionClock: options.supervisionClock,
        pauseClock: options.pauseClock,
      });
      engine = {
        run: (feeds) => pool.run(feeds),
        health: () => pool.health(),
        dispose: () => pool.dispose(),
      };
      ({ executionProvider, fallbackReason, inputMetadata, outputMetadata } = loaded);
    } else {
      const created = await createSession(bytes, options);
      engine = inThreadEngine(created.session);
      executionProvider = created.executionProvider;
      fallbackReason = created.fallbackReason;
      inputMetadata = created.session.inputMetadata;
      outputMetadata = created.session.outputMetadata;
    }
    const specs = (meta: readonly ort.InferenceSession.ValueMetadata[]): TensorSpec[] =>
      meta.map((m) => ({
        name: m.name,
        type: m.isTensor ? m.type : "non-tensor",
        shape: m.isTensor ? [...m.shape] : [],
      }));
    const info: TensorModelInfo = {
      cid: tensorModelId(bytes),
      name: options?.name ?? path.split(/[\\/]/).filter(Boolean).pop() ?? path,
      kind: "tensor",
      sizeBytes: bytes.byteLength,
      executionProvider,
      ...(fallbackReason === undefined ? {} : { executionProviderFallback: fallbackReason }),
      path,
      inputs: specs(inputMetadata),
      outputs: specs(outputMetadata),
    };
    return new TensorModel(engine, info);
  }

  /**
   * Run once. Every model input must be given; unknown names are rejected. Throws
   * {@link InvalidTensorInputError} on bad inputs (names, types, byte sizes, shapes).
   */
  async run(
    inputs: Record<string, TensorData>,
    options?: TensorRunOptions,
  ): Promise<Record<string, TensorData>> {
    if (this.#disposing) throw new ModelDisposedError();
    const expected = new Set(this.info.inputs.map((spec) => spec.name));
    for (const name of Object.keys(inputs)) {
      if (!expected.has(name)) throw new InvalidTensorInputError(`unknown input ${name}`);
    }
    const feeds: Record<string, PreparedTensor> = {};
    for (const spec of this.info.inputs) {
      const tensor = inputs[spec.name];
      if (!tensor) throw new InvalidTensorInputError(`missing input ${spec.name}`);
      if (tensor.type !== spec.type) {
        throw new InvalidTensorInputError(
          `${spec.name}: expected ${spec.type}, got ${tensor.type}`,
        );
      }
      feeds[spec.name] = prepareTensor(spec.name, tensor);
    }
    options?.signal?.throwIfAborted();
    return await this.#engine.run(feeds);
  }

  /** The model runtime's health (see `TextModel.health`). */
  health(): ModelHealth {
    return this.#engine.health();
  }

  /**
   * Release the onnxruntime session (in worker mode: terminate the workers too). The model is
   * unusable afterwards: `run` throws {@link ModelDisposedError}. Idempotent.
   */
  dispose(): Promise<void> {
    this.#disposing ??= this.#engine.dispose();
    return this.#disposing;
  }
}
