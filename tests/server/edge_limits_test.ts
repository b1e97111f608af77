/**
 * The edge's bounded inputs: body size, prompt length (before tokenisation), WebSocket message size
 * and fields, and clients that stop reading, cut off on the clock and timers the edge is given.
 */
import { assert, assertEquals } from "./_assert.ts";
import { eventually, startTestNode, type TestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import type { EdgeConfig } from "../../server/edge_config.ts";
import { EdgeStats } from "../../server/edge_stats.ts";
import { InferenceGateway } from "../../server/inference_gateway.ts";
import { LOOPBACK_CLIENT } from "../../server/client_identity.ts";
import {
  type SessionSocket,
  StreamSession,
  type StreamSessionOptions,
  WS_CLOSE,
  WS_HIGH_WATER_BYTES,
  WS_MAX_BUFFERED_BYTES,
} from "../../server/stream_session.ts";
import type { WsErrorMessage } from "../../server/stream_protocol.ts";
import { ManualTimers } from "../protocols/_helpers.ts";
import type { InferencePort } from "../../inference/inference_port.ts";

// The edge's bounded inputs: body size, prompt length (before tokenisation), WebSocket message
// size and fields, and clients that stop reading.

async function withNode(
  edge: Partial<EdgeConfig>,
  body: (node: TestNode) => Promise<void>,
): Promise<void> {
  const node = await startTestNode({ edge });
  try {
    await body(node);
  } finally {
    await node.close();
  }
}

/** The loopback peer `serve` would pass; `app.fetch` without it counts as remote. */
const LOOPBACK_INFO = {
  remoteAddr: { transport: "tcp" as const, hostname: "127.0.0.1", port: 40000 },
};

async function errorOf(response: Response) {
  const { error } = await response.json();
  return { status: response.status, code: error.code, param: error.param, message: error.message };
}

Deno.test("A body over http.maxRequestBytes is refused with 413 before it is parsed, with or without Content-Length", async () => {
  await withNode({ maxRequestBytes: 4096 }, async (node) => {
    const body = JSON.stringify({ prompt: "x".repeat(5000), max_tokens: 1 });
    const declared = await fetch(`${node.url}/v1/completions`, { method: "POST", body });
    const e = await errorOf(declared);
    assertEquals([e.status, e.code], [413, "request_too_large"]);
    assert(e.message.includes("http.maxRequestBytes"), e.message);
    // Chunked: no Content-Length, so the limit is found while reading.
    const bytes = new TextEncoder().encode(body);
    const chunked = await fetch(`${node.url}/v1/chat/completions`, {
      method: "POST",
      body: new ReadableStream({
        start(controller) {
          for (let i = 0; i < bytes.length; i += 1000) controller.enqueue(bytes.slice(i, i + 1000));
          controller.close();
        },
      }),
    });
    assertEquals((await errorOf(chunked)).status, 413);
    assertEquals((await node.stats()).jobsStarted, 0);
    // At the limit is fine.
    const ok = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      body: JSON.stringify({ prompt: "Hello", max_tokens: 2 }),
    });
    assertEquals(ok.status, 200);
    await ok.body?.cancel();
  });
});

Deno.test("A prompt over http.maxPromptChars is refused before it is tokenised: completions, the rendered chat prompt, WebSocket", async () => {
  await withNode({ maxPromptChars: 40 }, async (node) => {
    node.gated.release(1000); // a prompt let through by mistake runs to its end, not forever
    const post = (path: string, body: unknown) =>
      fetch(`${node.url}${path}`, { method: "POST", body: JSON.stringify(body) });
    let e = await errorOf(
      await post("/v1/completions", { model: "gated", prompt: "p".repeat(41) }),
    );
    assertEquals([e.status, e.code, e.param], [400, "prompt_too_long", "prompt"]);
    assert(e.message.includes("http.maxPromptChars"), e.message);
    // Every message is short; only the prompt they render to is over the limit.
    const messages = [1, 2, 3].map(() => ({ role: "user", content: "m".repeat(20) }));
    e = await errorOf(await post("/v1/chat/completions", { model: "gated", messages }));
    assertEquals([e.status, e.code, e.param], [400, "prompt_too_long", "messages"]);
    const probe = await WsProbe.open(node.wsUrl);
    probe.send({ type: "infer", id: "w", model: "gated", prompt: "p".repeat(41) });
    assertEquals((await probe.end("w") as WsErrorMessage).code, "prompt_too_long");
    await probe.close();
    assertEquals(node.gated.encoded, 0, "a refused prompt must never reach the tokenizer");
    // A prompt at the limit is tokenised and runs.
    const ok = await post("/v1/completions", {
      model: "gated",
      prompt: "p".repeat(40),
      max_tokens: 1,
    });
    assertEquals(ok.status, 200);
    await ok.text();
    assertEquals(node.gated.encoded, 1);
  });
});

