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
import {
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type ModelCatalog,
  type ServedModelInfo,
  THIS_MACHINE_CLIENT,
} from "../inference/inference_port.ts";
import { VeriflowError } from "../protocols/errors.ts";
import type { GenerationParams, TextJob } from "../protocols/job.ts";
import type { ClientIdentity } from "./client_identity.ts";
import { EDGE_DEFAULTS } from "./edge_config.ts";
import { EdgeError } from "./http_errors.ts";
import type { KeyLimits } from "./key_limits.ts";

/** A text generation request, after edge validation. */
export interface TextRequest {
  /** Model CID or name; the default model when absent or `"default"`. */
  model?: string;
  /** Prompt text. */
  prompt: string;
  /**
   * CID of a stored public file of one chunk whose text the model reads before the prompt (the
   * job's `input`, `protocols/job_input.ts`); the worker reads it from storage.
   */
  input?: string;
  /** Decoding parameters. */
  params: GenerationParams;
  /** Job nonce; random when absent, so identical requests are distinct jobs. */
  nonce?: string;
  /** The request field the prompt came from, named in a refusal; default `prompt`. */
  promptParam?: string;
  /**
   * Most likely tokens to list with each token (`SubmitOptions.topLogprobs`); default 0. How
   * the output is delivered, not part of the job.
   */
  topLogprobs?: number;
}

/**
 * A model name that more than one listed model claims (400): on a router the names are what
 * connected workers list, and a name names nothing (a CID names content), so a stranger listing
 * its own model under a popular name took the requests by that name. Ask by CID.
 */
export class AmbiguousModelError extends EdgeError {
  /**
   * Create it.
   *
   * @param name The name asked for.
   * @param cids The CIDs of the models listed under it.
   */
  constructor(name: string, cids: readonly string[]) {
    super(
      "ambiguous_model",
      `the model name ${JSON.stringify(name)} is claimed by ${cids.length} models ` +
        `(${cids.join(", ")}): a name is only what a model's lister chose, so ask by the CID of ` +
        `the one you want`,
      { param: "model" },
    );
  }
}

/** A prompt over `http.maxPromptChars`, refused before it is tokenised (400). */
export class PromptTooLongError extends EdgeError {
  /**
   * Create it.
   *
   * @param chars The prompt's length in characters.
   * @param limit The limit.
   * @param param The request field it came from.
   */
  constructor(chars: number, limit: number, param: string) {
    super(
      "prompt_too_long",
      `the prompt${param === "messages" ? " rendered from the messages" : ""} is ${chars} ` +
        `characters, over this node's limit of ${limit} (http.maxPromptChars); shorten it, or ` +
        `ask the operator to raise the limit`,
      { param },
    );
  }
}

/** The port's refusals that are about the prompt itself. */
const PROMPT_REFUSALS: ReadonlySet<string> = new Set([
  "context_length_exceeded", // no room left in the context
  "empty_prompt", // no tokens
  "prompt_too_long", // too big to forward to another node
]);

/**
 * The port's refusals for want of room on the node, or of a worker that starts the job, before
 * the job started: the node's, not the client's, so they do not cost the client's key a start
 * ({@link KeyLimits.admit}).
 */
const NODE_REFUSALS: ReadonlySet<string> = new Set([
  "too_many_jobs", // the model's slots and queue are full
  "no_worker", // no peer to forward the job to
  "insufficient_stake", // no worker's free stake backs the job's receipt now
  "shutting_down", // the node is draining
  // Its InferenceActor restarting or overloaded: refused before the job started (a timed-out
  // submission is cancelled behind it: `submitJob`). A job that started and then failed ends
  // through its handle's `done`, which never refunds.
  "actor_stopped",
  "ask_timeout",
  "mailbox_full",
  // No worker started it: the last one asked went silent (`StartTimeoutError`) or was lost.
  "request_timeout",
  "connection_closed",
  "peer_timeout",
  // Its connection cut off for the frames it sent that the router refused: the worker's doing.
  "too_many_refusals",
]);

/**
 * The port's refusal of the prompt ({@link PROMPT_REFUSALS}), naming the request field the
 * prompt came from, as OpenAI does (`prompt`, `messages`): the port knows tokens, not request
 * fields. Any other error is returned as it is.
 */
