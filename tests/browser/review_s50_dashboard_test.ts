/**
 * Review (s50) of the dashboard page in chromium against what a peer sends it: a job this node
 * routes streams its worker's tokens to every open page (`job_token`), each up to the
 * protocol's longest token text (1,024 characters, `protocols/inference_messages.ts`).
 *
 * - The node keeps the last 4,096 characters of a live job's output (`MAX_KEPT_TEXT` in
 *   `server/job_monitor.ts`: "bounded whatever the job's length"), but the page appended every
 *   token to its copy for good and drew all of it again at each token: a 4,096-token job of
 *   1,024-character tokens (what a worker peer may send) grew to 4 M characters per job in the
 *   operator's tab, each copied into the DOM once per token.
 */
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { createApp } from "../../server/app.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import { JobMonitor, MAX_KEPT_TEXT } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { CHROMIUM, QUIET_SOURCES, requireChromium } from "./_helpers.ts";

const MODEL: ServedModelInfo = { cid: "bafkmodel", name: "routed", kind: "text" };
const SOURCES: DashboardSources = QUIET_SOURCES;
/** The longest token text a worker peer may send (`MAX_TOKEN_TEXT_LENGTH`). */
const TOKEN_CHARS = 1024;
/** Tokens streamed: 50 times what the node keeps of a job's output. */
const TOKENS = 200;

/** A port with one job whose tokens the test enqueues (a worker peer's stream, relayed). */
function relayedJob() {
  let controller!: ReadableStreamDefaultController<StreamedToken>;
  const tokens = new ReadableStream<StreamedToken>({ start: (c) => void (controller = c) });
  const port: InferencePort = {
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve(emptyInferenceStats()),
    submit: () =>
      Promise.resolve({
        jobId: "routed0",
        model: MODEL,
        promptTokens: 1,
        tokens,
        done: new Promise(() => {}),
        cancel: () => {},
      } as unknown as InferenceHandle),
  };
  return { port, controller: () => controller };
}

Deno.test({
  name:
    "dashboard in chromium: a live job's output on the page is bounded as the node bounds it (its last 4,096 characters), however long the worker's tokens",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await requireChromium();
    const { port, controller } = relayedJob();
    const monitor = new JobMonitor();
    const app = createApp({
      inference: monitor.wrap(port),
      dashboard: { sources: SOURCES, jobs: monitor, operatorToken: "op-token-0123456789abcdef" },
    });
    const server = serve({ app, port: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on("pageerror", (e) => problems.push(e.message));
      await page.goto(`${server.url}/`);
      // The first snapshot is drawn: the page has joined the live feed.
      await page.locator("#access", { hasText: "read-only" }).waitFor();
      await page.locator("#validator-summary", { hasText: /\S/ }).waitFor();
      const job = await monitor.wrap(port).submit({} as TextJob);
      const reader = job.tokens.getReader();
      for (let i = 0; i < TOKENS; i++) {
        // Each token's text says which it is, at its end: the page shows the latest output.
        const text = `${i}`.padStart(TOKEN_CHARS, "x");
        controller().enqueue({ index: i, tokenId: 1, text });
        await reader.read();
      }
      const meta = page.locator('#jobs .job[data-job="routed0"] .meta');
      await meta.filter({ hasText: `${TOKENS} tokens` }).waitFor();
      const shown = String(
        await page.evaluate(
          `document.querySelector('#jobs .job[data-job="routed0"] .text').textContent`,
        ),
      );
      assert.ok(
        shown.length <= MAX_KEPT_TEXT,
        `the page holds ${shown.length} characters of the job's output`,
      );
      assert.ok(shown.endsWith(`${TOKENS - 1}`), "the latest output is shown");
      assert.deepEqual(problems, [], "no page errors");
      await reader.cancel();
    } finally {
      await browser.close();
      await server.shutdown();
    }
  },
});
