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
import { ByteTokenizer, byteToUnicodeTable, parseByteLevelTokenizer } from "./byte_tokenizer.ts";
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
  /**
   * Token ids of `text`, read as text: a special token's string in it (`<|endoftext|>`,
   * `<|im_start|>`) is encoded as the characters it is made of, never as the control token. A
   * job's prompt is client text (a completions prompt, chat messages, a stored input), and the
   * worker and every validator encode it with this one function, so the ids a receipt is checked
   * against are the same on both sides; a client cannot end the text or open a turn by typing a
   * control token's name (as tiktoken refuses special tokens in text unless allowed).
   */
  encode(text: string): number[];
  /**
   * Token ids of `text` where each special token's string is its id: for text the node writes
   * itself around client text (a template's control tokens), never for client text.
   */
  encodeWithSpecialTokens(text: string): number[];
  /** Text of `ids` (special tokens are rendered as their content). */
  decode(ids: readonly number[]): string;
  /**
   * A fresh incremental decoder: feed ids one by one, get text pieces whose concatenation
   * equals `decode(allIds)`; a piece is "" while a character is incomplete.
   */
  streamDecoder(): TokenStreamDecoder;
  /**
   * The bytes token `id` adds to the output text, including a byte token's that ends inside a
   * character (which `streamDecoder` holds back until the character completes): what measures
   * progress toward a stop string of non-ASCII characters byte by byte. Empty for an unknown id.
   */
  bytesOf(id: number): Uint8Array;
}

/** {@link TextTokenizer} over any Hugging Face `tokenizer.json`, via `@huggingface/tokenizers`. */
export class HfTokenizer implements TextTokenizer {
  #tokenizer: Tokenizer;
  /**
   * The same tokenizer without its special added tokens, which `encode` uses: `@huggingface/
   * tokenizers` has no `split_special_tokens` switch, and without them its splitter never cuts a
   * special token's string out of the text, which then goes through the pre-tokenizer and the
   * model as any text (what the Rust library's `split_special_tokens` does).
   */
  #plain: Tokenizer;
  /** Added tokens' content by id: every decoder renders an added token as its content. */
  #added = new Map<number, string>();
  /** The byte-level decoder's character → byte map; null when the decoder is not byte-level. */
  #byteOfChar: Map<string, number> | null;
  /** Whether the decoder turns `<0xNN>` tokens into byte NN (SentencePiece byte fallback). */
  #byteFallback: boolean;
  #utf8 = new TextEncoder();
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
    const config = { clean_up_tokenization_spaces: false, ...tokenizerConfig };
    this.#tokenizer = new Tokenizer(tokenizerJson, config);
    const added = (tokenizerJson as { added_tokens?: { special?: boolean }[] }).added_tokens;
    this.#plain = new Tokenizer({
      ...tokenizerJson,
      added_tokens: (added ?? []).filter((token) => !token.special),
    }, config);
    const special = new Map<number, string>();
    for (const [id, token] of this.#tokenizer.get_added_tokens_decoder()) {
      this.#added.set(id, token.content);
      if (token.special) special.set(id, token.content);
    }
    const decoders = decoderTypes((tokenizerJson as { decoder?: unknown }).decoder);
    this.#byteOfChar = decoders.has("ByteLevel")
      ? new Map(byteToUnicodeTable().map((ch, b) => [ch, b]))
      : null;
    this.#byteFallback = decoders.has("ByteFallback");
    this.specialTokens = special;
    let maxId = -1;
    for (const id of this.#tokenizer.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.eosTokenId = eosTokenId;
  }

  /** Token ids of `text`, read as text (see {@link TextTokenizer.encode}). */
  encode(text: string): number[] {
    return this.#plain.encode(text, { add_special_tokens: false }).ids;
  }

  /** Token ids of `text`, special tokens matched (see {@link TextTokenizer.encodeWithSpecialTokens}). */
  encodeWithSpecialTokens(text: string): number[] {
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
    return new TokenStreamTextDecoder((ids) => this.decode(ids), (id) => this.bytesOf(id));
  }

  /**
   * The bytes of token `id` (see {@link TextTokenizer.bytesOf}): a byte-level symbol's bytes, a
   * byte-fallback token's byte, an added token's content. Any other token is whole text and its
   * own decoding stands for it (a decoder that strips a leading space at the start of the
   * sequence drops it here too, which only a token the stream decoder holds back, after a byte
   * token, would show).
   */
  bytesOf(id: number): Uint8Array {
    const added = this.#added.get(id);
    if (added !== undefined) return this.#utf8.encode(added);
    const token = this.#tokenizer.id_to_token(id);
    if (token === undefined) return new Uint8Array(0);
    if (this.#byteFallback) {
      const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
      if (byte) return Uint8Array.of(parseInt(byte[1], 16));
    }
    if (this.#byteOfChar) {
      const bytes = [...token].map((ch) => this.#byteOfChar!.get(ch));
      if (bytes.every((b) => b !== undefined)) return Uint8Array.from(bytes as number[]);
    }
    return this.#utf8.encode(this.decode([id]));
  }
}

/** The types of a `tokenizer.json` decoder, a `Sequence`'s members included. */
function decoderTypes(decoder: unknown): Set<string> {
  const types = new Set<string>();
  const visit = (d: unknown) => {
    if (typeof d !== "object" || d === null) return;
    const { type, decoders } = d as { type?: unknown; decoders?: unknown };
    if (typeof type === "string") types.add(type);
    if (Array.isArray(decoders)) decoders.forEach(visit);
  };
  visit(decoder);
  return types;
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
  let json: Uint8Array;
  try {
    json = await Deno.readFile(join(dir, "tokenizer.json"));
  } catch (cause) {
    throw new ModelLoadError(`cannot read tokenizer.json in ${dir}`, { cause });
  }
  let config: Uint8Array | undefined;
  try {
    config = await Deno.readFile(join(dir, "tokenizer_config.json"));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new ModelLoadError(`bad tokenizer_config.json in ${dir}`, { cause: error });
    }
  }
  return tokenizerFromFiles(json, config, eosTokenId, dir);
}

/**
 * The tokenizer of a model directory from the bytes of its files, as read once for the model's
 * id (`model_identity.ts`): what runs is what the id names.
 *
 * @param tokenizerJson The bytes of `tokenizer.json`.
 * @param tokenizerConfig The bytes of `tokenizer_config.json`; `undefined` when there is none.
 * @param eosTokenId The end-of-text token the model's config gives, if any.
 * @param dir Where the files are from, for error messages.
 * @throws {ModelLoadError} a file is not JSON, or the tokenizer is not one this node runs.
 */
export function tokenizerFromFiles(
  tokenizerJson: Uint8Array,
  tokenizerConfig: Uint8Array | undefined,
  eosTokenId: number | undefined,
  dir: string,
): TextTokenizer {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(new TextDecoder().decode(tokenizerJson));
  } catch (cause) {
    throw new ModelLoadError(`cannot read tokenizer.json in ${dir}`, { cause });
  }
  let config: Record<string, unknown> = {};
  if (tokenizerConfig !== undefined) {
    try {
      config = JSON.parse(new TextDecoder().decode(tokenizerConfig));
    } catch (cause) {
      throw new ModelLoadError(`bad tokenizer_config.json in ${dir}`, { cause });
    }
  }
  try {
    return createTokenizer(json, config, eosTokenId);
  } catch (cause) {
    throw new ModelLoadError(`unsupported tokenizer.json in ${dir}`, { cause });
  }
}
