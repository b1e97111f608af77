import assert from "node:assert/strict";
import { Tokenizer } from "@huggingface/tokenizers";
import {
  BUILTIN_EOS_TOKEN_ID,
  BUILTIN_VOCAB_SIZE,
  byteLevelTokenizerJson,
  ByteTokenizer,
  byteToUnicodeTable,
  parseByteLevelTokenizer,
} from "../../inference/byte_tokenizer.ts";
import { createTokenizer, HfTokenizer, loadTokenizer } from "../../inference/text_tokenizer.ts";
import { buildGptModel } from "../../inference/model_builder.ts";

const SAMPLES = [
  "Hello, world!",
  "héllo 世界 🚀",
  "  leading and trailing spaces  ",
  "tabs\tand\nnewlines\r\n",
  "specials <|endoftext|> inside <|im_start|>user",
  "",
  "\u0000\u0001 control",
];

Deno.test("the builder's tokenizer.json round-trips through @huggingface/tokenizers byte for byte", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await buildGptModel({ size: "tiny", outDir: dir });
    const json = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer.json`));
    const config = JSON.parse(await Deno.readTextFile(`${dir}/tokenizer_config.json`));
    const hf = new Tokenizer(json, config);
    const bytes = new ByteTokenizer();
    for (const text of SAMPLES) {
      const ids = hf.encode(text, { add_special_tokens: false }).ids;
      assert.deepEqual(ids, bytes.encode(text), JSON.stringify(text));
      if (ids.length > 0) {
        assert.equal(hf.decode(ids, { clean_up_tokenization_spaces: false }), text);
      }
    }
    // Plain text is exactly its UTF-8 bytes.
    assert.deepEqual(bytes.encode("hé"), [0x68, 0xc3, 0xa9]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("special-token strings encode to their ids; <|endoftext|> is id 256 and the EOS", () => {
  const tok = new ByteTokenizer();
  assert.deepEqual(tok.encode("a<|endoftext|>b"), [97, BUILTIN_EOS_TOKEN_ID, 98]);
  assert.equal(tok.eosTokenId, BUILTIN_EOS_TOKEN_ID);
  assert.equal(tok.vocabSize, BUILTIN_VOCAB_SIZE);
  assert.equal(tok.decode([97, BUILTIN_EOS_TOKEN_ID, 98]), "a<|endoftext|>b");
});

Deno.test("the byte-to-unicode table is a bijection onto printable characters", () => {
  const table = byteToUnicodeTable();
  assert.equal(new Set(table).size, 256);
  assert.equal(table[0x41], "A");
  assert.equal(table[0x20], "\u0120"); // GPT-2's "Ġ"
});

Deno.test("a byte-level tokenizer.json is recognised for the fast path; one with merges is not", () => {
  const json = byteLevelTokenizerJson();
  assert.ok(parseByteLevelTokenizer(json));
  assert.ok(createTokenizer(json) instanceof ByteTokenizer);
  const merged = withMerges();
  assert.equal(parseByteLevelTokenizer(merged), null);
  assert.ok(createTokenizer(merged) instanceof HfTokenizer);
});

Deno.test("an exported BPE tokenizer (with merges) encodes, decodes and streams multi-byte text intact", () => {
  const tok = createTokenizer(withMerges(), {}, BUILTIN_EOS_TOKEN_ID);
  const text = "hello héllo 世界 🚀 hello";
  const ids = tok.encode(text);
  assert.ok(ids.includes(BUILTIN_VOCAB_SIZE), "the merge 'h'+'e' must be used");
  assert.equal(tok.decode(ids), text);
  const decoder = tok.streamDecoder();
  const pieces = ids.map((id) => decoder.push(id));
  pieces.push(decoder.flush());
  assert.equal(pieces.join(""), text);
  for (const p of pieces) assert.ok(!p.includes("\uFFFD"), `broken piece ${JSON.stringify(p)}`);
});

Deno.test("bytesOf gives each token's bytes, a byte that ends inside a character included", () => {
  const text = "hello héllo 世界 🚀 <|endoftext|>";
  const utf8 = [...new TextEncoder().encode(text)];
  for (
    const tok of [new ByteTokenizer(), createTokenizer(withMerges(), {}, BUILTIN_EOS_TOKEN_ID)]
  ) {
    const ids = tok.encode(text);
    assert.deepEqual(ids.flatMap((id) => [...tok.bytesOf(id)]), utf8, tok.constructor.name);
    // "é" is two tokens: the first is C3 alone, which decodes to nothing on its own.
    assert.deepEqual([...tok.bytesOf(0xc3)], [0xc3]);
    assert.deepEqual([...tok.bytesOf(tok.vocabSize + 7)], [], "an unknown id adds nothing");
  }
});

Deno.test("loadTokenizer reads a model directory and fails typed on a missing file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      loadTokenizer(dir),
      (e: unknown) => (e as { code?: string }).code === "model_load_failed",
    );
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(byteLevelTokenizerJson()));
    const tok = await loadTokenizer(dir);
    assert.equal(tok.decode(tok.encode("ok ✓")), "ok ✓");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The byte-level vocabulary plus one merge ("h" "e" → "he"): a minimal "exported" BPE. */
function withMerges(): Record<string, unknown> {
  const json = byteLevelTokenizerJson() as { model: Record<string, unknown> };
  const model = json.model;
  const vocab = { ...(model.vocab as Record<string, number>), he: BUILTIN_VOCAB_SIZE };
  return { ...json, model: { ...model, vocab, merges: ["h e"] } };
}