Deno.test("A WebSocket message over http.maxRequestBytes gets close 1009 with a reason naming the limit", async () => {
  await withNode({ maxRequestBytes: 2048 }, async (node) => {
    const probe = await WsProbe.open(node.wsUrl);
    probe.send({ type: "infer", id: "big", prompt: "x".repeat(3000) });
    await Promise.race([probe.closed, probe.next(() => true)]);
    assertEquals(probe.closeEvent?.code, WS_CLOSE.messageTooBig);
    assert(probe.closeEvent!.reason.includes("http.maxRequestBytes"), probe.closeEvent!.reason);
    assertEquals((await node.stats()).jobsStarted, 0);
    // Multi-byte text is measured in UTF-8 bytes: 700 × 3 bytes is over, 700 characters is not.
    const wide = await WsProbe.open(node.wsUrl);
    wide.send({ type: "infer", id: "w", prompt: "世".repeat(700) });
    await Promise.race([wide.closed, wide.next(() => true)]);
    assertEquals(wide.closeEvent?.code, WS_CLOSE.messageTooBig);
  });
});

Deno.test("WebSocket messages with an unknown field are refused naming it (max_token is not max_tokens)", async () => {
  await withNode({}, async (node) => {
    const probe = await WsProbe.open(node.wsUrl);
    probe.send({ type: "infer", id: "typo", prompt: "Hello", max_token: 5 });
    const error = await probe.end("typo") as WsErrorMessage;
    assertEquals([error.type, error.code], ["error", "invalid_request"]);
    assert(error.message.includes("max_token"), error.message);
    probe.send({ type: "cancel", id: "typo", reason: "x" });
    const cancelError = await probe.next((m) =>
      m.type === "error" && m.id === "typo" && m !== error
    ) as WsErrorMessage;
    assert(cancelError.message.includes("reason"), cancelError.message);
    assertEquals((await node.stats()).jobsStarted, 0);
    await probe.close();
  });
});

Deno.test("An SSE client that stops reading is cut off after http.clientIdleTimeoutMs: its job is cancelled and counted", async () => {
  await withNode({ clientIdleTimeoutMs: 50 }, async (node) => {
    // Straight into the app: the test holds the body stream and decides not to read it.
    const response = await node.app.fetch(
      new Request("http://127.0.0.1/v1/completions", {
        method: "POST",
        body: JSON.stringify({ model: "gated", prompt: "x", max_tokens: 50, stream: true }),
      }),
      LOOPBACK_INFO,
    );
    const reader = response.body!.getReader();
    node.gated.release(100);
    await reader.read(); // one event, then the client reads no more
    await eventually(async () => (await node.stats()).jobsCancelled === 1, "the job cancelled");
    assert(node.gated.steps <= 2, `computed ${node.gated.steps} steps for an idle client`);
    assertEquals((await node.stats()).activeJobs, 0);
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    assert(metrics.includes("veriflow_http_idle_timeouts_total 1\n"), metrics);
    await reader.read().then(() => {}, () => {}); // the body was errored
  });
});

/**
 * A socket whose client never reads: its send buffer starts over the high-water mark and grows
 * by every message sent.
 */
class StuckSocket implements SessionSocket {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = WS_HIGH_WATER_BYTES + 1;
  sent: string[] = [];
  #encoder = new TextEncoder();
  closed = Promise.withResolvers<{ code?: number; reason?: string }>();
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  send(data: string): void {
    this.sent.push(data);
    this.bufferedAmount += this.#encoder.encode(data).byteLength;
  }
  close(code?: number, reason?: string): void {
    this.readyState = WebSocket.CLOSED;
    this.closed.resolve({ code, reason });
  }
  receive(message: unknown): void {
    this.onmessage?.(new MessageEvent("message", { data: JSON.stringify(message) }));
  }
}

