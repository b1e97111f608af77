/**
 * The node's HTTP port (`node/http_listener.ts`): answered 503 `starting` before the node is up,
 * and stopped gracefully (WebSocket and SSE jobs finish, their clients get the end).
 */
import assert from "node:assert/strict";
import { HttpListener, HttpListenError } from "../../node/http_listener.ts";
import { PeerListenError } from "../../network/peer_listener.ts";
import { EdgeError, openAiErrorBody } from "../../server/http_errors.ts";
import { assert as assertTrue, assertEquals, assertRejects } from "../server/_assert.ts";
import { eventually, startTestNode } from "../server/_fixtures.ts";
import { WsProbe } from "../server/_ws_probe.ts";
import { parseNodeConfig } from "../../node/config.ts";
import type { DrainTimers } from "../../server/serve.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import type {
  WsDoneMessage,
  WsErrorMessage,
  WsServerMessage,
} from "../../server/stream_protocol.ts";

// The node's HTTP port before the node is up: every request is answered 503 `starting` in the
// edge's error shape, with `Retry-After`, and the app answers once mounted. A port that cannot be
// bound is blamed on what is at fault: the host, a taken port, or (otherwise) neither alone, for
// the HTTP port and the peer port alike.

Deno.test("before the app is mounted the port answers 503 starting in the edge's error shape, with Retry-After; then the app answers", async () => {
  const listener = HttpListener.open({ hostname: "127.0.0.1", port: 0 });
  try {
    const early = await fetch(`${listener.url}/healthz`);
    assert.equal(early.status, 503);
    assert.equal(early.headers.get("retry-after"), "1");
    const body = await early.json();
    assert.deepEqual(
      body,
      openAiErrorBody(new EdgeError("starting", "the node is starting; retry in a moment")),
    );
    listener.mount({ fetch: () => new Response("up") });
    const later = await fetch(`${listener.url}/healthz`);
    assert.equal(later.status, 200);
    assert.equal(await later.text(), "up");
  } finally {
    await listener.close();
  }
});

Deno.test("an HTTP address this machine does not have is blamed on --host; a taken port on --port", () => {
  const notOurs = new HttpListenError(
    "10.255.255.1",
    8080,
    new Deno.errors.AddrNotAvailable("Cannot assign requested address (os error 99)"),
  );
  assert.match(notOurs.message, /10\.255\.255\.1 is not an address of this machine/);
  assert.match(notOurs.message, /--host ADDR/);
  assert.doesNotMatch(notOurs.message, /--port/);
  const taken = new HttpListenError("127.0.0.1", 8080, new Deno.errors.AddrInUse("in use"));
  assert.match(taken.message, /port 8080 is already in use.*choose another port with --port N/);
  assert.doesNotMatch(taken.message, /--host/);
});

