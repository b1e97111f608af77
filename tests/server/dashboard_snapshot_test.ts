/**
 * The size and cost of the dashboard's live snapshot (`server/dashboard_routes.ts`): it lists the
 * jobs the page draws and counts the others, keeps the training panel's history bounded, is encoded
 * once for every open page, and state reads that arrive together share one round of asks; binary
 * messages are bounded as text ones are.
 */
import assert from "node:assert/strict";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type JobSummary,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";
import { createApp } from "../../server/app.ts";
import { JobMonitor, MAX_KEPT_TEXT } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { delay, eventually } from "../_helpers/wait.ts";
import { quietSources } from "./_dashboard_sources.ts";
import { assertEquals } from "./_assert.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import { dashboardSources } from "../../node/dashboard_sources.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";
import type { CoordinatorMessage, CoordinatorStatus } from "../../training/round_coordinator.ts";

// The dashboard's snapshot size (`server/dashboard_routes.ts`): a snapshot listed every live job
// with up to 4,096 characters of its output, and the 20 last finished ones too: a node with a long
// queue of long jobs sent every page megabytes a second. It now lists the live jobs the page draws
// (the first 20 submitted) and the finished ones it draws (the latest 5), and counts the others in
// `jobs.leftOut`; the jobs it lists keep their text as before.

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

Deno.test("GET /dashboard/state lists the live and finished jobs the page draws, counting the others", async () => {
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

Deno.test("the live socket's first snapshot and its ticks are bounded the same way", async () => {
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

// The dashboard's live socket (`server/dashboard_routes.ts`) against many open pages: the hub
// computed one snapshot per tick, but each page encoded it again (and, for a page reading with an
// API key, copied it to blank its job text). A snapshot carries every live job's output (up to 4
// KiB each, 64 queued jobs by default), and any API key may open as many pages as it likes: the
// node's work each second grew with the number of pages watching it.
//
// Likewise `GET /dashboard/state`: each request asked every source anew (the network, validator,
// storage and inference actors, the training actors: seven asks), so a burst of reads from one
// API key put seven asks each in the mailboxes of the actors that carry the node's peer traffic;
// reads that arrive while the sources are being asked now share that one round of asks.

const PORT: InferencePort = {
  submit: () => Promise.reject(new Error("no jobs")),
  models: () => Promise.resolve([]),
  stats: () => Promise.resolve({} as InferenceStats),
};
/** Pages open at once. */
const PAGES = 8;
/** Snapshots each page waits for. */
const SNAPSHOTS = 3;

Deno.test("a snapshot is encoded once for all the dashboard pages open, not once per page", async () => {
  let computed = 0;
  const sources = quietSources({
    // Called once per snapshot the hub computes.
    tree: () => (computed++, {}),
  });
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(PORT),
    // Ticks as fast as the test can take them: it waits for snapshots, never for time.
    dashboard: { sources, jobs, operatorToken: "op-token-0123456789abcdef", tickMs: 10 },
  });
  const server = serve({ app, hostname: "127.0.0.1", port: 0 });
  const stringify = JSON.stringify;
  let encoded = 0;
  JSON.stringify = function (...args: Parameters<typeof stringify>) {
    const text = stringify.apply(JSON, args);
    if (typeof text === "string" && text.startsWith('{"type":"snapshot"')) encoded++;
    return text;
  } as typeof stringify;
  const sockets: WebSocket[] = [];
  try {
    const received: number[] = [];
    for (let i = 0; i < PAGES; i++) {
      const ws = new WebSocket(server.url.replace("http", "ws") + "/dashboard/live");
      received.push(0);
      ws.onmessage = (e) => {
        if (String(e.data).startsWith('{"type":"snapshot"')) received[i]++;
      };
      sockets.push(ws);
    }
    await eventually(
      () => received.every((n) => n >= SNAPSHOTS) || undefined,
      `${SNAPSHOTS} snapshots on each page`,
    );
    // Read both at once: a tick in progress has counted its snapshot before encoding it.
    const [encodings, snapshots] = [encoded, computed];
    assert.ok(
      encodings <= snapshots,
      `${encodings} snapshots encoded for ${snapshots} computed, with ${PAGES} pages open`,
    );
  } finally {
    JSON.stringify = stringify;
    for (const ws of sockets) ws.close();
    await Promise.all(
      sockets.map((ws) =>
        ws.readyState === WebSocket.CLOSED
          ? undefined
          : new Promise((r) => ws.addEventListener("close", r))
      ),
    );
    await server.shutdown();
  }
});

Deno.test("dashboard state reads that arrive while the sources are being asked share one round of asks", async () => {
  const KEY = "a-real-api-key-0123456789";
  const READS = 20;
  let asked = 0;
  const held = Promise.withResolvers<unknown[]>();
  const sources = quietSources({
    // The network actor, slow to answer: every read in the burst arrives while it is asked.
    peers: () => (asked++, held.promise),
  });
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(PORT),
    edge: { apiKeys: [KEY] },
    dashboard: { sources, jobs, operatorToken: "op-token-0123456789abcdef", tickMs: 60_000 },
  });
  const remote = { transport: "tcp", hostname: "198.51.100.9", port: 4242 } as Deno.NetAddr;
  const reads = Array.from({ length: READS }, () =>
    app.fetch(
      new Request("http://node.example:8080/dashboard/state", {
        headers: { authorization: `Bearer ${KEY}` },
      }),
      { remoteAddr: remote },
    ));
  // Orders the test after every read has reached the sources (no I/O on the way there).
  await delay(10);
  held.resolve([{ key: "ab".repeat(32), roles: [], models: [] }]);
  const answers = await Promise.all(reads);
  for (const answer of answers) {
    assertEquals(answer.status, 200);
    assertEquals((await answer.json()).peers.length, 1);
  }
  assertEquals(asked, 1, `the network actor asked ${asked} times for ${READS} reads`);
});

