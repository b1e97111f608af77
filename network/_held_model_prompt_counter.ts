/**
 * A router's own count of a job's prompt tokens (`_prompt_token_claim.ts`), and a validator's
 * tokenizer for its re-count at intake (`promptCounting`), for the models this node holds: each model's tokenizer is read once per model id, from the files its registry
 * registered, and never its onnxruntime session (a router that holds a model need not run it).
 * The count is asked synchronously while a receipt is checked, so a tokenizer still loading
 * answers only the model's window: generation refuses a prompt that fills it, so no honest
 * count reaches `contextLength` (review s78 vprompt F1). A job that names an input is bounded
 * the same way: its bytes are the worker's to fetch, not the router's.
 *
 * @module
 */
import type { TextJob } from "../protocols/job.ts";
import type { RegisteredModel } from "../inference/model_registry.ts";
import { loadTokenizer, type TextTokenizer } from "../inference/text_tokenizer.ts";
import type { PromptTokenCount } from "./_prompt_token_claim.ts";
import type { PromptCountingModel } from "../proof/prompt_token_check.ts";

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
  /** Per model id: its tokenizer, null when it failed to load, a promise while it loads. */
  readonly #tokenizers = new Map<string, TextTokenizer | null | Promise<void>>();

  /**
   * @param models The node's models.
   * @param load How a tokenizer is read (tests give their own).
   */
  constructor(models: HeldModels, load: TokenizerLoader = loadTokenizer) {
    this.#models = models;
    this.#load = load;
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
    if (!this.#tokenizers.has(model.cid)) this.#loaded(model);
    const tokenizer = this.#held(model.cid);
    if (tokenizer !== undefined && job.input === undefined) {
      return tokenizer.encode(job.prompt).length;
    }
    return { atMost: model.contextLength - 1 };
  };

  /**
   * Model `cid`'s tokenizer and window, read once, loading no session: what a validator's intake
   * re-counts a receipt's prompt tokens with (`ValidatorModelSource.promptCounting`). Undefined
   * where this node holds no such text model, or its tokenizer cannot be read.
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
    return known === null || known instanceof Promise ? undefined : known;
  }

  /** `model`'s tokenizer read once (a read in flight is shared). */
  #loaded(model: RegisteredModel): Promise<void> {
    const known = this.#tokenizers.get(model.cid);
    if (known instanceof Promise) return known;
    if (known !== undefined) return Promise.resolve();
    const loading = this.#load(model.path).then(
      (tokenizer) => void this.#tokenizers.set(model.cid, tokenizer),
      // A tokenizer this node cannot read is its own gap: the model stays bounded by its window.
      () => void this.#tokenizers.set(model.cid, null),
    );
    this.#tokenizers.set(model.cid, loading);
    return loading;
  }
}
