/**
 * {@link LocalInferencePort}: the {@link InferencePort} of models that run in this process, over
 * the InferenceActor. It is the only piece between the edge and the actor: it turns a port
 * submission into the actor's plain-data messages (`submit`, and `cancel` when the caller's
 * signal aborts before the answer), and hands back the handle as plain data: served-model
 * fields only, and tokens as `StreamedToken`s, which the actor's job run already strips of
 * whatever the model attached to its chunks (logits, fingerprints stay with the prover), and
 * `topLogprobs` travels with the submission, beside the job rather than in it.
 *
 * @example
 * ```ts ignore
 * const port = new LocalInferencePort({ inference: inferenceRef, models: registry });
 * const handle = await port.submit(job, { signal });
 * for await (const token of handle.tokens) console.log(token.text);
 * console.log(await handle.done);
 * ```
 *
 * @module
 */
import type { ActorRef } from "../actors/actor_ref.ts";
import { type InferenceMessage, submitJob } from "../actors/inference_actor.ts";
import type { TextJob } from "../protocols/job.ts";
import { JobInputError, type JobInputReader, jobInputRoom } from "../protocols/job_input.ts";
import { VeriflowError } from "../protocols/errors.ts";
import {
  checkTextJob,
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type ModelCatalog,
  type ServedModelInfo,
  type SubmitOptions,
} from "./inference_port.ts";

/** Options of {@link LocalInferencePort}. */
export interface LocalInferencePortOptions {
  /** The InferenceActor's ref. */
  inference: ActorRef<InferenceMessage>;
  /** The models the actor's source serves (a `ModelRegistry`), listed by `models()`. */
  models: ModelCatalog;
  /** How long a submission may wait for the actor's answer; default `submitJob`'s (two minutes). */
  submitTimeoutMs?: number;
  /** How long a stats ask may take. Default 5 s: it is answered from memory. */
  statsTimeoutMs?: number;
  /**
   * Reads a job's `input` (`protocols/job_input.ts`) from this node's storage: its own chunks
   * first, then its storage peers'. Absent (a node without storage), a job that names an input
   * is refused with `input_unavailable`.
   */
  readInput?: JobInputReader;
}

/** Default of {@link LocalInferencePortOptions.statsTimeoutMs}; longer means a wedged actor. */
export const LOCAL_STATS_TIMEOUT_MS = 5_000;

/** Submits text jobs to this process's InferenceActor. */
export class LocalInferencePort implements InferencePort {
  #inference: ActorRef<InferenceMessage>;
  #models: ModelCatalog;
  #submitTimeoutMs?: number;
  #statsTimeoutMs: number;
  #readInput?: JobInputReader;

  /**
   * Create it.
   *
   * @param options See {@link LocalInferencePortOptions}.
   */
  constructor(options: LocalInferencePortOptions) {
    this.#inference = options.inference;
    this.#models = options.models;
    this.#submitTimeoutMs = options.submitTimeoutMs;
    this.#statsTimeoutMs = options.statsTimeoutMs ?? LOCAL_STATS_TIMEOUT_MS;
    this.#readInput = options.readInput;
  }

  /**
   * Submit a text job. Rejects with `invalid_generation_params` when the job fails
   * `textJobSchema` (as `RemoteInferencePort` and the wire refuse it), else with the actor's
   * typed refusal (`too_many_jobs`, `unknown_model`, `context_length_exceeded`,
   * `invalid_generation_params`, ...), or for a job that names an input, `input_not_found`,
   * `input_unavailable`, `input_too_large` or `input_not_text`; aborting `options.signal`
   * cancels the job, queued or running.
   */
  async submit(job: TextJob, options?: SubmitOptions): Promise<InferenceHandle> {
    // The actor checks the parameters but not the rest of the job (a requester key that is not
    // one would be signed into a receipt): the same schema as the wire, so both ports agree.
    const checked = checkTextJob(job);
    const input = checked.input === undefined
      ? undefined
      : await readJobInput(checked, this.#readInput, options?.signal);
    const handle = await submitJob(this.#inference, checked, {
      input,
      signal: options?.signal,
      timeoutMs: this.#submitTimeoutMs,
      topLogprobs: options?.topLogprobs,
      resume: options?.resume,
      onQueued: options?.onQueued,
      client: options?.client,
    });
    return {
      jobId: handle.jobId,
      model: servedModelInfo(handle.model),
      promptTokens: handle.promptTokens,
      ...(handle.resumedText === undefined ? {} : { resumedText: handle.resumedText }),
      tokens: handle.tokens,
      done: handle.done,
      cancel: () => handle.cancel(),
    };
  }

