/**
 * Graceful shutdown (`server/serve.ts`, `server/stream_session.ts`): the drain deadline, the drains
 * that end their work and tell their clients, and how a WebSocket job ends when the drain cuts it.
 */
import { assert, assertEquals } from "./_assert.ts";
import { drainBeforeShutdown, serve, TIME_UP_GRACE_MS } from "../../server/serve.ts";
import { EdgeError, httpStatusOf, openAiErrorBody } from "../../server/http_errors.ts";
import { eventually } from "../_helpers/wait.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { LOOPBACK_CLIENT } from "../../server/client_identity.ts";
import { type SessionSocket, StreamSession } from "../../server/stream_session.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type InferenceStats,
  type ServedModelInfo,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import type { TextJob } from "../../protocols/job.ts";

// `serve`'s graceful shutdown has a deadline: past `drainTimeoutMs` one line says how much is
// still open, the registered drains (a WebSocket's, an SSE stream's) end their work and tell their
// clients, a request not answered yet gets 503 `shutting_down`, and what is still open a moment
// later is cut as aborting the server cuts it; a drain that ends in time cuts and says nothing.
// Requests that come during the drain are refused with the edge's error shape.

Deno.test("past drainTimeoutMs a registered SSE stream ends itself with an error event and [DONE]; the stuck WebSocket and an unregistered response, given a moment, are cut; one line counts them, the SSE stream by name; the shutdown ends", async () => {
  const timers = new FakeTimers();
  const log: string[] = [];
  const rawCancelled = Promise.withResolvers<void>();
  const serverSocketClosed = Promise.withResolvers<void>();
  const encoder = new TextEncoder();
  let drainCalls = 0;
  const server = serve({
    drainTimeoutMs: 4_321,
    timers,
    log: (line) => void log.push(line),
    app: {
      fetch(request) {
        const path = new URL(request.url).pathname;
        if (path === "/ws") {
          const { socket, response } = Deno.upgradeWebSocket(request);
          socket.onclose = () => serverSocketClosed.resolve();
          // A job that never ends: its drain never resolves, not even when time is up.
          drainBeforeShutdown(request, () => {
            drainCalls++;
            return new Promise<void>(() => {});
          }, "websocket");
          return response;
        }
        if (path === "/sse") {
          // A stream whose job runs until time is up, then ends it as the OpenAI routes do.
          let end: () => void;
          const ended = new Promise<void>((resolve) => end = resolve);
          const body = new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(encoder.encode("data: first\n\n"));
              drainBeforeShutdown(request, (timeUp) => {
                drainCalls++;
                timeUp.addEventListener("abort", () => {
                  controller.enqueue(encoder.encode('data: {"error":"shutting_down"}\n\n'));
                  controller.enqueue(encoder.encode("data: [DONE]\n\n"));
                  controller.close();
                  end();
                });
                return ended;
              }, "sse");
            },
          });
          return new Response(body, { headers: { "content-type": "text/event-stream" } });
        }
        // Not registered: only the cut ends it.
        const body = new ReadableStream<Uint8Array>({
          start: (c) => c.enqueue(encoder.encode("data: first\n\n")),
          cancel: () => rawCancelled.resolve(),
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      },
    },
  });
  const client = new WebSocket(`${server.url.replace("http:", "ws:")}/ws`);
  const clientClosed = new Promise<void>((resolve) => client.onclose = () => resolve());
  await new Promise((resolve) => client.onopen = resolve);
  const sse = (await fetch(`${server.url}/sse`)).body!.getReader();
  const raw = (await fetch(`${server.url}/raw`)).body!.getReader();
  assert(!(await sse.read()).done, "the SSE stream is open");
  assert(!(await raw.read()).done, "the unregistered stream is open");

  const shutdown = server.shutdown();
  const ended = tracker(shutdown);
  assertEquals([...timers.armed.values()].map((t) => t.ms), [4_321]);
  await turns(5);
  assertEquals([ended(), drainCalls, log], [false, 2, []]);

  timers.fireAll();
  // Time is up: the SSE stream ends itself, its client reads the end, not a cut.
  let rest = "";
  for (let read = await sse.read(); !read.done; read = await sse.read()) {
    rest += new TextDecoder().decode(read.value);
  }
  assertEquals(rest, 'data: {"error":"shutting_down"}\n\ndata: [DONE]\n\n');
  // The stuck WebSocket and the unregistered stream get a moment, then are cut.
  assertEquals([...timers.armed.values()].map((t) => t.ms), [TIME_UP_GRACE_MS]);
  assertEquals(ended(), false);
  timers.fireAll();
  await shutdown;
  assertEquals(log.length, 1, log.join("\n"));
  assert(/4321 ms \(http\.drainTimeoutMs\)/.test(log[0]), log[0]);
  assert(
    /ending 2 open HTTP requests \(1 SSE stream\) and 1 WebSocket with jobs still running/
      .test(log[0]),
    log[0],
  );
  await Promise.all([rawCancelled.promise, serverSocketClosed.promise, clientClosed]);
  const cut = await raw.read().then(() => "more data", (e: Error) => e.name);
  assert(cut !== "more data", "the unregistered stream was cut, not ended");
  await server.finished;
  assertEquals(await server.shutdown().then(() => log.length), 1, "said once");
});

