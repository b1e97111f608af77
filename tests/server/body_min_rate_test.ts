/**
 * The minimum rate of a request body (`server/body_min_rate.ts`) judges the average since the
 * body passed its first 64 KiB, with a grace for pauses. Review verify4, F2: one 10 s window
 * without bytes cut an honest client (100 KiB/s, one 15 s pause) with 408 after 910 KiB of its
 * 1 MiB, and the cut said `request_timeout` ... "send it at once".
 */
import { assert, assertEquals } from "./_assert.ts";
import { readBodyText } from "../../server/body_limit.ts";
import { BODY_RATE_WINDOW_MS } from "../../server/body_min_rate.ts";
import { FakeTimers, tracker, turns } from "../_helpers/fake_timers.ts";

/** The body deadline here: far from the rate window, so each timer is told by its ms. */
const BODY_TIMEOUT_MS = 600_000;
const KIB = 1024;

/**
 * A body read by `readBodyText` under fake timers: `window(bytes)` sends `bytes` and then ends a
 * rate window (fires its timer); `close()` ends the body.
 */
function slowBody() {
  const timers = new FakeTimers();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
    },
  });
  const request = new Request("http://127.0.0.1/v1/completions", { method: "POST", body });
  const text = readBodyText(request, 2 << 20, { timeoutMs: BODY_TIMEOUT_MS, timers });
  text.catch(() => {});
  const done = tracker(text);
  const send = (bytes: number) => {
    if (bytes > 0 && !done()) controller.enqueue(new Uint8Array(bytes).fill(32));
  };
  return {
    text,
    done,
    window: async (bytes: number) => {
      send(bytes);
      await turns(10);
      timers.fireFor(BODY_RATE_WINDOW_MS);
      await turns(10);
    },
    close: async (bytes: number) => {
      send(bytes);
      controller.close();
      await turns(10);
    },
  };
}

Deno.test("a fast link that pauses 15 s after its first 64 KiB is read whole: one empty window is within the grace (100 KiB/s, paused 9.1-24.1 s)", async () => {
  const body = slowBody();
  await body.window(910 * KIB); // 0-10 s: 9.1 s at 100 KiB/s
  await body.window(0); // 10-20 s: paused
  assert(!body.done(), "cut after one window without bytes");
  await body.close(1024 * KIB - 910 * KIB); // 24.1 s on: the rest
  assertEquals((await body.text).length, 1024 * KIB);
});

Deno.test("a slow link (20 KiB/s) that pauses 15 s is read whole, however the pause falls on the windows", async () => {
  // Paused 10.5-25.5 s: 200 KiB, 10 KiB, 90 KiB, then 200 KiB a window.
  const late = slowBody();
  for (const kib of [200, 10, 90, 200, 200, 200]) await late.window(kib * KIB);
  await late.close(124 * KIB);
  assertEquals((await late.text).length, 1024 * KIB);
  // Paused 9.9-20.5 s (review's case): 198 KiB, 0, 190 KiB, then 200 KiB a window.
  const early = slowBody();
  for (const kib of [198, 0, 190, 200, 200, 200]) await early.window(kib * KIB);
  await early.close(36 * KIB);
  assertEquals((await early.text).length, 1024 * KIB);
});

Deno.test("a body that trickles after its first 64 KiB is still cut, with 408 request_body_too_slow naming the rate, once its grace is spent", async () => {
  const body = slowBody();
  await body.window(64 * KIB + 1); // the free bytes, then 100 bytes a window
  await body.window(100);
  assert(!body.done(), "cut within its grace");
  await body.window(100);
  assert(body.done(), "a trickle of 100 bytes per 10 s was not cut after its grace");
  const error = await body.text.then(() => undefined, (e) => e);
  assertEquals(error?.code, "request_body_too_slow");
  assert(error.message.includes("slower than 1.6 KiB/s"), error.message);
  assert(!error.message.includes("at once"), error.message);
});

Deno.test("a body that sent its bytes fast and then stopped banks no more than the grace: cut within three empty windows", async () => {
  const body = slowBody();
  await body.window(1000 * KIB);
  await body.window(0);
  await body.window(0);
  assert(!body.done(), "cut within its grace");
  await body.window(0);
  assert(body.done(), "a stalled body kept what it sent fast past its grace");
  assertEquals((await body.text.then(() => undefined, (e) => e))?.code, "request_body_too_slow");
});
