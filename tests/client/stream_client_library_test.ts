/**
 * The streaming client as a library user meets it: requests that cannot go on the wire, servers
 * that end jobs they never started, a close the node never answers, `using`, API keys a header
 * cannot carry, and the `./client` entry point.
 */
import nodeAssert from "node:assert/strict";
import { runInfer } from "../../cli/infer_command.ts";
import { StreamClient, StreamClosedError } from "../../client/mod.ts";
import { runStatus } from "../../cli/status_command.ts";
import { StreamRequestError } from "../../client/stream_client.ts";
import { tracker } from "../_helpers/fake_timers.ts";
import { eventually } from "../_helpers/wait.ts";
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { doneFrame, stallingServer, startFrame, wedgedServer } from "./_stub_servers.ts";
import { recordTimeouts } from "./_timers.ts";

// ---- requests, stray ends and a closed socket ---------------------------------------------------
//
// The streaming client (`client/stream_client.ts`) as a library user meets it: `infer` with a
// request that cannot go on the wire (a value JSON cannot encode, an id that is not a string); a
// server that ends a job it never started; and what a job started after the client itself closed
// the socket (its idle timeout, a protocol error) is told.

/**
 * A `/v1/stream` stand-in that answers as the node does: a job with a string id gets `start`,
 * one token and `done`; a frame whose id is not a string gets an `error` without `id` (the node
 * cannot attribute it). `messages` has what clients sent.
 */
function answeringServer(): Deno.HttpServer<Deno.NetAddr> & { messages: unknown[] } {
  const messages: unknown[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      messages.push(message);
      if (message.type !== "infer") return;
      const id = message.id;
      if (typeof id !== "string") {
        socket.send(JSON.stringify({
          type: "error",
          code: "invalid_request",
          message: "id: expected string",
        }));
        return;
      }
      const send = (frame: unknown) => socket.send(JSON.stringify(frame));
      send(startFrame(id));
      send({ type: "token", id, index: 0, token_id: 65, text: "A" });
      send(doneFrame(id, 1));
    };
    return response;
  });
  return Object.assign(server, { messages });
}

/** An idle timeout no other timer of the test uses, so its arming can be told apart. */
const IDLE_MS = 98_765;

Deno.test("infer with a value JSON cannot encode (a BigInt seed) fails that job (invalid_request), never throws, and leaves no phantom job holding its id or the idle watch", async () => {
  const server = answeringServer();
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`, {
    idleTimeoutMs: IDLE_MS,
  });
  try {
    const timers = recordTimeouts();
    let job;
    try {
      job = client.infer({ id: "a", prompt: "x", seed: 5n as unknown as number });
    } finally {
      timers.restore();
    }
    const error = await assertRejects(() => job.done, StreamRequestError);
    assertEquals(error.code, "invalid_request");
    assert(/BigInt/.test(error.message), error.message);
    await assertRejects(() => job.start, StreamRequestError);
    await assertRejects(() => job.tokens.getReader().read(), StreamRequestError);
    assertEquals(timers.delays.includes(IDLE_MS), false, "no idle watch for a job never sent");
    // The id is free: a job under it runs, and the socket carries it as usual.
    const next = client.infer({ id: "a", prompt: "x" });
    assertEquals((await next.done).finish_reason, "length");
    assertEquals(server.messages.map((m) => (m as { id: unknown }).id), ["a"]);
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("infer with an id that is not a string (a JavaScript caller's number or null) fails at once (invalid_request naming it), not after the idle timeout blaming the node", async () => {
  const server = answeringServer();
  const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`, {
    idleTimeoutMs: IDLE_MS,
  });
  try {
    for (const id of [5, null]) {
      const job = client.infer({ id: id as unknown as string, prompt: "x" });
      const settled = tracker(job.done);
      // Frames are answered in order: once a later job's `done` is in, the node's answer to
      // this one (an error it cannot attribute, on the current code) has come too.
      await client.infer({ prompt: "y" }).done;
      assert(settled(), `a job with id ${id} is still waiting after the node answered it`);
      const error = await assertRejects(() => job.done, StreamRequestError);
      assertEquals(error.code, "invalid_request");
      assert(error.message.includes(String(id)), error.message);
      assertEquals(job.id, String(id));
    }
    assertEquals(
      server.messages.every((m) => typeof (m as { id: unknown }).id === "string"),
      true,
      "nothing the node cannot attribute is sent",
    );
  } finally {
    client.close();
    await server.shutdown();
  }
});

