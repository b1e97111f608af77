/**
 * `serve`'s graceful shutdown has a deadline: open work (an HTTP request, an SSE stream, a
 * WebSocket's drain) that outlasts `drainTimeoutMs` is cut as aborting the server cuts it, one
 * line says how much, and the shutdown ends; a drain that ends in time cuts and says nothing.
 * Requests that come during the drain are refused with the edge's error shape.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  drainBeforeShutdown,
  type DrainTimers,
  serve,
  TIME_UP_GRACE_MS,
} from "../../server/serve.ts";
import { EdgeError, httpStatusOf, openAiErrorBody } from "../../server/http_errors.ts";

/** Timers that fire only when the test says so. */
class FakeTimers implements DrainTimers {
  readonly armed = new Map<number, { callback: () => void; ms: number }>();
  #next = 1;

  setTimeout(callback: () => void, ms: number): unknown {
    const handle = this.#next++;
    this.armed.set(handle, { callback, ms });
    return handle;
  }

  clearTimeout(handle: unknown): void {
    this.armed.delete(handle as number);
  }

  /** Fire every armed timer. */
  fireAll(): void {
    const due = [...this.armed.values()];
    this.armed.clear();
    for (const { callback } of due) callback();
  }
}

/** Let the event loop turn a few times (I/O and timers included), so pending work can run. */
async function turns(n = 5): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setTimeout(resolve, 0));
}

/** Whether `promise` has settled, without waiting for it. */
function tracker(promise: Promise<unknown>): () => boolean {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  return () => settled;
}

Deno.test("a drain past drainTimeoutMs is cut: the stuck WebSocket, given a moment to end by itself, is closed, the open SSE response aborted, one line says how many, and the shutdown ends", async () => {
  const timers = new FakeTimers();
  const log: string[] = [];
  const sseCancelled = Promise.withResolvers<void>();
  const serverSocketClosed = Promise.withResolvers<void>();
  let drainCalls = 0;
  const server = serve({
    drainTimeoutMs: 4_321,
    timers,
    log: (line) => void log.push(line),
    app: {
      fetch(request) {
        if (new URL(request.url).pathname === "/ws") {
          const { socket, response } = Deno.upgradeWebSocket(request);
          socket.onclose = () => serverSocketClosed.resolve();
          // A job that never ends: its drain never resolves, not even when time is up.
          drainBeforeShutdown(request, () => {
            drainCalls++;
            return new Promise<void>(() => {});
          });
          return response;
        }
        const body = new ReadableStream<Uint8Array>({
          start: (c) => c.enqueue(new TextEncoder().encode("data: first\n\n")),
          cancel: () => sseCancelled.resolve(),
        });
        return new Response(body, { headers: { "content-type": "text/event-stream" } });
      },
    },
  });
  const client = new WebSocket(`${server.url.replace("http:", "ws:")}/ws`);
  const clientClosed = new Promise<void>((resolve) => client.onclose = () => resolve());
  await new Promise((resolve) => client.onopen = resolve);
  const sse = await fetch(`${server.url}/sse`);
  const reader = sse.body!.getReader();
  assert(!(await reader.read()).done, "the stream is open");

  const shutdown = server.shutdown();
  const ended = tracker(shutdown);
  assertEquals([...timers.armed.values()].map((t) => t.ms), [4_321]);
  await turns();
  assertEquals([ended(), drainCalls, log], [false, 1, []]);

  timers.fireAll();
  await turns();
  // Time is up: the drains get a moment to end by themselves, then what is left is cut.
  assertEquals([...timers.armed.values()].map((t) => t.ms), [TIME_UP_GRACE_MS]);
  assertEquals(ended(), false);
  timers.fireAll();
  await shutdown;
  assertEquals(log.length, 1, log.join("\n"));
  assert(/4321 ms \(http\.drainTimeoutMs\)/.test(log[0]), log[0]);
  assert(/ending 1 open HTTP request and 1 WebSocket /.test(log[0]), log[0]);
  await Promise.all([sseCancelled.promise, serverSocketClosed.promise, clientClosed]);
  const rest = await reader.read().then(() => "more data", (e: Error) => e.name);
  assert(rest !== "more data", "the client's stream was cut, not ended");
  await server.finished;
  assertEquals(await server.shutdown().then(() => log.length), 1, "said once");
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
        });
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
  await turns();
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
        drainBeforeShutdown(request, () => release.promise);
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
        // A job that runs until it is told time is up, then ends and closes the socket.
        drainBeforeShutdown(request, (timeUp) =>
          new Promise<void>((resolve) => {
            timeUp.addEventListener("abort", () => {
              socket.send("job cancelled");
              socket.close(1001, "server shutting down");
              resolve();
            });
          }));
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
  await turns();
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
    await turns();
    // The request is answered, but the connection still waits for its body: the deadline is
    // what ends the wait.
    assertEquals([ended(), [...timers.armed.values()].map((t) => t.ms)], [false, [4_321]]);
    timers.fireAll();
    await turns();
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