function namingPromptParam(error: unknown, param: string): unknown {
  if (!(error instanceof VeriflowError) || !PROMPT_REFUSALS.has(error.code)) return error;
  if (error instanceof EdgeError && error.param !== null) return error;
  return new EdgeError(error.code, error.message, { param, cause: error });
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
  /**
   * Longest prompt in characters, checked before the port tokenises it; default
   * `EDGE_DEFAULTS.maxPromptChars`.
   */
  maxPromptChars?: number;
  /** Per-API-key limits; none when absent. */
  keyLimits?: KeyLimits;
  /**
   * The same limits for clients elsewhere without a key, per client address
   * (`ClientIdentity.address`); none when absent. Clients on this machine are the operator's
   * own and are not limited.
   */
  addressLimits?: KeyLimits;
  /** Where a line per job start, end and cancel goes; nowhere when absent. */
  log?: (line: string) => void;
}

/** Options of {@link InferenceGateway.startText}. */
export interface StartTextOptions {
  /** Who asks: a client with an API key is held to its key's limits. */
  client?: ClientIdentity;
  /** Which API the request came through, for the log (`ws`, `completions`, `chat`). */
  via?: string;
  /** Aborting it cancels the job. */
  signal?: AbortSignal;
  /** The job's place in the queue while it waits for a slot (`SubmitOptions.onQueued`). */
  onQueued?: (position: number) => void;
}

/** Hex characters of a job id in log lines: enough to find it, short enough to read. */
const JOB_LOG_CHARS = 12;

/** The name clients may use for "whichever model the node serves by default". */
export const DEFAULT_MODEL_ALIAS = "default";

/**
 * Who a job is queued for (`SubmitOptions.client`): waiting clients are served in turn, each remote
 * one capped to a share of the queue. The key's id for a client with an API key, the address for
 * one elsewhere without a key (every user behind one reverse proxy is its address: one client),
 * else {@link THIS_MACHINE_CLIENT}, the operator's, which no share caps.
 */
export function queueClient(client: ClientIdentity | undefined): string {
  return client?.keyId ?? client?.address ?? THIS_MACHINE_CLIENT;
}

// Defined with the port, which the queue reads it from too; still exported where the edge named it.
export { THIS_MACHINE_CLIENT };

/** `1 token`, `3 tokens`: a count in the operator's job lines. */
function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