Deno.test("a job started after the idle timeout closed the socket is told of the timeout (details.timeout idle), not that the caller closed it", async () => {
  const server = stallingServer();
  try {
    const url = `ws://127.0.0.1:${server.addr.port}`;
    const client = await StreamClient.connect(url, { idleTimeoutMs: 150 });
    const first = await assertRejects(
      () => client.infer({ prompt: "x" }).done,
      StreamClosedError,
    );
    assertEquals(first.details.timeout, "idle");
    for (const when of ["closing", "closed"]) {
      const later = await assertRejects(
        () => client.infer({ prompt: "y" }).done,
        StreamClosedError,
      );
      assertEquals(later.details.timeout, "idle", `${when}: ${later.message}`);
      assert(/no message .* for 0\.15 s/.test(later.message), `${when}: ${later.message}`);
      if (when === "closing") await client.closed;
    }
  } finally {
    await server.shutdown();
  }
});

/**
 * A `/v1/stream` stand-in that breaks the API's order: it answers each job with a `done` (or a
 * token, then a `done`) and never a `start`.
 */
function startlessServer(withToken: boolean): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const { type, id } = JSON.parse(event.data);
      if (type !== "infer") return;
      if (withToken) {
        socket.send(JSON.stringify({ type: "token", id, index: 0, token_id: 65, text: "A" }));
      }
      socket.send(JSON.stringify(doneFrame(id, 1)));
    };
    return response;
  });
}

Deno.test("a server that ends a job it never started (done or token before start) fails the job as a protocol error; job.start never hangs", async () => {
  for (const withToken of [false, true]) {
    const server = startlessServer(withToken);
    const url = `ws://127.0.0.1:${server.addr.port}`;
    const client = await StreamClient.connect(url, { idleTimeoutMs: IDLE_MS });
    try {
      const job = client.infer({ prompt: "x" });
      const started = tracker(job.start);
      const error = await assertRejects(() => job.done, StreamClosedError);
      assert(error.message.includes("not a Veriflow /v1/stream"), error.message);
      assert(started(), "start settles with done");
      await assertRejects(() => job.start, StreamClosedError);
      await client.closed;
    } finally {
      client.close();
      await server.shutdown();
    }
  }
});

Deno.test("a job started after a protocol error closed the socket is told that the server is not a Veriflow /v1/stream, not a vague close", async () => {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = () => socket.send("not json <html>");
    return response;
  });
  try {
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    await assertRejects(() => client.infer({ prompt: "x" }).done, StreamClosedError);
    for (const when of ["closing", "closed"]) {
      const later = await assertRejects(
        () => client.infer({ prompt: "y" }).done,
        StreamClosedError,
      );
      assert(later.message.includes("not a Veriflow /v1/stream"), `${when}: ${later.message}`);
      if (when === "closing") await client.closed;
    }
  } finally {
    await server.shutdown();
  }
});

/**
 * A stand-in for the global `WebSocket` that closes as Deno's does when the server closes: the
 * socket reads CLOSED first, and its close event comes a step later (Deno answers the close
 * frame, an async write, before it dispatches the event). `serverClose` starts that; the event
 * fires when the test calls `deliverClose`.
 */
class LaggingCloseSocket extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  static last: LaggingCloseSocket | undefined;
  readyState = LaggingCloseSocket.CONNECTING;
  sent: string[] = [];
  onopen: ((event: Event) => void) | null = null;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  #close: { code: number; reason: string } | undefined;

  constructor() {
    super();
    LaggingCloseSocket.last = this;
    // A task later, as a real socket opens: `connect` has set `onopen` by then.
    setTimeout(() => {
      this.readyState = LaggingCloseSocket.OPEN;
      this.onopen?.(new Event("open"));
    }, 0);
  }
  send(data: string): void {
    this.sent.push(data);
  }
  close(): void {
    this.serverClose(1005, "");
    this.deliverClose();
  }
  serverClose(code: number, reason: string): void {
    this.readyState = LaggingCloseSocket.CLOSED;
    this.#close = { code, reason };
  }
  deliverClose(): void {
    const event = new CloseEvent("close", this.#close);
    this.onclose?.(event);
    this.dispatchEvent(event);
  }
}

