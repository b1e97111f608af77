/**
 * `endChoices`: on which side of an end a worker's token fell where it differs from the
 * validator's own pick. Token ids are bytes (the built-in byte tokenizer); EOS is its own id.
 */
import assert from "node:assert/strict";
import { endChoices } from "../../proof/end_choices.ts";
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