/** Resolves models and submits text jobs on behalf of the client APIs. */
export class InferenceGateway {
  #inference: InferencePort;
  #models?: ModelCatalog;
  #defaultModel?: string;
  #maxPromptChars: number;
  #keyLimits?: KeyLimits;
  #addressLimits?: KeyLimits;
  #log?: (line: string) => void;

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
    this.#maxPromptChars = options.maxPromptChars ?? EDGE_DEFAULTS.maxPromptChars;
    this.#keyLimits = options.keyLimits;
    this.#addressLimits = options.addressLimits;
    this.#log = options.log;
  }

  /** See {@link InferenceGatewayOptions.computesOnEventLoop}. */
  readonly computesOnEventLoop: boolean;

  /** Every served model. */
  async listModels(): Promise<readonly ServedModelInfo[]> {
    return await (this.#models?.list() ?? this.#inference.models());
  }

  /**
   * The model a request names: by CID or by name; the default model for `undefined` or
   * `"default"`. A CID is matched before any name: it names its content, where a name is
   * whatever a model's lister (another node's worker, on a router) chose, another model's CID
   * included. Throws `UnknownModelError` (404 at the edge), or {@link AmbiguousModelError} (400)
   * for a name more than one model is listed under.
   */
  async resolveModel(name?: string): Promise<ServedModelInfo> {
    const models = await this.listModels();
    const wanted = name === undefined || name === DEFAULT_MODEL_ALIAS ? this.#defaultModel : name;
    if (wanted === undefined) {
      const found = models.find((model) => model.kind === "text");
      if (!found) throw new UnknownModelError(name ?? DEFAULT_MODEL_ALIAS);
      return found;
    }
    const byCid = models.find((model) => model.cid === wanted);
    if (byCid) return byCid;
    // Each model a name is listed under: one, it is that one; more, whichever was listed first
    // would have it, a stranger's as well as any (review s52).
    const named = models.filter((model) => model.name === wanted);
    const cids = [...new Set(named.map((model) => model.cid))];
    if (cids.length > 1) throw new AmbiguousModelError(wanted, cids);
    if (named.length === 0) throw new UnknownModelError(wanted);
    return named[0];
  }

  /** Admit a job of `client` within its key's (or its address's) limits; see the options. */
  #admit(client: ClientIdentity | undefined): ((refund?: boolean) => void) | undefined {
    if (client?.keyId !== undefined) return this.#keyLimits?.admit(client.keyId);
    if (client?.address !== undefined) return this.#addressLimits?.admit(client.address);
    return undefined;
  }

  /** The job a request describes (exported for clients that want to predict the job id). */
  async jobFor(request: TextRequest): Promise<TextJob> {
    // Tokenising runs synchronously wherever the model is: an unbounded prompt would hold the
    // event loop for as long as it takes. Refused here, before any port sees it.
    if (request.prompt.length > this.#maxPromptChars) {
      throw new PromptTooLongError(
        request.prompt.length,
        this.#maxPromptChars,
        request.promptParam ?? "prompt",
      );
    }
    const model = await this.resolveModel(request.model);
    return {
      kind: "text",
      model: model.cid,
      prompt: request.prompt,
      ...(request.input === undefined ? {} : { input: request.input }),
      params: request.params,
      nonce: request.nonce ?? crypto.randomUUID(),
    };
  }

  /**
   * Submit a text job. Rejects with the edge's refusal (`prompt_too_long`, a key's limits) or
   * the port's (`too_many_jobs`, `context_length_exceeded`, ...). Aborting `options.signal`
   * cancels the job. Each job's start, end or cancel is one line of the log.
   */
  async startText(request: TextRequest, options: StartTextOptions = {}): Promise<InferenceHandle> {
    const job = await this.jobFor(request);
    const release = this.#admit(options.client);
    let handle: InferenceHandle;
    try {
      handle = await this.#inference.submit(job, {
        signal: options.signal,
        topLogprobs: request.topLogprobs,
        onQueued: options.onQueued,
        client: queueClient(options.client),
      });
    } catch (error) {
      release?.(error instanceof VeriflowError && NODE_REFUSALS.has(error.code));
      throw namingPromptParam(error, request.promptParam ?? "prompt");
    }
    const who = [options.via, options.client?.label].filter((part) => part !== undefined);
    const tag = `job ${handle.jobId.slice(0, JOB_LOG_CHARS)}`;
    const log = this.#log;
    log?.(`${tag} started (${[...who, count(handle.promptTokens, "prompt token")].join(", ")})`);
    handle.done.then((summary) => {
      release?.();
      if (log === undefined) return;
      // A job a router forwarded names the peer that ran it: else the line reads like one run here.
      const on = summary.worker === undefined ? "" : ` on worker ${summary.worker.slice(0, 16)}`;
      const tokens = `${count(summary.usage.completionTokens, "token")} in ${
        Math.round(summary.timings.totalMs)
      } ms${on}`;
      if (summary.finishReason === "cancelled") log(`${tag} cancelled after ${tokens}`);
      else if (summary.finishReason === "error") {
        // The one record of why: a client is not told an internal failure's text (its message
        // may name files, internals or peers; `openai_answers.ts`), so the operator is, here.
        const error = summary.error;
        const cause = error === undefined ? "internal_error" : `${error.code}: ${error.message}`;
        log(`${tag} failed after ${tokens}: ${cause}`);
      } else {
        // A finished job without its receipt says so, by its code. Its text only for an untyped
        // failure (a prover's bug), which no other line records and its client is not told
        // (`receiptErrorForClient`); a proof store's fault is the prover's one line, not one per job.
        const error = summary.receipt === undefined ? summary.error : undefined;
        const why = error === undefined
          ? ""
          : `, without a receipt: ${error.code}${
            error.code === "internal_error" ? `: ${error.message}` : ""
          }`;
        log(`${tag} ended (${summary.finishReason}) after ${tokens}${why}`);
      }
    });
    return handle;
  }

  /** The port's counters and gauges. */
  async stats(): Promise<InferenceStats> {
    return await this.#inference.stats();
  }
}