// The operator dashboard's bounds.
//
// - The training panel's view (`node/dashboard_sources.ts`) carried every round the coordinator
//   ever finished, in every snapshot (one a second to every open page): a coordinator that runs
//   until stopped (`training.rounds: 0`, the default) made each tick larger for good, though the
//   page draws the last 200 (its chart) and lists the last 20.
// - The dashboard socket bounded text messages only: a binary one, of any size Deno takes, was
//   read and answered `bad_message` with the socket left open, from a client nobody let in (on
//   another machine, without a key) as from one let in; `/v1/stream` closes either (1009).

/** A coordinator that has finished `rounds` rounds, each leaving one trainer out. */
function coordinatorWith(rounds: number): ActorRef<CoordinatorMessage> {
  const status: CoordinatorStatus = {
    round: rounds,
    model: "bafkcurrent",
    initialLoss: 5,
    trainers: ["aa".repeat(32)],
    convicted: [],
    history: Array.from({ length: rounds }, (_, round) => ({
      round,
      startModel: `bafkstart${round}`,
      model: `bafkmodel${round}`,
      accepted: ["aa".repeat(32)],
      excluded: [{ key: "bb".repeat(32), reason: "its report came late" }],
      heldOutLoss: 4 - round / rounds,
    })),
  };
  return {
    ask: <R>() => Promise.resolve(structuredClone(status) as R),
  } as unknown as ActorRef<CoordinatorMessage>;
}

