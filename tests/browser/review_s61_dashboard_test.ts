/**
 * Review (s61) of the dashboard page in chromium, for a node whose clients (or whose router's
 * worker peers) keep many jobs live at once: every `job_token` of every live job (a queue of 64
 * by default, `inference.queueLimit`, plus the running ones) had the page build every live job's
 * row anew, each with up to 4,096 characters of output — n live jobs streaming cost the page n²
 * rows rebuilt per round of tokens, and the panel grew one row per live job without bound.
 * - The prompt box's output was grown by `textContent +=` at each token: the whole output read,
 *   copied and laid out again per token. A job of 4,096 tokens (the protocol's `maxTokens`) of a
 *   worker peer's 1,024-character tokens is 4 M characters, copied ~8 G times over in the tab.
 */
import assert from "node:assert/strict";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { eventually } from "../_helpers/wait.ts";
import { inChromium, openPageAt, QUIET_SOURCES } from "./_helpers.ts";

const MODEL: ServedModelInfo = { cid: "bafkmodel", name: "queued", kind: "text" };
/** Live jobs at once: fewer than a node's default queue holds. */
const LIVE_JOBS = 40;
/** Live jobs the page draws at most (`SHOWN_LIVE_JOBS` in `server/dashboard/app.js`). */
const SHOWN_LIVE_JOBS = 20;

/** A port whose every job streams the tokens the test enqueues into it, and never ends. */
function manyJobs() {
  const controllers: ReadableStreamDefaultController<StreamedToken>[] = [];
  const port: InferencePort = {
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve(emptyInferenceStats()),
    submit: () => {
      const n = controllers.length;
      const tokens = new ReadableStream<StreamedToken>({
        start: (c) => void controllers.push(c),
      });
      return Promise.resolve({
        jobId: `job${n}`,
        model: MODEL,
        promptTokens: 1,
        tokens,
        done: new Promise(() => {}),
        cancel: () => {},
      } as unknown as InferenceHandle);
    },
  };
  return { port, controllers };
}

Deno.test({
  name:
    "review s61: dashboard in chromium: with many jobs live, the page draws a bounded number of them (the rest counted), and a job's token redraws that job's row only",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { port, controllers } = manyJobs();
    const monitor = new JobMonitor();
    const options = {
      inference: monitor.wrap(port),
      dashboard: {
        sources: QUIET_SOURCES,
        jobs: monitor,
        operatorToken: "op-token-0123456789abcdef",
      },
    };
    await inChromium(options, async (server, browser) => {
      const readers: ReadableStreamDefaultReader<StreamedToken>[] = [];
      try {
        const { page, problems } = await openPageAt(browser, `${server.url}/`);
        // The first snapshot is drawn: the page has joined the live feed.
        await page.locator("#access", { hasText: "read-only" }).waitFor();
        await page.locator("#validator-summary", { hasText: /\S/ }).waitFor();
        const watched = monitor.wrap(port);
        for (let i = 0; i < LIVE_JOBS; i++) {
          readers.push((await watched.submit({} as TextJob)).tokens.getReader());
        }
        const more = LIVE_JOBS - SHOWN_LIVE_JOBS;
        await page.locator("#jobs", { hasText: `${more} more live jobs` }).waitFor();
        const rows = Number(await page.evaluate(`document.querySelectorAll('#jobs .job').length`));
        assert.equal(rows, SHOWN_LIVE_JOBS, "live jobs drawn");

        // Hold on to two rows, then stream a token of the first job.
        await page.evaluate(`globalThis.rows = [
        document.querySelector('#jobs .job[data-job="job0"]'),
        document.querySelector('#jobs .job[data-job="job1"]'),
      ]`);
        controllers[0].enqueue({ index: 0, tokenId: 1, text: "hello" });
        await readers[0].read();
        await page.locator('#jobs .job[data-job="job0"] .meta', { hasText: "1 tokens" }).waitFor();
        assert.equal(
          await page.locator('#jobs .job[data-job="job0"] .text').textContent(),
          "hello",
        );
        const kept = await page.evaluate(`[
        globalThis.rows[0] === document.querySelector('#jobs .job[data-job="job0"]'),
        globalThis.rows[1] === document.querySelector('#jobs .job[data-job="job1"]'),
      ]`);
        assert.deepEqual(kept, [true, true], "the rows drawn are the ones the token found");
        assert.deepEqual(problems, [], "no page errors");
      } finally {
        for (const reader of readers) await reader.cancel();
      }
    });
  },
});

Deno.test({
  name:
    "review s61: dashboard in chromium: the prompt box's output grows by appending each token, not by rewriting all the output so far",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { port, controllers } = manyJobs();
    const monitor = new JobMonitor();
    const operator = "op-token-0123456789abcdef";
    const options = {
      inference: monitor.wrap(port),
      dashboard: { sources: QUIET_SOURCES, jobs: monitor, operatorToken: operator, tickMs: 60_000 },
    };
    await inChromium(options, async (server, browser) => {
      const { page, problems } = await openPageAt(browser, `${server.url}/`);
      await page.locator("#validator-summary", { hasText: /\S/ }).waitFor();
      await page.fill("#token", operator);
      await page.click("#auth-form button");
      await page.locator("#access", { hasText: "operator" }).waitFor();
      await page.click("#run");
      await eventually(() => controllers.length === 1 || undefined, "the page's prompt");
      controllers[0].enqueue({ index: 0, tokenId: 1, text: "Once" });
      await page.locator("#prompt-output", { hasText: "Once" }).waitFor();
      await page.evaluate(`globalThis.first = document.getElementById("prompt-output").firstChild`);
      controllers[0].enqueue({ index: 1, tokenId: 2, text: " more" });
      await page.locator("#prompt-output", { hasText: "Once more" }).waitFor();
      const kept = await page.evaluate(
        `[globalThis.first === document.getElementById("prompt-output").firstChild,
          globalThis.first.data]`,
      );
      assert.deepEqual(kept, [true, "Once"], "the first token's text, where it was");
      assert.deepEqual(problems, [], "no page errors");
    });
  },
});
