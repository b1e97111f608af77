/**
 * Review (s45) of the dashboard's prompt box in chromium: the page says "verified" only for a
 * receipt it checked against the job it built itself.
 *
 * - An `error` answer to something other than the prompt (a fraud proof no longer kept, clicked
 *   in the activity feed) ended the running prompt on the page while the node kept running it;
 *   its receipt then came with no job to check it against.
 * - A `prompt_done` with no prompt of the page's running was checked with no job at all
 *   (signature and output only) and shown as "receipt verified ✓": a receipt for a job the page
 *   never built.
 */
import assert from "node:assert/strict";
import { type Browser, chromium, type Page } from "playwright-core";
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
import { inputHashOf, signReceipt, textOutputHash } from "../../protocols/receipt.ts";
import { createApp } from "../../server/app.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { toJsonValue } from "../../server/json_value.ts";
import { serve } from "../../server/serve.ts";
import { eventually } from "../_helpers/wait.ts";
import { CHROMIUM, QUIET_SOURCES, requireChromium } from "./_helpers.ts";

const OPERATOR = "op-token-0123456789abcdef";
const MODEL: ServedModelInfo = { cid: "bafkmodel", name: "held", kind: "text" };
const WORKER = Identity.generate();

/** A genuine receipt by WORKER for `job` and `output`. */
function receiptFor(job: TextJob, output: string, tokens: number) {
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
    timings: { startedAt: 1, firstTokenMs: 1, totalMs: 2 },
  }, WORKER);
}

/** A port whose jobs stream "abc" and sign a genuine receipt when the test says so. */
function signingPort() {
  const finish: (() => void)[] = [];
  const port: InferencePort = {
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve(emptyInferenceStats()),
    submit: (job, options) => {
      const text = job as TextJob;
      const ended = Promise.withResolvers<JobSummary>();
      let controller!: ReadableStreamDefaultController<StreamedToken>;
      const tokens = new ReadableStream<StreamedToken>({ start: (c) => void (controller = c) });
      let over = false;
      const end = (receipt: boolean) => {
        if (over) return;
        over = true;
        if (receipt) {
          ["a", "b", "c"].forEach((t, index) =>
            controller.enqueue({ index, tokenId: 97 + index, text: t })
          );
        }
        controller.close();
        ended.resolve({
          jobId: jobId(text),
          finishReason: receipt ? "length" : "cancelled",
          usage: { promptTokens: 1, completionTokens: receipt ? 3 : 0 },
          timings: { queueMs: 0, ttftMs: 1, totalMs: 2, tokensPerS: 0 },
          ...(receipt ? { receipt: receiptFor(text, "abc", 3) } : {}),
        } as unknown as JobSummary);
      };
      finish.push(() => end(true));
      options?.signal?.addEventListener("abort", () => end(false));
      return Promise.resolve({
        jobId: jobId(text),
        model: MODEL,
        promptTokens: 1,
        tokens,
        done: ended.promise,
        cancel: () => end(false),
      } as unknown as InferenceHandle);
    },
  };
  return { port, finish };
}

const SOURCES: DashboardSources = {
  ...QUIET_SOURCES,
  // A verdict whose fraud proof the node no longer keeps (it keeps the last 32).
  activity: {
    recent: () => [{
      time: 0,
      kind: "verdict",
      subject: "ab".repeat(32),
      target: "cd".repeat(32),
      outcome: "fraud",
      detail: "an old one",
      fraudProof: "ef".repeat(32),
    }],
    subscribe: () => () => {},
    fraudProof: () => undefined,
  },
};

async function openPage(browser: Browser) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  return { page, problems };
}

function text(page: Page, selector: string): Promise<string> {
  return page.evaluate(`document.querySelector(${JSON.stringify(selector)}).textContent`);
}