Deno.test("a job started while the server's close is on its way, or after `closed`, carries the server's close code and reason (1001 shutting down), not a bare 'the socket is closed'", async () => {
  const real = globalThis.WebSocket;
  globalThis.WebSocket = LaggingCloseSocket as unknown as typeof WebSocket;
  try {
    const client = await StreamClient.connect("ws://127.0.0.1:9", { idleTimeoutMs: 0 });
    const socket = LaggingCloseSocket.last!;
    socket.serverClose(1001, "server shutting down");
    const closed = tracker(client.closed);
    const during = client.infer({ id: "a", prompt: "x" });
    await Promise.resolve();
    assertEquals(closed(), false, "closed waits for the close the client has not yet seen");
    socket.deliverClose();
    await client.closed;
    const after = client.infer({ id: "a", prompt: "x" });
    for (const [when, job] of [["during", during], ["after", after]] as const) {
      const error = await assertRejects(() => job.done, StreamClosedError);
      assertEquals(
        [error.details.closeCode, error.details.closeReason],
        [1001, "server shutting down"],
        `${when}: ${error.message}`,
      );
      await assertRejects(() => job.start, StreamClosedError);
      await assertRejects(() => job.tokens.getReader().read(), StreamClosedError);
    }
    assertEquals(socket.sent, [], "nothing is sent on a socket that is not open");
  } finally {
    globalThis.WebSocket = real;
  }
});

// ---- a close never answered, a job failing midway, the entry point's docs -----------------------
//
// The streaming client as its users meet it: a close that a node never answers, a job that fails
// after some of its tokens arrived, and the `./client` entry point's documentation.

/**
 * Whether `promise` settles within a few microtasks: no event (a close frame, a TCP reset) can
 * arrive meanwhile, so it settled on what the caller did, not on the network.
 */
async function settledAtOnce(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  for (let turn = 0; turn < SETTLE_MICROTASKS; turn++) await Promise.resolve();
  return settled;
}

/** Microtasks a rejection passes through a reader and a `then` before it reports. */
const SETTLE_MICROTASKS = 8;

/** The texts `tokens` yields before it ends, and the error it ends with, if any. */
async function readAll(tokens: ReadableStream<{ text: string }>) {
  const texts: string[] = [];
  try {
    for await (const token of tokens) texts.push(token.text);
    return { texts, error: undefined };
  } catch (error) {
    return { texts, error };
  }
}

Deno.test("StreamClient.close() fails the running jobs at once (StreamClosedError), without waiting for a node that never answers the close", async () => {
  const server = wedgedServer();
  let client: StreamClient | undefined;
  try {
    client = await StreamClient.connect(server.url, { idleTimeoutMs: 0 });
    const job = client.infer({ prompt: "hi" });
    const reader = job.tokens.getReader();
    assertEquals((await reader.read()).value?.text, "A");
    client.close();
    assertEquals(await settledAtOnce(job.done), true, "done settles when the client closes");
    const error = await assertRejects(() => job.done, StreamClosedError);
    assertEquals(error.message, "the client closed the socket");
    assertEquals(await assertRejects(() => reader.read(), StreamClosedError), error);
    await server.closeReceived;
    assertEquals(server.messages.length, 1, "the infer; the close frame tells the node the rest");
  } finally {
    server.close();
    await client?.closed;
  }
});

Deno.test("runInfer: Ctrl-C against a node that never answers the close exits 130 at once, not when (if ever) the node answers", async () => {
  const server = wedgedServer();
  const err: string[] = [];
  let stop: (() => void) | undefined;
  const run = runInfer(["--url", server.url, "--idle-timeout", "0", "hi"], {
    stdout: () => stop!(), // Ctrl-C as the first token arrives
    stderr: (text) => void err.push(text),
    onStopSignal: (listener) => {
      stop = listener;
      return () => {};
    },
  });
  try {
    // The client's close frame has crossed the network: by now the command has long finished
    // what Ctrl-C asks of it; only a reply that never comes would hold it.
    await server.closeReceived;
    assertEquals(await settledAtOnce(run), true, "runInfer returns without the node's reply");
    assertEquals(await run, 130);
    assert(err.join("").includes("interrupted"), err.join(""));
    assertEquals(
      server.messages.map((m) => (m as { type: string }).type),
      ["infer", "cancel"],
      "the node is told to cancel the job before the socket closes",
    );
  } finally {
    server.close();
    await run;
  }
});

/**
 * A `/v1/stream` stand-in that answers each `infer` with a start, the tokens "a" and "b", and
 * then `end`: an error message for the job, or closing the socket.
 */
