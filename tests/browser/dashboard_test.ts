/**
 * The dashboard page in a real browser (Debian's chromium driven by playwright-core): against
 * nodes started in-process, and against an edge with scripted sources for what a node and its peers
 * may send it (many live jobs, long outputs), and the page's Content-Security-Policy.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { chromium } from "playwright-core";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { TextJob } from "../../protocols/job.ts";
import { createApp } from "../../server/app.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import { JobMonitor, MAX_KEPT_TEXT } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { eventually } from "../_helpers/wait.ts";
import { TEST_ARCH } from "../training/_fixtures.ts";
import {
  CHROMIUM,
  inChromium,
  openPageAt,
  OUTPUT_DIR,
  QUIET_SOURCES,
  requireChromium,
  startTestNode,
} from "./_helpers.ts";

// ---- two nodes in-process -----------------------------------------------------------------------
//
// The dashboard in a real browser: Debian's chromium driven by playwright-core against two nodes
// this test starts in-process (a worker with the built-in model, and a peer it dials). The page
// must load without console errors, draw the supervision tree and the peer, and — unlocked with the
// operator token — stream a typed prompt's tokens onto the page and verify the receipt in the page.
// A screenshot goes to `tmp/test-output/` (ignored by git).

Deno.test({
  name:
    "dashboard in chromium: tree and peers drawn, a typed prompt streams its tokens, the receipt is verified in the page",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await requireChromium();
    const dir = await Deno.makeTempDir();
    const worker = await startTestNode(join(dir, "worker"), {
      network: { listen: { port: 0 } },
    });
    const network = worker.system.lookup<NetworkMessage>("node/network")!;
    const address = await network.ask<Deno.NetAddr>({ type: "listening" });
    const peer = await startTestNode(join(dir, "peer"), {
      roles: { inference: false, prover: false, storage: false },
      network: {
        listening: false,
        peers: [`127.0.0.1:${address.port}`],
      },
    });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const problems: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console: ${m.text()}`);
      });
      page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
      await page.goto(`${worker.url}/`);

      // The supervision tree, from the node's own tree.
      await page.locator('#tree li[data-name="node/inference"]').waitFor();
      for (const actor of ["node/sup", "node/storage", "node/prover", "node/validator"]) {
        assert.equal(await page.locator(`#tree li[data-name="${actor}"]`).count(), 1, actor);
      }
      // The peer, in the picture and the table, with its roles from its signed hello.
      const peerKey = Array.from(peer.identity.publicKey, (b) => b.toString(16).padStart(2, "0"))
        .join("");
      await page.locator(`#network g[data-peer="${peerKey}"]`).waitFor();
      await page.locator(`#peers tr[data-peer="${peerKey}"]`).waitFor();
      await page.locator(`#peers tr[data-peer="${peerKey}"]`, { hasText: "validator" }).waitFor();

      // Read-only until unlocked: the run button is disabled.
      assert.equal(await page.locator("#run").isDisabled(), true);
      const token = (await Deno.readTextFile(join(dir, "worker", "operator.token"))).trim();
      await page.fill("#token", token);
      await page.click("#auth-form button");
      await page.locator("#access", { hasText: "operator" }).waitFor();

      // Count the updates of the output as tokens arrive: streaming, not one final write.
      // (A string: this runs in the page, whose DOM types Deno's checker does not load.)
      await page.evaluate(`
        globalThis.__updates = 0;
        new MutationObserver(() => globalThis.__updates++).observe(
          document.getElementById("prompt-output"),
          { childList: true, characterData: true, subtree: true },
        );
      `);
      await page.fill("#prompt", "Once upon a time");
      await page.fill("#max-tokens", "24");
      await page.click("#run");
      await page.locator('#receipt-status[data-verified="true"]').waitFor();
      const output = await page.locator("#prompt-output").innerText();
      assert.ok(output.length > 0, "tokens reached the page");
      const updates = await page.evaluate("globalThis.__updates") as number;
      assert.ok(updates >= 2, `the answer arrived token by token (${updates} updates)`);
      assert.match(await page.locator("#receipt-status").innerText(), /verified.*signature/);
      // The job shows in the jobs panel and the validator's feed has its receipt.
      await page.locator('#jobs .job[data-state="length"], #jobs .job[data-state="stop"]')
        .first().waitFor();
      await page.locator('#activity li[data-kind="receipt"]').first().waitFor();

      await Deno.mkdir(OUTPUT_DIR, { recursive: true });
      await page.screenshot({
        path: new URL("dashboard.png", OUTPUT_DIR).pathname,
        fullPage: true,
      });
      assert.deepEqual(problems, [], "no console errors");
    } finally {
      await browser.close();
      await peer.shutdown();
      await worker.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

// ---- the page's CSP and the live jobs a snapshot lists ------------------------------------------
//
// The dashboard page in chromium:
// - Its `Content-Security-Policy` had `connect-src 'self' ws: wss:`: a script that got into the
//   page (the operator token is in its session) could open a WebSocket to any host and send it
//   anything. `connect-src 'self'` covers the page's own `ws:`/`wss:` origin (CSP Level 3): the
//   live socket still works, one to another port is refused by the browser.
// - A snapshot now lists only the live jobs the page draws (the first 20 submitted) and counts the
//   others: the page still says how many more are live, tick after tick, and draws the next one
//   when a drawn job ends.

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
    "dashboard in chromium: the live socket works under connect-src 'self', and a socket to another port is blocked by the page's CSP",
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
    "dashboard in chromium: with more live jobs than a snapshot lists, the page keeps counting the others tick after tick, and draws the next when a drawn one ends",
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

// ---- many live jobs at once ---------------------------------------------------------------------
//
// The dashboard page in chromium, for a node whose clients (or whose router's worker peers) keep
// many jobs live at once: every `job_token` of every live job (a queue of 64 by default,
// `inference.queueLimit`, plus the running ones) had the page build every live job's row anew, each
// with up to 4,096 characters of output — n live jobs streaming cost the page n² rows rebuilt per
// round of tokens, and the panel grew one row per live job without bound.
// - The prompt box's output was grown by `textContent +=` at each token: the whole output read,
//   copied and laid out again per token. A job of 4,096 tokens (the protocol's `maxTokens`) of a
//   worker peer's 1,024-character tokens is 4 M characters, copied ~8 G times over in the tab.

const QUEUED_MODEL: ServedModelInfo = { cid: "bafkmodel", name: "queued", kind: "text" };
/** A port whose every job streams the tokens the test enqueues into it, and never ends. */
function manyJobs() {
  const controllers: ReadableStreamDefaultController<StreamedToken>[] = [];
  const port: InferencePort = {
    models: () => Promise.resolve([QUEUED_MODEL]),
    stats: () => Promise.resolve(emptyInferenceStats()),
    submit: () => {
      const n = controllers.length;
      const tokens = new ReadableStream<StreamedToken>({
        start: (c) => void controllers.push(c),
      });
      return Promise.resolve({
        jobId: `job${n}`,
        model: QUEUED_MODEL,
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
    "dashboard in chromium: with many jobs live, the page draws a bounded number of them (the rest counted), and a job's token redraws that job's row only",
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
    "dashboard in chromium: the prompt box's output grows by appending each token, not by rewriting all the output so far",
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

// ---- a routed job's long output -----------------------------------------------------------------
//
// The dashboard page in chromium against what a peer sends it: a job this node routes streams its
// worker's tokens to every open page (`job_token`), each up to the protocol's longest token text
// (1,024 characters, `protocols/inference_messages.ts`).
//
// - The node keeps the last 4,096 characters of a live job's output (`MAX_KEPT_TEXT` in
//   `server/job_monitor.ts`: "bounded whatever the job's length"), but the page appended every
//   token to its copy for good and drew all of it again at each token: a 4,096-token job of
//   1,024-character tokens (what a worker peer may send) grew to 4 M characters per job in the
//   operator's tab, each copied into the DOM once per token.

const ROUTED_MODEL: ServedModelInfo = { cid: "bafkmodel", name: "routed", kind: "text" };
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
    models: () => Promise.resolve([ROUTED_MODEL]),
    stats: () => Promise.resolve(emptyInferenceStats()),
    submit: () =>
      Promise.resolve({
        jobId: "routed0",
        model: ROUTED_MODEL,
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

// ---- the training panel -------------------------------------------------------------------------
//
// The dashboard's training panel in a real browser: a coordinator and a trainer, in-process, run
// one short round of the test architecture (L = 1, d = 32) over a TCP peer connection. The
// coordinator's page must show the round with its held-out bits per byte and the trainer it
// accepted; the trainer's page must show its local run's loss and the round it trained. A node that
// takes no part in training keeps the panel hidden. A screenshot of the panel goes to
// `tmp/test-output/`.

/** Local steps of the round: enough points for a loss curve, a second or two of compute. */
const H = 6;
/** A small corpus, dealt to one trainer with a held-out part for the coordinator. */
const CORPUS_DOCS = 20;

Deno.test({
  name:
    "dashboard in chromium: the coordinator's page shows the round's held-out bits/byte and its trainer, the trainer's page its loss, a plain node hides the panel",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await requireChromium();
    const dir = await Deno.makeTempDir();
    const training = { arch: TEST_ARCH, corpusDocs: CORPUS_DOCS };
    const coordinator = await startTestNode(join(dir, "coordinator"), {
      network: { listen: { port: 0 }, idleTimeoutMs: 30_000 },
      training: {
        ...training,
        coordinator: { enabled: true, rounds: 1, steps: H, minTrainers: 1, deadlineMs: 60_000 },
        challengeProbability: 1,
      },
    });
    const network = coordinator.system.lookup<NetworkMessage>("node/network")!;
    const address = await network.ask<Deno.NetAddr>({ type: "listening" });
    const trainer = await startTestNode(join(dir, "trainer"), {
      roles: { inference: false, prover: false },
      network: { listening: false, peers: [`127.0.0.1:${address.port}`], idleTimeoutMs: 30_000 },
      training: { ...training, trainer: { enabled: true, shard: 0, shards: 1 } },
    });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const problems: string[] = [];
      const open = async (url: string | undefined) => {
        const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
        page.on("console", (m) => {
          if (m.type() === "error") problems.push(`console: ${m.text()}`);
        });
        page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
        await page.goto(`${url}/`);
        return page;
      };
      const coordinatorPage = await open(coordinator.url);
      // The round, once done: its number, a held-out figure, one trainer accepted, none left out.
      const row = coordinatorPage.locator("#training-rounds tbody tr").first();
      await row.waitFor({ timeout: 120_000 });
      const cells = await row.locator("td").allInnerTexts();
      assert.equal(cells[0], "0", "round 0");
      const bits = Number(cells[2]);
      assert.ok(bits > 0 && bits < 8.5, `held-out bits/byte is a figure (${cells[2]})`);
      assert.equal(cells[3], "1", "one trainer's delta went in");
      assert.equal(cells[4], "–", "nobody left out");
      assert.match(await coordinatorPage.locator("#training-summary").innerText(), /coordinating/);
      assert.equal(await coordinatorPage.locator("#training-panel").isVisible(), true);
      // The coordinator's chart has the start model's figure and the round's: two points.
      assert.match(
        await coordinatorPage.locator("#training-rounds-chart .chart-label").innerText(),
        /held-out \d/,
      );

      await Deno.mkdir(OUTPUT_DIR, { recursive: true });
      await coordinatorPage.locator("#training-panel").screenshot({
        path: new URL("training_panel.png", OUTPUT_DIR).pathname,
      });

      const trainerPage = await open(trainer.url);
      await trainerPage.locator("#training-summary", { hasText: /1 round trained/ }).waitFor();
      // H losses drawn: one path with H points (M + (H − 1) L commands).
      const path = await trainerPage.locator("#training-steps-chart path").getAttribute("d");
      assert.equal(path?.split("L").length, H, `the local run's ${H} steps are drawn`);

      // A node that neither trains nor coordinates: no training panel.
      const plain = await startTestNode(join(dir, "plain"), {
        roles: { inference: false, prover: false, storage: false },
      });
      try {
        const plainPage = await open(plain.url);
        await plainPage.locator("#tree li").first().waitFor();
        // Give a snapshot time to arrive: the panel stays hidden after one.
        await plainPage.waitForFunction(
          `document.getElementById("ledger-summary").textContent !== ""`,
        );
        assert.equal(await plainPage.locator("#training-panel").isVisible(), false);
      } finally {
        await plain.shutdown();
      }
      assert.deepEqual(problems, [], "no console errors");
    } finally {
      await browser.close();
      await trainer.shutdown();
      await coordinator.shutdown();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

// ---- a configured peer that cannot be reached -----------------------------------------------------
//
// Review s74 F3: a `--peer` that could not be reached showed in one log line only; the peers panel
// listed connected peers, so it showed nothing of it. Its row now names the address and the error.

Deno.test({
  name:
    "dashboard in chromium: a configured peer whose dials fail is a row of the peers panel with its address and last error; one that is up is not",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const monitor = new JobMonitor();
    const port: InferencePort = {
      submit: () => Promise.reject(new Error("no jobs")),
      models: () => Promise.resolve([MODEL]),
      stats: () => Promise.resolve(emptyInferenceStats()),
    };
    const sources: DashboardSources = {
      ...QUIET_SOURCES,
      staticPeers: () =>
        Promise.resolve([
          {
            address: "127.0.0.1:18999",
            up: false,
            since: Date.now(),
            failures: 4,
            lastError: "Connection refused (os error 111)",
          },
          { address: "127.0.0.1:7700", up: true, since: Date.now(), failures: 0 },
        ]),
    };
    const options = {
      inference: monitor.wrap(port),
      dashboard: { sources, jobs: monitor, operatorToken: OPERATOR, tickMs: 100 },
    };
    await inChromium(options, async (server, browser) => {
      const { page, problems } = await openPageAt(browser, `${server.url}/`);
      const row = page.locator('#peers tr[data-static-peer="127.0.0.1:18999"]');
      await row.waitFor();
      assert.match(await row.innerText(), /unreachable since .*4 dials failed.*Connection refused/);
      assert.equal(await page.locator('#peers tr[data-static-peer="127.0.0.1:7700"]').count(), 0);
      // Drawn once per snapshot, not once more at every tick.
      await page.locator("#connection", { hasText: "live" }).waitFor();
      await eventually(async () => {
        const rows = await page.evaluate("document.querySelectorAll('#peers tbody tr').length");
        return rows === 1 ? true : undefined;
      }, "one row, tick after tick");
      assert.deepEqual(problems, [], "no page errors");
    });
  },
});
