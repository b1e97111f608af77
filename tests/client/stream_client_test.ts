/**
 * `StreamClient` (`client/stream_client.ts`) against bare or stub WebSocket servers: jobs on one
 * socket, request ids a caller reuses, and what a server may send back.
 */
import nodeAssert from "node:assert/strict";
import {
  InvalidStreamUrlError,
  MAX_STREAM_TIMEOUT_MS,
  StreamClient,
  type StreamClientOptions,
  StreamClosedError,
  StreamRequestError,
} from "../../client/stream_client.ts";
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import {
  doneFrame,
  scriptedServer,
  silentPort,
  stallingServer,
  startFrame,
} from "./_stub_servers.ts";
import { recordTimeouts } from "./_timers.ts";

// ---- jobs on a socket that is no longer open ----------------------------------------------------
//
// `StreamClient` against a bare WebSocket server: what a job started on a socket that is no longer
// open does.

/** A `/v1/stream` stand-in that answers nothing; with `closeOnOpen`, it closes each socket. */
function serveSockets(closeOnOpen: boolean): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    if (closeOnOpen) socket.onopen = () => socket.close();
    return response;
  });
}

/**
 * Whether `promise` settles before any further event is handled: a few microtasks, no
 * macrotask, so a close event still on its way cannot be what settles it.
 */
async function settledAtOnce(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  for (let turn = 0; turn < SETTLE_MICROTASKS; turn++) await Promise.resolve();
  return settled;
}

/** Microtasks a promise rejected before it was returned needs to reach a `then` and report. */
const SETTLE_MICROTASKS = 3;

/** Assert `job` failed with {@link StreamClosedError} everywhere: start, done and tokens. */
async function assertClosedJob(job: ReturnType<StreamClient["infer"]>): Promise<void> {
  assertEquals(await settledAtOnce(job.done), true, "done settles at once");
  await assertRejects(() => job.start, StreamClosedError);
  await assertRejects(() => job.done, StreamClosedError);
  await assertRejects(() => job.tokens.getReader().read(), StreamClosedError);
}

