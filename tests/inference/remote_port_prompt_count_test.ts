/**
 * The prompt-token count a forwarding node tells its client is the count its worker's receipt
 * signs, which is what a ledger pays the worker for (review s79 F1): a tokenizer whose normalizer
 * lengthens text (NFKC counts the 6-byte "㌀㌀" as 24 tokens) honestly counts more than the
 * prompt's bytes, and a byte bound told the client 7 while the receipt billed 24. Only the model's
 * window the worker stated (capped) still bounds the count: generation refuses a prompt that fills
 * it; a worker that states none is held to the prompt's bytes (review s79 vmoney F3).
 *
 * @module
 */
import assert from "node:assert/strict";
import { jobId, type TextJob } from "../../protocols/job.ts";
import type { Identity } from "../../protocols/identity.ts";
import { inputHashOf, signReceipt, textOutputHash } from "../../protocols/receipt.ts";
import { jobFor, TEXT, TOKENS } from "../network/_hostile_worker_fixture.ts";
import {
  endEvent,
  events,
  router,
  run,
  scriptedWorker,
  start,
  wireToken,
} from "../network/_scripted_worker_fixture.ts";
import { INFO } from "../network/_router_fixture.ts";
import { HfTokenizer } from "../../inference/text_tokenizer.ts";
import { byteLevelTokenizerJson } from "../../inference/byte_tokenizer.ts";
import { promptTokenBound } from "../../protocols/prompt_token_bound.ts";

/** Six UTF-8 bytes that NFKC turns into "アパートアパート". */
const NFKC_PROMPT = "㌀㌀";
/** What a byte-level tokenizer with an NFKC normalizer (an exported model's may have one) counts. */
const NFKC_COUNT = new HfTokenizer({
  ...byteLevelTokenizerJson() as Record<string, unknown>,
  normalizer: { type: "NFKC" },
}).encode(NFKC_PROMPT).length;

/** `identity`'s receipt for `job`'s whole six-token output, signing `promptTokens`. */
function receiptCounting(job: TextJob, identity: Identity, promptTokens: number) {
  return signReceipt({
    v: 1,
    kind: "text",
    jobId: jobId(job),
    model: job.model,
    inputHash: inputHashOf(job),
    params: job.params,
    outputHash: textOutputHash(TEXT),
    commitment: { scheme: "vf-fp1", root: "0".repeat(64), chunkSize: 16, tokenBytes: 4 },
    tokenCount: TOKENS,
    promptTokens,
    timings: { startedAt: 0, firstTokenMs: 0, totalMs: 0 },
  }, identity);
}

Deno.test("a forwarding node tells its client the prompt count its worker's receipt signs, past the prompt's bytes (an NFKC tokenizer's 24 for 6 bytes)", async () => {
  assert.ok(NFKC_COUNT > promptTokenBound(NFKC_PROMPT, 0), `${NFKC_COUNT} tokens`);
  const w = await scriptedWorker((body, _n, identity) =>
    events([
      // A window stated, as every current worker states one: with none, the prompt's bytes
      // bound the count (review s79 vmoney F3).
      start(body.job, { promptTokens: NFKC_COUNT, model: { ...INFO, contextLength: 256 } }),
      ...Array.from({ length: TOKENS }, (_, i) => wireToken(i)),
      endEvent(body.job, TOKENS, receiptCounting(body.job, identity, NFKC_COUNT), NFKC_COUNT),
    ])
  );
  const r = await router([w.toWorker]);
  try {
    const job = { ...jobFor("nfkc"), prompt: NFKC_PROMPT };
    const got = await run(r.port, job);
    assert.equal(got.text, TEXT);
    const receipt = got.summary.receipt as { promptTokens?: number } | undefined;
    assert.equal(receipt?.promptTokens, NFKC_COUNT, "the receipt reaches the client");
    assert.equal(got.handle.promptTokens, NFKC_COUNT);
    assert.equal(got.summary.usage.promptTokens, NFKC_COUNT);
  } finally {
    await w.close();
    await r.system.shutdown();
  }
});

Deno.test("a worker's prompt count is still held to the model's window it stated, less one: a prompt that fills it is refused by generation", async () => {
  const window = 256;
  const w = await scriptedWorker((body) =>
    events([
      start(body.job, { promptTokens: 1_000_000, model: { ...INFO, contextLength: window } }),
      ...Array.from({ length: TOKENS }, (_, i) => wireToken(i)),
      endEvent(body.job, TOKENS, undefined, 1_000_000),
    ])
  );
  const r = await router([w.toWorker]);
  try {
    // A prompt whose bytes allow more than the window: only the window bounds the count here.
    const got = await run(r.port, { ...jobFor("window"), prompt: "x".repeat(window) });
    assert.equal(got.handle.promptTokens, window - 1);
    assert.equal(got.summary.usage.promptTokens, window - 1);
  } finally {
    await w.close();
    await r.system.shutdown();
  }
});