Deno.test("A WebSocket client that stops reading is cut off after http.clientIdleTimeoutMs (close 1008): its jobs are cancelled and counted", async () => {
  await withNode({}, async (node) => {
    const stats = new EdgeStats();
    const socket = new StuckSocket();
    new StreamSession(socket, new InferenceGateway({ inference: node.port }), {
      maxMessageBytes: 1 << 20,
      idleTimeoutMs: 30,
      client: LOOPBACK_CLIENT,
      stats,
    });
    socket.receive({ type: "infer", id: "s", model: "gated", prompt: "x", max_tokens: 50 });
    node.gated.release(100);
    await eventually(() => socket.readyState === WebSocket.CLOSED, "the socket closed");
    const { code, reason } = await socket.closed.promise;
    assertEquals(code, WS_CLOSE.policyViolation);
    assert(reason!.includes("http.clientIdleTimeoutMs"), reason);
    await eventually(async () => (await node.stats()).jobsCancelled === 1, "the job cancelled");
    assertEquals(stats.idleTimeouts, 1);
    assert(node.gated.steps <= 2, `computed ${node.gated.steps} steps for an idle client`);
  });
});

Deno.test("A WebSocket client that sends bad frames and reads no reply is cut off (close 1008) once its replies reach WS_MAX_BUFFERED_BYTES", async () => {
  await withNode({}, async (node) => {
    const socket = new StuckSocket();
    new StreamSession(socket, new InferenceGateway({ inference: node.port }), {
      maxMessageBytes: 1 << 20,
      // Far away: only the buffer's size may end this client here.
      idleTimeoutMs: 600_000,
      client: LOOPBACK_CLIENT,
      stats: new EdgeStats(),
    });
    // Each frame is refused with an `error` of about 100 bytes: 100,000 of them are ~10 MB.
    for (let i = 0; i < 100_000 && socket.readyState === WebSocket.OPEN; i++) {
      socket.onmessage?.(new MessageEvent("message", { data: "{" }));
    }
    assertEquals(socket.readyState, WebSocket.CLOSED);
    const { code, reason } = await socket.closed.promise;
    assertEquals(code, WS_CLOSE.policyViolation);
    assert(reason!.includes(`${WS_MAX_BUFFERED_BYTES} bytes`), reason);
    const largest = Math.max(...socket.sent.map((data) => data.length));
    assert(
      socket.bufferedAmount <= WS_MAX_BUFFERED_BYTES + largest,
      `${socket.bufferedAmount} bytes queued for a client that reads nothing`,
    );
    // Frames that arrive after the cut-off get no reply.
    const sent = socket.sent.length;
    socket.receive({ type: "infer", id: "late", prompt: "x" });
    assertEquals(socket.sent.length, sent);
  });
});

Deno.test("A WebSocket client with no job running whose replies sit unread over the high-water mark is cut off after http.clientIdleTimeoutMs", async () => {
  await withNode({}, async (node) => {
    const stats = new EdgeStats();
    const socket = new StuckSocket();
    new StreamSession(socket, new InferenceGateway({ inference: node.port }), {
      maxMessageBytes: 1 << 20,
      idleTimeoutMs: 30,
      client: LOOPBACK_CLIENT,
      stats,
    });
    // One refusal, no job: nothing but the session's own watch of the buffer can end this.
    socket.receive({ type: "dance", id: "d" });
    assertEquals(socket.sent.length, 1);
    await eventually(() => socket.readyState === WebSocket.CLOSED, "the socket closed");
    const { code, reason } = await socket.closed.promise;
    assertEquals(code, WS_CLOSE.policyViolation);
    assert(reason!.includes("http.clientIdleTimeoutMs"), reason);
    assertEquals(stats.idleTimeouts, 1);
  });
});

Deno.test("A chat with more messages and content parts than http.maxChatMessages is refused (400 too_many_messages) before validation", async () => {
  await withNode({ maxChatMessages: 4 }, async (node) => {
    const chat = (messages: unknown[]) =>
      fetch(`${node.url}/v1/chat/completions`, {
        method: "POST",
        body: JSON.stringify({ messages, max_tokens: 1 }),
      });
    const message = { role: "user", content: "hi" };
    let e = await errorOf(await chat(Array(5).fill(message)));
    assertEquals([e.status, e.code, e.param], [400, "too_many_messages", "messages"]);
    assert(e.message.includes("http.maxChatMessages"), e.message);
    // Parts count too: one message of four parts is five items.
    const parts = Array(4).fill({ type: "text", text: "hi" });
    e = await errorOf(await chat([{ role: "user", content: parts }]));
    assertEquals(e.code, "too_many_messages");
    // Even when an item is malformed: the count comes first, the schema after.
    e = await errorOf(await chat([...Array(4).fill(message), { role: "wizard" }]));
    assertEquals(e.code, "too_many_messages");
    const ok = await chat(Array(4).fill(message));
    assertEquals(ok.status, 200);
    await ok.text();
  });
});