  /**
   * The models the catalog lists, as plain {@link ServedModelInfo}s. Rejects with the actor's
   * `ActorStoppedError` (`actor_stopped`) once it is stopped, as `submit` and `stats` do: a
   * stopped node's catalog is closed and lists nothing, which read as "this node serves no model"
   * (review s73).
   */
  async models(): Promise<readonly ServedModelInfo[]> {
    const listed = await this.#models.list();
    // Only an empty catalog is in doubt (a stopped node's reads empty): the actor is asked then,
    // not on every request's model lookup.
    if (listed.length === 0) await this.#actorAnswers();
    return listed.map(servedModelInfo);
  }

  /**
   * Resolves once the actor answers a stats ask for no model (answered from memory, loads
   * nothing); rejects with its typed refusal when it is stopped.
   */
  async #actorAnswers(): Promise<void> {
    await this.#inference.ask<InferenceStats>({ type: "stats", models: [] }, {
      timeoutMs: this.#statsTimeoutMs,
    });
  }

  /**
   * The actor's counters and gauges, its `slots` summed over the models the catalog lists (the
   * ones served: a model dropped from it, its pool given up, runs nothing a router could send)
   * and has loaded. One a catalog lists as not loaded (`loaded: false`, a `ModelRegistry`'s
   * model no job has named yet) counts no slot: asking for stats must not load it, or every
   * scrape of `/metrics` and the dashboard would load every model ever registered, with its
   * workers (review s78 F2). A catalog that does not say is taken as loaded.
   */
  async stats(): Promise<InferenceStats> {
    const models = (await this.#models.list()).filter(isLoaded).map((m) => m.cid);
    return await this.#inference.ask<InferenceStats>({ type: "stats", models }, {
      timeoutMs: this.#statsTimeoutMs,
    });
  }
}

/**
 * The bytes of `job`'s input, read through `read` and bounded by `jobInputRoom`: at most
 * `MAX_JOB_INPUT_BYTES`, and with the job within `MAX_NETWORK_JOB_BYTES` (a fraud proof
 * carries both to every node in one frame). A read that finds it nowhere is `input_not_found`;
 * any other failure (no storage here, peers unreachable) `input_unavailable`, which a router
 * takes as this worker's and asks another (`network/failover.ts`). The actor checks the bytes
 * against the CID.
 */
async function readJobInput(
  job: TextJob,
  read: JobInputReader | undefined,
  signal: AbortSignal | undefined,
): Promise<Uint8Array> {
  const cid = job.input!;
  if (read === undefined) {
    throw new JobInputError(
      "input_unavailable",
      `this node stores nothing: it cannot read input ${cid}`,
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await read(cid, signal);
  } catch (error) {
    if (signal?.aborted) throw error;
    const code = error instanceof VeriflowError ? error.code : "";
    if (code === "chunk_not_found") {
      throw new JobInputError(
        "input_not_found",
        `input ${cid} is not stored on any node this one reaches`,
      );
    }
    throw new JobInputError(
      "input_unavailable",
      `input ${cid} could not be read here${code === "" ? "" : ` (${code})`}`,
    );
  }
  const room = jobInputRoom(job);
  if (bytes.length > room) {
    throw new JobInputError(
      "input_too_large",
      `input ${cid} is ${bytes.length} bytes; a job may read at most ${room} (one chunk, and with the job one frame)`,
    );
  }
  return bytes;
}

/** Whether a catalog's entry is loaded: unless it says it is not (`ModelRegistry.list`). */
function isLoaded(model: ServedModelInfo & { loaded?: unknown }): boolean {
  return model.loaded !== false;
}

/**
 * The served-model fields of a model's info, and nothing else: an engine's `ModelInfo` carries
 * more (paths, architecture) that has no business leaving the node.
 */
function servedModelInfo(info: ServedModelInfo): ServedModelInfo {
  const served: {
    -readonly [K in keyof ServedModelInfo]: ServedModelInfo[K];
  } = { cid: info.cid, name: info.name, kind: info.kind };
  if (info.contextLength !== undefined) served.contextLength = info.contextLength;
  if (info.executionProvider !== undefined) served.executionProvider = info.executionProvider;
  if (info.executionProviderFallback !== undefined) {
    served.executionProviderFallback = info.executionProviderFallback;
  }
  return served;
}
