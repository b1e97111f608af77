/**
 * What the dashboard page shows stays true, in chromium against an edge with scripted sources (no
 * node): "verified" only for a receipt the page checked against the job it built, and a page that
 * keeps working when the data is odd or the socket drops.
 */
import assert from "node:assert/strict";
import { type Browser, chromium, type Page, type WebSocketRoute } from "playwright-core";
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
import type { DashboardSources, TrainingView } from "../../server/dashboard_routes.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { toJsonValue } from "../../server/json_value.ts";
import { serve } from "../../server/serve.ts";
import { eventually } from "../_helpers/wait.ts";
import { CHROMIUM, QUIET_SOURCES, requireChromium } from "./_helpers.ts";

// ---- the prompt box's "verified" ----------------------------------------------------------------
//
// The dashboard's prompt box in chromium: the page says "verified" only for a receipt it checked
// against the job it built itself.
//
// - An `error` answer to something other than the prompt (a fraud proof no longer kept, clicked
//   in the activity feed) ended the running prompt on the page while the node kept running it;
//   its receipt then came with no job to check it against.
// - A `prompt_done` with no prompt of the page's running was checked with no job at all
//   (signature and output only) and shown as "receipt verified ✓": a receipt for a job the page
//   never built.

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
    "dashboard in chromium: a fraud proof no longer kept, clicked while the prompt runs, does not end the prompt; its receipt is checked against the page's job",
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
    "dashboard in chromium: a prompt_done the page ran no prompt for is not shown as a verified receipt",
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
    "dashboard in chromium: after the socket comes back, the activity feed is the node's: no storage audit twice, no receipt missed while it was down",
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

// ---- odd data and a dropped socket --------------------------------------------------------------
//
// The dashboard page in chromium against an edge with scripted sources (no node), from a security
// review on the operator's side: what the page shows must stay true and the page must keep working
// when the data is odd or the socket drops.
//
// - A non-finite loss (a diverged model's held-out loss, a local step's loss: `NaN` is `null` in
//   JSON) threw in the training panel, and the rest of that render (the activity feed) was never
//   drawn.
// - After the socket dropped and came back, a job that ended meanwhile stayed on the page as live
//   for good (its `job_ended` was never heard, and the snapshots' `live` list was never believed),
//   and a prompt that was running when it dropped (the node cancels it when its page leaves) left
//   the prompt box "streaming…" with nothing able to run again until a reload.
//
// The socket is cut by playwright's WebSocket routing; the page reconnects on its own.

const BASE_SOURCES: DashboardSources = QUIET_SOURCES;

/** A port whose jobs stream nothing until the test ends them (or the requester cancels). */
function heldPort() {
  const jobs: { finish: () => void; cancelled: boolean }[] = [];
  const port: InferencePort = {
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve(emptyInferenceStats()),
    submit: (_job, options) => {
      const id = `job${jobs.length}`;
      const ended = Promise.withResolvers<JobSummary>();
      let controller!: ReadableStreamDefaultController<StreamedToken>;
      const tokens = new ReadableStream<StreamedToken>({ start: (c) => void (controller = c) });
      const entry = { finish: () => {}, cancelled: false };
      let over = false;
      const end = (finishReason: JobSummary["finishReason"]) => {
        if (over) return;
        over = true;
        if (finishReason === "length") controller.enqueue({ index: 0, tokenId: 97, text: "a" });
        controller.close();
        ended.resolve({
          jobId: id,
          finishReason,
          usage: { promptTokens: 1, completionTokens: finishReason === "length" ? 1 : 0 },
          timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
        } as JobSummary);
      };
      entry.finish = () => end("length");
      options?.signal?.addEventListener("abort", () => {
        entry.cancelled = true;
        end("cancelled");
      });
      jobs.push(entry);
      return Promise.resolve({
        jobId: id,
        model: MODEL,
        promptTokens: 1,
        tokens,
        done: ended.promise,
        cancel: () => end("cancelled"),
      } as unknown as InferenceHandle);
    },
  };
  return { port, jobs };
}

/** A new page whose console errors and thrown errors are collected. */
async function openPageWatchingConsole(browser: Browser) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const problems: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  return { page, problems };
}

