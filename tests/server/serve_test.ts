/**
 * `serve`'s graceful shutdown has a deadline: past `drainTimeoutMs` one line says how much is
 * still open, the registered drains (a WebSocket's, an SSE stream's) end their work and tell their
 * clients, a request not answered yet gets 503 `shutting_down`, and what is still open a moment
 * later is cut as aborting the server cuts it; a drain that ends in time cuts and says nothing.
 * Requests that come during the drain are refused with the edge's error shape.
 */
import { assert, assertEquals } from "./_assert.ts";
import { drainBeforeShutdown, serve, TIME_UP_GRACE_MS } from "../../server/serve.ts";
import { EdgeError, httpStatusOf, openAiErrorBody } from "../../server/http_errors.ts";
import { eventually } from "../_helpers/wait.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";

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
