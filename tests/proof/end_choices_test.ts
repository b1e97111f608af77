/**
 * `endChoices`: on which side of an end a worker's token fell where it differs from the
 * validator's own pick. Token ids are bytes (the built-in byte tokenizer); EOS is its own id.
 */
import assert from "node:assert/strict";
import { endChoices } from "../../proof/end_choices.ts";
import { createTokenizer } from "../../inference/text_tokenizer.ts";
import { scriptedModel } from "./_scripted_model.ts";

const model = scriptedModel("bafk-end-choices", { contextLength: 64 });
const EOS = model.info.eosTokenId!;
const ids = (text: string) => [...new TextEncoder().encode(text)];
const params = (stop: string[] = [], maxTokens = 16) => ({ maxTokens, stop });
/** Each position's validator pick, as computed only. */
const picks = (winners: number[]) => winners.map((w) => [w]);

Deno.test("endChoices: the validator's pick is EOS where the worker went on: passed", () => {
  const tokens = ids("abcd");
  const winners = [...tokens];
  winners[1] = EOS;
  assert.deepEqual(endChoices(model, 3, tokens, picks(winners), params()), { passed: 1, taken: 0 });
});

Deno.test("endChoices: the worker ended with EOS where the validator's pick went on: taken", () => {
  const tokens = [...ids("abc"), EOS];
  const winners = [...ids("abc"), "x".charCodeAt(0)];
  assert.deepEqual(endChoices(model, 3, tokens, picks(winners), params()), { passed: 0, taken: 1 });
});

Deno.test("endChoices: a pick that completes a stop string is an end; one that does not, is not", () => {
  // Stop "cd": after "abc", "d" ends the output and "e" does not.
  const went = ids("abce");
  const passedWinners = ids("abcd");
  assert.deepEqual(endChoices(model, 3, went, picks(passedWinners), params(["cd"])), {
    passed: 1,
    taken: 0,
  });
  const stopped = ids("abcd");
  const takenWinners = ids("abce");
  assert.deepEqual(endChoices(model, 3, stopped, picks(takenWinners), params(["cd"])), {
    passed: 0,
    taken: 1,
  });
});

Deno.test("endChoices: differences that change no end count nothing", () => {
  // Both continue; both end (EOS against a stop-completing byte); a stop string already in
  // the text before the position (completing it again is no new end).
  assert.deepEqual(
    endChoices(model, 3, ids("abc"), picks(ids("axc")), params()),
    { passed: 0, taken: 0 },
  );
  assert.deepEqual(
    endChoices(model, 3, [...ids("ab"), EOS], picks(ids("abz")), params(["z"])),
    { passed: 0, taken: 0 },
  );
  assert.deepEqual(endChoices(model, 3, ids("abc"), picks(ids("abc")), params()), {
    passed: 0,
    taken: 0,
  });
});

Deno.test("endChoices: where the output ends anyway (maxTokens, a full context) no choice is counted", () => {
  // maxTokens 3: the third token ends the output whatever it is.
  const tokens = ids("abc");
  const winners = [...ids("ab"), EOS];
  assert.deepEqual(endChoices(model, 3, tokens, picks(winners), params([], 3)), {
    passed: 0,
    taken: 0,
  });
  // Context 64 with a 61-token prompt: the third output token fills it.
  assert.deepEqual(endChoices(model, 61, tokens, picks(winners), params()), {
    passed: 0,
    taken: 0,
  });
  // One position earlier, both limits leave room: counted.
  assert.deepEqual(endChoices(model, 60, tokens, picks(winners), params([], 4)), {
    passed: 1,
    taken: 0,
  });
});

Deno.test("endChoices: a multi-byte character the stop string sits in is decoded as generation does", () => {
  // "é" is two bytes; the stop "é" completes only with the second. The validator's pick of the
  // second byte ends; the worker's "x" does not.
  const e = ids("é");
  const tokens = [...ids("a"), e[0], "x".charCodeAt(0)];
  const winners = [...ids("a"), e[0], e[1]];
  assert.deepEqual(endChoices(model, 3, tokens, picks(winners), params(["é"])), {
    passed: 1,
    taken: 0,
  });
});

Deno.test("endChoices: a token that is the pick on the fp16-rounded logits counts nothing (an honest fp16 runtime follows it)", () => {
  const tokens = ids("abcd");
  // Position 1: as computed the validator picks EOS; rounded to fp16 (a tie the rule breaks by
  // the lower id) it picks the worker's "b".
  const winners = tokens.map((t) => [t]);
  winners[1] = [EOS, tokens[1]];
  assert.deepEqual(endChoices(model, 3, tokens, winners, params()), { passed: 0, taken: 0 });
  // A position the validator could not pick at (a row with no finite logit) counts nothing.
  winners[1] = [];
  assert.deepEqual(endChoices(model, 3, tokens, winners, params()), { passed: 0, taken: 0 });
});

Deno.test("endChoices: a stop string of several tokens: declining a pick that would start or extend it is passed, the reverse taken", () => {
  // Stop "##": the validator's pick "#" starts it, the worker's "x" does not.
  assert.deepEqual(endChoices(model, 3, ids("abx"), picks(ids("ab#")), params(["##"])), {
    passed: 1,
    taken: 0,
  });
  assert.deepEqual(endChoices(model, 3, ids("ab#"), picks(ids("abx")), params(["##"], 4)), {
    passed: 0,
    taken: 1,
  });
  // Both picks leave the text as far from every stop: nothing.
  assert.deepEqual(endChoices(model, 3, ids("abx"), picks(ids("aby")), params(["##"])), {
    passed: 0,
    taken: 0,
  });
});

