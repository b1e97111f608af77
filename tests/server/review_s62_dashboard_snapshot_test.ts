/**
 * Review (s62) of the dashboard's snapshot size (`server/dashboard_routes.ts`): a snapshot listed
 * every live job with up to 4,096 characters of its output, and the 20 last finished ones too:
 * a node with a long queue of long jobs sent every page megabytes a second. It now lists the live
 * jobs the page draws (the first 20 submitted) and the finished ones it draws (the latest 5), and
 * counts the others in `jobs.leftOut`; the jobs it lists keep their text as before.
 */
import assert from "node:assert/strict";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { createApp } from "../../server/app.ts";
import { JobMonitor, MAX_KEPT_TEXT } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { eventually } from "../_helpers/wait.ts";
import { quietSources } from "./_dashboard_sources.ts";

/** Live jobs at once: a node's default queue (`inference.queueLimit`, 64) and its runners. */
const LIVE_JOBS = 70;
/** Finished jobs: more than the monitor keeps (20). */
const FINISHED_JOBS = 25;
/** Characters each job streams: more than the monitor keeps of it. */
const JOB_CHARS = 10_000;
/** Live and finished jobs a snapshot lists (what the page draws). */
const LISTED_LIVE = 20;
const LISTED_RECENT = 5;

/** A port whose jobs stream what the test enqueues, ending when the test closes them. */
function heldJobs() {
  const jobs: { tokens: ReadableStreamDefaultController<StreamedToken>; end(): void }[] = [];
  const port: InferencePort = {
    models: () => Promise.resolve([]),
    stats: () => Promise.resolve(emptyInferenceStats()),
    submit: () => {
      const jobId = `job${jobs.length}`;
      const done = Promise.withResolvers<JobSummary>();
      let controller!: ReadableStreamDefaultController<StreamedToken>;
      const tokens = new ReadableStream<StreamedToken>({ start: (c) => void (controller = c) });
      jobs.push({
        tokens: controller,
        end: () => {
          controller.close();
          done.resolve({ jobId, finishReason: "length" } as JobSummary);
        },
      });
      return Promise.resolve({
        jobId,
        model: { cid: "bafkmodel", name: "m", kind: "text" },
        promptTokens: 1,
        tokens,
        done: done.promise,
        cancel: () => {},
      } as unknown as InferenceHandle);
    },
  };
  return { port, jobs };
}

/** A node with {@link FINISHED_JOBS} jobs finished and {@link LIVE_JOBS} live, each long. */
async function busyNode(tickMs: number) {
  const { port, jobs } = heldJobs();
  const monitor = new JobMonitor();
  const watched = monitor.wrap(port);
  const token = { index: 0, tokenId: 1, text: "x".repeat(JOB_CHARS) };
  for (let i = 0; i < FINISHED_JOBS + LIVE_JOBS; i++) {
    const handle = await watched.submit({} as TextJob);
    const reader = handle.tokens.getReader();
    jobs[i].tokens.enqueue(token);
    await reader.read();
    if (i < FINISHED_JOBS) {
      jobs[i].end();
      await reader.read();
      await handle.done;
    }
  }
  await eventually(
    () => monitor.snapshot().live.length === LIVE_JOBS || undefined,
    "the finished jobs seen as ended",
  );
  const app = createApp({
    inference: watched,
    dashboard: {
      sources: quietSources(),
      jobs: monitor,
      operatorToken: "op-token-0123456789abcdef",
      tickMs,
    },
  });
  return serve({ app, hostname: "127.0.0.1", port: 0 });
}

type JobsPart = {
  live: { jobId: string; text: string }[];
  recent: { jobId: string; text: string }[];
  leftOut: { live: number; recent: number };
};

/** `jobs` lists what the page draws, with their text, and counts the rest. */
function assertBounded(jobs: JobsPart, encoded: string) {
  assert.equal(jobs.live.length, LISTED_LIVE, "live jobs listed");
  assert.equal(jobs.leftOut.live, LIVE_JOBS - LISTED_LIVE, "live jobs counted, not listed");
  assert.deepEqual(
    jobs.live.map((j) => j.jobId),
    Array.from({ length: LISTED_LIVE }, (_, i) => `job${FINISHED_JOBS + i}`),
    "the first submitted first",
  );
  for (const job of jobs.live) assert.equal(job.text.length, MAX_KEPT_TEXT, "their text kept");
  assert.equal(jobs.recent.length, LISTED_RECENT, "finished jobs listed");
  assert.equal(jobs.recent[0].jobId, `job${FINISHED_JOBS - 1}`, "the newest first");
  assert.equal(jobs.leftOut.recent, 20 - LISTED_RECENT, "the monitor's others counted");
  const bound = (LISTED_LIVE + LISTED_RECENT) * (MAX_KEPT_TEXT + 400);
  assert.ok(encoded.length < bound, `${encoded.length} characters, over ${bound}`);
}

Deno.test("review s62: GET /dashboard/state lists the live and finished jobs the page draws, counting the others", async () => {
  const server = await busyNode(60_000);
  try {
    const response = await fetch(`${server.url}/dashboard/state`);
    assert.equal(response.status, 200);
    const text = await response.text();
    assertBounded(JSON.parse(text).jobs, text);
  } finally {
    await server.shutdown();
  }
});

Deno.test("review s62: the live socket's first snapshot and its ticks are bounded the same way", async () => {
  const server = await busyNode(20);
  const ws = new WebSocket(server.url.replace("http", "ws") + "/dashboard/live");
  const snapshots: string[] = [];
  const closed = new Promise((resolve) => (ws.onclose = resolve));
  ws.onmessage = (e) => {
    if (String(e.data).startsWith('{"type":"snapshot"')) snapshots.push(e.data);
  };
  try {
    await eventually(() => snapshots.length >= 2 || undefined, "the first snapshot and a tick");
    for (const text of snapshots.slice(0, 2)) assertBounded(JSON.parse(text).jobs, text);
  } finally {
    ws.close();
    await closed;
    await server.shutdown();
  }
});
