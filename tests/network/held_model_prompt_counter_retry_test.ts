/**
 * A failed tokenizer read is tried again (`_held_model_prompt_counter.ts`, review s78 vfinal F2):
 * cached for good, one transient failure (EMFILE, EIO) turned the validator's intake re-count off
 * for that model until restart. The read is tried again once a back-off, timed by the injected
 * clock, has passed, and not before: a burst of asks costs one read.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  HeldModelPromptCounter,
  type HeldModels,
  TOKENIZER_RETRY_MAX_MS,
  TOKENIZER_RETRY_MIN_MS,
} from "../../network/_held_model_prompt_counter.ts";
import type { RegisteredModel } from "../../inference/model_registry.ts";
import { HfTokenizer, type TextTokenizer } from "../../inference/text_tokenizer.ts";
import { byteLevelTokenizerJson } from "../../inference/byte_tokenizer.ts";

/** The held model's window (the built-in tiny model's). */
const CONTEXT = 256;
/** The one model held. */
const MODEL: RegisteredModel = {
  cid: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
  name: "held",
  kind: "text",
  path: "/nowhere",
  sizeBytes: 1,
  contextLength: CONTEXT,
  loaded: false,
};
const HELD: HeldModels = {
  info: (cid) => cid === MODEL.cid ? MODEL : undefined,
  list: () => [MODEL],
};

/** A loader that fails its first `failures` reads, then reads the byte-level tokenizer. */
function flakyLoader(failures: number) {
  let calls = 0;
  return {
    calls: () => calls,
    load: (): Promise<TextTokenizer> => {
      calls++;
      if (calls <= failures) return Promise.reject(new Error("EMFILE: too many open files"));
      return Promise.resolve(new HfTokenizer(byteLevelTokenizerJson()));
    },
  };
}

Deno.test("a tokenizer read that failed once is read again after its back-off, not before: the validator's count comes back", async () => {
  const clock = { t: 0 };
  const loader = flakyLoader(1);
  const counter = new HeldModelPromptCounter(HELD, loader.load, { now: () => clock.t });
  assert.equal(await counter.promptCounting(MODEL.cid), undefined);
  clock.t += TOKENIZER_RETRY_MIN_MS - 1;
  for (let i = 0; i < 5; i++) assert.equal(await counter.promptCounting(MODEL.cid), undefined);
  assert.equal(loader.calls(), 1, "asked again inside the back-off");
  clock.t += 1;
  const counting = await counter.promptCounting(MODEL.cid);
  assert.equal(counting?.info.contextLength, CONTEXT);
  assert.equal(counting?.tokenizer.encode("hi").length, 2);
  assert.equal(loader.calls(), 2);
});

Deno.test("a tokenizer read that keeps failing waits twice as long each time, up to the cap", async () => {
  const clock = { t: 0 };
  const loader = flakyLoader(Infinity);
  const counter = new HeldModelPromptCounter(HELD, loader.load, { now: () => clock.t });
  const waits: number[] = [];
  await counter.promptCounting(MODEL.cid);
  let last = clock.t;
  // Bounded: 8 reads span 183 s of the clock; a counter that never reads again must end too.
  const endAt = 200_000;
  while (waits.length < 8 && clock.t < endAt) {
    const before = loader.calls();
    clock.t += 500;
    await counter.promptCounting(MODEL.cid);
    if (loader.calls() > before) {
      waits.push(clock.t - last);
      last = clock.t;
    }
  }
  assert.deepEqual(waits, [1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000]);
  assert.equal(TOKENIZER_RETRY_MIN_MS, waits[0]);
  assert.equal(TOKENIZER_RETRY_MAX_MS, waits.at(-1));
});