Deno.test("StreamClient.infer on a socket the server closed fails at once with StreamClosedError (start, done, tokens) and registers nothing", async () => {
  const server = serveSockets(true);
  try {
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    await client.closed;
    await assertClosedJob(client.infer({ id: "late", prompt: "x", max_tokens: 1 }));
    // Nothing was registered: the same id is free again.
    await assertClosedJob(client.infer({ id: "late", prompt: "x", max_tokens: 1 }));
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamClient.infer on a socket the client is closing fails at once with StreamClosedError", async () => {
  const server = serveSockets(false);
  try {
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    client.close();
    const job = client.infer({ prompt: "x", max_tokens: 1 });
    await assertClosedJob(job);
    assertEquals((await job.done.catch((error) => error)).message, "the client closed the socket");
    await client.closed;
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamClient.connect gives up after connectTimeoutMs on a node that accepts connections but never answers, naming the URL", async () => {
  const silent = silentPort();
  try {
    const error = await assertRejects(
      () => StreamClient.connect(`ws://127.0.0.1:${silent.port}`, { connectTimeoutMs: 100 }),
      StreamClosedError,
    );
    assertEquals(error.details.timeout, "connect");
    assert(error.message.includes(`ws://127.0.0.1:${silent.port}/v1/stream`), error.message);
    assert(/within 0\.1 s/.test(error.message), error.message);
  } finally {
    silent.close();
  }
});

Deno.test("StreamClient: a job on a socket that goes silent fails after idleTimeoutMs, naming the URL, and the socket is closed", async () => {
  const server = stallingServer();
  try {
    const url = `ws://127.0.0.1:${server.addr.port}`;
    const client = await StreamClient.connect(url, { idleTimeoutMs: 150 });
    const job = client.infer({ prompt: "x", max_tokens: 8 });
    const reader = job.tokens.getReader();
    assertEquals((await reader.read()).value?.text, "A");
    const error = await assertRejects(() => job.done, StreamClosedError);
    assertEquals(error.details.timeout, "idle");
    assert(error.message.includes(`${url}/v1/stream`), error.message);
    assert(/no message .* for 0\.15 s while a job ran/.test(error.message), error.message);
    await assertRejects(() => reader.read(), StreamClosedError);
    await client.closed;
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamClient: the server's close code and reason are in the StreamClosedError (1009, message too big)", async () => {
  const reason = "message over 1048576 bytes (http.maxRequestBytes)";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = () => socket.close(1009, reason);
    return response;
  });
  try {
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    const error = await assertRejects(
      () => client.infer({ prompt: "x", max_tokens: 1 }).done,
      StreamClosedError,
    );
    assertEquals(error.details.closeCode, 1009);
    assertEquals(error.details.closeReason, reason);
    assert(error.message.includes(`code 1009: ${reason}`), error.message);
    await client.closed;
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamClient.connect: a refused upgrade says why (Invalid status code: 401 / 404), with details.httpStatus", async () => {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (request) =>
      new Response("no", { status: new URL(request.url).pathname === "/v1/stream" ? 401 : 404 }),
  );
  try {
    const unauthorized = await assertRejects(
      () => StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`),
      StreamClosedError,
    );
    assertEquals(unauthorized.details.httpStatus, 401);
    assert(/cannot connect to .*: Invalid status code: 401/.test(unauthorized.message));
    const wrongPath = await assertRejects(
      () => StreamClient.connect(`ws://127.0.0.1:${server.addr.port}/v2`),
      StreamClosedError,
    );
    assertEquals(wrongPath.details.httpStatus, 404);
    assert(wrongPath.message.includes("Invalid status code: 404"), wrongPath.message);
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamClient.connect with an already-aborted signal rejects at once with its reason", async () => {
  const server = serveSockets(false);
  try {
    const controller = new AbortController();
    controller.abort(new Error("stopped before"));
    const connecting = StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`, {
      signal: controller.signal,
    });
    assertEquals(await settledAtOnce(connecting), true, "connect settles at once");
    assertEquals((await connecting.catch((error) => error)).message, "stopped before");
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamClient.connect: aborting while connecting rejects; the abort listener is removed once the socket closes or the connection fails", async () => {
  const added: unknown[] = [];
  const removed: unknown[] = [];
  const watched = (controller: AbortController) => {
    const signal = controller.signal;
    const add = signal.addEventListener.bind(signal);
    const remove = signal.removeEventListener.bind(signal);
    signal.addEventListener = ((type: string, listener: EventListener, options?: unknown) => {
      added.push(listener);
      add(type, listener, options as AddEventListenerOptions);
    }) as typeof signal.addEventListener;
    signal.removeEventListener = ((type: string, listener: EventListener) => {
      removed.push(listener);
      remove(type, listener);
    }) as typeof signal.removeEventListener;
    return signal;
  };
  const server = serveSockets(false);
  const silent = silentPort();
  try {
    // A connection that opened, then closed: its listener goes with it.
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`, {
      signal: watched(new AbortController()),
    });
    client.close();
    await client.closed;
    assertEquals(added.length, 1);
    assertEquals(removed, added);
    // A connection that failed (nobody answered in time): no listener is left behind.
    added.length = removed.length = 0;
    await assertRejects(() =>
      StreamClient.connect(`ws://127.0.0.1:${silent.port}`, {
        signal: watched(new AbortController()),
        connectTimeoutMs: 50,
      }), StreamClosedError);
    assertEquals(removed, added);
    // Aborted while connecting: rejects with the reason.
    const controller = new AbortController();
    const connecting = StreamClient.connect(`ws://127.0.0.1:${silent.port}`, {
      signal: controller.signal,
    });
    controller.abort(new Error("gave up"));
    assertEquals((await connecting.catch((error) => error)).message, "gave up");
  } finally {
    silent.close();
    await server.shutdown();
  }
});

Deno.test("StreamClient.connect never throws synchronously: a URL that cannot name the API (not a URL, ftp:, a fragment) rejects with InvalidStreamUrlError (invalid_url)", async () => {
  for (const url of ["not a url", "ftp://127.0.0.1:1", "ws://127.0.0.1:1/#fragment"]) {
    let connecting: Promise<StreamClient> | undefined;
    try {
      connecting = StreamClient.connect(url);
    } catch (error) {
      throw new Error(`connect(${url}) threw synchronously: ${error}`);
    }
    const refusal = await assertRejects(() => connecting!, InvalidStreamUrlError);
    assertEquals(refusal.code, "invalid_url");
  }
});

Deno.test("StreamClient: a job started after the server closed the socket carries the close code and reason too", async () => {
  const reason = "server shutting down";
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onopen = () => socket.close(1001, reason);
    return response;
  });
  try {
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    await client.closed;
    const error = await assertRejects(
      () => client.infer({ prompt: "x", max_tokens: 1 }).done,
      StreamClosedError,
    );
    assertEquals([error.details.closeCode, error.details.closeReason], [1001, reason]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamClient: a text frame that is not JSON fails every job with StreamClosedError (protocol error), never an uncaught exception", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = () => socket.send("not json <html>");
    return response;
  });
  try {
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    const error = await assertRejects(
      () => client.infer({ prompt: "x", max_tokens: 1 }).done,
      StreamClosedError,
    );
    assert(error.message.includes("not JSON"), error.message);
    await client.closed;
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamClient: an id the client generates never clashes with one the caller chose for a running job", async () => {
  const server = serveSockets(false);
  try {
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    const chosen = client.infer({ id: "r2", prompt: "x", max_tokens: 1 });
    const generated = [1, 2, 3].map(() => client.infer({ prompt: "x", max_tokens: 1 }).id);
    assertEquals(generated, ["r1", "r3", "r4"]);
    assertEquals(chosen.id, "r2");
    client.close();
    await client.closed;
    for (const job of [chosen]) await job.done.catch(() => {});
  } finally {
    await server.shutdown();
  }
});