Deno.test("a listen error other than a taken port does not tell the operator to change the port", () => {
  // What Deno said of an empty host before the configuration refused one.
  const other = new Error("invalid empty host: ''");
  const http = new HttpListenError("", 8080, other);
  assert.match(http.message, /invalid empty host: ''; check --host and --port/);
  assert.doesNotMatch(http.message, /choose another port/);
  const peer = new PeerListenError({ hostname: "", port: 7700 }, other);
  assert.match(peer.message, /invalid empty host: '' \(check --p2p-host and --p2p-port/);
  assert.doesNotMatch(peer.message, /another node on this port/);
  const taken = new PeerListenError(
    { hostname: "127.0.0.1", port: 7700 },
    new Deno.errors.AddrInUse("in use"),
  );
  assert.match(taken.message, /another node on this port\? choose one with --p2p-port/);
});

// The node's HTTP port stopping gracefully (`HttpListener.close`, what `node.shutdown()` and the
// first Ctrl-C call): a WebSocket's jobs finish like an SSE stream's, their clients get the end
// with the receipt, and only then does the socket close (1001). Past `http.drainTimeoutMs` the jobs
// are cancelled and every client told why: a WebSocket's `shutting_down` error, an SSE stream's
// `shutting_down` error event and `[DONE]`, a JSON answer's error body.
//
// @module

/** A prover that signs what it counted, so `done` carries a receipt. */
async function prover(job: TextJob, jobId: string, chunks: ReadableStream<TokenChunk>) {
  let count = 0;
  for await (const _ of chunks) count++;
  return { jobId, model: job.model, count, signature: new Uint8Array([0xca, 0xfe]) };
}

/** The message ending request `id`; fails (rather than hangs) if the socket closes first. */
async function endOf(probe: WsProbe, id: string): Promise<WsServerMessage> {
  const closed = probe.closed.then(() => {
    throw new Error(
      `the socket closed (${JSON.stringify(probe.closeEvent)}) before request ${id} ended`,
    );
  });
  return await Promise.race([probe.end(id), closed]);
}

Deno.test("HttpListener.close lets a WebSocket's running and queued jobs finish: each gets done with its receipt, a new infer is refused shutting_down, new requests get 503, then the socket closes 1001", async () => {
  const node = await startTestNode({ concurrency: 1, prover });
  const listener = HttpListener.open({ hostname: "127.0.0.1", port: 0 });
  listener.mount(node.app);
  const wsUrl = `${listener.url.replace("http:", "ws:")}/v1/stream`;
  try {
    const probe = await WsProbe.open(wsUrl);
    probe.send({ type: "infer", id: "run", model: "gated", prompt: "x", max_tokens: 5 });
    node.gated.release(2);
    await probe.next((m) => m.type === "token" && m.id === "run" && m.index === 1);
    // One slot: this one waits in the queue behind "run".
    probe.send({ type: "infer", id: "queued", model: "gated", prompt: "y", max_tokens: 3 });
    await probe.next((m) => m.type === "start" && m.id === "queued");
    assertEquals((await node.stats()).queuedJobs, 1);

    const closing = listener.close();

    probe.send({ type: "infer", id: "late", prompt: "too late", max_tokens: 3 });
    const late = await endOf(probe, "late") as WsErrorMessage;
    assertEquals([late.type, late.code], ["error", "shutting_down"]);
    const refused = await fetch(`${listener.url}/healthz`);
    assertEquals(refused.status, 503);
    assertEquals((await refused.json()).error.code, "shutting_down");
    await assertRejects(() => WsProbe.open(wsUrl));

    node.gated.release(100);
    for (const [id, tokens] of [["run", 5], ["queued", 3]] as const) {
      const done = await endOf(probe, id) as WsDoneMessage;
      assertEquals(done.type, "done", JSON.stringify(done));
      assertEquals([done.finish_reason, done.usage.completion_tokens], ["length", tokens]);
      assertEquals(done.receipt, {
        jobId: done.job_id,
        model: node.gated.info.cid,
        count: tokens,
        signature: "cafe",
      });
    }
    await probe.closed;
    assertEquals(probe.closeEvent, { code: 1001, reason: "server shutting down" });
    await closing;
    const stats = await node.stats();
    assertEquals([stats.jobsFinished, stats.jobsCancelled], [2, 0]);
    assertTrue(probe.messages.at(-1)?.type === "done", "the end came before the close");
  } finally {
    node.gated.release(1_000_000);
    await listener.close();
    await node.close();
  }
});

Deno.test("HttpListener.close closes a WebSocket with no job at once (1001) and stops", async () => {
  const node = await startTestNode();
  const listener = HttpListener.open({ hostname: "127.0.0.1", port: 0 });
  listener.mount(node.app);
  try {
    const probe = await WsProbe.open(`${listener.url.replace("http:", "ws:")}/v1/stream`);
    await listener.close();
    await probe.closed;
    assertEquals(probe.closeEvent, { code: 1001, reason: "server shutting down" });
  } finally {
    await listener.close();
    await node.close();
  }
});

/** Deadline timers the test fires by hand: no test waits out a real drain timeout. */
function fakeTimers() {
  const armed = new Map<number, { callback: () => void; ms: number }>();
  let next = 0;
  const timers: DrainTimers = {
    setTimeout: (callback, ms) => (armed.set(++next, { callback, ms }), next),
    clearTimeout: (handle) => void armed.delete(handle as number),
  };
  return { timers, armed };
}

Deno.test("HttpListener.close gives a job that outlives http.drainTimeoutMs up: the job is cancelled, its client told why (error: shutting_down, not a cancel it never sent) and the socket closed with 1001, one line says so, and close resolves", async () => {
  const node = await startTestNode({ concurrency: 1, prover });
  const { timers, armed } = fakeTimers();
  const log: string[] = [];
  // What the node's configuration passes (node.ts opens the listener with `config.http`).
  const { http } = parseNodeConfig({ http: { port: 0, drainTimeoutMs: 2_500 } });
  const listener = HttpListener.open({ ...http, timers, log: (line) => void log.push(line) });
  listener.mount(node.app);
  try {
    const probe = await WsProbe.open(`${listener.url.replace("http:", "ws:")}/v1/stream`);
    probe.send({ type: "infer", id: "long", model: "gated", prompt: "x", max_tokens: 50 });
    node.gated.release(1);
    await probe.next((m) => m.type === "token" && m.id === "long");

    const closing = listener.close();
    const deadlines = [...armed.values()];
    assertEquals(deadlines.map((t) => t.ms), [2_500]);
    deadlines[0].callback();
    // The socket ends its job itself when time is up: the grace timer (armed, never fired here)
    // does not have to cut it.
    await probe.closed;
    await closing;
    assertEquals(probe.closeEvent, { code: 1001, reason: "server shutting down" });
    const end = probe.messages.find((m) => m.type !== "token" && m.type !== "start");
    assertEquals([end?.type, (end as WsErrorMessage)?.code], ["error", "shutting_down"]);
    assertTrue(/send the request to another node/.test((end as WsErrorMessage).message));
    assertEquals(log.length, 1, log.join("\n"));
    assertTrue(/ending 0 open HTTP requests and 1 WebSocket /.test(log[0]), log[0]);
    // The job's slot is freed: the cut socket's job is cancelled, not left running.
    for (let i = 0; i < 200 && (await node.stats()).jobsCancelled === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    const stats = await node.stats();
    assertEquals([stats.jobsCancelled, stats.jobsFinished, stats.activeJobs], [1, 0, 0]);
  } finally {
    node.gated.release(1_000_000);
    await listener.close();
    await node.close();
  }
});

/** An SSE response read as it comes: its `data:` payloads, and whether it ended cleanly. */
class SseProbe {
  readonly data: string[] = [];
  /** Resolves once the stream has ended: `"end"` (closed by the server) or the error's name. */
  readonly ended: Promise<string>;
  #settled = false;
  #reader: ReadableStreamDefaultReader<string>;

  constructor(response: Response) {
    this.#reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    this.ended = this.#read().finally(() => this.#settled = true);
  }

  /** Whether the stream has ended. */
  get settled(): boolean {
    return this.#settled;
  }

  async #read(): Promise<string> {
    let buffer = "";
    try {
      while (true) {
        const { done, value } = await this.#reader.read();
        if (done) return "end";
        buffer += value;
        const events = buffer.split("\n\n");
        buffer = events.pop()!;
        for (const event of events) {
          if (event.startsWith("data: ")) this.data.push(event.slice("data: ".length));
        }
      }
    } catch (error) {
      return (error as Error).name;
    }
  }
}

/**
 * A streamed completion of `maxTokens` on the gated model, its first token let through and
 * received: a job running when the test closes the listener.
 */
async function streamingCompletion(
  url: string,
  gated: { release(n: number): void },
  maxTokens: number,
): Promise<SseProbe> {
  const stream = new SseProbe(
    await post(`${url}/v1/completions`, {
      model: "gated",
      prompt: "x",
      max_tokens: maxTokens,
      stream: true,
    }),
  );
  gated.release(1);
  await eventually(() => stream.data.length > 0, "the first token");
  return stream;
}

function post(url: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test("HttpListener.close past http.drainTimeoutMs ends SSE streams cleanly: a running completion's and a queued chat's jobs are cancelled, each stream ends with a shutting_down error event then data: [DONE]; a non-streamed completion gets 503 shutting_down (its status waits for the job's end); one line counts them", async () => {
  const node = await startTestNode({ concurrency: 1, prover });
  const { timers, armed } = fakeTimers();
  const log: string[] = [];
  const { http } = parseNodeConfig({ http: { port: 0, drainTimeoutMs: 2_500 } });
  const listener = HttpListener.open({ ...http, timers, log: (line) => void log.push(line) });
  listener.mount(node.app);
  try {
    const running = await streamingCompletion(listener.url, node.gated, 50);
    // One slot: these wait in the queue behind it.
    const chat = new SseProbe(
      await post(`${listener.url}/v1/chat/completions`, {
        model: "gated",
        messages: [{ role: "user", content: "y" }],
        max_tokens: 5,
        stream: true,
      }),
    );
    const full = post(`${listener.url}/v1/completions`, {
      model: "gated",
      prompt: "z",
      max_tokens: 5,
    });
    await eventually(async () => (await node.stats()).queuedJobs === 2, "two queued jobs");

    const closing = listener.close();
    const deadlines = [...armed.values()];
    assertEquals(deadlines.map((t) => t.ms), [2_500]);
    armed.clear();
    deadlines[0].callback();

    for (const stream of [running, chat]) {
      await eventually(() => stream.settled, "the stream's end, before any cut");
      assertEquals(await stream.ended, "end", "ended by the server, not cut");
      assertEquals(stream.data.at(-1), "[DONE]");
      const { error } = JSON.parse(stream.data.at(-2)!);
      assertEquals([error.code, error.type, error.param], ["shutting_down", "server_error", null]);
      assertTrue(/node is shutting down/.test(error.message), error.message);
      assertTrue(/http\.drainTimeoutMs/.test(error.message), error.message);
    }
    const answered = await full;
    const body = await answered.json();
    assertEquals([answered.status, body.error.code], [503, "shutting_down"]);
    // Everything was answered within the grace: nothing had to be cut.
    await closing;
    assertEquals(log.length, 1, log.join("\n"));
    assertTrue(
      /ending 3 open HTTP requests \(2 SSE streams, 1 JSON answer\) and 0 WebSockets /.test(
        log[0],
      ),
      log[0],
    );
    const stats = await node.stats();
    assertEquals([stats.jobsCancelled, stats.jobsFinished, stats.activeJobs, stats.queuedJobs], [
      3,
      0,
      0,
      0,
    ]);
  } finally {
    node.gated.release(1_000_000);
    await listener.close();
    await node.close();
  }
});

Deno.test("HttpListener.close lets an SSE stream whose job ends within http.drainTimeoutMs finish as always: its finish_reason, receipt and [DONE], no error, nothing logged", async () => {
  const node = await startTestNode({ concurrency: 1, prover });
  const { timers, armed } = fakeTimers();
  const log: string[] = [];
  const listener = HttpListener.open({
    hostname: "127.0.0.1",
    port: 0,
    drainTimeoutMs: 2_500,
    timers,
    log: (line) => void log.push(line),
  });
  listener.mount(node.app);
  try {
    const stream = await streamingCompletion(listener.url, node.gated, 4);
    const closing = listener.close();
    node.gated.release(100);
    assertEquals(await stream.ended, "end");
    await closing;
    assertEquals(stream.data.at(-1), "[DONE]");
    const last = JSON.parse(stream.data.at(-2)!);
    assertEquals([last.error, last.choices[0].finish_reason], [undefined, "length"]);
    assertEquals(last.veriflow_receipt.count, 4);
    assertEquals([log, armed.size], [[], 0]);
  } finally {
    node.gated.release(1_000_000);
    await listener.close();
    await node.close();
  }
});

Deno.test("HttpListener.close with http.drainTimeoutMs 0 (no drain) still ends an SSE stream cleanly: its job cancelled, a shutting_down error event, then data: [DONE]", async () => {
  const node = await startTestNode({ concurrency: 1, prover });
  const log: string[] = [];
  const { http } = parseNodeConfig({ http: { port: 0, drainTimeoutMs: 0 } });
  const listener = HttpListener.open({ ...http, log: (line) => void log.push(line) });
  listener.mount(node.app);
  try {
    const stream = await streamingCompletion(listener.url, node.gated, 50);
    await listener.close();
    assertEquals(await stream.ended, "end");
    assertEquals(stream.data.at(-1), "[DONE]");
    assertEquals(JSON.parse(stream.data.at(-2)!).error.code, "shutting_down");
    assertTrue(
      /ending 1 open HTTP request \(1 SSE stream\) and 0 WebSockets /.test(log[0]),
      log[0],
    );
  } finally {
    node.gated.release(1_000_000);
    await listener.close();
    await node.close();
  }
});