Deno.test({
  name:
    "review s45: dashboard in chromium: a fraud proof no longer kept, clicked while the prompt runs, does not end the prompt; its receipt is checked against the page's job",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await requireChromium();
    const { port, finish } = signingPort();
    const monitor = new JobMonitor();
    const app = createApp({
      inference: monitor.wrap(port),
      dashboard: { sources: SOURCES, jobs: monitor, operatorToken: OPERATOR, tickMs: 60_000 },
    });
    const server = serve({ app, port: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const { page, problems } = await openPage(browser);
      await page.goto(`${server.url}/`);
      await page.fill("#token", OPERATOR);
      await page.click("#auth-form button");
      await page.locator("#access", { hasText: "operator" }).waitFor();
      await page.locator('#activity li[data-kind="verdict"] button').waitFor();
      await page.click("#run");
      await eventually(() => finish.length === 1 || undefined, "the page's prompt at the port");
      await page.locator("#prompt-hint", { hasText: "job " }).waitFor();

      // The old fraud proof: the node answers not_found.
      await page.click('#activity li[data-kind="verdict"] button');
      // Said somewhere: in the prompt's status (as the page did) or beside the prompt box.
      await page.locator("#prompt-hint, #receipt-status", { hasText: /no such fraud proof/ })
        .first().waitFor();
      assert.equal(await text(page, "#receipt-status"), "streaming…", "the prompt still runs");
      assert.equal(await page.locator("#cancel").isDisabled(), false, "and can be cancelled");

      finish[0]();
      await page.locator("#receipt-status", { hasText: /verified|ended/ }).waitFor();
      const status = await text(page, "#receipt-status");
      assert.match(status, /verified in this page ✓.*job id.*params.*output/, status);
      assert.deepEqual(problems, [], "no page errors");
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name:
    "review s45: dashboard in chromium: a prompt_done the page ran no prompt for is not shown as a verified receipt",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await requireChromium();
    const app = createApp({
      inference: signingPort().port,
      dashboard: { sources: SOURCES, jobs: new JobMonitor(), operatorToken: OPERATOR },
    });
    const server = serve({ app, port: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const { page, problems } = await openPage(browser);
      // The socket is scripted: a node that says a job of its choosing is the page's.
      const other: TextJob = {
        kind: "text",
        model: MODEL.cid,
        prompt: "a prompt the operator never typed",
        params: { maxTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stop: [] },
        nonce: "00".repeat(16),
      } as unknown as TextJob;
      await page.routeWebSocket(/\/dashboard\/live$/, (ws) => {
        ws.send(JSON.stringify({ type: "hello", node: SOURCES.node, access: "read" }));
        ws.send(JSON.stringify({ type: "prompt_token", index: 0, text: "abc" }));
        ws.send(JSON.stringify({
          type: "prompt_done",
          summary: toJsonValue({
            jobId: jobId(other),
            finishReason: "length",
            usage: { promptTokens: 1, completionTokens: 3 },
            timings: { queueMs: 0, ttftMs: 1, totalMs: 2, tokensPerS: 0 },
            receipt: receiptFor(other, "abc", 3),
          }),
        }));
      });
      await page.goto(`${server.url}/`);
      await page.locator("#access", { hasText: "read-only" }).waitFor();
      await page.locator("#receipt-status", { hasText: /verified|not checked/ }).waitFor();
      const verified = await page.locator("#receipt-status").getAttribute("data-verified");
      const status = await text(page, "#receipt-status");
      assert.notEqual(verified, "true", status);
      assert.doesNotMatch(status, /verified in this page/, status);
      assert.deepEqual(problems, [], "no page errors");
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name:
    "review s45: dashboard in chromium: after the socket comes back, the activity feed is the node's: no storage audit twice, no receipt missed while it was down",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await requireChromium();
    const item = (kind: string, subject: string) => ({
      time: 0,
      kind,
      subject: subject.repeat(32),
      target: "cd".repeat(32),
      outcome: kind === "audit" ? "valid" : "recorded",
      detail: "1 tokens",
    });
    // Newest first, as NodeActivity keeps them. A storage node's validator: audits only, first.
    let recent: unknown[] = [item("audit", "a1")];
    let files = 1;
    const app = createApp({
      inference: signingPort().port,
      dashboard: {
        sources: {
          ...SOURCES,
          storage: () =>
            Promise.resolve({
              capacity: { usedBytes: 0, quotaBytes: null, replicaCount: 0 },
              files,
              chunks: 0,
              storagePeers: 0,
              peerBytes: 0,
            }),
          activity: {
            recent: () => recent,
            subscribe: () => () => {},
            fraudProof: () => undefined,
          },
        },
        jobs: new JobMonitor(),
        operatorToken: OPERATOR,
        tickMs: 60_000,
      },
    });
    const server = serve({ app, port: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const { page, problems } = await openPage(browser);
      let socket: import("playwright-core").WebSocketRoute | undefined;
      await page.routeWebSocket(/\/dashboard\/live$/, (route) => {
        socket = route;
        route.connectToServer();
      });
      const reconnect = async () => {
        await socket!.close();
        await page.locator("#connection", { hasText: "offline" }).waitFor();
        files++;
        await page.locator("#storage-summary", { hasText: `${files} files` }).waitFor();
      };
      await page.goto(`${server.url}/`);
      await page.locator("#storage-summary", { hasText: "1 files" }).waitFor();
      assert.equal(await page.locator("#audits li").count(), 1);

      await reconnect();
      assert.equal(await page.locator("#audits li").count(), 1, "the one audit, once");

      // While the socket is down, a receipt comes (heard by no page).
      recent = [item("receipt", "r1"), item("audit", "a1")];
      await reconnect();
      assert.equal(await page.locator("#audits li").count(), 1, "the one audit, once");
      assert.equal(await page.locator('#activity li[data-kind="receipt"]').count(), 1);
      recent = [item("receipt", "r2"), item("receipt", "r1"), item("audit", "a1")];
      await reconnect();
      assert.equal(
        await page.locator('#activity li[data-kind="receipt"]').count(),
        2,
        "the receipt that came while the socket was down is shown",
      );
      assert.deepEqual(problems, [], "no page errors");
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
