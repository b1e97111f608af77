/**
 * The incremental decoder of Hugging Face tokenizers (`inference/token_stream_decoder.ts`): text is
 * released as soon as its bytes complete a character, or can no longer start one, whatever the
 * text looks like (a real U+FFFD included), at a cost linear in the tokens pushed.
 */
import assert from "node:assert/strict";
import {
  BUILTIN_EOS_TOKEN_ID,
  BUILTIN_VOCAB_SIZE,
  byteToUnicodeTable,
} from "../../inference/byte_tokenizer.ts";
import { createTokenizer, type TextTokenizer } from "../../inference/text_tokenizer.ts";
import { prng } from "../_prng.ts";
import { withMerges } from "./_bpe_tokenizer.ts";

const REPLACEMENT = "\uFFFD";

/** The HF path's tokenizer, and how many ids its `decode` has been given in all. */
function countingTokenizer(): { tok: TextTokenizer; decoded: () => number } {
  const tok = createTokenizer(withMerges(), {}, BUILTIN_EOS_TOKEN_ID);
  const decode = tok.decode.bind(tok);
  let decoded = 0;
  // The stream decoder decodes through the tokenizer's own `decode`: count what it is given.
  tok.decode = (ids) => {
    decoded += ids.length;
    return decode(ids);
  };
  return { tok, decoded: () => decoded };
}

/** The pieces `ids` stream as, one per push, then the flush's. */
function stream(tok: TextTokenizer, ids: readonly number[]): string[] {
  const decoder = tok.streamDecoder();
  const pieces = ids.map((id) => decoder.push(id));
  pieces.push(decoder.flush());
  return pieces;
}

Deno.test("1000 valid U+FFFD characters stream one by one, each when its third byte arrives", () => {
  const { tok } = countingTokenizer();
  const ids = Array.from({ length: 1000 }, () => [0xef, 0xbf, 0xbd]).flat();
  const pieces = stream(tok, ids);
  for (let i = 0; i < ids.length; i++) {
    assert.equal(pieces[i], i % 3 === 2 ? REPLACEMENT : "", `piece ${i}`);
  }
  assert.equal(pieces.at(-1), "", "nothing is left for the flush");
});

Deno.test("invalid bytes stream as U+FFFD as soon as they can no longer start a valid character", () => {
  const { tok } = countingTokenizer();
  // FF never starts a character: released at once.
  assert.deepEqual(stream(tok, [0xff, 0xff, 0x61]), [REPLACEMENT, REPLACEMENT, "a", ""]);
  // C3 may start "é": held, then released when the next byte is not its continuation.
  assert.deepEqual(stream(tok, [0xc3, 0xc3, 0xc3]), ["", REPLACEMENT, REPLACEMENT, REPLACEMENT]);
  // E0 must be followed by A0–BF: E0 80 is two invalid bytes once the 80 is seen.
  assert.deepEqual(stream(tok, [0xe0, 0x80]), ["", REPLACEMENT + REPLACEMENT, ""]);
  // A valid split character is held until it completes, then released whole.
  assert.deepEqual(stream(tok, [0xf0, 0x9f, 0x9a, 0x80, 0x21]), ["", "", "", "🚀", "!", ""]);
  // An incomplete tail at the end is the flush's U+FFFD.
  assert.deepEqual(stream(tok, [0x61, 0xe2, 0x82]), ["a", "", "", REPLACEMENT]);
});

Deno.test("streaming runs of invalid bytes and of U+FFFD decodes each token a bounded number of times", () => {
  const n = 4000;
  // Linear: a bounded window per push. Holding the run and re-decoding it on every push (the
  // quadratic stall) decodes about n²/2 ids.
  const maxIdsPerPush = 8;
  const runs: Record<string, number[]> = {
    "FF": new Array(n).fill(0xff),
    "C3": new Array(n).fill(0xc3),
    "U+FFFD": Array.from({ length: n / 4 }, () => [0xef, 0xbf, 0xbd, 0x61]).flat(),
  };
  for (const [name, ids] of Object.entries(runs)) {
    const { tok, decoded } = countingTokenizer();
    const released = stream(tok, ids).slice(0, -1).join("").length;
    assert.ok(
      decoded() <= maxIdsPerPush * ids.length,
      `${name}: ${decoded()} ids decoded for ${ids.length} pushed`,
    );
    assert.ok(released >= ids.length / 4 - 1, `${name}: only ${released} chars before flush`);
  }
});

/**
 * Tokens of several bytes that end one character and open another ("€" E2 82 AC split as
 * E2 | 82 AC E2 | …, "é" C3 A9 as … | A9 C3): a boundary between them is inside a character.
 */
const CROSSING_TOKENS = [[0x82, 0xac, 0xe2], [0xa9, 0xc3], [0xbf, 0xbd, 0xef], [0xe2, 0x82]];

/** The HF test tokenizer with {@link CROSSING_TOKENS} added to its vocabulary, and their ids. */
function crossingTokenizer(): { tok: TextTokenizer; crossing: number[] } {
  const json = withMerges() as { model: { vocab: Record<string, number> } };
  const table = byteToUnicodeTable();
  const vocab = { ...json.model.vocab };
  let next = Math.max(...Object.values(vocab)) + 1;
  const crossing = CROSSING_TOKENS.map((bytes) => {
    vocab[bytes.map((b) => table[b]).join("")] = next;
    return next++;
  });
  const tok = createTokenizer(
    { ...json, model: { ...json.model, vocab } },
    {},
    BUILTIN_EOS_TOKEN_ID,
  );
  return { tok, crossing };
}

Deno.test("a token that ends one character and opens another is held until the character it opens ends", () => {
  const { tok, crossing: [x82ACE2, xA9C3] } = crossingTokenizer();
  // E2 | 82 AC E2 | 82 | AC: "€" completes inside the second token, which opens another "€".
  assert.deepEqual(stream(tok, [0xe2, x82ACE2, 0x82, 0xac]), ["", "", "", "€€", ""]);
  // C3 | A9 C3 | A9: "é" twice.
  assert.deepEqual(stream(tok, [0xc3, xA9C3, 0xa9, 0x21]), ["", "", "éé", "!", ""]);
});

Deno.test("the streamed pieces always join to decode(all ids), over random valid and invalid bytes, merges, specials and tokens across characters", () => {
  const { tok, crossing } = crossingTokenizer();
  const random = prng(7);
  for (let trial = 0; trial < 300; trial++) {
    const ids = Array.from({ length: 40 }, () => {
      const r = random();
      if (r < 0.05) return BUILTIN_EOS_TOKEN_ID;
      if (r < 0.1) return BUILTIN_VOCAB_SIZE; // the merge "he"
      if (r < 0.25) return crossing[Math.floor(random() * crossing.length)];
      return r < 0.6 ? 0x80 + Math.floor(random() * 128) : 0x20 + Math.floor(random() * 90);
    });
    assert.equal(stream(tok, ids).join(""), tok.decode(ids), JSON.stringify(ids));
  }
});
