/**
 * The byte-level vocabulary of the built-in model: ids 0–255 are the raw UTF-8 bytes, followed
 * by a few special tokens (`<|endoftext|>` first). Every string has exactly one encoding and
 * every byte sequence decodes, so no text is ever out of vocabulary.
 *
 * The same vocabulary is written as a Hugging Face `tokenizer.json` (GPT-2's ByteLevel
 * pre-tokenizer/decoder with a BPE model that has no merges), so any HF-compatible tool reads
 * it; {@link parseByteLevelTokenizer} recognises such files so they load on the fast path here.
 *
 * @module
 */
import type { TextTokenizer } from "./text_tokenizer.ts";
import type { TokenStreamDecoder } from "./token_stream_decoder.ts";

/** Number of byte tokens. */
export const BYTE_VOCAB = 256;

/** Special tokens of the built-in vocabulary, in id order starting at 256. */
export const BUILTIN_SPECIAL_TOKENS: readonly string[] = Object.freeze([
  "<|endoftext|>",
  "<|pad|>",
  "<|im_start|>",
  "<|im_end|>",
]);

/** Id of `<|endoftext|>` in the built-in vocabulary (GPT-2 uses it as both BOS and EOS). */
export const BUILTIN_EOS_TOKEN_ID: number = BYTE_VOCAB;
/** Id of `<|pad|>` in the built-in vocabulary. */
export const BUILTIN_PAD_TOKEN_ID: number = BYTE_VOCAB + 1;
/** Vocabulary size of the built-in model. */
export const BUILTIN_VOCAB_SIZE: number = BYTE_VOCAB + BUILTIN_SPECIAL_TOKENS.length;

/**
 * GPT-2's reversible byte → printable-character map: the printable Latin-1 bytes stand for
 * themselves, the rest are shifted to U+0100 and up, in byte order. BPE vocabularies store
 * byte tokens as these characters.
 */
export function byteToUnicodeTable(): string[] {
  const table: string[] = new Array(BYTE_VOCAB);
  const printable = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let shifted = 0;
  for (let b = 0; b < BYTE_VOCAB; b++) {
    table[b] = String.fromCodePoint(printable(b) ? b : BYTE_VOCAB + shifted++);
  }
  return table;
}

/** {@link ByteTokenizer.encodeWithSpecialTokens}' mark for a special token not searched for yet. */
const NOT_SEARCHED = -2;

/** Options of {@link ByteTokenizer}. */
export interface ByteTokenizerOptions {
  /** Special tokens by id (ids ≥ 256). Default: {@link BUILTIN_SPECIAL_TOKENS}. */
  specialTokens?: ReadonlyMap<number, string>;
  /** End-of-text id. Default: the id of `<|endoftext|>` if present. */
  eosTokenId?: number;
}

/**
 * Exact byte-level tokenizer: `encode` is UTF-8 (a special token's string is its bytes, as any
 * text), `encodeWithSpecialTokens` turns those strings into their ids, and `decode` is UTF-8
 * decoding with U+FFFD for invalid bytes.
 *
 * @example
 * ```ts
 * import { ByteTokenizer } from "./byte_tokenizer.ts";
 * const tok = new ByteTokenizer();
 * tok.encode("hé"); // [104, 195, 169]
 * tok.decode([104, 195, 169]); // "hé"
 * tok.encode("<|pad|>").length; // 7: text, not the control token
 * tok.encodeWithSpecialTokens("<|pad|>"); // [257]
 * ```
 */
export class ByteTokenizer implements TextTokenizer {
  /** Size of the id space. */
  readonly vocabSize: number;
  /** End-of-text id, if any. */
  readonly eosTokenId: number | undefined;
  /** Special tokens by id. */
  readonly specialTokens: ReadonlyMap<number, string>;
  #specialIds: Map<string, number>;
  /** The special tokens `encode` looks for: every non-empty one, once per string. */
  #matchable: readonly { text: string; id: number }[];
  #encoder = new TextEncoder();

  /**
   * A byte tokenizer with the given special tokens.
   *
   * @param options Special tokens and EOS id.
   */
  constructor(options?: ByteTokenizerOptions) {
    this.specialTokens = options?.specialTokens ??
      new Map(BUILTIN_SPECIAL_TOKENS.map((t, i) => [BYTE_VOCAB + i, t]));
    this.#specialIds = new Map([...this.specialTokens].map(([id, t]) => [t, id]));
    // An empty string would match everywhere without consuming anything (`encode` would never
    // end): it is never matched.
    this.#matchable = [...this.#specialIds].flatMap(([text, id]) => text ? [{ text, id }] : []);
    this.vocabSize = Math.max(BYTE_VOCAB - 1, ...this.specialTokens.keys()) + 1;
    this.eosTokenId = options?.eosTokenId ?? this.#specialIds.get("<|endoftext|>");
  }

