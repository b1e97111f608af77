/**
 * `yieldToEventLoop` between synchronous compute steps (onnxruntime-node in-thread): a chunk sent
 * before a step must leave before the step, and what a client sends meanwhile (a cancel, another
 * client's request, a peer's keepalive) must be read within a few steps, not in a batch every
 * few dozen turns (a MessageChannel turn alone polled I/O only every ~20–40 turns: at 50 ms a
 * step, a read waited a second or more).
 *
 * The server runs in this thread and blocks it with a busy-wait per step; the client runs in a
 * Worker (its own thread and event loop) and answers each chunk as it comes. The server counts
 * its steps in shared memory: the client reads that marker when a chunk arrives, the server when
 * an answer is read. Order in steps, not wall time.
 */
import assert from "node:assert/strict";
import { IO_POLL_INTERVAL_MS, yieldToEventLoop } from "../../server/_event_loop.ts";

/** One stand-in decode step, ms: a larger model's, where turns are far apart in time. */
const STEP_MS = 50;
/** Chunks sent, one per step: enough for a MessageChannel-only yield's read batches to show. */
const CHUNKS = 24;
/**
 * Most steps a chunk or an answer may lag: two I/O poll intervals (a request on a new connection
 * took up to 5 steps, more than one interval's 2), the step under way, and 3 steps (150 ms) for the client's thread on a loaded two-core machine. A
 * MessageChannel-only yield read nothing for the first 19 steps over WebSocket, and no request on
 * another connection until the steps were over.
 */
const MAX_LAG_STEPS = Math.ceil((2 * IO_POLL_INTERVAL_MS) / STEP_MS) + 1 + 3;
/** Extra steps after the last chunk, so the answers to the last chunks checked can be read. */
const TAIL_STEPS = MAX_LAG_STEPS + 1;

/** The client, in a Worker: answers each chunk, noting the server's steps when it came. */
const CLIENT = `
self.onmessage = async ({ data: { kind, url, pingUrl, marker } }) => {
  const steps = new Int32Array(marker);
  const arrivals = [];
  if (kind === "ws") {
    const socket = new WebSocket(url);
    socket.onmessage = ({ data }) => {
      arrivals[Number(data)] = Atomics.load(steps, 0);
      socket.send(data);
    };
    socket.onclose = () => self.postMessage(arrivals);
  } else {
    const response = await fetch(url);
    const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
    const answers = [];
    let text = "";
    for await (const piece of response.body.pipeThrough(new TextDecoderStream())) {
      const at = Atomics.load(steps, 0);
      text += piece;
      let end;
      while ((end = text.indexOf("\\n\\n")) >= 0) {
        const k = text.slice(6, end);
        text = text.slice(end + 2);
        arrivals[Number(k)] = at;
        // The answer is a request on another connection, as another client's would be.
        answers.push(fetch(pingUrl + "?k=" + k, { client }).then((r) => r.text()));
      }
    }
    await Promise.all(answers);
    client.close();
    self.postMessage(arrivals);
  }
};
`;

function busyStep(): void {
  const end = performance.now() + STEP_MS;
  while (performance.now() < end) {
    // A synchronous decode step: nothing else runs on this thread meanwhile.
  }
}

/** Per chunk, the server's steps done when it reached the client, and when its answer was read. */
interface Seen {
  arrivedAt: number[];
  answeredAt: number[];
}

/**
 * Serves one generation on `kind`, the client in a Worker: a chunk, a yield, a step, `CHUNKS`
 * times, then `TAIL_STEPS` more steps with yields.
 */
async function generate(kind: "ws" | "sse"): Promise<Seen> {
  const marker = new SharedArrayBuffer(4);
  const steps = new Int32Array(marker);
  const answeredAt: number[] = [];
  const answered = (k: string) => {
    answeredAt[Number(k)] ??= Atomics.load(steps, 0);
  };

  async function run(send: (k: number) => void): Promise<void> {
    for (let step = 0; step < CHUNKS + TAIL_STEPS; step++) {
      if (step < CHUNKS) send(step);
      await yieldToEventLoop();
      busyStep();
      Atomics.store(steps, 0, step + 1);
    }
  }

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/ping") {
      answered(url.searchParams.get("k")!);
      return new Response("pong");
    }
    if (url.pathname === "/ws") {
      const { socket, response } = Deno.upgradeWebSocket(req);
      socket.onmessage = ({ data }) => answered(data);
      socket.onopen = () => run((k) => socket.send(String(k))).then(() => socket.close());
      return response;
    }
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        run((k) => controller.enqueue(encoder.encode(`data: ${k}\n\n`)))
          .then(() => controller.close());
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  const worker = new Worker(
    URL.createObjectURL(new Blob([CLIENT], { type: "application/javascript" })),
    { type: "module" },
  );
  try {
    const base = `127.0.0.1:${server.addr.port}`;
    const arrivedAt = new Promise<number[]>((resolve) => {
      worker.onmessage = ({ data }) => resolve(data);
    });
    worker.postMessage({
      kind,
      url: kind === "ws" ? `ws://${base}/ws` : `http://${base}/sse`,
      pingUrl: `http://${base}/ping`,
      marker,
    });
    return { arrivedAt: await arrivedAt, answeredAt };
  } finally {
    worker.terminate();
    await server.shutdown();
  }
}

function assertReadWhileComputing(seen: Seen): void {
  // Chunk k is sent once k steps are done: with its write left behind, it would come late.
  const lateChunks = seen.arrivedAt.map((at, k) => at - k).filter((lag) => lag > MAX_LAG_STEPS);
  assert.deepEqual(lateChunks, [], `chunks lagged (${JSON.stringify(seen)})`);
  const unreadOrLate = Array.from(
    { length: CHUNKS },
    (_, k) => (seen.answeredAt[k] ?? Infinity) - k,
  )
    .filter((lag) => lag > MAX_LAG_STEPS);
  assert.deepEqual(unreadOrLate, [], `answers read late (${JSON.stringify(seen)})`);
}

Deno.test("yieldToEventLoop: a WebSocket client gets each chunk and its answer is read within a few steps while the server computes", async () => {
  assertReadWhileComputing(await generate("ws"));
});

Deno.test("yieldToEventLoop: an SSE client gets each chunk and its requests on other connections are served within a few steps while the server computes", async () => {
  assertReadWhileComputing(await generate("sse"));
});
