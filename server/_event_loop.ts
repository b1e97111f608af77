/**
 * One real turn of the event loop, for code that shares the JS thread with onnxruntime-node
 * (which computes synchronously on it): a socket write queued before a compute step is only
 * performed once the loop polls I/O, so the serving code yields between steps.
 *
 * @module
 */

/**
 * Resolve after one full turn of the event loop, I/O polling included. A message through a
 * fresh MessageChannel costs ~20 µs; `setTimeout(0)` is clamped to milliseconds once nested,
 * and microtasks or `setImmediate` do not reach the I/O phase.
 */
export function yieldToEventLoop(): Promise<void> {
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
