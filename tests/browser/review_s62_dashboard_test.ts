/**
 * Review (s62) of the dashboard page in chromium:
 * - Its `Content-Security-Policy` had `connect-src 'self' ws: wss:`: a script that got into the
 *   page (the operator token is in its session) could open a WebSocket to any host and send it
 *   anything. `connect-src 'self'` covers the page's own `ws:`/`wss:` origin (CSP Level 3): the
 *   live socket still works, one to another port is refused by the browser.
 * - A snapshot now lists only the live jobs the page draws (the first 20 submitted) and counts the
 *   others: the page still says how many more are live, tick after tick, and draws the next one
 *   when a drawn job ends.
 */
import assert from "node:assert/strict";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { eventually } from "../_helpers/wait.ts";
import { inChromium, openPageAt, QUIET_SOURCES } from "./_helpers.ts";

const OPERATOR = "op-token-0123456789abcdef";
const MODEL: ServedModelInfo = { cid: "bafkmodel", name: "held", kind: "text" };
/** Live jobs at once: more than the page draws and a snapshot lists (20). */
const LIVE_JOBS = 40;
/** Live jobs the page draws and a snapshot lists. */
const SHOWN_LIVE_JOBS = 20;

/** A WebSocket server on another port of this machine, accepting every socket. */
function otherServer() {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => socket.send("hello from elsewhere");
    return response;
  });
}

Deno.test({
  name:
    "review s62: dashboard in chromium: the live socket works under connect-src 'self', and a socket to another port is blocked by the page's CSP",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const monitor = new JobMonitor();
    const port: InferencePort = {
      submit: () => Promise.reject(new Error("no jobs")),
      models: () => Promise.resolve([MODEL]),
      stats: () => Promise.resolve(emptyInferenceStats()),
    };
    const options = {
      inference: monitor.wrap(port),
      dashboard: { sources: QUIET_SOURCES, jobs: monitor, operatorToken: OPERATOR, tickMs: 100 },
    };
    const elsewhere = otherServer();
    try {
      await inChromium(options, async (server, browser) => {
        const { page, problems } = await openPageAt(browser, `${server.url}/`);
        const csp = (await page.request.get(`${server.url}/`)).headers()["content-security-policy"];
        assert.match(csp, /connect-src 'self';/);
        // The live socket: its badge, its first snapshot drawn, ticks after it.
        await page.locator("#connection", { hasText: "live" }).waitFor();
        await page.locator("#validator-summary", { hasText: /\S/ }).waitFor();
        await page.fill("#token", OPERATOR);
        await page.click("#auth-form button");
        await page.locator("#access", { hasText: "operator" }).waitFor();

        const other = `ws://127.0.0.1:${elsewhere.addr.port}/`;
        const outcome = await page.evaluate(`new Promise((resolve) => {
          document.addEventListener("securitypolicyviolation", (e) =>
            resolve("blocked by " + e.effectiveDirective + ": " + e.blockedURI));
          try {
            const ws = new WebSocket(${JSON.stringify(other)});
            ws.onmessage = (e) => resolve("open: " + e.data);
          } catch (e) {
            // Some versions throw as well as reporting the violation: wait for the report.
          }
        })`);
        assert.match(String(outcome), /^blocked by connect-src: ws:\/\/127\.0\.0\.1:/);
        assert.equal(await page.locator("#connection").textContent(), "live", "still live");
        assert.deepEqual(problems, [], "no page errors");
      });
    } finally {
      await elsewhere.shutdown();
    }
  },
});

/** A port whose every job streams what the test enqueues, and ends when the test says. */
function heldJobs() {
  const jobs: { end(): void }[] = [];
  const port: InferencePort = {
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve(emptyInferenceStats()),
    submit: () => {
      const jobId = `job${jobs.length}`;
      const done = Promise.withResolvers<JobSummary>();
      jobs.push({ end: () => done.resolve({ jobId, finishReason: "cancelled" } as JobSummary) });
      return Promise.resolve({
        jobId,
        model: MODEL,
        promptTokens: 1,
        tokens: new ReadableStream<StreamedToken>(),
        done: done.promise,
        cancel: () => {},
      } as unknown as InferenceHandle);
    },
  };
  return { port, jobs };
}

Deno.test({
  name:
    "review s62: dashboard in chromium: with more live jobs than a snapshot lists, the page keeps counting the others tick after tick, and draws the next when a drawn one ends",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const { port, jobs } = heldJobs();
    const monitor = new JobMonitor();
    const watched = monitor.wrap(port);
    const options = {
      inference: watched,
      dashboard: { sources: QUIET_SOURCES, jobs: monitor, operatorToken: OPERATOR, tickMs: 50 },
    };
    await inChromium(options, async (server, browser) => {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on("pageerror", (e) => problems.push(e.message));
      let snapshots = 0;
      page.on("websocket", (ws) =>
        ws.on("framereceived", (frame) => {
          if (String(frame.payload).startsWith('{"type":"snapshot"')) snapshots++;
        }));
      await page.goto(`${server.url}/`);
      await page.locator("#validator-summary", { hasText: /\S/ }).waitFor();
      for (let i = 0; i < LIVE_JOBS; i++) await watched.submit({} as TextJob);
      const rows = () =>
        page.evaluate(`[...document.querySelectorAll('#jobs .job')]
        .filter((row) => row.dataset.state === "queued").map((row) => row.dataset.job)`);
      // After each of several ticks (every 50 ms), each listing 20 jobs.
      for (let tick = 0; tick < 5; tick++) {
        const seen = snapshots;
        await eventually(() => snapshots > seen || undefined, "the next tick");
        await page.locator("#jobs", { hasText: `${LIVE_JOBS - SHOWN_LIVE_JOBS} more live jobs` })
          .waitFor();
        assert.deepEqual(
          await rows(),
          Array.from({ length: SHOWN_LIVE_JOBS }, (_, i) => `job${i}`),
          "the first submitted drawn",
        );
      }
      jobs[0].end();
      await page.locator("#jobs", { hasText: `${LIVE_JOBS - SHOWN_LIVE_JOBS - 1} more live jobs` })
        .waitFor();
      await page.locator('#jobs .job[data-job="job20"]').waitFor();
      assert.deepEqual(
        await rows(),
        Array.from({ length: SHOWN_LIVE_JOBS }, (_, i) => `job${i + 1}`),
        "the next one drawn",
      );
      assert.deepEqual(problems, [], "no page errors");
    });
  },
});