  /**
   * Token ids of `text` (see {@link TextTokenizer.encode}): its UTF-8 bytes, one token each, a
   * special token's string included.
   */
  encode(text: string): number[] {
    return Array.from(this.#encoder.encode(text));
  }

  /**
   * Token ids of `text` with its special-token strings as their ids (see
   * {@link TextTokenizer.encodeWithSpecialTokens}): its UTF-8 bytes, except that each special
   * token's string becomes its id, the leftmost occurrence first and, of those starting at the
   * same place, the longest.
   *
   * Linear in the text (times the number of special tokens): each special token's next
   * occurrence is remembered and searched for again only once the text consumed has passed it,
   * so each search resumes after the previous one (less one token's length) instead of
   * re-scanning the rest of the text after every special token found. A prompt made of nothing
   * but special tokens costs about what a plain one of the same length does.
   */
  encodeWithSpecialTokens(text: string): number[] {
    const ids: number[] = [];
    const specials = this.#matchable;
    // Where each special token next occurs at or after `start`: -1 none, NOT_SEARCHED before the
    // first search. Still valid while `start` has not passed it, since nothing before it matched.
    const next = new Array<number>(specials.length).fill(NOT_SEARCHED);
    let start = 0;
    for (;;) {
      let at = -1;
      let token = -1; // index in `specials` of the token found at `at`
      for (let k = 0; k < specials.length; k++) {
        let i = next[k];
        if (i === NOT_SEARCHED || (i >= 0 && i < start)) {
          i = next[k] = text.indexOf(specials[k].text, start);
        }
        if (i < 0) continue;
        if (
          at < 0 || i < at || (i === at && specials[k].text.length > specials[token].text.length)
        ) {
          at = i;
          token = k;
        }
      }
      const end = at < 0 ? text.length : at;
      // Special tokens back to back leave nothing between them to encode.
      if (end > start) {
        for (const b of this.#encoder.encode(text.slice(start, end))) ids.push(b);
      }
      if (at < 0) return ids;
      ids.push(specials[token].id);
      start = at + specials[token].text.length;
    }
  }

  /** Text of `ids` (see {@link TextTokenizer.decode}). */
  decode(ids: readonly number[]): string {
    const decoder = this.streamDecoder();
    let out = "";
    for (const id of ids) out += decoder.push(id);
    return out + decoder.flush();
  }

  /**
   * The bytes of token `id` (see {@link TextTokenizer.bytesOf}): the byte itself for ids below
   * 256, a special token's content, nothing for an unknown id.
   *
   * @example
   * ```ts
   * import { ByteTokenizer } from "./byte_tokenizer.ts";
   * new ByteTokenizer().bytesOf(0xc3); // Uint8Array [0xc3], the first byte of "é"
   * ```
   */
  bytesOf(id: number): Uint8Array {
    if (id >= 0 && id < BYTE_VOCAB) return Uint8Array.of(id);
    return this.#encoder.encode(this.specialTokens.get(id) ?? "");
  }

  /** A fresh incremental decoder (see {@link TextTokenizer.streamDecoder}). */
  streamDecoder(): TokenStreamDecoder {
    const utf8 = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
    const special = this.specialTokens;
    const one = new Uint8Array(1);
    return {
      push(id: number): string {
        if (id >= 0 && id < BYTE_VOCAB) {
          one[0] = id;
          return utf8.decode(one, { stream: true });
        }
        // A special token ends any pending partial character (which becomes U+FFFD).
        return utf8.decode() + (special.get(id) ?? "");
      },
      flush(): string {
        return utf8.decode();
      },
    };
  }
}

/**
 * The Hugging Face `tokenizer.json` for a byte-level vocabulary with the given specials.
 *
 * @param specialTokens Special token strings; they get ids 256, 257, ...
 */
export function byteLevelTokenizerJson(
  specialTokens: readonly string[] = BUILTIN_SPECIAL_TOKENS,
): Record<string, unknown> {
  const table = byteToUnicodeTable();
  const vocab: Record<string, number> = {};
  table.forEach((ch, b) => (vocab[ch] = b));
  specialTokens.forEach((t, i) => (vocab[t] = BYTE_VOCAB + i));
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specialTokens.map((content, i) => ({
      id: BYTE_VOCAB + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { ...byteLevel, use_regex: true },
    post_processor: { ...byteLevel, use_regex: true },
    decoder: { ...byteLevel, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
}

/**
 * Recognise a byte-level `tokenizer.json` (ByteLevel pre-tokenizer, BPE without merges whose
 * ids 0–255 are the 256 byte symbols in byte order, no normalizer). Returns its special tokens,
 * or `null` when the file is anything else and needs the general tokenizer.
 */
export function parseByteLevelTokenizer(
  json: Record<string, unknown>,
): { specialTokens: Map<number, string> } | null {
  const model = json.model as Record<string, unknown> | undefined;
  const pre = json.pre_tokenizer as Record<string, unknown> | null | undefined;
  if (!model || model.type !== "BPE") return null;
  if (!Array.isArray(model.merges) || model.merges.length !== 0) return null;
  if (json.normalizer !== null && json.normalizer !== undefined) return null;
  if (!pre || pre.type !== "ByteLevel" || pre.add_prefix_space) return null;
  const vocab = model.vocab as Record<string, number> | undefined;
  if (!vocab) return null;
  const table = byteToUnicodeTable();
  for (let b = 0; b < BYTE_VOCAB; b++) if (vocab[table[b]] !== b) return null;
  const specialTokens = new Map<number, string>();
  for (const added of (json.added_tokens ?? []) as { id: number; content: string }[]) {
    if (added.id < BYTE_VOCAB) return null;
    specialTokens.set(added.id, added.content);
  }
  for (const [token, id] of Object.entries(vocab)) {
    // Any other symbol would be a multi-byte BPE token: not a pure byte vocabulary.
    if (id < BYTE_VOCAB ? token !== table[id] : specialTokens.get(id) !== token) return null;
  }
  return { specialTokens };
}