Deno.test("a request the app has not answered when the drain deadline passes gets 503 shutting_down, not a cut connection; the app's late answer is discarded, its body cancelled", async () => {
  const timers = new FakeTimers();
  const log: string[] = [];
  const answer = Promise.withResolvers<Response>();
  const lateBodyCancelled = Promise.withResolvers<void>();
  const arrived = Promise.withResolvers<void>();
  const server = serve({
    drainTimeoutMs: 4_321,
    timers,
    log: (line) => void log.push(line),
    // Still submitting its job (or reading its body) when time is up.
    app: {
      fetch: () => {
        arrived.resolve();
        return answer.promise;
      },
    },
  });
  const response = fetch(`${server.url}/v1/completions`, { method: "POST", body: "{}" });
  await arrived.promise;
  const shutdown = server.shutdown();
  await turns(5);
  timers.fireAll(); // the deadline
  const answered = tracker(response);
  await eventually(answered, "an answer at the deadline, before the cut");
  const refused = await response;
  const body = await refused.json();
  assertEquals([refused.status, body.error.code], [503, "shutting_down"]);
  assert(/drain deadline \(http\.drainTimeoutMs\)/.test(body.error.message), body.error.message);
  assert(/ending 1 open HTTP request and 0 WebSockets /.test(log[0]), log[0]);

  answer.resolve(
    new Response(new ReadableStream({ cancel: () => lateBodyCancelled.resolve() })),
  );
  await lateBodyCancelled.promise;
  await shutdown;
  assertEquals(timers.armed.size, 0, "answered within the grace: no cut needed");
  await server.finished;
});

Deno.test("a drain that ends before drainTimeoutMs cuts nothing and says nothing; its deadline is disarmed", async () => {
  const timers = new FakeTimers();
  const log: string[] = [];
  const jobDone = Promise.withResolvers<void>();
  const server = serve({
    drainTimeoutMs: 1_000,
    timers,
    log: (line) => void log.push(line),
    app: {
      fetch(request) {
        const { socket, response } = Deno.upgradeWebSocket(request);
        drainBeforeShutdown(request, async () => {
          await jobDone.promise;
          socket.close(1001, "server shutting down");
        }, "websocket");
        return response;
      },
    },
  });
  const client = new WebSocket(server.url.replace("http:", "ws:"));
  const clientClosed = new Promise<CloseEvent>((resolve) => client.onclose = resolve);
  await new Promise((resolve) => client.onopen = resolve);

  const shutdown = server.shutdown();
  const ended = tracker(shutdown);
  assertEquals(timers.armed.size, 1, "the deadline is armed");
  await turns(5);
  assertEquals(ended(), false, "the drain waits for the job");
  jobDone.resolve();
  await shutdown;
  assertEquals([log, timers.armed.size], [[], 0]);
  assertEquals((await clientClosed).code, 1001, "closed by the drain, not cut");
});

