/**
 * The tokens that end a generation. A model's `config.json` gives `eos_token_id` as one id or, in
 * many chat models, a list (Llama 3 Instruct: `[128001, 128008, 128009]`, a turn ending at
 * `<|eot_id|>`, the last): generation, a resumed job and the validators' end checks all stop at
 * every one of them, by this one rule, or a worker and its validator would disagree on where an
 * output ends.
 *
 * @module
 */

/** The end-token fields of a model's info (`TextModel.info`, or a stand-in's). */
export interface EndTokenInfo {
  /** The first (or only) end id. */
  readonly eosTokenId: number | undefined;
  /** Every end id; a stand-in without it ends at `eosTokenId` alone. */
  readonly eosTokenIds?: readonly number[];
}

/**
 * Every id that ends generation: `eosTokenIds` and `eosTokenId` (both, should a stand-in's info
 * give one that the other lacks).
 *
 * @example
 * ```ts
 * import { endTokenIds } from "./end_tokens.ts";
 * endTokenIds({ eosTokenId: 128001, eosTokenIds: [128001, 128009] }).has(128009); // true
 * ```
 */
export function endTokenIds(info: EndTokenInfo): ReadonlySet<number> {
  const ids = new Set(info.eosTokenIds ?? []);
  if (info.eosTokenId !== undefined) ids.add(info.eosTokenId);
  return ids;
}