/** A `/v1/stream` stand-in that answers each `infer` with `frame`, then closes the socket. */
function answeringWith(frame: (id: string) => string): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      socket.send(frame(JSON.parse(event.data).id));
      // The close comes after the frame: a client that ignored the frame fails the job on it.
      socket.close(1000);
    };
    return response;
  });
}

Deno.test("StreamClient: a JSON frame that is not a message (null, a number, an array, an object without a string type) fails every job with StreamClosedError (protocol error), never an uncaught exception", async () => {
  for (const frame of ["null", "42", '"text"', "[]", '{"id":"r1"}', '{"type":1,"id":"r1"}']) {
    const server = answeringWith(() => frame);
    try {
      const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
      const error = await assertRejects(
        () => client.infer({ id: "r1", prompt: "x", max_tokens: 1 }).done,
        StreamClosedError,
      );
      assert(error.message.includes("a frame that is not a message object"), error.message);
      await client.closed;
    } finally {
      await server.shutdown();
    }
  }
});

Deno.test("StreamClient.connect: connectTimeoutMs 0 or Infinity arms no connect timer; one past setTimeout's limit (3e9) arms a 2^31−1 ms timer, not a 1 ms one", async () => {
  const server = serveSockets(false);
  try {
    const cases: [number, number[]][] = [
      [0, []],
      [Infinity, []],
      [3e9, [MAX_STREAM_TIMEOUT_MS]],
      [MAX_STREAM_TIMEOUT_MS, [MAX_STREAM_TIMEOUT_MS]],
      [5_000, [5_000]],
    ];
    for (const [connectTimeoutMs, expected] of cases) {
      const timeouts = recordTimeouts();
      let client: StreamClient;
      try {
        client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`, {
          connectTimeoutMs,
          idleTimeoutMs: 0,
        });
      } finally {
        timeouts.restore();
      }
      assertEquals(timeouts.delays, expected, `connectTimeoutMs ${connectTimeoutMs}`);
      client.close();
      await client.closed;
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamClient.connect rejects (never throws) a negative or NaN connectTimeoutMs or idleTimeoutMs with a RangeError naming the option", async () => {
  const url = "ws://127.0.0.1:9";
  const refusals: [keyof StreamClientOptions, number][] = [
    ["connectTimeoutMs", -1],
    ["connectTimeoutMs", NaN],
    ["connectTimeoutMs", -Infinity],
    ["idleTimeoutMs", -1],
    ["idleTimeoutMs", NaN],
  ];
  for (const [option, value] of refusals) {
    let connecting: Promise<StreamClient> | undefined;
    try {
      connecting = StreamClient.connect(url, { [option]: value });
    } catch (error) {
      throw new Error(`connect({ ${option}: ${value} }) threw synchronously: ${error}`);
    }
    const refusal = await assertRejects(() => connecting!, RangeError);
    assert(refusal.message.startsWith(`${option} must be 0 or more`), refusal.message);
    assert(refusal.message.endsWith(`got ${value}`), refusal.message);
  }
});

Deno.test("StreamClient: idleTimeoutMs past setTimeout's limit (3e9) arms one 2^31−1 ms idle timer and Infinity none while a job runs, never a 1 ms timer loop", async () => {
  const server = stallingServer();
  try {
    for (
      const [idleTimeoutMs, expected] of [[3e9, [MAX_STREAM_TIMEOUT_MS]], [Infinity, []]] as const
    ) {
      const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`, {
        idleTimeoutMs,
      });
      const timeouts = recordTimeouts();
      try {
        const job = client.infer({ prompt: "x", max_tokens: 8 });
        // The job is running and the socket now silent: the idle watch is armed.
        assertEquals((await job.tokens.getReader().read()).value?.text, "A");
      } finally {
        timeouts.restore();
      }
      assertEquals(timeouts.delays, expected, `idleTimeoutMs ${idleTimeoutMs}`);
      client.close();
      await client.closed;
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("StreamClient: a refusal's retry_after_s reaches the caller as StreamRequestError.retryAfterS", async () => {
  const refusal = (id: string, extra: Record<string, unknown>) =>
    JSON.stringify({ type: "error", id, code: "too_many_jobs", message: "busy", ...extra });
  for (const [extra, expected] of [[{ retry_after_s: 7 }, 7], [{}, undefined]] as const) {
    const server = answeringWith((id) => refusal(id, extra));
    try {
      const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
      const error = await assertRejects(
        () => client.infer({ prompt: "x", max_tokens: 1 }).done,
        StreamRequestError,
      );
      assertEquals([error.code, error.message, error.retryAfterS], [
        "too_many_jobs",
        "busy",
        expected,
      ]);
      await client.closed;
    } finally {
      await server.shutdown();
    }
  }
});

// ---- a request id already running ---------------------------------------------------------------
//
// `StreamClient` with a caller-chosen request id that is already running on the socket: the new job
// fails in the client's own error vocabulary, naming the id, and the running job goes on.

/**
 * A `/v1/stream` stand-in that starts each job and ends it only when cancelled (`done`,
 * `finish_reason: "cancelled"`). `messages` has what clients sent, in order.
 */
function cancellableServer(): Deno.HttpServer<Deno.NetAddr> & { messages: unknown[] } {
  const messages: unknown[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      messages.push(message);
      if (message.type === "infer") {
        socket.send(JSON.stringify(startFrame(message.id)));
      } else if (message.type === "cancel") {
        socket.send(JSON.stringify(doneFrame(message.id, 0, "cancelled")));
      }
    };
    return response;
  });
  return Object.assign(server, { messages });
}

Deno.test("StreamClient.infer with the id of a running job fails that call with StreamRequestError duplicate_id naming the id, sends nothing, and leaves the running job alone", async () => {
  const server = cancellableServer();
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  try {
    const running = client.infer({ id: "job-7", prompt: "x", max_tokens: 4 });
    await running.start;
    const again = client.infer({ id: "job-7", prompt: "y", max_tokens: 4 });
    nodeAssert.equal(again.id, "job-7");
    const isDuplicate = (error: unknown) => {
      nodeAssert.ok(error instanceof StreamRequestError, String(error));
      nodeAssert.equal(error.code, "duplicate_id");
      nodeAssert.match(error.message, /job-7/);
      return true;
    };
    await nodeAssert.rejects(again.start, isDuplicate);
    await nodeAssert.rejects(again.done, isDuplicate);
    await nodeAssert.rejects(again.tokens.getReader().read(), isDuplicate);
    again.cancel(); // the failed call's cancel must not reach the running job
    // The server answers in order: once a later job has started, it has read every frame
    // sent before it, and neither the refused infer nor its cancel was among them.
    const probe = client.infer({ id: "probe", prompt: "z", max_tokens: 1 });
    await probe.start;
    nodeAssert.deepEqual(
      server.messages.map((m) => [(m as { type: string }).type, (m as { id: string }).id]),
      [["infer", "job-7"], ["infer", "probe"]],
    );
    // The running job still ends by its own cancel.
    running.cancel();
    nodeAssert.equal((await running.done).finish_reason, "cancelled");
  } finally {
    client.close();
    await server.shutdown();
  }
});

// ---- a reused request id ------------------------------------------------------------------------
//
// The streaming client when a caller reuses a request id — a finished job's `cancel` (or the cancel
// of its token stream) must not reach the job now running under that id.

/**
 * A `/v1/stream` stand-in: the first `infer` of each id ends at once (`start`, one token,
 * `done`); a later one with the same id starts and keeps running. `messages` has what clients
 * sent.
 */
function reusedIdServer(): Deno.HttpServer<Deno.NetAddr> & { messages: { type: string }[] } {
  const messages: { type: string }[] = [];
  const seen = new Set<string>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      messages.push(message);
      if (message.type !== "infer") return;
      const id = message.id;
      socket.send(JSON.stringify(startFrame(id)));
      socket.send(JSON.stringify({ type: "token", id, index: 0, token_id: 65, text: "A" }));
      socket.send(JSON.stringify({ type: "token", id, index: 1, token_id: 66, text: "B" }));
      if (seen.has(id)) return; // the second job under this id runs on
      seen.add(id);
      socket.send(JSON.stringify(doneFrame(id, 2)));
    };
    return response;
  });
  return Object.assign(server, { messages });
}

