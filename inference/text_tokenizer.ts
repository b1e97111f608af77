/**
 * The tokenizer contract the engine codes against, and the loader that picks an
 * implementation from a model directory's `tokenizer.json`.
 *
 * Two implementations sit behind {@link TextTokenizer}: the exact, allocation-light
 * {@link ByteTokenizer} for byte-level vocabularies such as the built-in model's, and
 * {@link HfTokenizer}, which runs any Hugging Face `tokenizer.json` through
 * `@huggingface/tokenizers`. The loader recognises a byte-level file by its structure (BPE, no
 * merges, the 256 byte symbols), not by who wrote it, so an exported byte-level model gets the
 * fast path too and the built-in model goes through exactly the path an exported one would.
 *
 * @module
 */
import { Tokenizer } from "@huggingface/tokenizers";
import { join } from "node:path";
import { ByteTokenizer, parseByteLevelTokenizer } from "./byte_tokenizer.ts";
import { ModelLoadError } from "./errors.ts";
import { type TokenStreamDecoder, TokenStreamTextDecoder } from "./token_stream_decoder.ts";

export type { TokenStreamDecoder } from "./token_stream_decoder.ts";

/** Text ⇄ token ids, plus a streaming decoder that never splits a UTF-8 character. */
export interface TextTokenizer {
  /** Size of the id space (ids are `0 .. vocabSize-1`). */
  readonly vocabSize: number;
  /** End-of-text id, when the vocabulary has one; generation stops after it. */
  readonly eosTokenId: number | undefined;
  /** Special (added) tokens by id. */
  readonly specialTokens: ReadonlyMap<number, string>;
  /** Token ids of `text`; special-token strings in the text map to their ids. */
  encode(text: string): number[];
  /** Text of `ids` (special tokens are rendered as their content). */
  decode(ids: readonly number[]): string;
  /**
   * A fresh incremental decoder: feed ids one by one, get text pieces whose concatenation
   * equals `decode(allIds)`; a piece is "" while a character is incomplete.
   */
  streamDecoder(): TokenStreamDecoder;
}

/** {@link TextTokenizer} over any Hugging Face `tokenizer.json`, via `@huggingface/tokenizers`. */
export class HfTokenizer implements TextTokenizer {
  #tokenizer: Tokenizer;
  /** Size of the id space. */
  readonly vocabSize: number;
  /** End-of-text id, if any. */
  readonly eosTokenId: number | undefined;
  /** Special tokens by id. */
  readonly specialTokens: ReadonlyMap<number, string>;

  /**
   * Wrap a parsed Hugging Face tokenizer.
   *
   * @param tokenizerJson Parsed `tokenizer.json`.
   * @param tokenizerConfig Parsed `tokenizer_config.json` (may be `{}`).
   * @param eosTokenId End-of-text id (from `config.json`), if known.
   */
  constructor(tokenizerJson: object, tokenizerConfig: object = {}, eosTokenId?: number) {
    // clean_up_tokenization_spaces rewrites " ." to "." on decode, which would make decoded
    // text differ from the bytes the model produced; generation must not do that.
    this.#tokenizer = new Tokenizer(tokenizerJson, {
      clean_up_tokenization_spaces: false,
      ...tokenizerConfig,
    });
    const special = new Map<number, string>();
    for (const [id, token] of this.#tokenizer.get_added_tokens_decoder()) {
      if (token.special) special.set(id, token.content);
    }
    this.specialTokens = special;
    let maxId = -1;
    for (const id of this.#tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.eosTokenId = eosTokenId;
  }

  /** Token ids of `text` (see {@link TextTokenizer.encode}). */
  encode(text: string): number[] {
    return this.#tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of `ids` (see {@link TextTokenizer.decode}). */
  decode(ids: readonly number[]): string {
    // The library rejects an empty id list; the empty sequence decodes to "".
    if (ids.length === 0) return "";
    return this.#tokenizer.decode([...ids], { clean_up_tokenization_spaces: false });
  }

  /** A fresh incremental decoder (see {@link TextTokenizer.streamDecoder}). */
  streamDecoder(): TokenStreamDecoder {
    return new TokenStreamTextDecoder((ids) => this.decode(ids));
  }
}

/**
 * Build the right {@link TextTokenizer} for a parsed `tokenizer.json`.
 *
 * @param tokenizerJson Parsed `tokenizer.json`.
 * @param tokenizerConfig Parsed `tokenizer_config.json`, if any.
 * @param eosTokenId End-of-text id from `config.json`, if any.
 */
export function createTokenizer(
  tokenizerJson: Record<string, unknown>,
  tokenizerConfig: Record<string, unknown> = {},
  eosTokenId?: number,
): TextTokenizer {
  const byteLevel = parseByteLevelTokenizer(tokenizerJson);
  if (byteLevel) return new ByteTokenizer({ ...byteLevel, eosTokenId });
  return new HfTokenizer(tokenizerJson, tokenizerConfig, eosTokenId);
}

/**
 * Load the tokenizer of a model directory (`tokenizer.json`, optional `tokenizer_config.json`).
 *
 * @example
 * ```ts ignore
 * const tok = await loadTokenizer("./.veriflow/models/bafkrei...");
 * tok.decode(tok.encode("héllo")); // "héllo"
 * ```
 */
export async function loadTokenizer(dir: string, eosTokenId?: number): Promise<TextTokenizer> {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await Deno.readTextFile(join(dir, "tokenizer.json")));
  } catch (cause) {
    throw new ModelLoadError(`cannot read tokenizer.json in ${dir}`, { cause });
  }
  let config: Record<string, unknown> = {};
  try {
    config = JSON.parse(await Deno.readTextFile(join(dir, "tokenizer_config.json")));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new ModelLoadError(`bad tokenizer_config.json in ${dir}`, { cause: error });
    }
  }
  try {
    return createTokenizer(json, config, eosTokenId);
  } catch (cause) {
    throw new ModelLoadError(`unsupported tokenizer.json in ${dir}`, { cause });
  }
}
