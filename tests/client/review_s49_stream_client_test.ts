/**
 * Review s49 of the streaming client (`client/stream_client.ts`) as a library user meets it:
 * `infer` with a request that cannot go on the wire (a value JSON cannot encode, an id that is
 * not a string); a server that ends a job it never started; and what a job started after the
 * client itself closed the socket (its idle timeout, a protocol error) is told.
 *
 * @module
 */
import { assert, assertEquals, assertRejects } from "../server/_assert.ts";
import { StreamClient, StreamClosedError, StreamRequestError } from "../../client/stream_client.ts";
import { tracker } from "../_helpers/fake_timers.ts";
import { doneFrame, stallingServer, startFrame } from "./_stub_servers.ts";
import { recordTimeouts } from "./_timers.ts";

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

Deno.test("review s49: infer with a value JSON cannot encode (a BigInt seed) fails that job (invalid_request), never throws, and leaves no phantom job holding its id or the idle watch", async () => {
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

Deno.test("review s49: infer with an id that is not a string (a JavaScript caller's number or null) fails at once (invalid_request naming it), not after the idle timeout blaming the node", async () => {
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

Deno.test("review s49: a job started after the idle timeout closed the socket is told of the timeout (details.timeout idle), not that the caller closed it", async () => {
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

Deno.test("review s49: a server that ends a job it never started (done or token before start) fails the job as a protocol error; job.start never hangs", async () => {
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

Deno.test("review s49: a job started after a protocol error closed the socket is told that the server is not a Veriflow /v1/stream, not a vague close", async () => {
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

Deno.test("review s49: a job started while the server's close is on its way, or after `closed`, carries the server's close code and reason (1001 shutting down), not a bare 'the socket is closed'", async () => {
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