Deno.test("endChoices: a stop string of one two-byte character: declining its first byte is passed, the reverse taken", () => {
  // "é" is C3 A9. The stream decoder emits nothing for C3 alone, yet C3 is half of the stop.
  const [lead, trail] = ids("é");
  const e = "e".charCodeAt(0);
  assert.deepEqual(
    endChoices(
      model,
      3,
      [...ids("a"), e, ...ids("b")],
      picks([...ids("a"), lead, trail]),
      params(["é"]),
    ),
    { passed: 1, taken: 0 },
  );
  assert.deepEqual(
    endChoices(model, 3, [...ids("a"), lead, trail], picks([...ids("a"), e, trail]), params(["é"])),
    { passed: 0, taken: 1 },
  );
});

Deno.test("endChoices: a CJK stop string of 3-byte characters is measured byte by byte", () => {
  // "世界" is E4 B8 96 E7 95 8C: each byte the validator would add takes the text closer.
  const stop = ids("世界");
  const x = "x".charCodeAt(0);
  for (let k = 0; k < stop.length; k++) {
    const before = [...ids("a"), ...stop.slice(0, k)];
    assert.deepEqual(
      endChoices(model, 3, [...before, x], picks([...before, stop[k]]), params(["世界"])),
      { passed: 1, taken: 0 },
      `declining byte ${k}`,
    );
    assert.deepEqual(
      endChoices(model, 3, [...before, stop[k]], picks([...before, x]), params(["世界"])),
      { passed: 0, taken: 1 },
      `taking byte ${k}`,
    );
  }
  // Two continuations that leave the text as far from the stop (after its first byte, a
  // non-matching second byte either way) count nothing.
  const lead = [...ids("a"), stop[0]];
  assert.deepEqual(
    endChoices(model, 3, [...lead, x], picks([...lead, "y".charCodeAt(0)]), params(["世界"])),
    { passed: 0, taken: 0 },
  );
});

Deno.test("endChoices: a stop's lead byte after an unfinished character is still progress", () => {
  // E2 starts a 3-byte character that C3 breaks off: the decoder emits U+FFFD for E2 and holds
  // C3, the first byte of the stop "é".
  const [lead] = ids("é");
  const tokens = [...ids("a"), 0xe2, "e".charCodeAt(0)];
  const winners = [...ids("a"), 0xe2, lead];
  assert.deepEqual(endChoices(model, 3, tokens, picks(winners), params(["é"])), {
    passed: 1,
    taken: 0,
  });
});

Deno.test("endChoices: a tokenizer without bytesOf is measured on decoded text, as before", () => {
  const tokenizer = {
    encode: (text: string) => model.tokenizer.encode(text),
    streamDecoder: () => model.tokenizer.streamDecoder(),
  };
  const textOnly = { ...model, tokenizer };
  // ASCII stops are counted as with bytes; the first byte of "é" is invisible in decoded text.
  assert.deepEqual(endChoices(textOnly, 3, ids("abx"), picks(ids("ab#")), params(["##"])), {
    passed: 1,
    taken: 0,
  });
  const e = "e".charCodeAt(0);
  assert.deepEqual(
    endChoices(textOnly, 3, [...ids("a"), e], picks([...ids("a"), ids("é")[0]]), params(["é"])),
    { passed: 0, taken: 0 },
  );
});

Deno.test("endChoices: byte-fallback tokens of a SentencePiece-style vocabulary count toward a non-ASCII stop", () => {
  const tokenizer = createTokenizer(byteFallbackTokenizerJson(), {}, 2);
  const sp = { ...model, info: { ...model.info, eosTokenId: 2 }, tokenizer };
  const [a, lead, trail] = tokenizer.encode("aé");
  assert.deepEqual([...tokenizer.bytesOf(lead), ...tokenizer.bytesOf(trail)], ids("é"));
  const x = tokenizer.encode("x")[0];
  assert.deepEqual(endChoices(sp, 3, [a, x], picks([a, lead]), params(["é"])), {
    passed: 1,
    taken: 0,
  });
  assert.deepEqual(endChoices(sp, 3, [a, lead, trail], picks([a, x, trail]), params(["é"])), {
    passed: 0,
    taken: 1,
  });
});

/**
 * A SentencePiece-style `tokenizer.json` (Llama's shape): "▁" for spaces, a few pieces, and
 * `<0xNN>` byte tokens for everything else; `</s>` (id 2) ends the text.
 */
function byteFallbackTokenizerJson(): Record<string, unknown> {
  const specials = ["<unk>", "<s>", "</s>"];
  const vocab: Record<string, number> = Object.fromEntries(specials.map((t, i) => [t, i]));
  for (let b = 0; b < 256; b++) {
    vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = specials.length + b;
  }
  for (const piece of ["▁", "a", "x", "▁a"]) vocab[piece] = Object.keys(vocab).length;
  return {
    version: "1.0",
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: "Sequence",
      normalizers: [
        { type: "Prepend", prepend: "▁" },
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
    model: {
      type: "BPE",
      unk_token: "<unk>",
      fuse_unk: true,
      byte_fallback: true,
      vocab,
      merges: ["▁ a"],
    },
  };
}
