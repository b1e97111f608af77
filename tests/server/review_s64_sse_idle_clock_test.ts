/**
 * Review at stop 64: the SSE idle cut-off of the OpenAI routes (`http.clientIdleTimeoutMs`) runs
 * on the clock and timers the app was built with (`createApp({ timers })`), as its other
 * deadlines do, so a test (or an embedder) with a fake clock drives it without sleeping.
 */
import { assert, assertEquals } from "./_assert.ts";
import { eventually, startTestNode } from "./_fixtures.ts";
import { ManualTimers } from "../protocols/_helpers.ts";

/** The loopback peer `serve` would pass; `app.fetch` without it counts as remote. */
const LOOPBACK_INFO = {
  remoteAddr: { transport: "tcp" as const, hostname: "127.0.0.1", port: 40000 },
};

/** A minute: far longer than the test runs, so only the fake clock can reach it. */
const IDLE_MS = 60_000;

Deno.test("review s64: the SSE idle cut-off of /v1/completions and /v1/chat/completions runs on the app's injected clock: a client that stops reading is cut when the fake clock passes http.clientIdleTimeoutMs, not before", async () => {
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
