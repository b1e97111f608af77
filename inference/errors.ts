/**
 * Typed errors of the inference engine. Each carries a stable `code` (see
 * `protocols/errors.ts`) so the server can map them to wire errors and HTTP statuses.
 *
 * @module
 */
import { VeriflowError } from "../protocols/errors.ts";

/** Base class of inference errors. */
export class InferenceError extends VeriflowError {}

/**
 * What {@link ContextLengthError} counts: a prompt to generate after, which needs one position
 * of the window left for output, or a whole sequence run as it is (a teacher-forced pass).
 */
export type ContextUse = "prompt" | "sequence";

/**
 * The tokens do not fit the model's context window. For a prompt, one convention everywhere
 * (the InferenceActor and `TextModel.generate`): `tokens` is the prompt's count, and a prompt of
 * the whole window does not fit, since generation needs a position for its first output token.
 */
export class ContextLengthError extends InferenceError {
  /** The prompt's tokens (or the sequence's, for a teacher-forced pass). */
  readonly tokens: number;
  /** The model's context length. */
  readonly contextLength: number;
  /**
   * Describe the overflow.
   *
   * @param tokens The prompt's tokens (the sequence's, for `use` "sequence").
   * @param contextLength The model's context window.
   * @param use What the tokens are for; default "prompt".
   */
  constructor(tokens: number, contextLength: number, use: ContextUse = "prompt") {
    super(
      "context_length_exceeded",
      use === "prompt"
        ? `the prompt is ${tokens} tokens; the model's context window of ${contextLength} ` +
          `leaves no room for output (at most ${contextLength - 1} prompt tokens)`
        : `${tokens} tokens do not fit the model's context window of ${contextLength}`,
    );
    this.tokens = tokens;
    this.contextLength = contextLength;
  }
}

/**
 * Refuse a prompt that leaves no position of the context window for output: the one check the
 * InferenceActor (before a job takes a queue slot) and `TextModel.generate` both make.
 *
 * @param promptTokens The prompt's tokens.
 * @param contextLength The model's context window.
 * @throws {ContextLengthError} `promptTokens` ≥ `contextLength`.
 */
export function checkPromptFits(promptTokens: number, contextLength: number): void {
  if (promptTokens >= contextLength) throw new ContextLengthError(promptTokens, contextLength);
}

/** Generation was asked for with an empty prompt (there is nothing to condition on). */
export class EmptyPromptError extends InferenceError {
  constructor() {
    super("empty_prompt", "the prompt has no tokens");
  }
}

/** Sampling parameters out of range (negative temperature, topP outside (0, 1], ...). */
export class InvalidGenerationParamsError extends InferenceError {
  /**
   * Describe the bad parameter.
   *
   * @param reason What is wrong.
   */
  constructor(reason: string) {
    super("invalid_generation_params", reason);
  }
}

/**
 * A worker refused a job for a field of it that the worker's version does not know (a newer
 * requester's parameter): the worker cannot run exactly that job, and would run another if it
 * dropped the field. Not the job's fault nor the worker's: another worker, of a version that
 * reads the field, may run it, and this one spent nothing on it.
 */
export class JobVersionMismatchError extends InferenceError {
  /** The field the worker named, as a dotted path (`job.params.minP`). */
  readonly field: string;

  /**
   * Name the field.
   *
   * @param field The field the worker named.
   * @param detail The worker's words.
   */
  constructor(field: string, detail: string) {
    super(
      "job_version_mismatch",
      `the worker cannot read the job's field ${field} (an older version?): ${detail}`,
    );
    this.field = field;
  }
}

/** A token id outside the model's vocabulary. */
export class InvalidTokenError extends InferenceError {
  /**
   * Name the bad id.
   *
   * @param token The offending id.
   * @param vocabSize The vocabulary size.
   */
  constructor(token: number, vocabSize: number) {
    super("invalid_token", `token id ${token} is outside the vocabulary [0, ${vocabSize})`);
  }
}

/** A model directory or file that cannot be loaded (missing file, unsupported layout). */
export class ModelLoadError extends InferenceError {
  /**
   * Describe the load failure.
   *
   * @param message What is wrong.
   * @param options `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super("model_load_failed", message, options);
  }
}

/**
 * A model whose session did not load within its time (`loadTimeoutMs`; the node's
 * `model.loadTimeoutMs`): its model workers still loading were terminated. The same code as any
 * other {@link ModelLoadError}, since a caller refuses the model either way; the message names
 * the model, the limit and the setting.
 */
export class ModelLoadTimeoutError extends ModelLoadError {
  /** The limit it ran past, in ms. */
  readonly timeoutMs: number;

  /**
   * Describe the timeout.
   *
   * @param model What the model is called (its directory, its name).
   * @param timeoutMs The limit, in ms.
   * @param detail What was given up on (which workers, what became of them).
   */
  constructor(model: string, timeoutMs: number, detail: string) {
    super(
      `${model} did not load within ${
        timeoutMs < 1_000 ? `${timeoutMs} ms` : `${Math.round(timeoutMs / 1000)} s`
      } ` +
        `(model.loadTimeoutMs ${timeoutMs}): ${detail}; if the model is that slow to load here, ` +
        `raise model.loadTimeoutMs (--model-load-timeout MS; 0: never give up)`,
    );
    this.timeoutMs = timeoutMs;
  }
}

/**
 * `error` as a load failure of the model `what` names: a typed error (`VeriflowError`) as it is,
 * anything else as a {@link ModelLoadError} `"<what>: <its message>"` whose `cause` it is. A
 * model's files are the operator's input, so whatever they make fail is a refusal of that model,
 * never a crash of the code that loads it.
 */
export function asModelLoadError(what: string, error: unknown): VeriflowError {
  if (error instanceof VeriflowError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new ModelLoadError(`${what}: ${message}`, { cause: error });
}

/**
 * A model CID (or, at the edge, a name) the node does not serve. The message says where the
 * node's list is, since over HTTP and the WebSocket it is all the client sees.
 */
export class UnknownModelError extends InferenceError {
  /**
   * Name the unknown model.
   *
   * @param cid The unknown CID or name.
   */
  constructor(cid: string) {
    super("unknown_model", `no model named ${cid} on this node (GET /v1/models lists its models)`);
  }
}

/** A tensor job whose inputs do not match the model (missing name, bad type or size). */
export class InvalidTensorInputError extends InferenceError {
  /**
   * Describe the bad input.
   *
   * @param reason What is wrong.
   */
  constructor(reason: string) {
    super("invalid_tensor_input", reason);
  }
}

/** A model used as the wrong kind (a tensor model asked to generate text, or vice versa). */
export class WrongModelKindError extends InferenceError {
  /**
   * Name the mismatch.
   *
   * @param cid The model.
   * @param expected The kind asked for.
   * @param actual The model's kind.
   */
  constructor(cid: string, expected: string, actual: string) {
    super("wrong_model_kind", `model ${cid} is a ${actual} model, not a ${expected} model`);
  }
}

/**
 * A model worker (worker execution mode) died or could not be started, so the request it was
 * serving cannot complete.
 */
export class ModelWorkerError extends InferenceError {
  /**
   * Describe the failure.
   *
   * @param message What happened.
   * @param options `cause`.
   */
  constructor(message: string, options?: ErrorOptions) {
    super("model_worker_failed", message, options);
  }
}

/** A model used after `dispose()`. */
export class ModelDisposedError extends InferenceError {
  constructor() {
    super("model_disposed", "the model has been disposed");
  }
}