Deno.test({
  name:
    "dashboard in chromium: a non-finite training loss (null in JSON) is shown as such, and the rest of the page is still drawn",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await requireChromium();
    const training: TrainingView = {
      coordinator: {
        round: 2,
        model: "bafkdiverged0000000000",
        initialBitsPerByte: 7.5,
        trainers: 1,
        convicted: [],
        rounds: [
          { round: 0, model: "bafkround00000000000", bitsPerByte: 6.25, accepted: 1, excluded: [] },
          {
            round: 1,
            model: "bafkdiverged0000000000",
            bitsPerByte: NaN,
            accepted: 1,
            excluded: [],
          },
        ],
      },
      trainer: { rounds: 2, challenges: 0, coordinators: 1, losses: [7.1, 6.9, Infinity] },
    };
    const activity = {
      recent: () => [{
        time: 0,
        kind: "receipt",
        subject: "ab".repeat(32),
        target: "cd".repeat(32),
        outcome: "recorded",
        detail: "1 tokens",
      }],
      subscribe: () => () => {},
      fraudProof: () => undefined,
    };
    const app = createApp({
      inference: heldPort().port,
      dashboard: {
        sources: { ...BASE_SOURCES, training: () => Promise.resolve(training), activity },
        jobs: new JobMonitor(),
        operatorToken: OPERATOR,
        tickMs: 60_000,
      },
    });
    const server = serve({ app, port: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const { page, problems } = await openPageWatchingConsole(browser);
      await page.goto(`${server.url}/`);
      // Drawn in the same render as the training panel, just before it.
      await page.locator("#ledger-summary", { hasText: /\S/ }).waitFor();
      const rows = await page.locator("#training-rounds tbody tr").allInnerTexts();
      assert.equal(rows.length, 2, "both rounds listed");
      assert.match(rows[0], /not finite/, "the diverged round's held-out loss");
      assert.match(rows[1], /6\.250/);
      assert.match(await text(page, "#training-summary"), /coordinating: round 2/);
      // The charts leave the non-finite points out: the last finite figure is the label.
      assert.match(await text(page, "#training-rounds-chart .chart-label"), /held-out 6\.3 /);
      assert.match(await text(page, "#training-steps-chart .chart-label"), /loss 6\.9 /);
      // The activity feed comes after the training panel in the same render.
      assert.equal(await page.locator('#activity li[data-kind="receipt"]').count(), 1);
      assert.deepEqual(problems, [], "no console errors");
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name:
    "dashboard in chromium: after the socket drops and comes back, a job that ended meanwhile is no longer shown live, and the prompt box that was running can run again",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await requireChromium();
    const { port, jobs: held } = heldPort();
    const monitor = new JobMonitor();
    let files = 1;
    const app = createApp({
      inference: monitor.wrap(port),
      dashboard: {
        sources: {
          ...BASE_SOURCES,
          storage: () =>
            Promise.resolve({
              capacity: { usedBytes: 0, quotaBytes: null, replicaCount: 0 },
              files,
              chunks: 0,
              storagePeers: 0,
              peerBytes: 0,
            }),
        },
        jobs: monitor,
        operatorToken: OPERATOR,
        tickMs: 60_000,
      },
    });
    const server = serve({ app, port: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const { page, problems } = await openPageWatchingConsole(browser);
      let socket: WebSocketRoute | undefined;
      await page.routeWebSocket(/\/dashboard\/live$/, (route) => {
        socket = route;
        route.connectToServer();
      });
      await page.goto(`${server.url}/`);
      await page.locator("#storage-summary", { hasText: "1 files" }).waitFor();
      await page.fill("#token", OPERATOR);
      await page.click("#auth-form button");
      await page.locator("#access", { hasText: "operator" }).waitFor();

      // The page's own prompt, held running; and another client's job, live.
      await page.click("#run");
      await eventually(() => held.length === 1 || undefined, "the page's prompt at the port");
      const other = await monitor.wrap(port).submit({} as TextJob);
      await page.locator('#jobs .job[data-job="job1"][data-state="queued"]').waitFor();

      // The socket drops; meanwhile the other job ends.
      await socket!.close();
      await page.locator("#connection", { hasText: "offline" }).waitFor();
      held[1].finish();
      for await (const _ of other.tokens) { /* read it to its end */ }
      await other.done;
      files = 2;

      // Back: the first snapshot of the new socket is drawn (its storage line says 2 files).
      await page.locator("#storage-summary", { hasText: "2 files" }).waitFor();
      assert.equal(
        await page.locator('#jobs .job[data-job="job1"]').getAttribute("data-state"),
        "length",
        "the ended job, as ended",
      );
      // The prompt that ran when the socket dropped is over: the node cancelled it.
      await eventually(() => held[0].cancelled || undefined, "the node to cancel the prompt");
      assert.doesNotMatch(await text(page, "#receipt-status"), /streaming/);
      await page.locator("#access", { hasText: "operator" }).waitFor();
      await page.click("#run");
      await eventually(() => held.length === 3 || undefined, "a new prompt from the page");
      held[2].finish();
      assert.deepEqual(problems, [], "no console errors");
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name:
    "dashboard in chromium: a validator that stops answering is not shown as a node without one, and its last ledger figures are marked as such",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await requireChromium();
    let answering = true;
    const app = createApp({
      inference: heldPort().port,
      dashboard: {
        sources: {
          ...BASE_SOURCES,
          validator: () =>
            answering
              ? Promise.resolve({
                stats: {
                  received: 4,
                  fromPeers: 2,
                  own: 2,
                  // A fourth receipt handed in was a copy (from a peer) of one held: 3 jobs.
                  copies: 1,
                  copiesFromPeers: 1,
                  challenged: 0,
                  verdicts: { valid: 0, fraud: 0, invalid: 0, inconclusive: 0 },
                  peerVerdicts: 0,
                  slashes: 0,
                  openChallenges: 0,
                },
                account: { balance: 5, stake: 1000, locked: 0 },
                // As the node's source counts them (`actors/recorded_receipts.ts`): 3 jobs.
                receipts: { recorded: 3, fromPeers: 1, own: 2, copies: 1, refused: 0 },
              })
              // An ask that timed out: the actor is wedged or restarting.
              : Promise.reject(new Error("ask timed out")),
        },
        jobs: new JobMonitor(),
        operatorToken: OPERATOR,
        tickMs: 20,
      },
    });
    const server = serve({ app, port: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const { page, problems } = await openPageWatchingConsole(browser);
      await page.goto(`${server.url}/`);
      await page.locator("#validator-summary", { hasText: "3 receipts" }).waitFor();
      assert.match(
        await text(page, "#validator-summary"),
        /^3 receipts \(1 from peers, 2 own, 1 copy\)/,
      );
      assert.match(await text(page, "#ledger-summary"), /^credit 5 · stake 1000/);
      answering = false;
      await page.locator("#validator-summary", { hasText: /^(?!3 receipts)/ }).waitFor();
      const summary = await text(page, "#validator-summary");
      assert.doesNotMatch(summary, /no-validator|keeps no ledger/, summary);
      assert.match(summary, /not answering/);
      assert.match(await text(page, "#ledger-summary"), /credit 5 .*last known/);
      assert.deepEqual(problems, [], "no console errors");
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
