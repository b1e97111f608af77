/**
 * The node's models, known by their id (`model_identity.ts`: a text model's names its
 * `model.onnx`, `config.json` and tokenizer files, a tensor model's is the CID of `model.onnx`).
 * Registering a model reads only its metadata and hashes its files; the onnxruntime session is
 * created on first use and shared by every later user (concurrent first uses share one load). A
 * model any of whose files changed since registration refuses to load, because its id would no
 * longer name it.
 *
 * @module
 */
import { join } from "node:path";
import type { SessionOptions } from "./_session.ts";
import {
  asModelLoadError,
  ModelLoadError,
  UnknownModelError,
  WrongModelKindError,
} from "./errors.ts";
import { TensorModel } from "./tensor_model.ts";
import { type ExecutionProvider, type ModelWorkerOptions, TextModel } from "./text_model.ts";
import type { ModelHealth, ModelWorkerEvent } from "./model_health.ts";
import { readIfPresent, tensorModelId, textModelId } from "./model_identity.ts";
import { readWholeFile } from "../storage/read_whole_file.ts";

/** Metadata of a registered model. */
export interface RegisteredModel {
  /** The model's id (`model_identity.ts`). */
  cid: string;
  /** Human-readable name. */
  name: string;
  /** Text (decoder with tokenizer) or tensor (one-shot). */
  kind: "text" | "tensor";
  /** Model directory (text) or `.onnx` file / directory (tensor). */
  path: string;
  /** Size of `model.onnx` in bytes. */
  sizeBytes: number;
  /** Vocabulary size (text models). */
  vocabSize?: number;
  /** Context window (text models). */
  contextLength?: number;
  /** Execution provider in use; set once the model is loaded. */
  executionProvider?: ExecutionProvider;
  /** Why the provider asked for is not in use (it then runs on CPU); set once loaded. */
  executionProviderFallback?: string;
  /** Whether a session has been created. */
  loaded: boolean;
}

/**
 * Options of {@link ModelRegistry}: the session options every model is loaded with, and
 * whether models run in workers (`worker: true`) or on the calling thread (the default).
 */
export interface ModelRegistryOptions extends SessionOptions, ModelWorkerOptions {
  /**
   * How long a failed load answers every `get` with its error before the next `get` tries again
   * (default {@link FAILED_LOAD_RETRY_MS}).
   */
  failedLoadRetryMs?: number;
  /** Clock for that, in ms (default `performance.now`). */
  now?: () => number;
}

/**
 * Default {@link ModelRegistryOptions.failedLoadRetryMs}. A load builds a whole onnxruntime
 * session (in every model worker) before the checks that can refuse it, and a peer may name a
 * model in every job it sends: without a pause, each job naming a broken model built one. Ten
 * seconds is soon enough for an operator fixing the files not to wait.
 */
export const FAILED_LOAD_RETRY_MS = 10_000;

/** Either kind of loaded model. */
export type LoadedModel = TextModel | TensorModel;

interface Entry {
  meta: RegisteredModel;
  loading?: Promise<LoadedModel>;
  /** When `loading` failed: from then on a `get` tries again (see `failedLoadRetryMs`). */
  retryAt?: number;
  /** Set once loaded: whose health {@link ModelRegistry.health} reports. */
  loaded?: LoadedModel;
  /**
   * Bumped by {@link ModelRegistry.unload}: a load begun before it finds it changed and leaves
   * the entry unloaded, so an unload during a load is not undone when the load ends.
   */
  epoch: number;
}

/** A loaded model's runtime health, from {@link ModelRegistry.health}. */
export interface RegisteredModelHealth extends ModelHealth {
  /** The model's id. */
  cid: string;
  /** Its name. */
  name: string;
}

/**
 * Registry of models by CID with lazily created, shared sessions. `await using` closes it at
 * the end of the block.
 *
 * @example
 * ```ts ignore
 * await using registry = new ModelRegistry({ executionProvider: "cuda" });
 * const { cid } = await registry.register(await ensureBuiltinModel("./.veriflow/models"));
 * const model = await registry.getText(cid); // session created here, once
 * ```
 */
export class ModelRegistry implements AsyncDisposable {
  #options: ModelRegistryOptions;
  #entries = new Map<string, Entry>();

  /**
   * An empty registry.
   *
   * @param options Session options for every model (execution provider, threads).
   */
  constructor(options: ModelRegistryOptions = {}) {
    this.#options = options;
  }

