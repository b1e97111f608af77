/**
 * The dashboard in chromium, on a receipt that bills more tokens than the page received (review
 * s82 dash F4): the job streams one token, "abc"; the worker's receipt is signed over "abc" but
 * counts 3 tokens (two more that decode to no text would give the same text). The page checked
 * the count against `maxTokens` only and said "verified"; it says the counts now, and does not
 * call the receipt verified.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type ServedModelInfo,
} from "../../inference/inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { inputHashOf, signReceipt, textOutputHash } from "../../protocols/receipt.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { toJsonValue } from "../../server/json_value.ts";
import { inChromium, QUIET_SOURCES } from "./_helpers.ts";

const OPERATOR = "op-token-token-count-0123456789";
const MODEL: ServedModelInfo = { cid: "bafkmodel", name: "counted", kind: "text" };

/** A port whose job streams one token, "abc", and ends with a receipt counting `billed`. */
function billingPort(billed: number): InferencePort {
  return {
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve(emptyInferenceStats()),
    submit: (submitted) => {
      const job = submitted as TextJob;
      const receipt = signReceipt({
        v: 1,
        kind: "text",
        jobId: jobId(job),
        model: job.model,
        inputHash: inputHashOf(job),
        params: job.params,
        outputHash: textOutputHash("abc"),
        commitment: { scheme: "vf-fp1", root: "ab".repeat(32), chunkSize: 16, tokenBytes: 4 },
        tokenCount: billed,
        timings: { startedAt: 1, firstTokenMs: 1, totalMs: 2 },
      }, Identity.generate());
      return Promise.resolve({
        jobId: jobId(job),
        model: MODEL,
        promptTokens: 1,
        tokens: ReadableStream.from([{ index: 0, tokenId: 97, text: "abc" }]),
        done: Promise.resolve({
          jobId: jobId(job),
          finishReason: "stop",
          usage: { promptTokens: 1, completionTokens: billed },
          timings: { queueMs: 0, ttftMs: 1, totalMs: 2, tokensPerS: 0 },
          receipt: toJsonValue(receipt),
        }),
        cancel: () => {},
      } as InferenceHandle);
    },
  };
}

/** What the page says of its prompt's receipt when the job's receipt counts `billed` tokens. */
async function statusFor(billed: number): Promise<{ text: string; verified: string | null }> {
  const monitor = new JobMonitor();
  let seen = { text: "", verified: null as string | null };
  await inChromium({
    inference: monitor.wrap(billingPort(billed)),
    dashboard: { sources: QUIET_SOURCES, jobs: monitor, operatorToken: OPERATOR, tickMs: 60_000 },
  }, async (server, browser) => {
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.fill("#token", OPERATOR);
    await page.click("#auth-form button");
    await page.locator("#access", { hasText: "operator" }).waitFor();
    await page.fill("#max-tokens", "8");
    await page.click("#run");
    const status = page.locator("#receipt-status", { hasText: /verified/ });
    await status.waitFor();
    seen = { text: await status.innerText(), verified: await status.getAttribute("data-verified") };
  });
  return seen;
}

Deno.test({
  name:
    "dashboard in chromium: a receipt counting 3 tokens for the 1 the page received is not shown verified, and the page says both counts; one counting 1 is verified",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const billed = await statusFor(3);
    assert.match(billed.text, /NOT verified/, billed.text);
    assert.match(billed.text, /the receipt claims 3 tokens, this page received 1/, billed.text);
    assert.equal(billed.verified, "false");
    const honest = await statusFor(1);
    assert.match(honest.text, /verified in this page ✓.*tokens received/, honest.text);
    assert.match(honest.text, /signed by worker key/, honest.text);
    assert.equal(honest.verified, "true");
  },
});
