/**
 * A router's own count of a job's prompt tokens (`_prompt_token_claim.ts`), and a validator's
 * tokenizer for its re-count at intake (`promptCounting`), for the models this node holds: each model's tokenizer is read once per model id, from the files its registry
 * registered, and never its onnxruntime session (a router that holds a model need not run it).
 * The count is asked synchronously while a receipt is checked, so a tokenizer still loading
 * answers only the model's window: generation refuses a prompt that fills it, so no honest
 * count reaches `contextLength` (review s78 vprompt F1). A job that names an input is bounded
 * the same way: its bytes are the worker's to fetch, not the router's.
 *
 * A read that fails (a transient EMFILE or EIO) is tried again on a later ask, after a back-off
 * that doubles from {@link TOKENIZER_RETRY_MIN_MS} to {@link TOKENIZER_RETRY_MAX_MS}: cached for
 * good, one failure turned the validator's intake re-count off for that model until restart
 * (review s78 vfinal F2). At most one read per model is in flight; later asks share it.
 *
 * @module
 */
import type { TextJob } from "../protocols/job.ts";
import type { RegisteredModel } from "../inference/model_registry.ts";
import { loadTokenizer, type TextTokenizer } from "../inference/text_tokenizer.ts";
import type { PromptTokenCount } from "./_prompt_token_claim.ts";
import type { PromptCountingModel } from "../proof/prompt_token_check.ts";

/**
 * First wait before a failed tokenizer read is tried again: long enough that a burst of receipts
 * meeting a failing disk costs one read a second, not one per receipt.
 */
export const TOKENIZER_RETRY_MIN_MS = 1_000;
/**
 * Longest wait between reads of a tokenizer that keeps failing: a file put right is counted with
 * again within a minute, and a file that stays broken costs one read a minute.
 */
export const TOKENIZER_RETRY_MAX_MS = 60_000;

/** Options of {@link HeldModelPromptCounter}. */
export interface HeldModelPromptCounterOptions {
  /** The clock the back-off after a failed read is timed by (default `Date.now`). */
  now?: () => number;
}

/** A tokenizer read that failed: when it may be tried again, and the wait after the next failure. */
interface FailedRead {
  readonly retryAt: number;
  readonly nextWaitMs: number;
}

/** What the counter reads of the node's models: `ModelRegistry` has it. */
export interface HeldModels {
  /** The registered model `cid`, or undefined when this node holds none by that id. */
  info(cid: string): RegisteredModel | undefined;
  /** Every registered model. */
  list(): RegisteredModel[];
}

/** How a model directory's tokenizer is read (default: `loadTokenizer`). */
export type TokenizerLoader = (dir: string) => Promise<TextTokenizer>;

/** Counts prompt tokens with the tokenizers of the models a node holds (see the module doc). */
export class HeldModelPromptCounter {
  readonly #models: HeldModels;
  readonly #load: TokenizerLoader;
  readonly #now: () => number;
  /** Per model id: its tokenizer, its failed read, or a promise while it loads. */
  readonly #tokenizers = new Map<string, TextTokenizer | FailedRead | Promise<void>>();

  /**
   * @param models The node's models.
   * @param load How a tokenizer is read (tests give their own).
   * @param options The back-off's clock.
   */
  constructor(
    models: HeldModels,
    load: TokenizerLoader = loadTokenizer,
    options?: HeldModelPromptCounterOptions,
  ) {
    this.#models = models;
    this.#load = load;
    this.#now = options?.now ?? Date.now;
  }

  /**
   * Read the tokenizer of every text model held now, so the first jobs are counted exactly.
   * A tokenizer that fails to load leaves that model bounded by its window.
   */
  async prepare(): Promise<void> {
    await Promise.all(
      this.#models.list().filter((m) => m.kind === "text").map((m) => this.#loaded(m)),
    );
  }

  /**
   * This node's count of `job`'s prompt tokens: exact where it holds the model's tokenizer and
   * the whole prompt, the model's window otherwise; undefined where it holds no such text model.
   */
  readonly count = (job: TextJob): PromptTokenCount | undefined => {
    const model = this.#models.info(job.model);
    if (model?.kind !== "text" || model.contextLength === undefined) return undefined;
    void this.#loaded(model);
    const tokenizer = this.#held(model.cid);
    if (tokenizer !== undefined && job.input === undefined) {
      return tokenizer.encode(job.prompt).length;
    }
    return { atMost: model.contextLength - 1 };
  };

  /**
   * Model `cid`'s tokenizer and window, read once, loading no session: what a validator's intake
   * re-counts a receipt's prompt tokens with (`ValidatorModelSource.promptCounting`). Undefined
   * where this node holds no such text model, or its tokenizer cannot be read now (read again
   * once its back-off has passed).
   */
  async promptCounting(cid: string): Promise<PromptCountingModel | undefined> {
    const model = this.#models.info(cid);
    if (model?.kind !== "text" || model.contextLength === undefined) return undefined;
    await this.#loaded(model);
    const tokenizer = this.#held(cid);
    return tokenizer === undefined
      ? undefined
      : { info: { contextLength: model.contextLength }, tokenizer };
  }

  /** Model `cid`'s tokenizer when read (undefined while it loads, failed, or was never asked). */
  #held(cid: string): TextTokenizer | undefined {
    const known = this.#tokenizers.get(cid);
    return known === undefined || known instanceof Promise || isFailedRead(known)
      ? undefined
      : known;
  }

  /**
   * `model`'s tokenizer read once it reads (a read in flight is shared); a failed read is tried
   * again once its back-off has passed.
   */
  #loaded(model: RegisteredModel): Promise<void> {
    const known = this.#tokenizers.get(model.cid);
    if (known instanceof Promise) return known;
    if (known !== undefined && !isFailedRead(known)) return Promise.resolve();
    if (known !== undefined && this.#now() < known.retryAt) return Promise.resolve();
    const waitMs = known?.nextWaitMs ?? TOKENIZER_RETRY_MIN_MS;
    const loading = this.#load(model.path).then(
      (tokenizer) => void this.#tokenizers.set(model.cid, tokenizer),
      // A tokenizer this node cannot read is its own gap: meanwhile the model stays bounded by its
      // window, and the intake challenges what it cannot count (`_receipt_intake.ts`).
      () =>
        void this.#tokenizers.set(model.cid, {
          retryAt: this.#now() + waitMs,
          nextWaitMs: Math.min(waitMs * 2, TOKENIZER_RETRY_MAX_MS),
        }),
    );
    this.#tokenizers.set(model.cid, loading);
    return loading;
  }
}

/** Whether `entry` is a failed read's back-off (not a tokenizer). */
function isFailedRead(entry: TextTokenizer | FailedRead): entry is FailedRead {
  return "retryAt" in entry;
}