  /**
   * Register a model directory (`model.onnx` + `config.json`, plus `tokenizer.json` and an
   * optional `tokenizer_config.json` for a text model) or a bare `.onnx` file (a tensor model),
   * under its id (`model_identity.ts`). Idempotent: registering the same files again returns
   * the existing entry.
   */
  async register(path: string): Promise<RegisteredModel> {
    let stat: Deno.FileInfo;
    try {
      stat = await Deno.stat(path);
    } catch (cause) {
      // The start command prints this message alone (not its cause): it must carry the why.
      throw new ModelLoadError(
        `no model at ${path} (${reasonOf(cause)}): give a directory with model.onnx, ` +
          "config.json and tokenizer.json, or a .onnx file",
        { cause },
      );
    }
    const dir = stat.isDirectory ? path : null;
    const file = dir ? join(dir, "model.onnx") : path;
    let bytes: Uint8Array;
    try {
      bytes = await readWholeFile(file);
    } catch (cause) {
      throw new ModelLoadError(`cannot read ${file} (${reasonOf(cause)})`, { cause });
    }
    const configBytes = dir ? await readIfPresent(join(dir, "config.json")) : undefined;
    const config = configBytes === undefined
      ? null
      : parseJson(configBytes, join(dir!, "config.json"));
    // Unreadable is not absent: a text model must not be registered as a tensor model.
    const tokenizer = dir ? await readIfPresent(join(dir, "tokenizer.json")) : undefined;
    const veriflow = config?.veriflow as { name?: unknown; kind?: unknown } | null | undefined;
    const kind = tokenizer !== undefined && veriflow?.kind !== "tensor" ? "text" : "tensor";
    let cid: string;
    if (kind === "text") {
      if (configBytes === undefined) {
        throw new ModelLoadError(`no config.json in ${dir}: a text model needs one`);
      }
      const tokenizerConfig = await readIfPresent(join(dir!, "tokenizer_config.json"));
      cid = textModelId({
        "model.onnx": bytes,
        "config.json": configBytes,
        "tokenizer.json": tokenizer!,
        ...(tokenizerConfig === undefined ? {} : { "tokenizer_config.json": tokenizerConfig }),
      });
    } else {
      cid = tensorModelId(bytes);
    }
    const existing = this.#entries.get(cid);
    if (existing) return { ...existing.meta };

    const number = (...keys: string[]) => {
      for (const k of keys) if (typeof config?.[k] === "number") return config[k] as number;
      return undefined;
    };
    const meta: RegisteredModel = {
      cid,
      name: nameIn(veriflow?.name, config?._name_or_path) ??
        path.split(/[\\/]/).filter(Boolean).pop() ?? path,
      kind,
      path,
      sizeBytes: bytes.byteLength,
      loaded: false,
    };
    if (kind === "text") {
      meta.vocabSize = number("vocab_size");
      meta.contextLength = number("n_positions", "max_position_embeddings", "n_ctx");
    }
    this.#entries.set(cid, { meta, epoch: 0 });
    return { ...meta };
  }

  /** Whether `cid` is registered. */
  has(cid: string): boolean {
    return this.#entries.has(cid);
  }

  /** Metadata of `cid`, or `undefined`. */
  info(cid: string): RegisteredModel | undefined {
    const entry = this.#entries.get(cid);
    return entry ? { ...entry.meta } : undefined;
  }