Deno.test("the dashboard's training view carries the latest rounds, not every round a long-running coordinator ever finished", async () => {
  const view = (rounds: number) =>
    dashboardSources({
      publicKey: new Uint8Array(32),
      system: {} as ActorSystem,
      inferenceName: "inference",
      network: () => undefined,
      validator: () => undefined,
      storage: () => undefined,
      coordinator: () => coordinatorWith(rounds),
    }).training!();

  const few = await view(3);
  assertEquals(few?.coordinator?.rounds.map((r) => r.round), [0, 1, 2], "a short run: all of it");

  const many = (await view(20_000))?.coordinator;
  assert(many !== undefined);
  const shown = many.rounds.map((r) => r.round);
  assertEquals(shown.at(-1), 19_999, "the newest round is shown");
  assertEquals(shown, [...shown].sort((a, b) => a - b), "oldest first");
  assert(shown.length >= 200, `the page's chart keeps 200 rounds; got ${shown.length}`);
  assert(
    shown.length <= 1_000,
    `a snapshot a second carries ${shown.length} rounds (${
      JSON.stringify(many).length
    } bytes of JSON), every tick, to every page`,
  );
  assertEquals(many.round, 20_000, "the next round's number still says how far the run is");
});

// ---- the socket's message limit, binary messages included ---------------------------------

const KEY = "a-real-api-key-0123456789";

/** A node whose every client is on another machine (its peer address is not loopback). */
function remoteNode() {
  const sources: DashboardSources = quietSources();
  const port: InferencePort = {
    submit: () => Promise.reject(new Error("no jobs")),
    models: () => Promise.resolve([]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(port),
    edge: { maxRequestBytes: 4096, apiKeys: [KEY] },
    dashboard: { sources, jobs, operatorToken: "op-token-0123456789abcdef", tickMs: 60_000 },
  });
  const remote = { transport: "tcp", hostname: "198.51.100.9", port: 4242 } as Deno.NetAddr;
  return serve({
    app: { fetch: (req: Request) => app.fetch(req, { remoteAddr: remote }) },
    hostname: "127.0.0.1",
    port: 0,
  });
}

/** The dashboard socket of `url`: what it got, and its close code once closed. */
async function openSocket(url: string) {
  const ws = new WebSocket(url.replace("http", "ws") + "/dashboard/live");
  const messages: { type: string; code?: string; access?: string }[] = [];
  const closed = Promise.withResolvers<number>();
  ws.onmessage = (e) => messages.push(JSON.parse(e.data));
  let code: number | undefined;
  ws.onclose = (e) => closed.resolve(code = e.code);
  await new Promise((r) => (ws.onopen = r));
  await eventually(() => messages.length >= 2 ? true : undefined, "the hello and the refusal");
  /**
   * Send `data`: the close code if the socket was closed for it, or `"open"` once it is answered
   * with a refusal (`bad_message`) instead.
   */
  const afterSending = async (data: string | Uint8Array) => {
    const answered = messages.length;
    ws.send(data as Uint8Array<ArrayBuffer>);
    return await eventually(
      () =>
        code ??
          (messages.slice(answered).some((m) => m.code === "bad_message") ? "open" : undefined),
      "a close, or a refusal",
    );
  };
  return { ws, messages, closed: closed.promise, afterSending };
}

Deno.test("a binary message over the dashboard socket's limit closes it (1009) as a text one does, before and after the client is let in", async () => {
  const server = remoteNode();
  try {
    const stranger = await openSocket(server.url);
    assertEquals(stranger.messages[0].access, "none");
    // A small binary message is refused and the socket stays (as before).
    assertEquals(await stranger.afterSending(new Uint8Array(16)), "open");
    // Over an auth's size (4096 bytes): closed, as a text message that large is.
    assertEquals(await stranger.afterSending("x".repeat(5_000)), 1009, "text, as before");
    const other = await openSocket(server.url);
    assertEquals(
      await other.afterSending(new Uint8Array(1 << 20)),
      1009,
      "a 1 MiB binary message from a client nobody let in",
    );

    const reader = await openSocket(server.url);
    reader.ws.send(JSON.stringify({ type: "auth", token: KEY }));
    await eventually(() => reader.messages.some((m) => m.access === "read") || undefined, "in");
    assertEquals(
      await reader.afterSending(new Uint8Array(5_000)),
      1009,
      "a binary message over http.maxRequestBytes (4096) from a client let in",
    );
  } finally {
    await server.shutdown();
  }
});
