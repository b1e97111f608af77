/**
 * A turn of the event loop, for code that shares the JS thread with onnxruntime-node (which
 * computes synchronously on it): a socket write queued before a compute step is only performed
 * once the runtime gets a turn, and a socket read (a client's cancel, another client's request, a
 * peer's keepalive) only once the runtime polls I/O, so the serving code yields between steps.
 *
 * Measured in Deno 2.9.6 (`tmp/s76/yield/`: 20 steps of 50 ms blocking, a chunk sent after each,
 * SSE and WebSocket, a client on 127.0.0.1, 3 runs each):
 * - a message through a MessageChannel (~20–60 µs) lets the write leave: the client had chunk k
 *   2–6 ms after it was sent, before step k + 1 ended, 19 of 19 chunks. But it does not poll I/O
 *   each turn (the message is ready at once, so the runtime never waits for I/O): a WebSocket
 *   message, or a request on another connection, sent after chunk 2 was handled only after the
 *   last step, every run (`setImmediate` the same); in `tests/server/event_loop_yield_test.ts`
 *   (50 ms steps) nothing was read for 19 turns over WebSocket, and no request on another
 *   connection until the steps were over. In the node (in-thread `small` model), a /healthz sent
 *   during a stream took 159–2089 ms (medians 691 and 235 ms in two runs); 58–579 ms (medians 71
 *   and 157 ms) with this function.
 * - `setTimeout(0)` does both (the runtime has nothing ready, waits for the timer, and polls I/O
 *   meanwhile: the read was handled at step 3–5), but costs ~2.3 ms a turn (timers have
 *   millisecond resolution): three times the built-in `tiny` model's decode step.
 *
 * So each turn goes through a MessageChannel, and once every {@link IO_POLL_INTERVAL_MS} of
 * compute through a timer.
 *
 * @module
 */

/**
 * Longest the thread computes with only MessageChannel turns before a turn that polls I/O, ms.
 * Bounds how late a read is handled during a generation (a cancel, a peer's keepalive: those
 * tolerate a tenth of a second), while the timer's ~2.3 ms costs about 2 % of the compute time
 * (the node's tokens/s did not move beyond the noise of a shared machine).
 */
export const IO_POLL_INTERVAL_MS = 100;

/** When a turn last polled I/O (`performance.now()`); never, at first. */
let lastIoPollAt = -Infinity;

/**
 * Resolve after a turn of the event loop: the writes queued so far are performed, and, when
 * {@link IO_POLL_INTERVAL_MS} have passed since a turn last did, pending reads are handled too.
 *
 * @returns A promise that resolves after the turn.
 */
export async function yieldToEventLoop(): Promise<void> {
  if (performance.now() - lastIoPollAt < IO_POLL_INTERVAL_MS) return await messageTurn();
  await timerTurn();
  lastIoPollAt = performance.now();
}

/** A turn through a fresh MessageChannel: writes leave, reads wait (see the module's notes). */
function messageTurn(): Promise<void> {
  return new Promise((resolve) => {
    const { port1, port2 } = new MessageChannel();
    port1.onmessage = () => {
      port1.close();
      resolve();
    };
    port2.postMessage(null);
    port2.close();
  });
}

/** A turn through a timer: the runtime waits for it and polls I/O meanwhile. */
function timerTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