  /** Metadata of every registered model, in registration order. */
  list(): RegisteredModel[] {
    return [...this.#entries.values()].map((e) => ({ ...e.meta }));
  }

  /**
   * The runtime health of every loaded model (see {@link ModelHealth}): what `/healthz`
   * reports. Synchronous and cheap: read from the supervisors' state, never from the workers.
   */
  health(): RegisteredModelHealth[] {
    return [...this.#entries.values()].flatMap(({ meta, loaded }) =>
      loaded ? [{ cid: meta.cid, name: meta.name, ...loaded.health() }] : []
    );
  }

  /**
   * The loaded model `cid` (creating its session on first use). A failed load answers with its
   * error for `failedLoadRetryMs`; the first `get` after that tries again.
   *
   * @param cid The model.
   * @param options `signal`: aborting it gives up the load this call starts (as `loadSignal`
   *   does; a call that finds the load already going waits for it, uncancelled), which rejects
   *   with the signal's reason.
   */
  get(cid: string, options?: { signal?: AbortSignal }): Promise<LoadedModel> {
    const entry = this.#entries.get(cid);
    if (!entry) return Promise.reject(new UnknownModelError(cid));
    const now = this.#options.now ?? (() => performance.now());
    if (entry.retryAt !== undefined && now() >= entry.retryAt) {
      entry.loading = undefined;
      entry.retryAt = undefined;
    }
    if (!entry.loading) {
      const loading = this.#load(entry, options?.signal);
      entry.loading = loading;
      loading.catch(() => {
        if (entry.loading !== loading) return;
        entry.retryAt = now() + (this.#options.failedLoadRetryMs ?? FAILED_LOAD_RETRY_MS);
      });
    }
    return entry.loading;
  }

  /** The text model `cid`; {@link WrongModelKindError} if it is a tensor model. */
  async getText(cid: string): Promise<TextModel> {
    const model = await this.get(cid);
    if (!(model instanceof TextModel)) throw new WrongModelKindError(cid, "text", "tensor");
    return model;
  }

  /** The tensor model `cid`; {@link WrongModelKindError} if it is a text model. */
  async getTensor(cid: string): Promise<TensorModel> {
    const model = await this.get(cid);
    if (!(model instanceof TensorModel)) throw new WrongModelKindError(cid, "tensor", "text");
    return model;
  }

  /**
   * Release `cid`'s sessions and workers (its health and metric series go with them) but keep it
   * registered: the next `get` loads it again. A job running on it then fails with
   * `ModelDisposedError`. Resolves to whether it was loaded (or loading).
   */
  async unload(cid: string): Promise<boolean> {
    const entry = this.#entries.get(cid);
    if (entry?.loading === undefined) return false;
    const loading = entry.loading;
    entry.epoch++;
    entry.loading = undefined;
    entry.retryAt = undefined;
    entry.loaded = undefined;
    entry.meta.loaded = false;
    await disposeLoad(loading);
    return true;
  }

  /**
   * Forget `cid` ({@link unload}, then drop it from {@link list}, `/v1/models` and `get`, which
   * answers `UnknownModelError` from then on). Resolves to whether it was registered.
   */
  async unregister(cid: string): Promise<boolean> {
    if (!this.#entries.has(cid)) return false;
    await this.unload(cid);
    // A `get` while the unload awaited may have started a new load: released here too.
    const entry = this.#entries.get(cid);
    this.#entries.delete(cid);
    if (entry?.loading !== undefined) await disposeLoad(entry.loading);
    return true;
  }

  /** Release every loaded session and forget all models. */
  async close(): Promise<void> {
    const loads = [...this.#entries.values()].flatMap((e) => (e.loading ? [e.loading] : []));
    this.#entries.clear();
    for (const settled of await Promise.allSettled(loads)) {
      if (settled.status === "fulfilled") await settled.value.dispose();
    }
  }

  /** {@link close}, so that `await using registry = new ModelRegistry()` releases it. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #load(entry: Entry, signal?: AbortSignal): Promise<LoadedModel> {
    const { meta } = entry;
    const epoch = entry.epoch;
    const onWorkerEvent = this.#options.onWorkerEvent;
    const options = {
      ...this.#options,
      ...(signal ? { loadSignal: signal } : {}),
      name: meta.name,
      onWorkerEvent: onWorkerEvent &&
        ((event: ModelWorkerEvent) =>
          onWorkerEvent({ ...event, message: `model ${meta.name}: ${event.message}` })),
    };
    let model: LoadedModel;
    try {
      model = meta.kind === "text"
        ? await TextModel.load(meta.path, options)
        : await TensorModel.load(meta.path, options);
    } catch (error) {
      // Stopped (the signal aborted): the caller hears its own reason, not a load failure.
      if (signal?.aborted && error === signal.reason) throw error;
      // The files are the operator's: whatever they make fail is this model's load failure,
      // typed, so the caller refuses what needed the model rather than crashing on it.
      throw asModelLoadError(`cannot load the model at ${meta.path}`, error);
    }
    if (model.info.cid !== meta.cid) {
      await model.dispose();
      throw new ModelLoadError(
        `model files at ${meta.path} changed since registration (now ${model.info.cid})`,
      );
    }
    // Unloaded (or unregistered) while it loaded: the caller gets a model that the unload
    // disposes, and the entry stays unloaded.
    if (entry.epoch !== epoch) return model;
    meta.loaded = true;
    meta.executionProvider = model.info.executionProvider;
    if (model.info.executionProviderFallback !== undefined) {
      meta.executionProviderFallback = model.info.executionProviderFallback;
    }
    entry.loaded = model;
    return model;
  }
}

/** Dispose what `loading` loaded; a failed load left nothing to release. */
async function disposeLoad(loading: Promise<LoadedModel>): Promise<void> {
  const [settled] = await Promise.allSettled([loading]);
  if (settled.status === "fulfilled") await settled.value.dispose();
}

/** The first of `candidates` that is a string: a config may hold anything under its name keys. */
function nameIn(...candidates: unknown[]): string | undefined {
  return candidates.find((n): n is string => typeof n === "string");
}

/** A parsed JSON object (or whatever JSON `bytes` hold); {@link ModelLoadError} if not JSON. */
function parseJson(bytes: Uint8Array, path: string): Record<string, unknown> | null {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new ModelLoadError(`bad JSON in ${path}`, { cause: error });
  }
}

/** What the OS (or whatever threw) said about a path: the "why" of a load failure. */
function reasonOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause);
}
