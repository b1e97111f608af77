/**
 * A minimal "exported" Hugging Face tokenizer for tests: the built-in byte-level vocabulary plus
 * one BPE merge ("h" "e" → "he", id {@link BUILTIN_VOCAB_SIZE}), so it is not recognised as a
 * pure byte vocabulary and runs through `HfTokenizer`, the path every exported model takes.
 *
 * @module
 */
import { BUILTIN_VOCAB_SIZE, byteLevelTokenizerJson } from "../../inference/byte_tokenizer.ts";

/** The byte-level `tokenizer.json` plus the merge "h e". */
export function withMerges(): Record<string, unknown> {
  const json = byteLevelTokenizerJson() as { model: Record<string, unknown> };
  const model = json.model;
  const vocab = { ...(model.vocab as Record<string, number>), he: BUILTIN_VOCAB_SIZE };
  return { ...json, model: { ...model, vocab, merges: ["h e"] } };
}