function failingAfterTwoTokens(end: "error" | "close"): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const { id } = JSON.parse(event.data);
      socket.send(JSON.stringify({
        type: "start",
        id,
        job_id: "ab".repeat(32),
        model: "x",
        model_name: "x",
        execution_provider: "cpu",
        prompt_tokens: 1,
      }));
      for (const [index, text] of ["a", "b"].entries()) {
        socket.send(JSON.stringify({ type: "token", id, index, token_id: 97 + index, text }));
      }
      if (end === "error") {
        socket.send(JSON.stringify({
          type: "error",
          id,
          code: "worker_stalled",
          message: "the worker went silent",
        }));
      } else socket.close(1011, "worker lost");
    };
    return response;
  });
}

Deno.test("StreamClient: the tokens that arrived before a job's error or the socket's close are read first, then the stream errors (none is dropped unread)", async () => {
  for (const end of ["error", "close"] as const) {
    const server = failingAfterTwoTokens(end);
    const client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    try {
      const job = client.infer({ prompt: "hi" });
      // A reader slower than the socket: everything has arrived before it reads a token.
      const failure = await job.done.then(() => undefined, (error) => error);
      const expected = end === "error" ? StreamRequestError : StreamClosedError;
      assert(failure instanceof expected, `${end}: done rejects with ${expected.name}`);
      const { texts, error } = await readAll(job.tokens);
      assertEquals(texts, ["a", "b"], `${end}: the tokens received are all read`);
      assertEquals(error, failure, `${end}: then the stream errors as done rejected`);
    } finally {
      client.close();
      await client.closed;
      await server.shutdown();
    }
  }
});

Deno.test("the ./client entry point's documentation lints clean: every type its API names is exported from it", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["doc", "--lint", new URL("../../client/mod.ts", import.meta.url).pathname],
    stdout: "null",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assertEquals(code, 0, new TextDecoder().decode(stderr));
});

// ---- `using` and other first uses ---------------------------------------------------------------
//
// The streaming client as a new library user meets it (`lib`): a `StreamClient` held with `using`
// closes its socket when the block ends, as `Deno.FsFile` and the std resources do, so a program
// that leaves the block early (a `throw`, a `return`, a `break` out of its tokens) leaves no socket
// holding the process open; and `infer` takes an `AbortSignal`, as `connect` and the inference
// ports' `submit` do, so `AbortSignal.timeout(ms)` bounds a job.

/**
 * A `/v1/stream` stand-in that starts each job and sends one token, then waits; a `cancel` ends
 * the job with `done`, `cancelled`, as the node does. `messages` has what clients sent.
 */
function cancellableServer(): Deno.HttpServer<Deno.NetAddr> & { messages: unknown[] } {
  const messages: unknown[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    const send = (frame: unknown) => socket.send(JSON.stringify(frame));
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      messages.push(message);
      if (message.type === "infer") {
        send(startFrame(message.id));
        send({ type: "token", id: message.id, index: 0, token_id: 65, text: "A" });
      } else if (message.type === "cancel") send(doneFrame(message.id, 1, "cancelled"));
    };
    return response;
  });
  return Object.assign(server, { messages });
}

Deno.test("a StreamClient held with `using` closes at the end of its block: its running job fails as after close(), and `closed` resolves", async () => {
  const server = stallingServer();
  try {
    let client: StreamClient;
    let done: Promise<unknown>;
    {
      using held = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
      client = held;
      const job = client.infer({ prompt: "x" });
      done = job.done;
      const reader = job.tokens.getReader();
      assertEquals((await reader.read()).value?.text, "A"); // the job is running
      reader.releaseLock();
    }
    const error = await assertRejects(() => done, StreamClosedError);
    assertEquals(error.message, "the client closed the socket");
    await client.closed;
    assert(server.messages.length === 1, "nothing but the infer was sent");
  } finally {
    await server.shutdown();
  }
});

Deno.test("a StreamClient is Disposable, so its type says `using` takes it", () => {
  // A compile-time check (deno check) as much as a run-time one: `Symbol.dispose` is a method.
  const dispose: (this: StreamClient) => void = StreamClient.prototype[Symbol.dispose];
  assertEquals(typeof dispose, "function");
});