Deno.test("a finished job's cancel() does not cancel the job now running under the same id", async () => {
  const server = reusedIdServer();
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`, {
    idleTimeoutMs: 0,
  });
  try {
    const first = client.infer({ id: "a", prompt: "x" });
    await first.done;
    const second = client.infer({ id: "a", prompt: "y" });
    await second.start;
    first.cancel(); // the first job has ended: nothing to cancel
    // A round trip on another id: whatever the client sent before it has reached the server.
    await client.infer({ id: "probe", prompt: "z" }).done;
    assertEquals(server.messages.map((m) => m.type), ["infer", "infer", "infer"]);
  } finally {
    client.close();
    await client.closed;
    await server.shutdown();
  }
});

Deno.test("leaving a finished job's token loop early does not cancel the job now running under the same id", async () => {
  const server = reusedIdServer();
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`, {
    idleTimeoutMs: 0,
  });
  try {
    const first = client.infer({ id: "a", prompt: "x" });
    await first.done; // both tokens wait unread
    const second = client.infer({ id: "a", prompt: "y" });
    await second.start;
    for await (const token of first.tokens) {
      assertEquals(token.text, "A");
      break; // cancels the token stream of a job that has ended
    }
    await client.infer({ id: "probe", prompt: "z" }).done;
    assertEquals(server.messages.map((m) => m.type), ["infer", "infer", "infer"]);
  } finally {
    client.close();
    await client.closed;
    await server.shutdown();
  }
});

