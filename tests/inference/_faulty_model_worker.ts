/**
 * A model worker entry for supervision tests: the real worker, plus a hook that throws an
 * uncaught error when {@link CRASH_CHANNEL} names this worker (see `_worker_faults.ts`).
 *
 * @module
 */
import "../../inference/_model_worker.ts";
import { CRASH_CHANNEL } from "./_worker_faults.ts";

const channel = new BroadcastChannel(CRASH_CHANNEL);
channel.onmessage = (event: MessageEvent<string>) => {
  if (event.data !== (globalThis as unknown as { name: string }).name) return;
  // Thrown from a timer, outside any request: an uncaught error, not an error reply.
  setTimeout(() => {
    throw new Error("injected crash");
  });
};
