/**
 * The dashboard's in-page receipt check (`server/dashboard/receipt_check.js`) in chromium on a
 * receipt signed `end: "cancelled"` (review s77 F1: a job its requester cancels after k tokens
 * ends in a receipt over them). The check took only the exact field list of a receipt before the
 * field, so an honest cancelled receipt showed as badly formatted; it takes `end` now, and only
 * as the node's schema does (`protocols/receipt.ts`): `cancelled`, over at least one token.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { inputHashOf, type Receipt, signReceipt, textOutputHash } from "../../protocols/receipt.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { toJsonValue } from "../../server/json_value.ts";
import { eventually } from "../_helpers/wait.ts";
import { inChromium, QUIET_SOURCES } from "./_helpers.ts";

const OPERATOR = "op-token-cancelled-receipt-0123";
const MODEL: ServedModelInfo = { cid: "bafkmodel", name: "held", kind: "text" };
const WORKER = Identity.generate();
/** What the job streams before the operator cancels it: one token per letter. */
const STREAMED = ["a", "b", "c"];

/** A receipt by WORKER for `job` over `output`, `tokens` tokens, ended as `end` says. */
function receiptFor(job: TextJob, output: string, tokens: number, end?: unknown): Receipt {
  return signReceipt({
    v: 1,
    kind: "text",
    jobId: jobId(job),
    model: job.model,
    inputHash: inputHashOf(job),
    params: job.params,
    outputHash: textOutputHash(output),
    commitment: { scheme: "vf-fp1", root: "ab".repeat(32), chunkSize: 16, tokenBytes: 4 },
    tokenCount: tokens,
    ...(end === undefined ? {} : { end: end as "cancelled" }),
    timings: { startedAt: 1, firstTokenMs: 1, totalMs: 2 },
  }, WORKER);
}

/**
 * A port whose job streams {@link STREAMED} and waits; cancelled, it ends `cancelled` with the
 * worker's receipt over what it streamed, signed `end: "cancelled"`. The jobs it got, for the test.
 */
function cancellingPort(): { port: InferencePort; jobs: TextJob[] } {
  const jobs: TextJob[] = [];
  const port: InferencePort = {
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve(emptyInferenceStats()),
    submit: (submitted, options) => {
      const job = submitted as TextJob;
      jobs.push(job);
      const ended = Promise.withResolvers<JobSummary>();
      let controller!: ReadableStreamDefaultController<StreamedToken>;
      const tokens = new ReadableStream<StreamedToken>({
        start: (c) => {
          controller = c;
          STREAMED.forEach((text, index) => c.enqueue({ index, tokenId: 97 + index, text }));
        },
      });
      let over = false;
      const cancel = () => {
        if (over) return;
        over = true;
        try {
          controller.close();
        } catch {
          // cancelled by its reader: closed already
        }
        ended.resolve({
          jobId: jobId(job),
          finishReason: "cancelled",
          usage: { promptTokens: 1, completionTokens: STREAMED.length },
          timings: { queueMs: 0, ttftMs: 1, totalMs: 2, tokensPerS: 0 },
          receipt: receiptFor(job, STREAMED.join(""), STREAMED.length, "cancelled"),
        });
      };
      options?.signal?.addEventListener("abort", cancel);
      return Promise.resolve({
        jobId: jobId(job),
        model: MODEL,
        promptTokens: 1,
        tokens: new ReadableStream<StreamedToken>({
          pull: async (c) => {
            const reader = tokens.getReader();
            const next = await reader.read();
            reader.releaseLock();
            if (next.done) c.close();
            else c.enqueue(next.value);
          },
          cancel,
        }, { highWaterMark: 0 }),
        done: ended.promise,
        cancel,
      } as InferenceHandle);
    },
  };
  return { port, jobs };
}

function text(page: Page, selector: string): Promise<string> {
  return page.evaluate(`document.querySelector(${JSON.stringify(selector)}).textContent`);
}

async function operatorPage(browser: Browser, url: string) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  await page.goto(`${url}/`);
  await page.fill("#token", OPERATOR);
  await page.click("#auth-form button");
  await page.locator("#access", { hasText: "operator" }).waitFor();
  return { page, problems };
}

Deno.test({
  name:
    "dashboard in chromium: a prompt the operator cancels after 3 tokens ends in the worker's receipt signed `cancelled` over them, and the page verifies it (its format included)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { port, jobs } = cancellingPort();
    const monitor = new JobMonitor();
    await inChromium({
      inference: monitor.wrap(port),
      dashboard: { sources: QUIET_SOURCES, jobs: monitor, operatorToken: OPERATOR, tickMs: 60_000 },
    }, async (server, browser) => {
      const { page, problems } = await operatorPage(browser, server.url);
      await page.click("#run");
      await eventually(() => jobs.length === 1 || undefined, "the page's prompt at the port");
      await page.locator("#prompt-output", { hasText: STREAMED.join("") }).waitFor();
      await page.click("#cancel");
      await page.locator("#receipt-status", { hasText: /verified|ended/ }).waitFor();
      const status = await text(page, "#receipt-status");
      assert.match(status, /verified in this page ✓.*format.*output/, status);
      assert.equal(await page.locator("#receipt-status").getAttribute("data-verified"), "true");
      assert.deepEqual(problems, [], "no page errors");
    });
  },
});

Deno.test({
  name:
    "dashboard in chromium: the receipt check takes `end` only as the node does — `cancelled` over at least one token; another value, or a cancel over none, is badly formatted",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await inChromium({
      inference: cancellingPort().port,
      dashboard: { sources: QUIET_SOURCES, jobs: new JobMonitor(), operatorToken: OPERATOR },
    }, async (server, browser) => {
      const page = await browser.newPage();
      await page.goto(`${server.url}/`);
      const job: TextJob = {
        kind: "text",
        model: MODEL.cid,
        prompt: "checked in the page",
        params: { maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
        nonce: "00".repeat(16),
      };
      /** The page's check of `receipt` against `job` and `output`: which check failed, if any. */
      const check = (receipt: Receipt, output: string): Promise<string> =>
        page.evaluate(`(async () => {
          const m = await import("/dashboard/receipt_check.js");
          const result = await m.checkReceipt(${JSON.stringify(toJsonValue(receipt))}, {
            job: ${JSON.stringify(job)},
            output: ${JSON.stringify(output)},
          });
          return result.ok ? "ok" : result.reason;
        })()`);
      assert.equal(await check(receiptFor(job, "ab", 2, "cancelled"), "ab"), "ok");
      assert.equal(await check(receiptFor(job, "ab", 2), "ab"), "ok", "a receipt without end");
      assert.equal(await check(receiptFor(job, "ab", 2, "finished"), "ab"), "format");
      assert.equal(await check(receiptFor(job, "", 0, "cancelled"), ""), "format");
      assert.equal(await check(receiptFor(job, "ab", 2, null), "ab"), "format");
    });
  },
});