Deno.test("a request during the drain gets 503 shutting_down in the edge's error shape, with connection: close", async () => {
  const release = Promise.withResolvers<void>();
  const server = serve({
    timers: new FakeTimers(),
    app: {
      fetch(request) {
        const { response } = Deno.upgradeWebSocket(request);
        drainBeforeShutdown(request, () => release.promise, "websocket");
        return response;
      },
    },
  });
  const client = new WebSocket(server.url.replace("http:", "ws:"));
  await new Promise((resolve) => client.onopen = resolve);
  const shutdown = server.shutdown();
  try {
    const refused = await fetch(`${server.url}/v1/models`);
    const body = await refused.json();
    const expected = new EdgeError("shutting_down", body.error.message);
    assertEquals(refused.status, httpStatusOf(expected));
    assertEquals(body, openAiErrorBody(expected));
    assertEquals(refused.headers.get("connection"), "close");
    assertEquals(refused.headers.get("content-type"), "application/json");
  } finally {
    release.resolve();
    client.close();
    await shutdown;
  }
});

Deno.test("when the drain deadline passes, a WebSocket that ends its work at once closes cleanly (1001) and nothing is cut", async () => {
  const timers = new FakeTimers();
  const log: string[] = [];
  const server = serve({
    drainTimeoutMs: 100,
    timers,
    log: (line) => void log.push(line),
    app: {
      fetch(request) {
        const { socket, response } = Deno.upgradeWebSocket(request);
        // A job that runs until it is told time is up, then ends and closes the socket; the drain
        // ends once the socket has closed, as a session's does.
        drainBeforeShutdown(request, (timeUp) =>
          new Promise<void>((resolve) => {
            socket.onclose = () => resolve();
            timeUp.addEventListener("abort", () => {
              socket.send("job cancelled");
              socket.close(1001, "server shutting down");
            });
          }), "websocket");
        return response;
      },
    },
  });
  const client = new WebSocket(`${server.url.replace("http:", "ws:")}/ws`);
  const messages: string[] = [];
  client.onmessage = (e) => void messages.push(e.data);
  const closed = new Promise<CloseEvent>((resolve) => client.onclose = resolve);
  await new Promise((resolve) => client.onopen = resolve);
  const shutdown = server.shutdown();
  await turns(5);
  timers.fireAll(); // the deadline
  await shutdown;
  const event = await closed;
  assertEquals([event.code, event.reason, messages], [1001, "server shutting down", [
    "job cancelled",
  ]]);
  assertEquals(timers.armed.size, 0, "the grace timer disarmed");
  assertEquals(log.length, 1, "the deadline is still reported");
});

Deno.test("a client that got an early answer (413) before sending its whole body, and keeps the connection open, does not hold the shutdown past drainTimeoutMs: one line says the connection is left open", async () => {
  const timers = new FakeTimers();
  const log: string[] = [];
  const server = serve({
    drainTimeoutMs: 4_321,
    timers,
    log: (line) => void log.push(line),
    // Refuses a body too large before reading it, as the edge's body limit does.
    app: { fetch: () => new Response("request too large", { status: 413 }) },
  });
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: Number(new URL(server.url).port),
  });
  try {
    // The headers and the first byte of a 1000-byte body; the rest never comes.
    await client.write(
      new TextEncoder().encode(
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{",
      ),
    );
    const answer = new Uint8Array(1024);
    const n = await client.read(answer);
    const statusLine = new TextDecoder().decode(answer.subarray(0, n ?? 0)).split("\r\n")[0];
    assertEquals(statusLine, "HTTP/1.1 413 Payload Too Large");

    const shutdown = server.shutdown();
    const ended = tracker(shutdown);
    await turns(5);
    // The request is answered, but the connection still waits for its body: the deadline is
    // what ends the wait.
    assertEquals([ended(), [...timers.armed.values()].map((t) => t.ms)], [false, [4_321]]);
    timers.fireAll();
    await turns(5);
    assertEquals(ended(), true, "the shutdown ended at the deadline");
    assertEquals(log.length, 1, log.join("\n"));
    assert(/4321 ms \(http\.drainTimeoutMs\)/.test(log[0]), log[0]);
    assert(/did not close/.test(log[0]), log[0]);
    assertEquals(timers.armed.size, 0, "no timer left armed");
    assertEquals(await server.shutdown().then(() => log.length), 1, "said once");
  } finally {
    client.close();
    await server.finished;
  }
});

// A WebSocket job's end when the node drains for a shutdown: a job the drain deadline cuts ends
// with `error` `shutting_down` (its client did not cancel it); a job its client cancelled before
// the deadline ends `done` `cancelled`, even when its end only comes after the deadline (a
// worker's cancel can take a while to come back). The session sees a port whose jobs end only
// when the test says, so the order is exact.

