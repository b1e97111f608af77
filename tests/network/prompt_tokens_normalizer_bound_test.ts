/**
 * A router without the model holds a worker's prompt count to the window the worker stated and,
 * alongside it, to the most an honest tokenizer can count for the prompt's bytes: NFKC at worst
 * makes 11 UTF-8 bytes of one (`NFKC_MAX_EXPANSION`, `inference/remote_port.ts`), and a tokenizer
 * counts at most a token a byte of the normalized text, and a marker (review s79 vlate F4: with a
 * window stated, the bytes bounded nothing, and a worker that stated and listed a window of 2^20
 * had 1,048,575 prompt tokens for the 1-byte prompt "a" told to its client and its receipt handed
 * to the validator). An honest NFKC tokenizer's count at that worst case is still taken.
 *
 * @module
 */
import assert from "node:assert/strict";
import { byteLevelTokenizerJson } from "../../inference/byte_tokenizer.ts";
import {
  MAX_STATED_CONTEXT_TOKENS,
  maxPromptTokens,
  NFKC_MAX_EXPANSION,
} from "../../inference/remote_port.ts";
import { HfTokenizer } from "../../inference/text_tokenizer.ts";
import type { Identity } from "../../protocols/identity.ts";
import type { InferenceEvent } from "../../protocols/inference_messages.ts";
import type { TextJob } from "../../protocols/job.ts";
import { signReceipt } from "../../protocols/receipt.ts";
import { jobFor, type TestWorker, TEXT, TOKENS } from "./_hostile_worker_fixture.ts";
import { INFO } from "./_router_fixture.ts";
import {
  endEvent,
  events,
  receiptFor,
  scriptedWorker,
  start,
  wireToken,
} from "./_scripted_worker_fixture.ts";
import { routeOnce } from "./_route_once.ts";

/** The built-in tiny model's window. */
const WINDOW = 256;

/**
 * A worker that states `window`, counts `count` prompt tokens in its start and signs that count
 * in its receipt over the whole job.
 */
function worker(window: number, count: number): Promise<TestWorker> {
  return scriptedWorker((body, _n, identity: Identity) => {
    const model = { ...INFO, contextLength: window };
    const list: InferenceEvent[] = [start(body.job, { model, promptTokens: count })];
    for (let i = 0; i < TOKENS; i++) list.push(wireToken(i));
    const { sig: _s, worker: _w, ...unsigned } = receiptFor(body.job as TextJob, identity, TEXT);
    const receipt = signReceipt({ ...unsigned, promptTokens: count }, identity);
    list.push(endEvent(body.job, TOKENS, receipt));
    return events(list);
  });
}

Deno.test("a worker that states and lists a window of 2^20 and counts 1,048,575 prompt tokens for the 1-byte prompt 'a' has its receipt withheld, and its client is told no more than NFKC could make of one byte", async () => {
  const job = { ...jobFor("liar-window"), prompt: "a" };
  const claim = MAX_STATED_CONTEXT_TOKENS - 1;
  const listed = [{ ...INFO, contextLength: MAX_STATED_CONTEXT_TOKENS }];
  const got = await routeOnce(
    "liar-window",
    await worker(MAX_STATED_CONTEXT_TOKENS, claim),
    job,
    {},
    listed,
  );
  assert.equal(got.text, TEXT);
  assert.equal(got.toValidator, 0, "the receipt reached the validator");
  assert.ok(got.avoided, "the worker was not kept off the model");
  assert.equal(got.summary.error?.code, "receipt_rejected");
  assert.match(got.summary.error?.message ?? "", new RegExp(`signs ${claim} prompt tokens`));
  // One byte, 11 at most after NFKC, and a marker: 12, scaled as the bound scales it.
  const most = maxPromptTokens(job, MAX_STATED_CONTEXT_TOKENS, MAX_STATED_CONTEXT_TOKENS);
  assert.ok(most <= NFKC_MAX_EXPANSION * 2, `${most}`);
  assert.equal(got.summary.usage.promptTokens, most);
});

Deno.test("an honest NFKC tokenizer's count at the worst expansion ('ﷺﷺ': 6 bytes, 66 tokens) inside the stated window is taken", async () => {
  const prompt = "\uFDFA\uFDFA";
  const count = new HfTokenizer({
    ...byteLevelTokenizerJson() as Record<string, unknown>,
    normalizer: { type: "NFKC" },
  }).encode(prompt).length;
  assert.equal(count, NFKC_MAX_EXPANSION * new TextEncoder().encode(prompt).length);
  const job = { ...jobFor("nfkc-worst"), prompt };
  const got = await routeOnce("nfkc-worst", await worker(WINDOW, count), job);
  assert.equal(got.text, TEXT);
  assert.deepEqual(
    {
      told: got.summary.usage.promptTokens,
      error: got.summary.error?.message,
      toValidator: got.toValidator,
      avoided: got.avoided,
    },
    { told: count, error: undefined, toValidator: 1, avoided: false },
  );
});