// ---- a job's tokens are the ones it asked for ---------------------------------------------------
//
// The streaming client (`client/stream_client.ts`) against a hostile or faulty server: a job's
// tokens must be the ones it asked for, in order, and no more than its `max_tokens`. Before, the
// client queued whatever `token` frames came (a server could fill a caller's memory past the bound
// the docs tell it to rely on, or hand it tokens out of order).

/** A server that answers each job with `start`, then the token indices given, then `done`. */
function indexedServer(indices: number[]): Deno.HttpServer<Deno.NetAddr> {
  return scriptedServer(indices.map((index) => ({ index, text: "A" })));
}

async function readAll(stream: ReadableStream<{ index: number }>): Promise<number[]> {
  const seen: number[] = [];
  for await (const token of stream) seen.push(token.index);
  return seen;
}

Deno.test("a server that sends more tokens than the job's max_tokens fails the job as a protocol error, after the tokens it was owed", async () => {
  const server = indexedServer([0, 1, 2, 3, 4]);
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  try {
    const job = client.infer({ prompt: "x", max_tokens: 2 });
    const seen: number[] = [];
    const error = await assertRejects(async () => {
      for await (const token of job.tokens) seen.push(token.index);
    }, StreamClosedError);
    assert(error.message.includes("more tokens than the job's max_tokens (2)"), error.message);
    assertEquals(seen, [0, 1]);
    await assertRejects(() => job.done, StreamClosedError);
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("a token out of order (an index skipped or repeated) fails the job as a protocol error", async () => {
  for (const indices of [[0, 2], [0, 0]]) {
    const server = indexedServer(indices);
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    try {
      const job = client.infer({ prompt: "x", max_tokens: 8 });
      const error = await assertRejects(() => readAll(job.tokens), StreamClosedError);
      assert(error.message.includes("out of order"), error.message);
    } finally {
      client.close();
      await server.shutdown();
    }
  }
});

Deno.test("tokens in order and within max_tokens still arrive whole", async () => {
  const server = indexedServer([0, 1, 2]);
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
  try {
    const job = client.infer({ prompt: "x", max_tokens: 3 });
    assertEquals(await readAll(job.tokens), [0, 1, 2]);
    assertEquals((await job.done).usage.completion_tokens, 3);
  } finally {
    client.close();
    await server.shutdown();
  }
});
