/**
 * The one path from a client request to an {@link InferencePort}, shared by the WebSocket API
 * and the OpenAI-compatible routes: resolve the model a request names, build the `TextJob`,
 * submit it, and hand back the job's handle. Whether the port runs the job here or relays it
 * to a peer is the port's business. Routes only translate wire shapes; they never decide
 * which model serves or how a job is formed.
 *
 * @module
 */
import { UnknownModelError } from "../inference/errors.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  ModelCatalog,
  ServedModelInfo,
} from "../inference/inference_port.ts";
import type { GenerationParams, TextJob } from "../protocols/job.ts";

/** A text generation request, after edge validation. */
export interface TextRequest {
  /** Model CID or name; the default model when absent or `"default"`. */
  model?: string;
  /** Prompt text. */
  prompt: string;
  /** Decoding parameters. */
  params: GenerationParams;
  /** Job nonce; random when absent, so identical requests are distinct jobs. */
  nonce?: string;
}

/** Options of {@link InferenceGateway}. */
export interface InferenceGatewayOptions {
  /** Where jobs are submitted. */
  inference: InferencePort;
  /** The models requests may name; default: the port's `models()`. */
  models?: ModelCatalog;
  /** CID or name of the model used when a request names none; default: the first text model. */
  defaultModel?: string;
  /**
   * Whether the model computes on this thread (onnxruntime in-thread: each step blocks the
   * event loop). Then the routes yield a turn of the loop after each token, so its write
   * leaves before the next step; with the model in a worker or on a peer that turn is only
   * cost. Default true (the safe choice for a port of unknown kind).
   */
  computesOnEventLoop?: boolean;
}

/** The name clients may use for "whichever model the node serves by default". */
export const DEFAULT_MODEL_ALIAS = "default";

/** Resolves models and submits text jobs on behalf of the client APIs. */
export class InferenceGateway {
  #inference: InferencePort;
  #models?: ModelCatalog;
  #defaultModel?: string;

  /**
   * Create it.
   *
   * @param options See {@link InferenceGatewayOptions}.
   */
  constructor(options: InferenceGatewayOptions) {
    this.#inference = options.inference;
    this.#models = options.models;
    this.#defaultModel = options.defaultModel;
    this.computesOnEventLoop = options.computesOnEventLoop ?? true;
  }

  /** See {@link InferenceGatewayOptions.computesOnEventLoop}. */
  readonly computesOnEventLoop: boolean;

  /** Every served model. */
  async listModels(): Promise<readonly ServedModelInfo[]> {
    return await (this.#models?.list() ?? this.#inference.models());
  }

  /**
   * The model a request names: by CID or by name; the default model for `undefined` or
   * `"default"`. Throws `UnknownModelError` (404 at the edge).
   */
  async resolveModel(name?: string): Promise<ServedModelInfo> {
    const models = await this.listModels();
    const wanted = name === undefined || name === DEFAULT_MODEL_ALIAS ? this.#defaultModel : name;
    const found = wanted === undefined
      ? models.find((model) => model.kind === "text")
      : models.find((model) => model.cid === wanted || model.name === wanted);
    if (!found) throw new UnknownModelError(name ?? DEFAULT_MODEL_ALIAS);
    return found;
  }

  /** The job a request describes (exported for clients that want to predict the job id). */
  async jobFor(request: TextRequest): Promise<TextJob> {
    const model = await this.resolveModel(request.model);
    return {
      kind: "text",
      model: model.cid,
      prompt: request.prompt,
      params: request.params,
      nonce: request.nonce ?? crypto.randomUUID(),
    };
  }

  /**
   * Submit a text job. Rejects with the port's typed refusal (`too_many_jobs`,
   * `context_length_exceeded`, ...). Aborting `signal` cancels the job.
   */
  async startText(request: TextRequest, signal?: AbortSignal): Promise<InferenceHandle> {
    return await this.#inference.submit(await this.jobFor(request), { signal });
  }

  /** The port's counters and gauges. */
  async stats(): Promise<InferenceStats> {
    return await this.#inference.stats();
  }
}