Deno.test("aborting infer's signal cancels the running job on the node (the server is sent `cancel`) and fails it with the signal's reason, as fetch does", async () => {
  const server = cancellableServer();
  try {
    using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    const abort = new AbortController();
    const job = client.infer({ prompt: "x" }, { signal: abort.signal });
    const reader = job.tokens.getReader();
    assertEquals((await reader.read()).value?.text, "A"); // running
    abort.abort();
    await eventually(
      () => server.messages.some((m) => (m as { type: string }).type === "cancel"),
      "the client's cancel",
    );
    assertEquals(server.messages, [
      { prompt: "x", type: "infer", id: job.id },
      { type: "cancel", id: job.id },
    ]);
    const error = await job.done.catch((error) => error);
    assertEquals(error, abort.signal.reason);
    assertEquals((error as DOMException).name, "AbortError");
    reader.releaseLock();
  } finally {
    await server.shutdown();
  }
});

Deno.test("infer with a signal already aborted sends nothing and fails the job at once with the signal's reason", async () => {
  const server = cancellableServer();
  try {
    using client = await StreamClient.connect(`ws://127.0.0.1:${server.addr.port}`);
    const reason = new Error("gave up");
    const job = client.infer({ prompt: "x" }, { signal: AbortSignal.abort(reason) });
    assertEquals(await job.done.catch((error) => error), reason);
    assertEquals(await job.start.catch((error) => error), reason);
    // The next job on the socket is answered, so the first was never sent.
    const next = client.infer({ prompt: "y" });
    assertEquals((await next.start).id, next.id);
    assertEquals(server.messages, [{ prompt: "y", type: "infer", id: next.id }]);
  } finally {
    await server.shutdown();
  }
});

// ---- an API key a header cannot carry -----------------------------------------------------------
//
// An API key a header cannot carry (a line break copied with it, a letter past ASCII): Deno's
// `fetch` and `WebSocket` refuse it with a `TypeError` that quotes the header, so the key itself
// went into the caller's error, onto the terminal and into any log. The client says what is wrong
// with the key without showing it, and `status` does not blame the node.

const SECRET = "sk-very-secret-0123456789";

for (
  const [what, key] of [["a line break", `${SECRET}\nx`], ["a letter past ASCII", `${SECRET}é`]]
) {
  Deno.test(`StreamClient.connect with an API key holding ${what} rejects without showing the key`, async () => {
    const error = await StreamClient.connect("ws://127.0.0.1:9/v1/stream", { apiKey: key }).then(
      () => undefined,
      (e: Error) => e,
    );
    nodeAssert.ok(error instanceof Error, "connect did not reject");
    nodeAssert.ok(!error.message.includes(SECRET), `the key is in the error: ${error.message}`);
    nodeAssert.match(error.message, /API key/);
  });

  Deno.test(`cli.ts status with an API key holding ${what} says what is wrong with it, without showing it or blaming the node`, async () => {
    const err: string[] = [];
    const code = await runStatus(["--url", "http://127.0.0.1:9", "--api-key", key], {
      out: () => {},
      err: (line) => void err.push(line),
    });
    nodeAssert.equal(code, 2);
    const said = err.join("\n");
    nodeAssert.ok(!said.includes(SECRET), `the key is in the output: ${said}`);
    nodeAssert.match(said, /API key/);
    nodeAssert.doesNotMatch(said, /no node answered/);
  });
}

// ---- the `./client` entry point's permissions ---------------------------------------------------
//
// The package's `./client` entry point (`client/mod.ts`) loads with `--allow-net` alone: a program
// that only consumes a node's stream needs no env, FFI or read permission, which the main entry
// point (`mod.ts`, with onnxruntime and cbor-x) asks for at import.

/** Import `entry` in a process allowed only the network; its exit code and output. */
async function importWithNetOnly(entry: URL) {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/import.ts`;
    await Deno.writeTextFile(
      script,
      `const m = await import(${JSON.stringify(entry.href)}); console.log(typeof m.StreamClient);`,
    );
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-net",
        "--config",
        new URL("../../deno.json", import.meta.url).pathname,
        script,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
    return { code, stdout: text(stdout), stderr: text(stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the ./client entry point imports with --allow-net alone; the main one does not", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../../deno.json", import.meta.url)));
  nodeAssert.equal(config.exports["./client"], "./client/mod.ts");
  const client = await importWithNetOnly(new URL("../../client/mod.ts", import.meta.url));
  nodeAssert.deepEqual([client.code, client.stdout], [0, "function"], client.stderr);
  const main = await importWithNetOnly(new URL("../../mod.ts", import.meta.url));
  nodeAssert.notEqual(main.code, 0, "mod.ts asks for more than the network at import");
  nodeAssert.match(main.stderr, /NotCapable/);
});
