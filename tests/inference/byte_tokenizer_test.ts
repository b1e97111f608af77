/**
 * `ByteTokenizer.encode` runs on the node's main thread (the InferenceActor tokenises each
 * prompt in its turn), so its cost must follow the prompt's length whatever the prompt holds:
 * a prompt made of special tokens must not cost a search of the rest of the text per token.
 */
import assert from "node:assert/strict";
import { BUILTIN_PAD_TOKEN_ID, ByteTokenizer } from "../../inference/byte_tokenizer.ts";

/** Fastest of `runs` timings of `f`: the least disturbed by whatever else the machine runs. */
function fastest(runs: number, f: () => void): number {
  let best = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    f();
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

/**
 * How much slower a prompt of nothing but special tokens may encode than a plain one of the same
 * length. Linear encoding measures under 1× (one id per 7 characters instead of one per byte);
 * the quadratic one it replaced measured several hundred times at this length, and grows with it.
 */
const MAX_SPECIAL_TO_PLAIN_RATIO = 10;
/** Long enough for the quadratic cost to dominate; under the wire's 1 Mi prompt limit. */
const PROMPT_CHARS = 1 << 17;
/** Timings per prompt (the fastest counts). */
const RUNS = 3;

Deno.test("encoding a prompt made of special tokens costs about what a plain prompt of the same length does", () => {
  const tokenizer = new ByteTokenizer();
  const special = "<|pad|>".repeat(Math.floor(PROMPT_CHARS / "<|pad|>".length));
  const plain = "a".repeat(special.length);
  let ids: number[] = [];
  tokenizer.encode(plain); // warm up
  const plainMs = fastest(RUNS, () => tokenizer.encode(plain));
  const specialMs = fastest(RUNS, () => ids = tokenizer.encode(special));
  assert.equal(ids.length, special.length / "<|pad|>".length);
  assert.ok(ids.every((id) => id === BUILTIN_PAD_TOKEN_ID));
  assert.ok(
    specialMs < MAX_SPECIAL_TO_PLAIN_RATIO * plainMs,
    `special tokens ${specialMs.toFixed(1)} ms vs plain ${plainMs.toFixed(1)} ms`,
  );
});

Deno.test("encode takes the leftmost special token, the longest of those starting there, and bytes around them", () => {
  const tokenizer = new ByteTokenizer({
    specialTokens: new Map([[256, "<a"], [257, "<ab>"], [258, "b>"], [259, "ab"]]),
  });
  const bytes = (s: string) => [...new TextEncoder().encode(s)];
  assert.deepEqual(tokenizer.encode("<ab>"), [257]);
  assert.deepEqual(tokenizer.encode("<ab"), [256, ...bytes("b")]);
  // "ab" and "b>" overlap: the leftmost wins, and the search resumes after it.
  assert.deepEqual(tokenizer.encode("xab>b>"), [...bytes("x"), 259, ...bytes(">"), 258]);
  assert.deepEqual(tokenizer.encode("é<a<ab>ab"), [...bytes("é"), 256, 257, 259]);
  assert.deepEqual(tokenizer.encode("plain"), bytes("plain"));
  assert.deepEqual(tokenizer.encode(""), []);
});

Deno.test("an empty special token (a malformed tokenizer.json) is never matched instead of making encode loop forever", () => {
  const tokenizer = new ByteTokenizer({ specialTokens: new Map([[256, ""], [257, "<|x|>"]]) });
  assert.deepEqual(tokenizer.encode("a<|x|>"), [97, 257]);
  assert.deepEqual(tokenizer.encode(""), []);
});
