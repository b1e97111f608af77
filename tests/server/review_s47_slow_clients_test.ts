/**
 * Review s47 of slow and abusive HTTP clients: a request body that trickles, or stalls after
 * the headers, must not hold the request (its buffered bytes, its handler, a shutdown's wait)
 * forever.
 */
import { assert, assertEquals } from "./_assert.ts";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { EDGE_DEFAULTS } from "../../server/edge_config.ts";
import { resolveStartConfig } from "../../node/start_command.ts";
import { serve } from "../../server/serve.ts";
import { eventually } from "../_helpers/wait.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";

/** A port that counts submissions and accepts none (the tests never get that far). */
function countingPort(): { port: InferencePort; submitted: () => number } {
  let submitted = 0;
  return {
    port: {
      submit: () => {
        submitted++;
        return Promise.reject(new Error("no jobs"));
      },
      models: () => Promise.resolve([{ cid: "bafkmodel", name: "m", kind: "text" }] as never),
      stats: () => Promise.resolve({} as InferenceStats),
    },
    submitted: () => submitted,
  };
}

const LOOPBACK: Deno.Addr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };

Deno.test("review s47: a request body that stalls after its first bytes is answered 408 request_timeout at http.requestBodyTimeoutMs, its body cancelled and no job submitted", async () => {
  const timers = new FakeTimers();
  const { port, submitted } = countingPort();
  // Built apart from the call: the option is new, and the test must fail (not fail to compile)
  // on code that lacks it.
  const options = { inference: port, edge: { requestBodyTimeoutMs: 5_000 }, timers };
  const app = createApp(options);
  const cancelled = Promise.withResolvers<void>();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      // The first bytes of a chat request, then nothing: the client stalls (or sends a byte a
      // minute) and never ends the body.
      controller.enqueue(new TextEncoder().encode('{"messages":[{"role":"user","content":"hi'));
    },
    cancel() {
      cancelled.resolve();
    },
  });
  const answer = Promise.resolve(app.fetch(
    new Request("http://127.0.0.1/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json", host: "127.0.0.1" },
      body,
    }),
    { remoteAddr: LOOPBACK },
  ));
  const answered = tracker(answer);
  const bodyCancelled = tracker(cancelled.promise);
  await turns(10);
  assert(!answered(), "answered before the deadline");
  const deadline = [...timers.armed.values()].find((t) => t.ms === 5_000);
  assert(deadline !== undefined, "no body deadline armed at http.requestBodyTimeoutMs");
  timers.fireAll();
  await turns(10);
  assert(answered(), "still waiting on a body that will never end, past the deadline");
  const response = await answer;
  const { error } = await response.json();
  assertEquals([response.status, error?.code], [408, "request_timeout"]);
  assert(error.message.includes("http.requestBodyTimeoutMs"), error.message);
  // What the request held is let go: the rest of the body is not read, and no job ran.
  assert(bodyCancelled(), "the stalled body was not cancelled");
  assertEquals(submitted(), 0);
});

Deno.test("review s47: over TCP, a client that sends its headers and part of its body then stalls gets 408 once the body deadline passes", async () => {
  const timers = new FakeTimers();
  const { port, submitted } = countingPort();
  const options = { inference: port, edge: { requestBodyTimeoutMs: 5_000 }, timers };
  const server = serve({ app: createApp(options) });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: Number(new URL(server.url).port),
  });
  try {
    await conn.write(
      new TextEncoder().encode(
        "POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n" +
          "content-type: application/json\r\ncontent-length: 100\r\n\r\n" + '{"prompt":"h',
      ),
    );
    await eventually(() => [...timers.armed.values()].some((t) => t.ms === 5_000), "the deadline");
    timers.fireAll();
    const buffer = new Uint8Array(4096);
    let received = "";
    while (!received.includes("request_timeout")) {
      const n = await conn.read(buffer);
      if (n === null) break;
      received += new TextDecoder().decode(buffer.subarray(0, n));
    }
    assert(received.startsWith("HTTP/1.1 408"), received);
    assert(received.includes("request_timeout"), received);
    assertEquals(submitted(), 0);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

Deno.test("review s47: a body that ends before http.requestBodyTimeoutMs is served as before and leaves no deadline timer armed", async () => {
  const timers = new FakeTimers();
  const { port, submitted } = countingPort();
  const options = { inference: port, edge: { requestBodyTimeoutMs: 5_000 }, timers };
  const app = createApp(options);
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json", host: "127.0.0.1" },
      body: JSON.stringify({ prompt: "hi", max_tokens: 1 }),
    }),
    { remoteAddr: LOOPBACK },
  );
  await response.body?.cancel();
  // It reached the port (which refuses every job): the body was read whole.
  assertEquals(submitted(), 1);
  assertEquals([...timers.armed.values()].filter((t) => t.ms === 5_000), []);
});

Deno.test("review s47: http.requestBodyTimeoutMs is a node setting with a documented default", async () => {
  const { requestBodyTimeoutMs } = EDGE_DEFAULTS as unknown as Record<string, unknown>;
  assert(typeof requestBodyTimeoutMs === "number" && requestBodyTimeoutMs > 0);
  const { config } = await resolveStartConfig([]);
  assertEquals(
    (config.http as unknown as Record<string, unknown>).requestBodyTimeoutMs,
    requestBodyTimeoutMs,
  );
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  assert(readme.includes("http.requestBodyTimeoutMs"), "README's Limits do not name it");
});