const MODEL: ServedModelInfo = { cid: "bafkslowcancel", name: "slow", kind: "text" };

/** A job that streams one token, then waits; cancelled, it ends only on {@link end}. */
class SlowJob {
  cancels = 0;
  readonly #ended = Promise.withResolvers<void>();
  readonly handle: InferenceHandle;
  #tokens!: ReadableStreamDefaultController<StreamedToken>;

  constructor(jobId: string) {
    this.handle = {
      jobId,
      model: MODEL,
      promptTokens: 1,
      tokens: new ReadableStream<StreamedToken>({
        start: (c) => {
          this.#tokens = c;
          c.enqueue({ index: 0, tokenId: 0x61, text: "a" });
        },
        // The session cancels a job by cancelling its tokens.
        cancel: () => void this.cancels++,
      }),
      done: this.#ended.promise.then(() => ({
        jobId,
        finishReason: "cancelled" as const,
        usage: { promptTokens: 1, completionTokens: 1 },
        timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
      })),
      cancel: () => void this.cancels++,
    };
  }

  /** The cancelled job's end comes back. */
  end(): void {
    if (this.cancels === 0) this.#tokens.close();
    this.#ended.resolve();
  }
}

class SlowPort implements InferencePort {
  readonly jobs: SlowJob[] = [];
  submit(job: TextJob): Promise<InferenceHandle> {
    const slow = new SlowJob(String(this.jobs.length).padStart(64, "0"));
    this.jobs.push(slow);
    void job;
    return Promise.resolve(slow.handle);
  }
  models(): Promise<readonly ServedModelInfo[]> {
    return Promise.resolve([MODEL]);
  }
  stats(): Promise<InferenceStats> {
    return Promise.resolve(emptyInferenceStats());
  }
}

class OpenSocket implements SessionSocket {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = 0;
  readonly sent: Record<string, unknown>[] = [];
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }
  close(): void {
    this.readyState = WebSocket.CLOSED;
    this.onclose?.(new CloseEvent("close"));
  }
  receive(message: unknown): void {
    this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(message) }));
  }
  /** The job's last message (its `done` or `error`). */
  endOf(id: string): Record<string, unknown> | undefined {
    return this.sent.findLast((m) => m.id === id && (m.type === "done" || m.type === "error"));
  }
}

function session(): { socket: OpenSocket; port: SlowPort; session: StreamSession } {
  const socket = new OpenSocket();
  const port = new SlowPort();
  const s = new StreamSession(socket, new InferenceGateway({ inference: port }), {
    maxMessageBytes: 1 << 20,
    idleTimeoutMs: 600_000,
    client: LOOPBACK_CLIENT,
    stats: new EdgeStats(),
  });
  return { socket, port, session: s };
}

Deno.test("a WebSocket job its client cancelled before the drain deadline ends done cancelled, though its end comes after the deadline; one the deadline cut ends shutting_down", async () => {
  const { socket, port, session: s } = session();
  socket.receive({ type: "infer", id: "mine", model: "slow", prompt: "x", max_tokens: 8 });
  socket.receive({ type: "infer", id: "cut", model: "slow", prompt: "x", max_tokens: 8 });
  await eventually(
    () => socket.sent.filter((m) => m.type === "token").length === 2,
    "both jobs' first token",
  );
  // The client cancels "mine"; the worker's cancel is slow to come back.
  socket.receive({ type: "cancel", id: "mine" });
  await eventually(() => port.jobs[0].cancels === 1, "the cancel reached the job");
  const timeUp = new AbortController();
  const draining = s.drain(timeUp.signal);
  timeUp.abort();
  await eventually(() => port.jobs[1].cancels === 1, "the deadline cancelled the other job");
  port.jobs[0].end();
  port.jobs[1].end();
  await eventually(() => socket.readyState === WebSocket.CLOSED, "the drained socket closed");
  await draining;
  const mine = socket.endOf("mine");
  assertEquals([mine?.type, mine?.finish_reason], ["done", "cancelled"], JSON.stringify(mine));
  const cut = socket.endOf("cut");
  assertEquals([cut?.type, cut?.code], ["error", "shutting_down"], JSON.stringify(cut));
});