// The SSE idle cut-off of the OpenAI routes (`http.clientIdleTimeoutMs`) runs on the clock and
// timers the app was built with (`createApp({ timers })`), as its other deadlines do, so a test (or
// an embedder) with a fake clock drives it without sleeping.

/** A minute: far longer than the test runs, so only the fake clock can reach it. */
const IDLE_MS = 60_000;

Deno.test("the SSE idle cut-off of /v1/completions and /v1/chat/completions runs on the app's injected clock: a client that stops reading is cut when the fake clock passes http.clientIdleTimeoutMs, not before", async () => {
  for (
    const [path, body] of [
      ["/v1/completions", { model: "gated", prompt: "x", max_tokens: 50, stream: true }],
      ["/v1/chat/completions", {
        model: "gated",
        messages: [{ role: "user", content: "x" }],
        max_tokens: 50,
        stream: true,
      }],
    ] as const
  ) {
    const timers = new ManualTimers();
    const node = await startTestNode({ edge: { clientIdleTimeoutMs: IDLE_MS }, timers });
    try {
      const response = await node.app.fetch(
        new Request(`http://127.0.0.1${path}`, { method: "POST", body: JSON.stringify(body) }),
        LOOPBACK_INFO,
      );
      assertEquals(response.status, 200, path);
      const reader = response.body!.getReader();
      node.gated.release(100);
      assertEquals((await reader.read()).done, false, path); // one event, then no more reads
      await timers.advance(IDLE_MS - 1);
      assertEquals((await node.stats()).jobsCancelled, 0, `${path}: cut before its deadline`);
      await timers.advance(1);
      await eventually(
        async () => (await node.stats()).jobsCancelled === 1,
        `${path}: the idle client's job cancelled by the fake clock`,
      );
      const metrics = await (await node.app.fetch(
        new Request("http://127.0.0.1/metrics"),
        LOOPBACK_INFO,
      )).text();
      assert(metrics.includes("veriflow_http_idle_timeouts_total 1\n"), metrics);
      await reader.read().then(() => {}, () => {}); // the body was errored
      assertEquals(timers.pending, 0, `${path}: no timer left armed`);
    } finally {
      await node.close();
    }
  }
});

// The WebSocket API's idle cut-off (`http.clientIdleTimeoutMs`, a client that leaves its replies
// unread over the high-water mark) runs on the clock and timers it is given, as the SSE one does
// (above), so a fake clock drives it.

/** A socket whose client never reads: its send buffer is over the high-water mark from the start. */
class UnreadSocket implements SessionSocket {
  readyState: number = WebSocket.OPEN;
  bufferedAmount = WS_HIGH_WATER_BYTES + 1;
  sent: string[] = [];
  closedWith: { code?: number; reason?: string } | undefined;
  onmessage: ((event: MessageEvent) => void) | null = null;
  onclose: ((event: CloseEvent) => void) | null = null;
  onerror: ((event: Event) => void) | null = null;
  send(data: string): void {
    this.sent.push(data);
    this.bufferedAmount += data.length;
  }
  close(code?: number, reason?: string): void {
    this.readyState = WebSocket.CLOSED;
    this.closedWith = { code, reason };
  }
}

const WS_IDLE_MS = 200;

Deno.test("a WebSocket client that leaves its replies unread is cut off (1008) when the injected clock passes http.clientIdleTimeoutMs, not before, with no real time waited", async () => {
  const timers = new ManualTimers();
  const stats = new EdgeStats();
  const socket = new UnreadSocket();
  const options: StreamSessionOptions = {
    maxMessageBytes: 1 << 20,
    idleTimeoutMs: WS_IDLE_MS,
    client: LOOPBACK_CLIENT,
    stats,
    timers,
  };
  new StreamSession(
    socket,
    new InferenceGateway({ inference: {} as InferencePort }),
    options,
  );
  // One refusal, no job: only the session's watch of the buffer can end this client.
  socket.onmessage?.(new MessageEvent("message", { data: JSON.stringify({ type: "dance" }) }));
  assertEquals(socket.sent.length, 1);
  await timers.advance(WS_IDLE_MS - 1);
  assertEquals(socket.readyState, WebSocket.OPEN, "cut before its deadline");
  await timers.advance(WS_IDLE_MS);
  assertEquals(socket.closedWith?.code, WS_CLOSE.policyViolation);
  assert(
    socket.closedWith!.reason!.includes("http.clientIdleTimeoutMs"),
    socket.closedWith!.reason,
  );
  assertEquals(stats.idleTimeouts, 1);
  await timers.advance(WS_IDLE_MS);
  assertEquals(timers.pending, 0, "the watch ended with the socket");
});
